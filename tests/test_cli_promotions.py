"""`ritmo promote`, `ritmo approve` and `ritmo status` against a live server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.auth import Scope
from bot.cli import main
from bot.promotions.status import status_data
from bot.runtime import Runtime
from bot.store.tokens import TokenStore
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, git, remote_refs, trailers

POLICY = TWO_APPROVERS_POLICY


@pytest.fixture
def remote_policy() -> str:
    return POLICY


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


@pytest.fixture
def people(runtime: Runtime, tokens: dict[str, str]) -> dict[str, str]:
    """Approver tokens; the promoter (release-bot) also gets one, in both groups."""
    store = runtime.tokens
    approve = [Scope.PROMOTIONS_APPROVE]
    return {
        "alice": store.create("alice", approve, ["ops-team"]),
        "bob": store.create("bob", approve, ["security-team"]),
        "release-bot": _promoter_approves(store, tokens),
    }


def _promoter_approves(store: TokenStore, tokens: dict[str, str]) -> str:
    """The promoter's one identity (names are unique) also approves, in both groups."""
    store.revoke("release-bot")
    scopes = [Scope.PROMOTIONS_WRITE, Scope.PROMOTIONS_APPROVE]
    tokens["promoter"] = store.create("release-bot", scopes, ["ops-team", "security-team"])
    return tokens["promoter"]


def invoke(live_server: str, token: str, args: list[str]) -> Result:
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": token}
    return CliRunner(env=env).invoke(main, args)


def push(live_server: str, tokens: dict[str, str], version: str) -> str:
    """Register web VERSION with the CLI; the policy carries it to staging."""
    result = CliRunner().invoke(
        main,
        ["artifact", "push", "--server", live_server, "--token", tokens["ci"], "--file", "-"],
        input=json.dumps(artifact_body(version=version)),
    )
    assert result.exit_code == 0, result.output
    ident = result.stdout.split()[1]
    assert ident.startswith("art-"), result.stdout
    return ident


