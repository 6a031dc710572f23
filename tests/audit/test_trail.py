"""The audit trail end to end: a real history made through the API (registrations, a
direct promotion, a request two people approve, a deployment and a rollback), read back
by GET /api/v1/audit and `ritmo audit`, checked by `ritmo verify`; then broken as a person
would break it, and `ritmo verify` names each problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from bot.audit.repo import read_history, trusted_gnupg
from bot.auth import Scope
from bot.cli import main
from bot.config import Settings
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git, remote_refs

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}, {group: security-team, count: 1}]
groups:
  ops-team: {kind: local}
  security-team: {kind: local}
apps:
  web: {}
  api: {}
"""
OVERLAY = "apps/web/overlays/{env}/kustomization.yaml"


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _tip(remote: Path) -> str:
    return remote_refs(remote)["refs/heads/main"]


def _register(client: FlaskClient, token: str, version: str, **extra: Any) -> str:
    body = artifact_body(version=version, **extra)
    cid = f"build-{body['name']}-{version}"
    resp = client.post(
        "/api/v1/artifacts", json=body, headers={**bearer(token), "X-Correlation-ID": cid}
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _promote(client: FlaskClient, token: str, art: str, src: str, dst: str, ticket: str) -> Any:
    return client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": src, "to": dst, "approval_ticket": ticket},
        headers=bearer(token),
    )


def _history(client: FlaskClient, runtime: Runtime, tokens: dict[str, str]) -> dict[str, str]:
    """Build the history; returns the ids and shas the assertions need."""
    store = runtime.tokens
    approve = [Scope.PROMOTIONS_APPROVE]
    alice = store.create("alice", approve, groups=["ops-team"])
    bob = store.create("bob", approve, groups=["security-team"])
    argo = store.create("argo-cd", [Scope.DEPLOYMENTS_WRITE])
    ci, promoter = tokens["ci"], tokens["promoter"]
    ids: dict[str, str] = {}
    ids["old"] = _register(client, ci, "1.0.0")  # pinned in dev by policy
    ids["api"] = _register(client, ci, "0.9.0", name="api", image=None)  # a record only
    resp = _promote(client, promoter, ids["old"], "dev", "staging", "CHG-1")
    assert resp.status_code == 201, resp.get_json()
    ok = {"artifact_id": ids["old"], "environment": "staging", "status": "succeeded"}
    assert client.post("/api/v1/deployments", json=ok, headers=bearer(argo)).status_code == 201
    ids["new"] = _register(client, ci, "1.1.0")
    resp = _promote(client, promoter, ids["new"], "dev", "staging", "CHG-2")
    assert resp.status_code == 201, resp.get_json()
    ids["staging_1.1.0"] = resp.get_json()["commit"]
    bad = {"artifact_id": ids["new"], "environment": "staging", "status": "failed"}
    resp = client.post("/api/v1/deployments", json=bad, headers=bearer(argo))
    assert resp.status_code == 201, resp.get_json()
    ids["deployment"] = resp.get_json()["id"]
    resp = client.post(
        f"/api/v1/deployments/{ids['deployment']}/rollback",
        json={"reason": "pager went off"},
        headers=bearer(argo),
    )
    assert resp.status_code == 201, resp.get_json()
    ids["rollback"] = resp.get_json()["commit"]
    resp = _promote(client, promoter, ids["old"], "staging", "production", "CHG-42")
    assert resp.status_code == 202, resp.get_json()
    ids["request"] = resp.get_json()["request"]["id"]
    for token in (alice, bob):
        review = client.post(
            f"/api/v1/promotions/{ids['request']}/approvals", json={}, headers=bearer(token)
        )
        assert review.status_code == 201, review.get_json()
    assert review.get_json()["status"] == "merged", review.get_json()
    ids["merge"] = review.get_json()["merge_commit"]
    return ids


def _verify(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["verify", *args], env={
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
    })  # fmt: skip


