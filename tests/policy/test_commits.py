"""The policy's commits read from git (bot/policy/commits.py): real git, real gpg."""

from __future__ import annotations

from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.policy.commits import policy_commits
from tests.helpers import git

WHO = ["-c", "user.name=Dana", "-c", "user.email=dana@example.com"]


def test_changes_merges_deletions_and_vouches_in_first_parent_order(
    tmp_path: Path, signing_key: tuple[Path, str]
) -> None:
    home, fingerprint = signing_key
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    (work / ".ritmo").mkdir()
    policy = work / ".ritmo" / "policy.yaml"

    def commit(message: str, *extra: str, env: dict[str, str] | None = None) -> str:
        git(work, "add", "-A")
        git(work, *WHO, *extra, "commit", "--quiet", "--allow-empty", "-m", message, env=env)
        return git(work, "rev-parse", "HEAD").strip()

    policy.write_text("a\n")
    seed = commit("seed")
    (work / "README.md").write_text("unrelated\n")
    commit("unrelated")
    signed = ["-c", f"user.signingkey={fingerprint}", "-c", "commit.gpgsign=true"]
    vouch = commit("Vouch\n\nRitmo-Policy: 1234", *signed, env={"GNUPGHOME": str(home)})
    git(work, "checkout", "--quiet", "-b", "side")
    policy.write_text("b\n")
    commit("on a side branch")
    git(work, "checkout", "--quiet", "main")
    git(work, *WHO, "merge", "--quiet", "--no-ff", "side", "-m", "Merge side")
    merge = git(work, "rev-parse", "HEAD").strip()
    policy.unlink()
    gone = commit("delete the policy")
    git(work, "push", "--quiet", str(bare), "main")

    mirror = Mirror(tmp_path / "mirrors", str(bare), "main")
    tip = mirror.fetch()
    assert tip == gone
    found = policy_commits(mirror, tip, None, home)
    assert [c.sha for c in found] == [seed, vouch, merge, gone]  # not the side branch's
    by = {c.sha: c for c in found}
    blob_b = git(work, "rev-parse", f"{merge}:.ritmo/policy.yaml").strip()
    assert (by[merge].changes_file, by[merge].blob, by[merge].signature) == (True, blob_b, "N")
    assert (by[gone].changes_file, by[gone].blob) == (True, None)
    assert by[vouch].changes_file is False and by[vouch].one("Ritmo-Policy") == "1234"
    assert by[vouch].signature in ("G", "U") and by[vouch].signer == fingerprint
    # From a known commit on: only what came after it.
    assert [c.sha for c in policy_commits(mirror, tip, vouch, home)] == [merge, gone]
    mirror.close()
