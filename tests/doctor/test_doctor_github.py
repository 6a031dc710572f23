"""`ritmo doctor` with the GitHub forge: the App, its installation, the default branch's
rules and the webhook, over `responses` with bodies shaped as GitHub's REST docs show them;
the local parts (remote, key, policy, database) are real."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from bot.config import Settings
from bot.runtime import Runtime
from tests.doctor.helpers import doctor, write_config
from tests.forge.github_sandbox import PRIVATE_KEY, sample

GHES = "https://ghe.acme.example/api/v3"
ALL_PERMISSIONS = {
    "contents": "write", "deployments": "write", "issues": "write", "members": "read",
    "metadata": "read", "pull_requests": "write", "statuses": "write",
}  # fmt: skip
EVENTS = ["issue_comment", "pull_request", "pull_request_review", "push"]
REPO = "/repos/acme/manifests"


class GitHub:
    """The REST operations the doctor calls, each answered from a sample (or a body)."""

    def __init__(self, rsps: responses.RequestsMock, api: str) -> None:
        self.rsps, self.api = rsps, api

    def answer(self, method: str, path: str, name: str, body: Any = None,
               status: int | None = None) -> None:  # fmt: skip
        code, headers, recorded = sample(name, self.api)
        url = f"{self.api}{path}"
        self.rsps.remove(method, url)
        self.rsps.add(
            method, url, json=recorded if body is None else body, status=status or code,
            headers={k: v for k, v in headers.items() if k.lower() != "content-type"},
        )  # fmt: skip

    def body(self, name: str) -> Any:
        return copy.deepcopy(sample(name, self.api)[2])

    def healthy(self) -> None:
        app = self.body("app")
        app.update(permissions=ALL_PERMISSIONS, events=EVENTS)
        self.answer("GET", "/app", "app", app)
        self.answer("GET", f"{REPO}/installation", "repo-installation")
        self.answer("POST", "/app/installations/77/access_tokens", "installation-token")
        self.answer("GET", f"{REPO}/rules/branches/main", "branch-rules")
        self.answer("GET", f"{REPO}/rulesets/42", "ruleset")
        self.answer("GET", f"{REPO}/branches/main", "branch")
        self.answer("GET", "/app/hook/config", "hook-config")
        self.answer("GET", "/app/hook/deliveries", "hook-deliveries")

    def authorizations(self) -> dict[str, str]:
        return {
            f"{c.request.method} {c.request.path_url}": str(c.request.headers["Authorization"])
            for c in self.rsps.calls
        }


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _config(tmp_path: Path, settings: Settings, api: str = "https://api.github.com") -> Path:
    key = tmp_path / "app.pem"
    key.write_text(PRIVATE_KEY)
    github = {
        "app_id": 4242, "private_key_file": str(key), "installation_id": 77,
        "repository": "acme/manifests", "webhook_secret": "It's a Secret to Everybody",
        "api_url": api,
    }  # fmt: skip
    return write_config(tmp_path / "ritmo.yaml", settings,
                        forge={"kind": "github", "github": github})  # fmt: skip


GITHUB_CHECKS = ["github app", "github installation", "branch rules", "github webhook"]


@pytest.fixture
def ready(tmp_path: Path, settings: Settings, runtime: Runtime) -> Path:
    """A working local set-up (the index built by a local-forge runtime), as GitHub's."""
    return _config(tmp_path, settings)


