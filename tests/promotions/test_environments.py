"""GET /api/v1/environments, `ritmo status` and the dashboard show what git pins; a hand
pin shows as unrecorded, and the next promotion over it says what it replaced."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.api.environments import Environments
from bot.auth import Scope
from bot.cli import main
from bot.config import Settings
from bot.manifests.mirror import Mirror
from bot.manifests.pins import PinCommit
from bot.promotions.environments import PinFacts, cell, is_recorded, label, replaced
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git, remote_refs, trailers, verify_commit

# dev by itself; dev -> staging asked for and pinned directly; production needs approvals.
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
"""

OVERLAY = "apps/web/overlays/{env}/kustomization.yaml"


@pytest.fixture
def remote_policy() -> str:
    return POLICY


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


def _register(client: FlaskClient, token: str, version: str) -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _promote(client: FlaskClient, token: str, art: str, frm: str, to: str) -> Any:
    return client.post(
        f"/api/v1/artifacts/{art}/promote", json={"from": frm, "to": to}, headers=bearer(token)
    )


def _environments(client: FlaskClient, token: str, **query: str) -> dict[str, Any]:
    resp = client.get("/api/v1/environments", query_string=query, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    Environments.model_validate(body)  # what the OpenAPI document promises, no more
    return body


def _cells(body: dict[str, Any], app: str = "web") -> dict[str, dict[str, Any]]:
    (entry,) = [a for a in body["apps"] if a["app"] == app]
    cells: dict[str, dict[str, Any]] = entry["environments"]
    return cells


def _tip(remote: Path) -> str:
    return git(remote, "rev-parse", "main").strip()


def _hand_pin(remote: Path, tmp_path: Path, env: str, version: str) -> str:
    """A person pins `version` in `env` by hand: an unsigned commit pushed to main."""
    person = tmp_path / "person"
    if not person.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(person))
    git(person, "pull", "--quiet", "--ff-only", "origin", "main")
    path = person / OVERLAY.format(env=env)
    text = re.sub(r'newTag: "?[^"\s]+"?', f'newTag: "{version}"', path.read_text())
    path.write_text(text)
    who = ["-c", "user.name=Pat Person", "-c", "user.email=pat@example.com"]
    git(person, *who, "commit", "--quiet", "-am", f"Hotfix: {version} in {env}")
    git(person, "push", "--quiet", "origin", "main")
    return git(person, "rev-parse", "HEAD").strip()


