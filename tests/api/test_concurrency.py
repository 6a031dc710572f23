"""Concurrent registrations, races with other pushers, and a remote that refuses pushes."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from flask.testing import FlaskClient

from bot.config import Settings, load_settings
from bot.manifests.records import ArtifactSpec
from bot.manifests.remote import PushResult
from bot.runtime import Runtime, build_runtime
from tests.helpers import (
    artifact_body,
    bearer,
    checksum,
    commits_since,
    git,
    remote_refs,
    show,
    verify_commit,
)


def _foreign_push(remote: Path, workdir: Path, path: str, content: str) -> str:
    """Someone else (a person, another replica) pushes a commit to main."""
    if not workdir.exists():
        git(remote.parent, "clone", "--quiet", str(remote), str(workdir))
    git(workdir, "pull", "--quiet", "--ff-only")
    target = workdir / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(workdir, "add", path)
    git(workdir, "-c", "user.name=Dana", "-c", "user.email=dana@example.com",
        "commit", "--quiet", "-m", f"edit {path}")  # fmt: skip
    git(workdir, "push", "--quiet", "origin", "main")
    return git(workdir, "rev-parse", "HEAD").strip()


class TestConcurrentRegistrations:
    """50 concurrent POSTs: 50 records, 50 verified commits, batched pushes, clean fsck."""

    def test_fifty_at_once(
        self,
        live_server: str,
        tokens: dict[str, str],
        remote: Path,
        settings: Settings,
        runtime: Runtime,
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()

        def post(i: int) -> requests.Response:
            return requests.post(
                f"{live_server}/api/v1/artifacts",
                json=artifact_body("web", f"1.0.{i}"),
                headers=bearer(tokens["ci"]),
                timeout=120,
            )

        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(post, range(50)))
        assert [r.status_code for r in responses] == [201] * 50
        commits = commits_since(remote, base)
        assert len(commits) == 50
        assert sorted(r.json()["commit"] for r in responses) == sorted(commits)
        for sha in commits:
            verify_commit(remote, sha, settings.gnupghome)
            added = git(remote, "show", "--name-only", "--format=", sha).split()
            assert len(added) == 1 and added[0].startswith("artifacts/web/1.0.")
        assert git(remote, "rev-list", "--merges", f"{base}..main") == ""
        fsck = subprocess.run(
            ["git", "fsck", "--strict", "--full"], cwd=remote, capture_output=True, text=True
        )
        assert fsck.returncode == 0, fsck.stderr
        # One push carries many commits: the writer batched them.
        assert runtime.writer.pushes < 50
        assert runtime.index.search(name="web")[1] == 50

    def test_identical_concurrent_posts_make_one_commit(
        self, live_server: str, tokens: dict[str, str], remote: Path
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()

        def post(_: int) -> requests.Response:
            return requests.post(
                f"{live_server}/api/v1/artifacts",
                json=artifact_body(),
                headers=bearer(tokens["ci"]),
                timeout=60,
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(post, range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 7 + [201]
        assert {r.json()["commit"] for r in responses} == set(commits_since(remote, base))
        assert len(commits_since(remote, base)) == 1


class TestRaceWithOtherPushers:
    """A push by someone else between fetch and push: rebase, re-sign, retry; never force."""

    def _interleave(self, runtime: Runtime, action: object) -> list[str]:
        """Run `action` once, right before the writer's first push reaches the remote."""
        real_push = runtime.mirror.push
        calls: list[str] = []

        def push(sha: str) -> PushResult:
            if not calls:
                action()  # type: ignore[operator]
            calls.append(sha)
            return real_push(sha)

        runtime.mirror.push = push  # type: ignore[method-assign]
        return calls

    def test_foreign_commit_is_kept_and_record_lands(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        runtime: Runtime,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()
        foreign: list[str] = []
        calls = self._interleave(
            runtime,
            lambda: foreign.append(
                _foreign_push(remote, tmp_path / "dana", "apps/web/NOTES.md", "hello\n")
            ),
        )
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        assert len(calls) == 2  # the first push was refused, the second landed
        history = commits_since(remote, base)
        assert history == [foreign[0], resp.json["commit"]]
        verify_commit(remote, resp.json["commit"], settings.gnupghome)
        assert show(remote, "main:apps/web/NOTES.md") == "hello\n"
        assert "checksum:" in show(remote, "main:artifacts/web/1.2.3.yaml")
        # The re-signed commit sits on the foreign one: the first attempt was discarded.
        parent = git(remote, "rev-parse", f"{resp.json['commit']}^").strip()
        assert parent == foreign[0]
        assert calls[0] != calls[1]

    def test_foreign_record_with_other_content_is_409(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        runtime: Runtime,
        tmp_path: Path,
    ) -> None:
        other = artifact_body()
        record = (
            "apiVersion: ritmo.dev/v1\nkind: Artifact\nid: x\nname: web\nversion: 1.2.3\n"
            f"build_id: other\nchecksum: {checksum('other')}\nmetadata: {{}}\n"
            "created_at: '2026-01-01T00:00:00Z'\nsignature: {status: unsigned}\n"
        )
        self._interleave(
            runtime,
            lambda: _foreign_push(remote, tmp_path / "dana", "artifacts/web/1.2.3.yaml", record),
        )
        resp = client.post("/api/v1/artifacts", json=other, headers=bearer(tokens["ci"]))
        assert resp.status_code == 409
        assert show(remote, "main:artifacts/web/1.2.3.yaml") == record

    def test_foreign_junk_at_the_record_path_is_409(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        runtime: Runtime,
        tmp_path: Path,
    ) -> None:
        """A file that is not a record still holds its path: 409, and it is left alone."""
        self._interleave(
            runtime,
            lambda: _foreign_push(
                remote, tmp_path / "dana", "artifacts/web/1.2.3.yaml", "- not: [a record\n"
            ),
        )
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 409
        assert show(remote, "main:artifacts/web/1.2.3.yaml") == "- not: [a record\n"

    def test_commits_from_others_reach_the_index(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        """Records another replica pushed are indexed once this one fetches."""
        replica = load_settings(
            None,
            data_dir=tmp_path / "replica",
            manifests={"url": str(remote)},
            signing={"gnupghome": str(settings.gnupghome), "key": settings.signing.key},
        )
        other = build_runtime(replica)
        first = other.registry.register(ArtifactSpec(**artifact_body(version="7.0.0")), "ci", "c-1")
        assert first.created
        resp = client.post(
            "/api/v1/artifacts", json=artifact_body(version="7.0.1"), headers=bearer(tokens["ci"])
        )
        assert resp.status_code == 201
        listed = client.get("/api/v1/artifacts?name=web", headers=bearer(tokens["ci"])).json
        assert [i["version"] for i in listed["items"]] == ["7.0.1", "7.0.0"]
        assert listed["items"][1]["commit"] == first.artifact.commit


class TestRemoteRefuses:
    """A remote that refuses every push: bounded retries, then 503, and nothing written."""

    def test_503_after_bounded_attempts(
        self, tmp_path: Path, remote: Path, settings: Settings, tokens: dict[str, str]
    ) -> None:
        from bot.app import create_app

        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'quota exceeded' >&2\nexit 1\n")
        hook.chmod(0o755)
        refs = remote_refs(remote)
        strict = settings.model_copy(
            update={"manifests": settings.manifests.model_copy(update={"push_attempts": 3})}
        )
        rt = build_runtime(strict)
        client = create_app(strict, rt).test_client()
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 503
        assert "after 3 attempts" in resp.json["error"]
        assert "quota exceeded" in resp.json["error"] or "declined" in resp.json["error"]
        assert resp.headers["Retry-After"]
        assert rt.writer.push_attempts == 3
        assert remote_refs(remote) == refs
        assert rt.index.search()[1] == 0