def open_request(live_server: str, tokens: dict[str, str], art: str) -> str:
    result = invoke(
        live_server,
        tokens["promoter"],
        ["promote", art, "--from", "staging", "--to", "production",
         "--approval-ticket", "CHG-7", "--notes", "staging soaked"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = re.fullmatch(
        r"pending: request (req-[0-9a-f]{16}) needs 1 from ops-team, 1 from security-team "
        r"\(0/2 approvals\)\n",
        result.stdout,
    )
    assert found, result.stdout
    return found.group(1)


def main_tip(remote: Path) -> str:
    return git(remote, "rev-parse", "main").strip()


class TestPromote:
    def test_promote_opens_a_request(
        self, live_server: str, tokens: dict[str, str], remote: Path
    ) -> None:
        art = push(live_server, tokens, "2.0.0")
        before = main_tip(remote)
        request_id = open_request(live_server, tokens, art)
        branch = "refs/heads/ritmo/promote/web/production"
        head = remote_refs(remote)[branch]
        assert request_id == "req-" + head[:16]
        assert trailers(remote, head)["Ritmo-Approval-Ticket"] == "CHG-7"
        assert main_tip(remote) == before  # nothing merged yet

    def test_refused_skipped_stage(
        self, live_server: str, tokens: dict[str, str], remote: Path
    ) -> None:
        art = push(live_server, tokens, "3.0.0")
        refs = remote_refs(remote)
        result = invoke(
            live_server, tokens["promoter"], ["promote", art, "--from", "dev", "--to", "production"]
        )
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("ritmo: refused (409): ")
        assert result.stdout == ""
        assert remote_refs(remote) == refs

    def test_unknown_artifact(self, live_server: str, tokens: dict[str, str]) -> None:
        result = invoke(
            live_server,
            tokens["promoter"],
            ["promote", "art-00000000000000000000", "--from", "staging", "--to", "production"],
        )
        assert result.exit_code == 1
        assert "refused (404)" in result.stderr

    def test_server_down_exits_3(self, tokens: dict[str, str]) -> None:
        result = invoke(
            "http://127.0.0.1:9", "ritmo_x", ["promote", "art-1", "--from", "a", "--to", "b"]
        )
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith("ritmo: cannot reach http://127.0.0.1:9")


class TestDirectPromote:
    """Without auto-promotion to staging, `ritmo promote` pins staging itself (201)."""

    @pytest.fixture
    def remote_policy(self) -> str:
        return POLICY.replace(
            "{from: dev, to: staging, auto_promote: true}", "{from: dev, to: staging}"
        )

    def test_promoted(self, live_server: str, tokens: dict[str, str], remote: Path) -> None:
        art = push(live_server, tokens, "2.0.0")
        before = main_tip(remote)
        result = invoke(
            live_server, tokens["promoter"], ["promote", art, "--from", "dev", "--to", "staging"]
        )
        assert result.exit_code == 0, result.output
        sha = main_tip(remote)
        assert sha != before
        assert result.stdout == f"promoted: web 2.0.0 to staging (commit {sha})\n"
        assert trailers(remote, sha)["Ritmo-Promotion"] == "dev -> staging"

        status = invoke(live_server, tokens["reader"], ["status", "--json"])
        web = json.loads(status.stdout)["apps"][0]["environments"]
        assert web["staging"]["commit"] == sha
        # Every environment of the policy has a column; production holds the scaffold's
        # pin, which Ritmo never recorded.
        production = web["production"]
        assert (production["version"], production["recorded"]) == ("0.1.0", False)


class TestApprove:
    def test_two_approvals_merge(
        self,
        live_server: str,
        tokens: dict[str, str],
        people: dict[str, str],
        remote: Path,
    ) -> None:
        art = push(live_server, tokens, "2.0.0")
        request_id = open_request(live_server, tokens, art)
        head = remote_refs(remote)["refs/heads/ritmo/promote/web/production"]
        before = main_tip(remote)

        first = invoke(live_server, people["alice"], ["approve", request_id, "--commit", head])
        assert first.exit_code == 0, first.output
        assert first.stdout == (
            f"pending: request {request_id} needs 1 from security-team (1/2 approvals)\n"
        )
        assert main_tip(remote) == before

        second = invoke(live_server, people["bob"], ["approve", request_id])
        assert second.exit_code == 0, second.output
        merge = main_tip(remote)
        assert merge != before
        assert second.stdout == (
            f"merged: request {request_id} (web 2.0.0 to production) merged as {merge}\n"
        )
        assert trailers(remote, merge)["Ritmo-Approved-By"] == "alice, bob"

        again = invoke(live_server, people["alice"], ["approve", request_id])
        assert again.exit_code == 1
        assert "is merged, not pending" in again.stderr

    def test_self_approval_refused(
        self, live_server: str, tokens: dict[str, str], people: dict[str, str], remote: Path
    ) -> None:
        request_id = open_request(live_server, tokens, push(live_server, tokens, "2.0.0"))
        refs = remote_refs(remote)
        result = invoke(live_server, people["release-bot"], ["approve", request_id])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            "ritmo: refused (403): release-bot requested this promotion; "
            "someone else must review it\n"
        )
        assert result.stdout == ""
        assert remote_refs(remote) == refs

    def test_changes_requested(
        self, live_server: str, tokens: dict[str, str], people: dict[str, str]
    ) -> None:
        request_id = open_request(live_server, tokens, push(live_server, tokens, "2.0.0"))
        result = invoke(
            live_server, people["alice"], ["approve", request_id, "--changes-requested"]
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == (
            f"pending: request {request_id} blocked: changes requested by alice (0/2 approvals)\n"
        )
        status = invoke(live_server, tokens["reader"], ["status"])
        assert "blocked: changes requested by alice" in status.stdout

    def test_stale_commit(
        self, live_server: str, tokens: dict[str, str], people: dict[str, str], remote: Path
    ) -> None:
        request_id = open_request(live_server, tokens, push(live_server, tokens, "2.0.0"))
        result = invoke(
            live_server, people["alice"], ["approve", request_id, "--commit", main_tip(remote)]
        )
        assert result.exit_code == 1
        assert "refused (409)" in result.stderr and "not the request's head" in result.stderr


class TestStatus:
    def table(self, stdout: str) -> dict[str, dict[str, str]]:
        lines = stdout.splitlines()
        header = lines[0].split()
        rows = {}
        for line in lines[1 : lines.index("")]:
            cells = re.split(r"\s{2,}", line.strip())  # a cell may hold single spaces
            rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
        return rows

    def test_table_and_open_requests(
        self,
        live_server: str,
        tokens: dict[str, str],
        people: dict[str, str],
    ) -> None:
        first = push(live_server, tokens, "2.0.0")
        request_id = open_request(live_server, tokens, first)
        for who in ("alice", "bob"):
            assert invoke(live_server, people[who], ["approve", request_id]).exit_code == 0
        newer = push(live_server, tokens, "2.1.0")
        pending = open_request(live_server, tokens, newer)
        assert invoke(live_server, people["alice"], ["approve", pending]).exit_code == 0

        result = invoke(live_server, tokens["reader"], ["status"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["APP", "DEV", "STAGING", "PRODUCTION"]
        assert self.table(result.stdout) == {
            "web": {"DEV": "2.1.0", "STAGING": "2.1.0", "PRODUCTION": "2.0.0"}
        }
        assert "Open promotion requests (1):" in lines
        (line,) = [x for x in lines if x.strip().startswith(pending)]
        assert "web 2.1.0  staging -> production  1/2 approvals" in line
        assert "needs 1 from security-team" in line
        assert "by release-bot" in line

        as_json = invoke(live_server, tokens["reader"], ["status", "--json"])
        assert as_json.exit_code == 0, as_json.output
        data: dict[str, Any] = json.loads(as_json.stdout)
        assert data["environments"] == ["dev", "staging", "production"]
        (web,) = data["apps"]
        assert web["app"] == "web"
        production = web["environments"]["production"]
        assert production["version"] == "2.0.0"
        assert production["promotion"] == request_id
        assert production["artifact_id"] == first
        assert web["environments"]["staging"]["artifact_id"] == newer
        (req,) = data["open_requests"]
        assert req["id"] == pending
        assert req["missing"] == [{"group": "security-team", "count": 1}]
        assert req["progress"] == "1/2 approvals"

    def test_app_filter_and_empty(
        self, live_server: str, tokens: dict[str, str], remote: Path
    ) -> None:
        push(live_server, tokens, "2.0.0")
        result = invoke(live_server, tokens["reader"], ["status", "--app", "api"])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[:2] == ["APP  DEV  STAGING  PRODUCTION", "(no apps)"]
        assert result.stdout.splitlines()[-1] == "No open promotion requests."

        web = invoke(live_server, tokens["reader"], ["status", "--app", "web"])
        assert web.exit_code == 0, web.output
        seed = git(remote, "rev-list", "--max-parents=0", "main").strip()[:7]
        assert self.table(web.stdout) == {
            "web": {"DEV": "2.0.0", "STAGING": "2.0.0", "PRODUCTION": f"0.1.0 (unrecorded, {seed})"}
        }

    def test_token_without_read_scope(self, live_server: str, tokens: dict[str, str]) -> None:
        result = invoke(live_server, tokens["promoter"], ["status"])
        assert result.exit_code == 1
        assert "refused (403)" in result.stderr


def _promotion(app: str, version: str, frm: str, to: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"pro-{app}-{version}-{to}",
        "artifact_id": f"art-{app}-{version}",
        "app": app,
        "version": version,
        "from": frm,
        "to": to,
        "status": "promoted",
        "commit": f"c-{app}-{version}-{to}",
        "promoted_by": "ci",
        **extra,
    }


def _merged(app: str, version: str, closed_at: str) -> dict[str, Any]:
    return {
        **_promotion(app, version, "staging", "production"),
        "id": f"req-{app}-{version}",
        "status": "merged",
        "merge_commit": f"m-{app}-{version}",
        "requested_by": "release-bot",
        "closed_at": closed_at,
    }


def _artifact(app: str, version: str, created_at: str) -> dict[str, Any]:
    return {"id": f"art-{app}-{version}", "name": app, "created_at": created_at}


class TestStatusData:
    """`status_data` picks the newest promotion into each environment, per app."""

    def test_newest_wins_and_gaps(self) -> None:
        artifacts = [
            _artifact("web", "2.0.0", "2026-01-02T00:00:00Z"),
            _artifact("web", "1.0.0", "2026-01-01T00:00:00Z"),
            _artifact("api", "0.1.0", "2026-01-01T00:00:00Z"),
            _artifact("idle", "0.0.1", "2026-01-01T00:00:00Z"),
        ]
        promoted = [  # newest first, as the API lists them
            _promotion("web", "2.0.0", "registered", "dev"),
            _promotion("api", "0.1.0", "dev", "staging"),
            _promotion("api", "0.1.0", "registered", "dev"),
            _promotion("web", "1.0.0", "registered", "dev"),
        ]
        merged = [
            _merged("web", "1.0.0", "2026-01-01T10:00:00Z"),
            _merged("web", "0.9.0", "2025-12-01T10:00:00Z"),
        ]
        data = status_data(artifacts, promoted, merged, [])
        assert data["environments"] == ["dev", "staging", "production"]
        cells = {a["app"]: a["environments"] for a in data["apps"]}
        assert sorted(cells) == ["api", "idle", "web"]
        version = {
            app: {env: (c or {}).get("version") for env, c in envs.items()}
            for app, envs in cells.items()
        }
        assert version["web"] == {"dev": "2.0.0", "staging": None, "production": "1.0.0"}
        assert version["api"] == {"dev": "0.1.0", "staging": "0.1.0", "production": None}
        assert version["idle"] == {"dev": None, "staging": None, "production": None}
        assert cells["web"]["production"]["commit"] == "m-web-1.0.0"

    def test_direct_after_merge(self) -> None:
        """A direct promotion of an artifact registered after the merge is the newer one."""
        artifacts = [
            _artifact("web", "3.0.0", "2026-02-01T00:00:00Z"),
            _artifact("web", "1.0.0", "2026-01-01T00:00:00Z"),
        ]
        direct = [_promotion("web", "3.0.0", "staging", "production")]
        merged = [_merged("web", "1.0.0", "2026-01-01T10:00:00Z")]
        cell = status_data(artifacts, direct, merged, [])["apps"][0]["environments"]["production"]
        assert cell["version"] == "3.0.0"
        older = [_artifact("web", "3.0.0", "2025-12-01T00:00:00Z"), artifacts[1]]
        cell = status_data(older, direct, merged, [])["apps"][0]["environments"]["production"]
        assert cell["version"] == "1.0.0"