def _problems(result: Result) -> list[tuple[str, str]]:
    """(sha, kind) of each `<sha> <kind>: <message>` line verify printed."""
    found = re.findall(r"^([0-9a-f]{40}) ([a-z-]+): ", result.stdout, re.M)
    return [(sha, kind) for sha, kind in found]


class TestAuditTrail:
    def test_api_cli_and_verify_on_a_real_history(
        self,
        client: FlaskClient,
        runtime: Runtime,
        tokens: dict[str, str],
        settings: Settings,
        live_server: str,
        remote: Path,
    ) -> None:
        ids = _history(client, runtime, tokens)
        reader = bearer(tokens["reader"])
        resp = client.get("/api/v1/audit?per_page=500", headers=reader)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        events = body["items"]
        assert body["total"] == len(events) == 11
        seen = [(e["kind"], e["app"], e["environment"], e["version"], e["actor"]) for e in events]
        assert seen == [
            ("approved", "web", "production", "1.0.0", "bob"),
            ("approved", "web", "production", "1.0.0", "alice"),
            ("promoted", "web", "production", "1.0.0", "release-bot"),
            ("rolled_back", "web", "staging", "1.1.0", "argo-cd"),
            ("promoted", "web", "staging", "1.1.0", "release-bot"),
            ("promoted", "web", "dev", "1.1.0", "ci"),
            ("registered", "web", None, "1.1.0", "ci"),
            ("promoted", "web", "staging", "1.0.0", "release-bot"),
            ("registered", "api", None, "0.9.0", "ci"),
            ("promoted", "web", "dev", "1.0.0", "ci"),
            ("registered", "web", None, "1.0.0", "ci"),
        ]  # the seed commit records nothing; deployments are on their own branch
        merged = events[0]
        assert merged["commit"] == ids["merge"] == events[2]["commit"]
        assert merged["request_id"] == ids["request"] and merged["ticket"] == "CHG-42"
        assert merged["from_environment"] == "staging"
        rolled = events[3]
        assert rolled["commit"] == ids["rollback"]
        assert rolled["deployment_id"] == ids["deployment"]
        # version: the one rolled back; restored_version: the one pinned again
        assert (rolled["version"], rolled["artifact_id"]) == ("1.1.0", ids["new"])
        assert (rolled["restored_version"], rolled["restored_artifact_id"]) == ("1.0.0", ids["old"])
        assert rolled["rolled_back_artifact_id"] == ids["new"] and not rolled["automatic"]
        assert (events[4]["ticket"], events[4]["automatic"]) == ("CHG-2", False)
        assert events[5]["automatic"] and events[5]["from_environment"] == "registered"
        assert events[6]["correlation_id"] == "build-web-1.1.0"
        assert events[6]["detail"] == "build build-1.1.0"
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"]) for e in events)

        def kinds(query: str) -> list[tuple[str, str | None]]:
            got = client.get(f"/api/v1/audit?{query}", headers=reader)
            assert got.status_code == 200, got.get_json()
            return [(e["kind"], e["version"]) for e in got.get_json()["items"]]

        assert kinds("app=api") == [("registered", "0.9.0")]
        assert kinds("env=production&kind=approved") == [("approved", "1.0.0")] * 2
        assert kinds("env=staging") == [
            ("rolled_back", "1.1.0"), ("promoted", "1.1.0"), ("promoted", "1.0.0"),
        ]  # fmt: skip
        # since a commit: after it (exclusive); until a commit: up to it (inclusive)
        assert kinds(f"since={ids['staging_1.1.0']}") == [
            ("approved", "1.0.0"), ("approved", "1.0.0"), ("promoted", "1.0.0"),
            ("rolled_back", "1.1.0"),
        ]  # fmt: skip
        assert kinds(f"since={ids['staging_1.1.0']}&until={ids['rollback']}") == [
            ("rolled_back", "1.1.0")
        ]
        assert len(kinds("since=2000-01-01")) == 11
        assert kinds("until=2000-01-01") == []
        assert kinds("since=2000-01-01T00:00:00Z&app=web&kind=registered") == [
            ("registered", "1.1.0"), ("registered", "1.0.0"),
        ]  # fmt: skip
        paged = client.get("/api/v1/audit?per_page=4&page=2", headers=reader)
        assert [e["kind"] for e in paged.get_json()["items"]] == [
            "promoted", "promoted", "registered", "promoted",
        ]  # fmt: skip
        assert paged.get_json()["has_next"] and 'rel="next"' in paged.headers["Link"]

        # Refusals name the field; no token, the wrong scope.
        bad = client.get("/api/v1/audit?since=nosuchbranch", headers=reader)
        assert bad.status_code == 400 and bad.get_json()["fields"][0]["field"] == "since"
        bad = client.get("/api/v1/audit?until=--all", headers=reader)
        assert bad.status_code == 400 and bad.get_json()["fields"][0]["field"] == "until"
        bad = client.get("/api/v1/audit?colour=blue", headers=reader)
        assert bad.status_code == 400 and bad.get_json()["fields"][0]["field"] == "colour"
        bad = client.get("/api/v1/audit?env=Prod!", headers=reader)
        assert bad.get_json()["fields"][0]["field"] == "env"
        assert client.get("/api/v1/audit").status_code == 401
        assert client.get("/api/v1/audit", headers=bearer(tokens["promoter"])).status_code == 403

        # The CLI, through the API.
        env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["reader"]}
        listed = CliRunner(env=env).invoke(main, ["audit", "--env", "production"])
        assert listed.exit_code == 0, listed.output
        lines = listed.stdout.splitlines()
        assert lines[0].split() == [
            "AT", "KIND", "APP", "ENV", "VERSION", "ACTOR", "TICKET", "REQUEST", "COMMIT",
        ]  # fmt: skip
        assert lines[1].split()[1:] == [
            "approved", "web", "production", "1.0.0", "bob", "CHG-42", ids["request"],
            ids["merge"][:12],
        ]  # fmt: skip
        assert lines[3].split()[1:6] == [
            "promoted", "web", "staging->production", "1.0.0", "release-bot",
        ]  # fmt: skip
        assert lines[-1] == "(3 of 3)"
        as_json = CliRunner(env=env).invoke(main, ["audit", "--app", "api", "--json"])
        assert as_json.exit_code == 0, as_json.output
        assert '"kind": "registered"' in as_json.stdout
        refused = CliRunner(env=env).invoke(main, ["audit", "--since", "nosuchbranch"])
        assert refused.exit_code == 1 and "since" in refused.output

        # The history as it is passes `ritmo verify`.
        clean = _verify(settings)
        assert clean.exit_code == 0, clean.output
        assert _problems(clean) == []
        # 14: the seed, Ritmo's adoption of the policy, then 12 through the API.
        assert "ok, 14 commits of main checked against 1 trusted key" in clean.output
        assert "1 commit(s) before the policy's adoption" in clean.stderr

        # What verify judged: the request's merge set the production pin, Ritmo signed it.
        mirror = runtime.mirror
        with mirror.locked(), trusted_gnupg([runtime.signer.export_public_key()]) as (home, _):
            history, ranged = read_history(mirror, _tip(remote), None, home)
        merge = next(c for c in history if c.sha == ids["merge"])
        assert (merge.signature, merge.first_parent, len(merge.parents)) == ("G", True, 2)
        assert [(p.env, p.before, p.after) for p in merge.pins] == [
            ("production", "0.1.0", "1.0.0")
        ]
        rollback = next(c for c in history if c.sha == ids["rollback"])
        assert [(p.env, p.before, p.after) for p in rollback.pins] == [
            ("staging", "1.1.0", "1.0.0")
        ]
        side = [c for c in history if not c.first_parent]  # the request and its two reviews
        assert len(side) == 3 and all(c.signature == "G" for c in side)
        assert len(ranged) == len(history) == 14

    def test_verify_names_each_problem_a_person_made(
        self,
        client: FlaskClient,
        runtime: Runtime,
        tokens: dict[str, str],
        settings: Settings,
        remote: Path,
        tmp_path: Path,
    ) -> None:
        ci = tokens["ci"]
        first = _register(client, ci, "1.0.0")
        resp = _promote(client, tokens["promoter"], first, "dev", "staging", "CHG-1")
        assert resp.status_code == 201, resp.get_json()
        _register(client, ci, "2.0.0")  # in dev only: never reached staging
        good = _tip(remote)
        assert _verify(settings).exit_code == 0

        person = tmp_path / "person"
        git(tmp_path, "clone", "--quiet", str(remote), str(person))
        who = ["-c", "user.name=Eve", "-c", "user.email=eve@example.com"]

        def commit(message: str, **pins: str) -> str:
            for env, version in pins.items():
                path = person / OVERLAY.format(env=env)
                text = re.sub(r'newTag: "?[^"\s]+"?', f'newTag: "{version}"', path.read_text())
                path.write_text(text)
            if not pins:
                (person / "NOTES.md").write_text(message)
            git(person, "add", "-A")
            git(person, *who, "commit", "--quiet", "-m", message)
            return git(person, "rev-parse", "HEAD").strip()

        forged = commit(
            f"Promote web 2.0.0 to staging\n\nRitmo-Promotion: dev -> staging\n"
            f"Ritmo-Artifact: {first}\nRitmo-Promoted-By: eve"
        )
        unknown = commit("Try 9.9.9 in dev", dev="9.9.9")
        skipped = commit("Hotfix production", production="2.0.0")
        harmless = commit("Notes only")
        git(person, "push", "--quiet", "origin", "main")

        broken = _verify(settings)
        assert broken.exit_code == 1, broken.output
        assert _problems(broken) == [
            (forged, "untrusted-signature"),
            (unknown, "unsigned-pin"),
            (unknown, "unknown-version"),
            (skipped, "unsigned-pin"),
            (skipped, "skipped-environment"),
        ]
        out = broken.stdout
        assert f"{forged} untrusted-signature: carries Ritmo trailers" in out
        assert "is not signed" in out
        assert "pins web 9.9.9 in dev" in out
        assert (
            "pins web 2.0.0" in out and "in production, but it was never pinned in staging" in out
        )
        assert harmless not in out
        assert "5 problem(s)" in broken.stderr

        # --since limits the range: after the forged commit, after all of them.
        since = _verify(settings, "--since", forged)
        assert since.exit_code == 1
        assert {sha for sha, _ in _problems(since)} == {unknown, skipped}
        assert _verify(settings, "--since", good).exit_code == 1
        # Ritmo writes on top; the range after the breakage is clean again.
        _register(client, ci, "3.0.0")
        after = _verify(settings, "--since", harmless)
        assert after.exit_code == 0, after.output
        assert _problems(after) == []
        # A pin set before the range is not judged again, but counts: 3.0.0 is fine.
        assert _verify(settings, "--since", skipped).exit_code == 0

    def test_verify_since_any_revision_of_the_branch_or_a_date(
        self, client: FlaskClient, tokens: dict[str, str], settings: Settings, remote: Path
    ) -> None:
        """`--since` takes what git resolves on the default branch (HEAD~N too: the
        mirror's own HEAD names no branch) and ISO dates; the count says what was checked."""
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            _register(client, tokens["ci"], version)
        total = int(git(remote, "rev-list", "--count", "--first-parent", "main"))
        tip = _tip(remote)
        for since, checked in (
            ("HEAD~2", 2), ("HEAD^", 1), ("HEAD~3", 3), ("main~2", 2), (tip, 0),
            (git(remote, "rev-parse", "main~4").strip(), 4),
            ("2000-01-01", total), ("2000-01-01T00:00:00Z", total), ("2999-12-31", 0),
        ):  # fmt: skip
            result = _verify(settings, "--since", since)
            assert result.exit_code == 0, (since, result.output)
            word = "commit" if checked == 1 else "commits"
            assert f"ok, {checked} {word} of main after {since} checked" in result.stderr, since
        for since in ("HEAD~999", "nosuchbranch", "2024-13-45"):
            refused = _verify(settings, "--since", since)
            assert refused.exit_code == 2, (since, refused.output)
            assert f"--since {since}: neither a revision git resolves" in refused.stderr
            assert "nor an ISO date" in refused.stderr

    def test_verify_a_repository_given_by_path_with_trusted_key_files(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        settings: Settings,
        remote: Path,
        tmp_path: Path,
    ) -> None:
        _register(client, tokens["ci"], "1.0.0")
        key = tmp_path / "ritmo.asc"
        exported = CliRunner().invoke(main, ["keys", "export"], env={
            "RITMO_DATA_DIR": str(settings.data_dir),
            "RITMO_MANIFESTS__URL": settings.remote_url,
            "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
            "RITMO_SIGNING__KEY": str(settings.signing.key),
        })  # fmt: skip
        assert exported.exit_code == 0, exported.output
        key.write_text(exported.stdout)
        # A CI check on the manifests repository: no Ritmo settings, only its public key.
        bare = {"RITMO_DATA_DIR": str(tmp_path / "ci-data")}
        runner = CliRunner(env=bare)
        args = ["verify", "--repo", str(remote), "--trusted-key", str(key)]
        ok = runner.invoke(main, args)
        assert ok.exit_code == 0, ok.output

        # A person merges a branch that pins staging, as a forge's merge button would:
        # neither Ritmo's signed merge nor recorded by Ritmo.
        person = tmp_path / "person"
        git(tmp_path, "clone", "--quiet", str(remote), str(person))
        who = ["-c", "user.name=Eve", "-c", "user.email=eve@example.com"]
        git(person, "checkout", "--quiet", "-b", "hotfix")
        staging = person / OVERLAY.format(env="staging")
        staging.write_text(re.sub(r'newTag: "?[^"\s]+"?', 'newTag: "1.0.0"', staging.read_text()))
        git(person, *who, "commit", "--quiet", "-am", "Pin staging")
        git(person, "checkout", "--quiet", "main")
        (person / "NOTES.md").write_text("so the merge is a real merge\n")
        git(person, "add", "-A")
        git(person, *who, "commit", "--quiet", "-m", "Notes")
        git(person, *who, "merge", "--quiet", "--no-ff", "-m", "Merge hotfix", "hotfix")
        merge = git(person, "rev-parse", "HEAD").strip()
        git(person, "push", "--quiet", "origin", "main")
        merged = runner.invoke(main, args)
        assert merged.exit_code == 1, merged.output
        assert _problems(merged) == [(merge, "unrecorded-merge")]
        assert "web staging 0.1.0 -> 1.0.0" in merged.stdout

        # Without the key, Ritmo's own commits are not trusted.
        other = tmp_path / "other.asc"
        other.write_text("not a key")
        no_key = runner.invoke(main, ["verify", "--repo", str(remote)])
        assert no_key.exit_code == 2 and "--trusted-key" in no_key.output
        junk = runner.invoke(main, ["verify", "--repo", str(remote), "--trusted-key", str(other)])
        assert junk.exit_code == 2, junk.output
        missing = runner.invoke(
            main, ["verify", "--repo", str(tmp_path / "nowhere"), "--trusted-key", str(key)]
        )
        assert missing.exit_code == 2, missing.output
        since = runner.invoke(
            main,
            ["verify", "--repo", str(remote), "--trusted-key", str(key), "--since", "nosuch"],
        )
        assert since.exit_code == 2 and "--since nosuch" in since.output
