"""The mirror hands git its token through the environment, never a URL or config file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.manifests.mirror import Mirror, init_bare
from bot.manifests.remote import PushStatus, git_environment


class TestCredentials:
    """A token reaches git as an http.extraHeader in GIT_CONFIG_*, and nowhere else."""

    def test_https_token_becomes_an_extra_header(self) -> None:
        env = git_environment("https://git.example.com/acme/manifests.git", "s3cret")
        assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        scheme, _, value = env["GIT_CONFIG_VALUE_0"].partition(": Basic ")
        assert scheme == "Authorization"
        assert base64.b64decode(value).decode() == "x-access-token:s3cret"
        assert env["GIT_TERMINAL_PROMPT"] == "0"

    def test_no_header_for_other_remotes(self) -> None:
        assert "GIT_CONFIG_COUNT" not in git_environment("/srv/manifests.git", "s3cret")
        assert "GIT_CONFIG_COUNT" not in git_environment("https://h/m.git", None)

    def test_token_is_not_written_or_echoed(self, tmp_path: Path) -> None:
        mirror = Mirror(tmp_path / "mirrors", "https://127.0.0.1:9/acme/m.git", "main", "s3cret")
        config = (mirror.path / "config").read_text()
        assert "https://127.0.0.1:9/acme/m.git" in config
        assert "s3cret" not in config
        with pytest.raises(ConfigError) as caught:
            mirror.check_reachable()
        assert "s3cret" not in str(caught.value)
        assert "manifests.url" in str(caught.value)


def test_a_push_moves_the_tracking_ref_and_a_request_branch_leaves_it(tmp_path: Path) -> None:
    """The branch's refspec is configured, so git moves the tracking ref as it pushes (no
    `git update-ref` after each push); pushes of other branches leave it where it was."""
    remote = tmp_path / "remote.git"
    init_bare(remote, "main")
    mirror = Mirror(tmp_path / "mirrors", str(remote), "main")
    assert mirror.fetch() is None
    first = mirror.write("commit", _commit(mirror, [], "first"))
    mirror.flush()
    assert mirror.push(first).status is PushStatus.PUSHED
    assert mirror.tip() == first
    second = mirror.write("commit", _commit(mirror, [first], "second"))
    mirror.flush()
    assert mirror.push_branch(second, "ritmo/promote/x").status is PushStatus.PUSHED
    assert mirror.tip() == first
    assert mirror.push(second).status is PushStatus.PUSHED
    assert mirror.tip() == second == mirror.fetch()


def _commit(mirror: Mirror, parents: list[str], message: str) -> bytes:
    tree = mirror.write("tree", b"")
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    lines += ["author A <a@example.com> 1700000000 +0000"]
    lines += ["committer A <a@example.com> 1700000000 +0000", "", message, ""]
    return "\n".join(lines).encode()