def _status(live_server: str, token: str, *args: str) -> str:
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": token}
    result = CliRunner(env=env).invoke(main, ["status", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _table(stdout: str) -> dict[str, dict[str, str]]:
    """The status table by column position: cells may hold single spaces."""
    lines = stdout.splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = {}
    for line in lines[1 : lines.index("")]:
        values = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[values[0]] = dict(zip(names[1:], values[1:], strict=True))
    return rows


class TestHandPin:
    def test_shown_as_git_says_then_replaced_with_a_trailer(
        self,
        client: FlaskClient,
        runtime: Runtime,
        tokens: dict[str, str],
        settings: Settings,
        remote: Path,
        tmp_path: Path,
        live_server: str,
    ) -> None:
        first = _register(client, tokens["ci"], "1.0.0")
        resp = _promote(client, tokens["promoter"], first, "dev", "staging")
        assert resp.status_code == 201, resp.get_json()
        promoted = resp.get_json()["commit"]
        before = _cells(_environments(client, tokens["reader"]))
        assert before["staging"]["recorded"] is True
        assert before["staging"]["commit"] == promoted

        hand = _hand_pin(remote, tmp_path, "staging", "1.9.9")
        runtime.writer.sync()  # Ritmo follows the branch (push webhook, scheduler)

        body = _environments(client, tokens["reader"])
        assert body["tip"] == hand
        assert body["environments"] == ["dev", "staging", "production"]
        cells = _cells(body)
        staging = cells["staging"]
        assert (staging["version"], staging["pinned"], staging["artifact_id"]) == (
            "1.9.9",
            "1.9.9",
            None,
        )
        assert (staging["recorded"], staging["commit"]) == (False, hand)
        assert staging["pinned_by"] == "Pat Person" and staging["recorded_by"] is None
        assert staging["path"] == OVERLAY.format(env="staging")
        dev = cells["dev"]
        assert (dev["version"], dev["artifact_id"], dev["recorded"]) == ("1.0.0", first, True)
        # The scaffold's example pin in production: git's truth, which Ritmo never recorded.
        seed = git(remote, "rev-list", "--max-parents=0", "main").strip()
        assert (cells["production"]["version"], cells["production"]["recorded"]) == (
            "0.1.0",
            False,
        )
        assert cells["production"]["commit"] == seed

        # `ritmo status` reads the endpoint: git's version, marked, columns aligned.
        out = _status(live_server, tokens["reader"])
        assert _table(out) == {
            "web": {
                "DEV": "1.0.0",
                "STAGING": f"1.9.9 (unrecorded, {hand[:7]})",
                "PRODUCTION": f"0.1.0 (unrecorded, {seed[:7]})",
            }
        }
        header, row = out.splitlines()[:2]
        assert header.index("STAGING") == row.index("1.9.9")
        assert header.index("PRODUCTION") == row.index("0.1.0")
        as_json = json.loads(_status(live_server, tokens["reader"], "--json"))
        assert as_json["apps"][0]["environments"]["staging"]["commit"] == hand

        # The dashboard reads the same table.
        page = client.get("/").get_data(as_text=True)
        assert 'class="version unrecorded" data-app="web" data-env="staging">1.9.9</span>' in page
        assert re.search(
            rf'class="unrecorded-mark" data-app="web" data-env="staging" data-commit="{hand}"'
            rf"[^>]*>unrecorded, {hand[:7]}</span>",
            page,
        )
        assert 'class="version" data-app="web" data-env="dev">1.0.0</span>' in page

        # The next promotion into staging says what it replaced, and Ritmo signed it.
        second = _register(client, tokens["ci"], "1.1.0")
        resp = _promote(client, tokens["promoter"], second, "dev", "staging")
        assert resp.status_code == 201, resp.get_json()
        sha = resp.get_json()["commit"]
        assert _tip(remote) == sha
        said = trailers(remote, sha)
        assert said["Ritmo-Replaces"] == "1.9.9 (unrecorded)"
        assert said["Ritmo-Artifact"] == second
        verify_commit(remote, sha, settings.gnupghome)
        # The registration's pin in dev replaced a recorded pin: no such trailer there.
        dev_pin = git(remote, "log", "-1", "--format=%H", "--grep=Promote web 1.1.0 to dev", "main")
        assert "Ritmo-Replaces" not in trailers(remote, dev_pin.strip())

        after = _cells(_environments(client, tokens["reader"]))
        assert (after["staging"]["version"], after["staging"]["recorded"]) == ("1.1.0", True)
        assert after["staging"]["commit"] == sha and after["staging"]["artifact_id"] == second

    def test_a_request_merged_over_an_unrecorded_pin(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], settings: Settings,
        remote: Path,
    ) -> None:  # fmt: skip
        """The merge path builds its own message; it carries the trailer too."""
        art = _register(client, tokens["ci"], "2.0.0")
        assert _promote(client, tokens["promoter"], art, "dev", "staging").status_code == 201
        resp = _promote(client, tokens["promoter"], art, "staging", "production")
        assert resp.status_code == 202, resp.get_json()
        request_id = resp.get_json()["request"]["id"]
        for name, group in (("alice", "ops-team"), ("bob", "security-team")):
            token = runtime.tokens.create(name, [Scope.PROMOTIONS_APPROVE], [group])
            resp = client.post(
                f"/api/v1/promotions/{request_id}/approvals", json={}, headers=bearer(token)
            )
            assert resp.status_code == 201, resp.get_json()
        merge = _tip(remote)
        said = trailers(remote, merge)
        assert said["Ritmo-Request"] == request_id
        assert said["Ritmo-Replaces"] == "0.1.0 (unrecorded)"  # the scaffold's pin
        verify_commit(remote, merge, settings.gnupghome)
        production = _cells(_environments(client, tokens["reader"]))["production"]
        assert (production["version"], production["recorded"]) == ("2.0.0", True)
        assert production["promotion"] == request_id and production["commit"] == merge

    def test_a_hand_pin_of_the_version_promoted_next(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        """A person pins what Ritmo then promotes: the promotion's commit changes no file,
        records it, and from then on the pin is recorded (set by the person's commit)."""
        art = _register(client, tokens["ci"], "5.0.0")
        hand = _hand_pin(remote, tmp_path, "staging", "5.0.0")
        runtime.writer.sync()
        staging = _cells(_environments(client, tokens["reader"]))["staging"]
        assert (staging["version"], staging["artifact_id"]) == ("5.0.0", art)
        assert (staging["recorded"], staging["commit"]) == (False, hand)

        resp = _promote(client, tokens["promoter"], art, "dev", "staging")
        assert resp.status_code == 201, resp.get_json()
        sha = resp.get_json()["commit"]
        assert git(remote, "diff", "--stat", hand, sha).strip() == ""
        assert trailers(remote, sha)["Ritmo-Replaces"] == "5.0.0 (unrecorded)"
        staging = _cells(_environments(client, tokens["reader"]))["staging"]
        assert (staging["recorded"], staging["commit"], staging["recorded_by"]) == (
            True,
            hand,
            sha,
        )
        assert staging["pinned_by"] == "release-bot"


class TestAllRecorded:
    def test_versions_equal_to_the_index(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
    ) -> None:
        cd = runtime.tokens.create("argocd", [Scope.DEPLOYMENTS_WRITE])
        art = _register(client, tokens["ci"], "3.0.0")
        assert _promote(client, tokens["promoter"], art, "dev", "staging").status_code == 201
        newer = _register(client, tokens["ci"], "3.1.0")  # dev only
        resp = client.post(
            "/api/v1/deployments",
            json={"artifact_id": newer, "environment": "dev", "status": "degraded"},
            headers=bearer(cd),
        )
        assert resp.status_code == 201, resp.get_json()

        cells = _cells(_environments(client, tokens["reader"]))
        for env, want in (("dev", newer), ("staging", art)):
            found = runtime.index.get(want)
            assert found is not None
            assert cells[env]["artifact_id"] == runtime.index.last_promoted("web", env) == want
            assert cells[env]["version"] == found.record.version
            assert cells[env]["recorded"] is True
            promotion = runtime.index.search_promotions(app="web", env=env, limit=1)[0][0]
            assert cells[env]["commit"] == cells[env]["recorded_by"] == promotion["commit"]
            assert cells[env]["promotion"] == promotion["id"]
            assert cells[env]["pinned_by"] == promotion["promoted_by"]
        assert cells["dev"]["health"] == "degraded"
        assert cells["dev"]["deployment"]["version"] == "3.1.0"
        assert cells["staging"]["health"] is None and cells["staging"]["deployment"] is None

        only = _environments(client, tokens["reader"], app="web")
        assert [a["app"] for a in only["apps"]] == ["web"]
        assert _environments(client, tokens["reader"], app="api")["apps"] == []

    def test_polls_between_tips_read_no_git(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        _register(client, tokens["ci"], "4.0.0")
        calls: list[str] = []
        real = Mirror.log

        def counted(mirror: Any, *args: str, **kw: Any) -> str:
            calls.append(args[0])
            return real(mirror, *args, **kw)

        monkeypatch.setattr(Mirror, "log", counted)  # every git log the mirror runs
        first = _environments(client, tokens["reader"])
        assert calls, "the first read of a tip reads git"
        calls.clear()
        assert _environments(client, tokens["reader"]) == first
        assert calls == []
        _register(client, tokens["ci"], "4.1.0")
        assert _cells(_environments(client, tokens["reader"]))["dev"]["version"] == "4.1.0"
        assert calls

    def test_scope_and_bad_query(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        refs = remote_refs(remote)
        resp = client.get("/api/v1/environments", headers=bearer(tokens["promoter"]))
        assert resp.status_code == 403
        resp = client.get("/api/v1/environments?app=Not_An_App", headers=bearer(tokens["reader"]))
        assert resp.status_code == 400
        assert resp.get_json()["fields"][0]["field"] == "app"
        resp = client.get("/api/v1/environments?colour=red", headers=bearer(tokens["reader"]))
        assert resp.status_code == 400
        assert remote_refs(remote) == refs


# -- the pure rules -----------------------------------------------------------------------


def _commit(sha: str, signed: bool, **trailers: str) -> PinCommit:
    return PinCommit(sha, 0, "Pat", {k: [v] for k, v in trailers.items()}, ritmo_signed=signed)


def test_recorded_needs_ritmos_commit_and_the_index() -> None:
    ritmo = _commit("a" * 40, True, **{"Ritmo-Promotion": "dev -> staging"})
    both = PinFacts("web", "staging", "p", "1.0", commit=ritmo, recorder=ritmo,
                    expected=frozenset({"1.0"}))  # fmt: skip
    assert is_recorded(both)
    # Ritmo signed it, but the index says Ritmo last pinned something else there.
    assert not is_recorded(PinFacts("web", "staging", "p", "1.0", commit=ritmo, recorder=ritmo,
                                    expected=frozenset({"0.9"})))  # fmt: skip
    # The index agrees, but a person's commit set it (a hand pin of the same version).
    hand = _commit("b" * 40, False)
    assert not is_recorded(PinFacts("web", "staging", "p", "1.0", commit=hand,
                                    expected=frozenset({"1.0"})))  # fmt: skip
    assert is_recorded(PinFacts("web", "staging", "p", None))  # nothing pinned, none expected
    assert not is_recorded(PinFacts("web", "staging", "p", None, expected=frozenset({"1.0"})))
    shown = cell(PinFacts("web", "staging", "p", "1.9.9", commit=hand))
    assert (shown["version"], shown["recorded"], shown["pinned_by"]) == ("1.9.9", False, "Pat")
    assert label(shown) == "1.9.9 (unrecorded, bbbbbbb)"
    assert label(cell(both)) == "1.0" and label({"version": None}) == "-"


def test_replaced_only_a_pin_at_the_followed_tip_the_index_does_not_expect() -> None:
    assert replaced("1.9.9", "1.9.9", frozenset({"1.0"}))
    assert replaced("0.1.0", "0.1.0", None)  # Ritmo never pinned there
    assert not replaced("1.0", "1.0", frozenset({"1.0"}))
    assert not replaced("1.1", "1.0", frozenset({"1.0"}))  # Ritmo's own, still being pushed
    assert not replaced(None, None, None)