def test_all_ok_with_github(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout
    assert list(lines)[-5:] == [*GITHUB_CHECKS, "cd endpoints"]
    assert all(line.startswith("ok    ") for line in lines.values()), result.stdout
    assert "ritmo (id 4242) authenticates" in lines["github app"]
    assert "77 covers acme/manifests" in lines["github installation"]
    assert "ritmo may push signed commits to main" in lines["branch rules"]
    # App-level calls carry the App's JWT; repository calls the installation token.
    auth = gh.authorizations()
    for call in ("GET /app", "GET /repos/acme/manifests/installation", "GET /app/hook/config"):
        assert auth[call].startswith("Bearer ey"), call
    assert auth["GET /repos/acme/manifests/rules/branches/main"] == (
        "token ghs_16C7e42F292c6912E7710c838347Ae178B4a"
    )


def test_a_ruleset_without_the_app_on_its_bypass_list(
    ready: Path, rsps: responses.RequestsMock
) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    ruleset = gh.body("ruleset")
    ruleset["bypass_actors"] = [
        a for a in ruleset["bypass_actors"] if a["actor_type"] != "Integration"
    ]
    ruleset["current_user_can_bypass"] = "never"
    gh.answer("GET", f"{REPO}/rulesets/42", "ruleset", ruleset)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    line = lines["branch rules"]
    assert line.startswith(
        'FAIL  branch rules: ruleset "protect main" (42) requires a pull request, '
    )
    assert "signed commits GitHub can verify" in line
    assert "add the App ritmo to its bypass list, Always allow" in line
    assert "https://github.com/acme/manifests/settings/rules/42" in line
    others = [n for n, ln in lines.items() if ln.startswith("FAIL")]
    assert others == ["branch rules"]


def test_a_bypass_for_pull_requests_only_is_not_enough(
    ready: Path, rsps: responses.RequestsMock
) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    ruleset = gh.body("ruleset")
    ruleset["bypass_actors"][0]["bypass_mode"] = "pull_request"
    ruleset["current_user_can_bypass"] = "pull_requests_only"
    gh.answer("GET", f"{REPO}/rulesets/42", "ruleset", ruleset)
    result, lines = doctor(ready)
    assert result.exit_code == 1 and "bypass list" in lines["branch rules"]


def test_rules_that_do_not_stop_a_push_and_rulesets_that_only_evaluate(
    ready: Path, rsps: responses.RequestsMock
) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    rules = [r for r in gh.body("branch-rules") if r["type"] in ("deletion", "non_fast_forward")]
    gh.answer("GET", f"{REPO}/rules/branches/main", "branch-rules", rules)
    evaluate = gh.body("ruleset")
    evaluate.update(enforcement="evaluate", bypass_actors=[], current_user_can_bypass="never")
    gh.answer("GET", f"{REPO}/rulesets/42", "ruleset", evaluate)
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout
    # An evaluate-mode ruleset with blocking rules only reports: still ok.
    gh.answer("GET", f"{REPO}/rules/branches/main", "branch-rules")
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout


def _protected(gh: GitHub) -> None:
    branch = gh.body("branch")
    branch["protected"] = True
    branch["protection"]["enabled"] = True
    gh.answer("GET", f"{REPO}/branches/main", "branch", branch)


def test_classic_protection_that_refuses_ritmo(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    _protected(gh)
    gh.answer("GET", f"{REPO}/branches/main/protection", "branch-protection")
    result, lines = doctor(ready)
    assert result.exit_code == 1
    line = lines["branch rules"]
    assert "classic protection on main requires pull request reviews: add the App ritmo" in line
    assert "requires signed commits GitHub verifies" in line and "`ritmo verify`" in line
    assert "requires status checks" in line


def test_classic_protection_that_lets_ritmo_push(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    _protected(gh)
    protection = gh.body("branch-protection")
    protection["required_pull_request_reviews"]["bypass_pull_request_allowances"]["apps"] = [
        {"id": 4242, "slug": "ritmo", "name": "Ritmo"}
    ]
    protection["required_signatures"]["enabled"] = False
    protection["required_status_checks"].update(contexts=[], checks=[])
    gh.answer("GET", f"{REPO}/branches/main/protection", "branch-protection", protection)
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout


def test_classic_protection_it_cannot_read(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    _protected(gh)
    denied = {"message": "Resource not accessible by integration",
              "documentation_url": "https://docs.github.com/rest/branches/branch-protection#get-branch-protection",
              "status": "403"}  # fmt: skip
    gh.answer("GET", f"{REPO}/branches/main/protection", "branch-protection", denied, status=403)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert "403 Resource not accessible by integration" in lines["branch rules"]
    assert "Administration: read" in lines["branch rules"]


def test_the_app_is_not_installed_on_the_repository(
    ready: Path, rsps: responses.RequestsMock
) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    gh.answer("GET", f"{REPO}/installation", "not-installed")
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert lines["github installation"] == (
        "FAIL  github installation: the App is not installed on acme/manifests: install it from "
        "https://github.com/apps/ritmo/installations/new and choose acme/manifests"
    )
    assert lines["branch rules"] == "skip  branch rules: needs the installation"


def test_an_installation_without_every_permission(
    ready: Path, rsps: responses.RequestsMock
) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    installation = gh.body("repo-installation")
    del installation["permissions"]["issues"]
    installation["permissions"]["deployments"] = "read"
    gh.answer("GET", f"{REPO}/installation", "repo-installation", installation)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    line = lines["github installation"]
    assert "lacks deployments: write, issues: write" in line
    assert (
        "accept the App's new permissions on https://github.com/organizations/acme/settings/installations/77"
        in line
    )
    # When the App itself lacks them, the fix starts on the App's settings page.
    gh.answer("GET", "/app", "app")  # the sample: no deployments, no issues
    result, lines = doctor(ready)
    assert (
        "give the App deployments: write, issues: write on https://github.com/settings/apps/ritmo/permissions"
        in lines["github installation"]
    )


def test_another_installation_id(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    installation = gh.body("repo-installation")
    installation["id"] = 78
    gh.answer("GET", f"{REPO}/installation", "repo-installation", installation)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert "set forge.github.installation_id (RITMO_FORGE__GITHUB__INSTALLATION_ID) to 78" in lines[
        "github installation"]  # fmt: skip


def test_the_app_does_not_authenticate(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    gh.answer("GET", "/app", "bad-credentials")
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert lines["github app"].startswith(
        "FAIL  github app: GET /app: 401 A JSON web token could not"
    )
    assert "app_id and the private key must be the same App's" in lines["github app"]
    assert [lines[n][:4] for n in GITHUB_CHECKS[1:]] == ["skip", "skip", "skip"]


def test_a_webhook_that_would_never_reach_ritmo(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    app = gh.body("app")
    app.update(permissions=ALL_PERMISSIONS, events=["pull_request", "pull_request_review"])
    gh.answer("GET", "/app", "app", app)
    gh.answer("GET", "/app/hook/config", "hook-config",
              {"content_type": "form", "insecure_ssl": "0", "secret": None,
               "url": "https://ritmo.acme.example/hooks"})  # fmt: skip
    result, lines = doctor(ready)
    assert result.exit_code == 1
    line = lines["github webhook"]
    assert (
        "https://ritmo.acme.example/hooks is not Ritmo's: it must end in /webhooks/github" in line
    )
    assert "no webhook secret" in line and "content type must be application/json" in line
    assert "subscribe the App to issue_comment, push" in line
    assert line.endswith("(https://github.com/settings/apps/ritmo)")


def test_github_enterprise_server(tmp_path: Path, settings: Settings, runtime: Runtime,
                                  rsps: responses.RequestsMock) -> None:  # fmt: skip
    gh = GitHub(rsps, GHES)
    gh.healthy()
    ruleset = gh.body("ruleset")
    ruleset.update(bypass_actors=[], current_user_can_bypass="never")
    gh.answer("GET", f"{REPO}/rulesets/42", "ruleset", ruleset)
    result, lines = doctor(_config(tmp_path, settings, GHES))
    assert result.exit_code == 1
    assert "https://ghe.acme.example/acme/manifests/settings/rules/42" in lines["branch rules"]
    assert {c.request.url.split("/api/v3")[0] for c in rsps.calls} == {"https://ghe.acme.example"}


def test_a_webhook_secret_that_differs(ready: Path, rsps: responses.RequestsMock) -> None:
    """GitHub never shows the secret; Ritmo's 401 to the latest delivery gives it away."""
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    deliveries = gh.body("hook-deliveries")
    deliveries[0].update(status="Unauthorized", status_code=401)
    gh.answer("GET", "/app/hook/deliveries", "hook-deliveries", deliveries)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert (
        "Ritmo answered 401 to the latest pull_request_review delivery" in lines["github webhook"]
    )
    assert "set the same secret on both" in lines["github webhook"]
    # A delivery to another installation of the App says nothing about this one.
    deliveries[0]["installation_id"] = 99
    gh.answer("GET", "/app/hook/deliveries", "hook-deliveries", deliveries)
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout


def test_a_webhook_github_cannot_deliver(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    deliveries = gh.body("hook-deliveries")
    deliveries[0].update(status="failed to connect to host", status_code=0)
    gh.answer("GET", "/app/hook/deliveries", "hook-deliveries", deliveries)
    result, lines = doctor(ready)
    assert result.exit_code == 1
    assert "(failed to connect to host): is Ritmo reachable?" in lines["github webhook"]


def test_an_organization_ruleset(ready: Path, rsps: responses.RequestsMock) -> None:
    """An organization's ruleset, read through the repository: bypass_actors are hidden from
    an App that cannot edit it, current_user_can_bypass still speaks for the App."""
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    rules = gh.body("branch-rules")
    for rule in rules:
        rule.update(ruleset_source_type="Organization", ruleset_source="acme", ruleset_id=7)
    gh.answer("GET", f"{REPO}/rules/branches/main", "branch-rules", rules)
    ruleset = gh.body("ruleset")
    ruleset.update(id=7, source_type="Organization", source="acme")
    del ruleset["bypass_actors"]
    gh.answer("GET", f"{REPO}/rulesets/7", "ruleset", ruleset)
    result, lines = doctor(ready)
    assert result.exit_code == 0, result.stdout
    ruleset["current_user_can_bypass"] = "never"
    gh.answer("GET", f"{REPO}/rulesets/7", "ruleset", ruleset)
    result, lines = doctor(ready)
    assert result.exit_code == 1 and '"protect main" (7)' in lines["branch rules"]


def test_a_ruleset_it_cannot_read(ready: Path, rsps: responses.RequestsMock) -> None:
    gh = GitHub(rsps, "https://api.github.com")
    gh.healthy()
    gh.answer("GET", f"{REPO}/rulesets/42", "not-installed")  # GitHub's 404 body
    result, lines = doctor(ready)
    assert result.exit_code == 1
    line = lines["branch rules"]
    assert "ruleset 42 requires a pull request" in line and "cannot be read (404 Not Found)" in line
    assert "make sure the App ritmo is on its bypass list" in line
