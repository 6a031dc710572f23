"""The GitHub forge over `responses`: App auth, pull requests, reviews, teams, retries, budget."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import ConfigError, ForgeSettings, GitHubSettings, Settings, load_settings
from bot.forge import RequestView
from bot.forge.github import GitHubForge, github_forge
from bot.policy.evaluate import Decision
from bot.runtime import Runtime, build_runtime
from tests.forge.github_sandbox import (
    APP_ID,
    INSTALLATION_ID,
    POLICY,
    PRIVATE_KEY,
    PUBLIC_KEY,
    REPOSITORY,
    SAMPLES,
    WEBHOOK_SECRET,
    GitHubSandbox,
    forge,
    policy,
    review,
    sample,
    sandbox,
    sandboxed_runtime,
)
from tests.helpers import artifact_body, bearer, git, kill_gpg_agent, trailers, verify_commit

HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
OLDER = "0123456789abcdef0123456789abcdef01234567"
BRANCH = "ritmo/promote/web/production"
GHES = "https://ghe.example.com/api/v3"


def _view(**changes: Any) -> RequestView:
    view = RequestView(
        id="req-6dcb09b5b57875f3",
        app="web",
        version="2.0.0",
        from_env="staging",
        to_env="production",
        branch=BRANCH,
        head=HEAD,
        requested_by="release-bot",
        title="Promote web 2.0.0 to production",
        body="## Promote web 2.0.0 to production\n\nNeeds 1 from ops-team and 1 from security-team",
        groups=("ops-team", "security-team"),
    )
    return replace(view, **changes)


def _decision(status: str, **fields: Any) -> Decision:
    return Decision(status=status, required=2, **fields)  # type: ignore[arg-type]


class TestAppAuth:
    """The app's JWT buys an installation token, reused until it nearly expires."""

    def test_jwt_verifies_with_the_public_key(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.status(HEAD)
        forge().progressed(_view(), _decision("pending", reason="missing approvals"))
        exchange = gh.rsps.calls[0].request
        assert exchange.url.endswith(f"/app/installations/{INSTALLATION_ID}/access_tokens")
        scheme, token = exchange.headers["Authorization"].split(" ", 1)
        assert scheme == "Bearer"
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        claims = jwt.decode(token, PUBLIC_KEY, algorithms=["RS256"])
        assert claims["iss"] == str(APP_ID)
        assert claims["exp"] - claims["iat"] <= 600  # GitHub refuses JWTs valid for longer
        status = gh.rsps.calls[1].request
        token = sample("installation-token")[2]["token"]
        assert status.headers["Authorization"] == f"token {token}"

    def test_token_reused_then_refreshed_before_expiry(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.status(HEAD)
        github = forge()
        # Three different statuses (the same one again is not posted again).
        pending = [_decision("pending", reason=f"missing approvals ({n})") for n in range(3)]
        github.progressed(_view(), pending[0])
        github.progressed(_view(), pending[1])
        exchanges = f"/app/installations/{INSTALLATION_ID}/access_tokens"
        assert len(gh.sent("POST", exchanges)) == 1

        real = datetime

        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return real.now(tz) + timedelta(minutes=59, seconds=50)

        with mock.patch("github.Auth.datetime", Later):
            github.progressed(_view(), pending[2])
        assert len(gh.sent("POST", exchanges)) == 2
        assert github.calls["progressed"] == 5  # 3 statuses, 2 token exchanges


class TestOpened:
    """Opening a request: the pull request, team reviewers and a pending status, in 4 calls."""

    def test_request_bodies_and_budget(self, gh: GitHubSandbox) -> None:
        gh.opening(HEAD)
        github = forge()
        assert github.opened(_view()) == "7"
        assert gh.sent("POST", f"/repos/{REPOSITORY}/pulls") == [
            {
                "title": "Promote web 2.0.0 to production",
                "head": BRANCH,
                "base": "main",
                "body": _view().body,
            }
        ]
        requested = gh.sent("POST", f"/repos/{REPOSITORY}/pulls/7/requested_reviewers")
        assert requested == [{"team_reviewers": ["ops", "security"]}]
        assert gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{HEAD}") == [
            {"state": "pending", "context": "ritmo/approval", "description": "0/2 approvals"}
        ]
        assert github.calls["opened"] <= 6
        assert github.calls == {"opened": 4}

    def test_no_github_teams_no_review_request(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.create_pull()
        gh.status(HEAD)
        github = forge()
        assert github.opened(_view(groups=("release-managers",))) == "7"
        assert github.calls == {"opened": 3}

    def test_review_request_refused_still_opens(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.create_pull()
        gh.status(HEAD)
        gh.add("POST", f"/repos/{REPOSITORY}/pulls/7/requested_reviewers", "pull-exists")
        assert forge().opened(_view()) == "7"  # reviewers are a courtesy, not the gate

    def test_existing_pull_request_is_reused(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.add("POST", f"/repos/{REPOSITORY}/pulls", "pull-exists")
        _, _, pull = sample("pull-created")
        gh.add("GET", f"/repos/{REPOSITORY}/pulls", "pull-created", [pull], status=200)
        gh.add("PATCH", f"/repos/{REPOSITORY}/pulls/7", "pull-closed", pull)
        gh.request_reviewers()
        gh.status(HEAD)
        assert forge().opened(_view()) == "7"
        listed = [c.request.url for c in gh.rsps.calls if c.request.method == "GET"]
        assert "head=acme%3Aritmo%2Fpromote%2Fweb%2Fproduction" in listed[0]
        assert "state=open" in listed[0]

    def test_enterprise_server_api_url(self) -> None:
        with sandbox(GHES) as ghes:
            ghes.opening(HEAD)
            assert forge(api=GHES).opened(_view()) == "7"
            assert all(path.startswith("/api/v3/") for _, path in ghes.requests())
            assert all(c.request.url.startswith("https://ghe.example.com:443/api/v3/")
                       for c in ghes.rsps.calls)  # fmt: skip
            assert len(ghes.requests()) == 4


class TestReviews:
    """GitHub's reviews as policy Reviews: states, commits, bots; drafts are skipped."""

    def test_mapping(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.reviews()
        github = forge()
        found = github.reviews(_view(forge_ref="7"))
        assert found is not None
        assert [(r.reviewer, r.state, r.commit, r.is_bot) for r in found] == [
            ("alice", "approved", HEAD, False),
            ("carol", "approved", OLDER, False),  # on an older head: evaluate ignores it
            ("dependabot[bot]", "approved", HEAD, True),
            ("bob", "commented", HEAD, False),
            ("bob", "changes_requested", HEAD, False),
            ("dave", "dismissed", OLDER, False),
        ]  # erin's PENDING review is a draft only she sees
        assert found[0].submitted_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        assert github.calls == {"reviews": 2}  # token + one page of reviews
        assert "per_page=100" in gh.rsps.calls[1].request.url

    def test_no_pull_request_no_reviews(self, gh: GitHubSandbox) -> None:
        github = forge()
        assert github.reviews(_view()) == []
        assert github.calls == {}


class TestMemberships:
    """Team members from GitHub (every page), cached for membership_ttl seconds."""

    def test_cached_within_ttl_then_reread(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.team("ops")
        gh.team("security")
        now = [1000.0]
        github = forge(membership_ttl=300, clock=lambda: now[0])
        groups = ["ops-team", "security-team", "release-managers"]
        first = github.memberships(policy(), groups)
        assert len(first["ops-team"]) == 102 and {"alice", "Frank"} <= first["ops-team"]
        assert first["security-team"] == frozenset({"bob"})
        assert first["release-managers"] == frozenset()  # a local group: nobody on GitHub
        assert github.calls["memberships"] == 4  # token, ops (2 pages), security

        now[0] += 299
        assert github.memberships(policy(), groups) == first
        assert github.calls["memberships"] == 4

        now[0] += 2
        assert github.memberships(policy(), groups) == first
        assert github.calls["memberships"] == 7

    def test_unreadable_team_approves_nobody(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.team("security")
        gh.add("GET", "/orgs/acme/teams/ops/members", "pull-exists", {"message": "Not Found"},
               status=404)  # fmt: skip
        found = forge().memberships(policy(), ["ops-team", "security-team"])
        assert found == {"ops-team": frozenset(), "security-team": frozenset({"bob"})}


class TestProgressedAndClosed:
    """The commit status follows the decision; closing comments, then closes."""

    @pytest.mark.parametrize(
        ("status", "state"),
        [
            ("approved", "success"),
            ("blocked", "failure"),
            ("expired", "failure"),
            ("pending", "pending"),
            ("frozen", "pending"),
        ],
    )
    def test_status(self, gh: GitHubSandbox, status: str, state: str) -> None:
        gh.token()
        gh.status(HEAD)
        github = forge()
        github.progressed(_view(), _decision(status, reason="changes requested by bob",
                                             missing=(("ops-team", 1),)))  # fmt: skip
        assert gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{HEAD}") == [
            {
                "state": state,
                "context": "ritmo/approval",
                "description": "1/2 approvals: changes requested by bob",
            }
        ]
        assert github.calls == {"progressed": 2}

    def test_description_at_most_140(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.status(HEAD)
        forge().progressed(_view(), _decision("frozen", reason="production is frozen " * 20))
        (sent,) = gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{HEAD}")
        assert len(sent["description"]) == 140 and sent["description"].endswith("…")

    def test_closed(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.comment()
        gh.close()
        github = forge()
        github.closed(_view(forge_ref="7"), "superseded", "superseded by req-0123456789abcdef")
        assert gh.sent("POST", f"/repos/{REPOSITORY}/issues/7/comments") == [
            {"body": "Ritmo closed this promotion request (superseded): "
                     "superseded by req-0123456789abcdef"}
        ]  # fmt: skip
        assert gh.sent("PATCH", f"/repos/{REPOSITORY}/pulls/7") == [{"state": "closed"}]
        assert github.calls == {"closed": 3}

    def test_author_is_the_apps_bot(self, gh: GitHubSandbox) -> None:
        gh.app()
        github = forge()
        assert github.author() == "ritmo[bot]"
        assert github.author() == "ritmo[bot]"
        assert github.calls == {"author": 1}  # GET /app with the JWT, once
        assert forge(bot_login="acme-ritmo[bot]").author() == "acme-ritmo[bot]"


class TestRetries:
    """Secondary rate limits and bad gateways are retried, and every try is counted."""

    def test_secondary_rate_limit_then_success(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.add("POST", f"/repos/{REPOSITORY}/statuses/{HEAD}", "secondary-rate-limit")
        gh.status(HEAD)
        github = forge()
        github.progressed(_view(), _decision("pending", reason="missing approvals"))
        assert len(gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{HEAD}")) == 2
        assert github.calls == {"progressed": 3}

    def test_bad_gateway_then_success(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.add("GET", "/orgs/acme/teams/security/members", "bad-gateway")
        gh.team("security")
        github = forge()
        found = github.memberships(policy(), ["security-team"])
        assert found == {"security-team": frozenset({"bob"})}
        assert github.calls == {"memberships": 3}  # token, 502, the retry

    def test_retry_after_is_waited_for(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Over a real socket, so urllib3 itself sleeps the Retry-After seconds."""
        script = [sample("installation-token"), sample("secondary-rate-limit"),
                  sample("status-created")]  # fmt: skip
        seen: list[str] = []

        class Scripted(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.append(self.path)
                status, headers, body = script.pop(0)
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        slept: list[float] = []
        monkeypatch.setattr(time, "sleep", slept.append)
        github = forge(api=f"http://127.0.0.1:{server.server_port}")
        try:
            github.progressed(_view(), _decision("pending", reason="missing approvals"))
        finally:
            github.close()
            server.shutdown()
            server.server_close()
            thread.join()
        status = f"/repos/{REPOSITORY}/statuses/{HEAD}"
        assert seen == [f"/app/installations/{INSTALLATION_ID}/access_tokens", status, status]
        assert 7 in slept  # the Retry-After header, honoured before the second try
        assert github.calls == {"progressed": 3}


class TestConfig:
    """forge.kind github refuses to start without the app's id, key, installation, repo."""

    def _settings(self, **github: Any) -> Settings:
        full: dict[str, Any] = {
            "app_id": APP_ID,
            "private_key_file": str(SAMPLES / "app-key.pem"),
            "installation_id": INSTALLATION_ID,
            "repository": REPOSITORY,
            "webhook_secret": WEBHOOK_SECRET,
        }
        full.update(github)
        return load_settings(None, forge={"kind": "github", "github": full})

    @pytest.mark.parametrize(
        ("missing", "env"),
        [
            ("app_id", "RITMO_FORGE__GITHUB__APP_ID"),
            ("private_key_file", "RITMO_FORGE__GITHUB__PRIVATE_KEY"),
            ("installation_id", "RITMO_FORGE__GITHUB__INSTALLATION_ID"),
            ("webhook_secret", "RITMO_FORGE__GITHUB__WEBHOOK_SECRET"),
            ("repository", "RITMO_FORGE__GITHUB__REPOSITORY"),
        ],
    )
    def test_missing_setting(self, missing: str, env: str) -> None:
        with pytest.raises(ConfigError) as err:
            github_forge(self._settings(**{missing: None}), policy)
        message = str(err.value)
        assert env in message and "\n" not in message
        assert message.startswith("setting forge.github.")

    def test_complete(self) -> None:
        built = github_forge(self._settings(), policy)
        assert isinstance(built, GitHubForge)
        assert built.calls == {}  # nothing is asked of GitHub at start-up
        inline = github_forge(self._settings(private_key_file=None, private_key=PRIVATE_KEY),
                              policy)  # fmt: skip
        assert isinstance(inline, GitHubForge)

    def test_local_is_not_github(self) -> None:
        assert github_forge(load_settings(None), policy) is None

    def test_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RITMO_FORGE__KIND", "github")
        monkeypatch.setenv("RITMO_FORGE__GITHUB__APP_ID", str(APP_ID))
        monkeypatch.setenv("RITMO_FORGE__GITHUB__PRIVATE_KEY", PRIVATE_KEY)
        monkeypatch.setenv("RITMO_FORGE__GITHUB__INSTALLATION_ID", str(INSTALLATION_ID))
        settings = load_settings(None)
        assert "BEGIN RSA" not in repr(settings)
        with pytest.raises(ConfigError, match="RITMO_FORGE__GITHUB__REPOSITORY"):
            github_forge(settings, policy)

    @pytest.mark.parametrize(
        ("changes", "phrase"),
        [
            ({"private_key_file": "/nonexistent/app.pem"}, "PRIVATE_KEY_FILE"),
            ({"private_key_file": None, "private_key": "not a key"}, "not an unencrypted PEM"),
            ({"private_key": PRIVATE_KEY}, "both set"),
        ],
    )
    def test_bad_key(self, changes: dict[str, Any], phrase: str) -> None:
        with pytest.raises(ConfigError, match=phrase):
            github_forge(self._settings(**changes), policy)

    @pytest.mark.parametrize(
        ("changes", "phrase"),
        [
            ({"repository": "manifests"}, "RITMO_FORGE__GITHUB__REPOSITORY"),
            ({"api_url": "http://ghe.example.com/api/v3"}, "RITMO_FORGE__GITHUB__API_URL"),
        ],
    )
    def test_invalid_values(self, changes: dict[str, Any], phrase: str) -> None:
        with pytest.raises(ConfigError, match=phrase):
            self._settings(**changes)

    def test_runtime_refuses_to_start(self, settings: Settings) -> None:
        configured = settings.model_copy(
            update={"forge": ForgeSettings(kind="github", github=GitHubSettings(app_id=APP_ID))}
        )
        with pytest.raises(ConfigError, match="RITMO_FORGE__GITHUB__PRIVATE_KEY"):
            build_runtime(configured)
        kill_gpg_agent(settings.data_dir / "trusted-gnupg")


# -- end to end: the real app, the real bare remote, GitHub over `responses` ---------------


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def github_runtime(settings: Settings) -> Iterator[Runtime]:
    rt = sandboxed_runtime(settings)
    yield rt
    rt.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


class TestEndToEnd:
    """A promotion becomes a pull request; two team members' approvals merge it, signed."""

    def test_promote_review_merge(
        self, github_runtime: Runtime, settings: Settings, remote: Path, gh: GitHubSandbox
    ) -> None:
        rt = github_runtime
        client: FlaskClient = create_app(rt.settings, rt).test_client()
        ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
        promoter = rt.tokens.create("release-bot", [Scope.PROMOTIONS_WRITE])
        art = client.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"),
                          headers=bearer(ci))  # fmt: skip
        assert art.status_code == 201 and art.json["promotion_status"] == "staging", art.json

        gh.opening()
        gh.reviews(body=[])
        gh.app()
        gh.team("ops")
        gh.team("security")
        before = git(remote, "rev-parse", "main").strip()
        resp = client.post(
            f"/api/v1/artifacts/{art.json['id']}/promote",
            json={"from": "staging", "to": "production"},
            headers=bearer(promoter),
        )
        assert resp.status_code == 202, resp.json
        request = resp.json["request"]
        assert request["forge_ref"] == "7"
        assert request["progress"] == "0/2 approvals"
        head = request["head"]
        (pull,) = gh.sent("POST", f"/repos/{REPOSITORY}/pulls")
        assert pull["head"] == BRANCH and pull["base"] == "main"
        assert pull["title"] == "Promote web 2.0.0 to production"
        assert pull["body"] == request["description"]
        assert gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{head}")[0]["state"] == "pending"

        # Not counted: an approval on an older head, and the app's own (the PR's author).
        gh.reviews(body=[
            review("alice", "APPROVED", before, "2026-03-02T10:00:00Z", rid=91),
            review("ritmo[bot]", "APPROVED", head, "2026-03-02T10:01:00Z", bot=True, rid=92),
            review("bob", "APPROVED", head, "2026-03-02T10:02:00Z", rid=93),
        ])  # fmt: skip
        assert rt.requests.settle(request["id"]) == "pending"
        assert git(remote, "rev-parse", "main").strip() == before
        last = gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{head}")[-1]
        assert last["state"] == "pending"
        assert last["description"].startswith("1/2 approvals: missing 1 approval from ops-team")

        gh.reviews(body=[
            review("alice", "APPROVED", head, "2026-03-02T11:00:00Z", rid=94),
            review("bob", "APPROVED", head, "2026-03-02T10:02:00Z", rid=93),
        ])  # fmt: skip
        assert rt.requests.settle(request["id"]) == "merged"
        merge = git(remote, "rev-parse", "main").strip()
        assert merge != before
        assert git(remote, "rev-parse", f"{merge}^2").strip() == head
        verify_commit(remote, merge, settings.gnupghome)
        assert trailers(remote, merge)["Ritmo-Approved-By"] == "alice, bob"
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged"
        assert saved.merge_commit == merge
