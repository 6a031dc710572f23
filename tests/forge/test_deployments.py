"""Ritmo's deployments mirrored as GitHub Deployments in the artifact's source repository."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from bot.forge import DeploymentView
from bot.forge.local import LocalForge
from tests.forge.github_sandbox import (
    DEPLOYMENT_ID,
    GitHubSandbox,
    forge,
    sandbox,
)

SOURCE = "acme/web"
OTHER = "elsewhere/api"  # a repository outside the app's installation
SHA = "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"
ARGOCD = "https://argocd.example.com/applications/web-staging"
CREATED = f"/repos/{SOURCE}/deployments"
STATUSES = f"/repos/{SOURCE}/deployments/{DEPLOYMENT_ID}/statuses"


def _view(**changes: Any) -> DeploymentView:
    view = DeploymentView(
        id="dep-0123abcd4567ef89",
        repository=SOURCE,
        environment="staging",
        ref=SHA,
        status="progressing",
        description="web 1.2.3 to staging",
        log_url=ARGOCD,
    )
    return replace(view, **changes)


class TestCreate:
    def test_create_then_status(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        github = forge()
        assert github.deployed(_view()) == str(DEPLOYMENT_ID)
        assert gh.sent("POST", CREATED) == [
            {
                "ref": SHA,
                "auto_merge": False,
                "required_contexts": [],
                "payload": {"ritmo_deployment": "dep-0123abcd4567ef89"},
                "environment": "staging",
                "description": "web 1.2.3 to staging",
                "transient_environment": False,
                "production_environment": False,
            }
        ]
        assert gh.sent("POST", STATUSES) == [
            {
                "state": "in_progress",
                "description": "web 1.2.3 to staging",
                "auto_inactive": False,
                "log_url": ARGOCD,
            }
        ]
        assert github.calls == {"deployed": 3}  # token exchange, create, status

    @pytest.mark.parametrize("environment", ["production", "prod", "Production"])
    def test_production_environment(self, gh: GitHubSandbox, environment: str) -> None:
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        forge().deployed(_view(environment=environment))
        (sent,) = gh.sent("POST", CREATED)
        assert sent["environment"] == environment
        assert sent["production_environment"] is True

    def test_version_tag_as_ref_and_long_description(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        forge().deployed(_view(ref="v1.2.3", description="web 1.2.3 to staging " * 20))
        (created,) = gh.sent("POST", CREATED)
        (status,) = gh.sent("POST", STATUSES)
        assert created["ref"] == "v1.2.3"
        for sent in (created, status):
            assert len(sent["description"]) == 140 and sent["description"].endswith("…")

    def test_status_refused_keeps_the_created_id(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The deployment exists on GitHub: losing its id would create a duplicate later."""
        gh.token()
        gh.create_deployment()
        gh.deployment_status(name="repository-not-found")
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            assert forge().deployed(_view()) == str(DEPLOYMENT_ID)
        assert "could not set the status" in caplog.text


class TestLookupAfterARebuild:
    """The index lost the GitHub deployment id (rebuilt from git): a later status finds the
    deployment by Ritmo's payload instead of creating a second one."""

    def test_found_by_payload(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.list_deployments()
        gh.deployment_status()
        github = forge()
        view = _view(status="succeeded", mirrored_before=True)
        assert github.deployed(view) == str(DEPLOYMENT_ID)
        assert gh.sent("POST", CREATED) == []  # no second deployment
        (listed,) = [c.request for c in gh.rsps.calls if c.request.method == "GET"
                     and c.request.url.split("?")[0].endswith(CREATED)]  # fmt: skip
        assert f"ref={SHA}" in listed.url and "environment=staging" in listed.url
        assert [b["state"] for b in gh.sent("POST", STATUSES)] == ["success"]
        assert github.calls == {"deployed": 3}  # token exchange, list, status

    def test_not_found_creates(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.list_deployments(found=False)
        gh.create_deployment()
        gh.deployment_status()
        github = forge()
        assert github.deployed(_view(mirrored_before=True)) == str(DEPLOYMENT_ID)
        assert len(gh.sent("POST", CREATED)) == 1

    def test_a_first_status_does_not_look(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        github = forge()
        assert github.deployed(_view()) == str(DEPLOYMENT_ID)
        assert [m for m, _ in gh.requests() if m == "GET"] == []


class TestStatuses:
    @pytest.mark.parametrize(
        ("status", "state", "description", "auto_inactive"),
        [
            ("progressing", "in_progress", "web 1.2.3 to staging", False),
            ("succeeded", "success", "web 1.2.3 to staging", True),
            ("failed", "failure", "web 1.2.3 to staging", False),
            ("degraded", "failure", "degraded: web 1.2.3 to staging", False),
            ("inactive", "inactive", "web 1.2.3 to staging", False),
        ],
    )
    def test_mapping(
        self, gh: GitHubSandbox, status: str, state: str, description: str, auto_inactive: bool
    ) -> None:
        gh.token()
        gh.deployment_status()
        github = forge()
        ref = github.deployed(_view(status=status, forge_ref=str(DEPLOYMENT_ID)))
        assert ref == str(DEPLOYMENT_ID)
        assert gh.sent("POST", STATUSES) == [
            {
                "state": state,
                "description": description,
                "auto_inactive": auto_inactive,
                "log_url": ARGOCD,
            }
        ]
        assert gh.sent("POST", CREATED) == []  # created before: never again
        assert github.calls == {"deployed": 2}  # token exchange, status

    def test_transitions_on_one_forge(self, gh: GitHubSandbox) -> None:
        """Create once, then one request per status: the token is reused."""
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        github = forge()
        ref = github.deployed(_view())
        assert github.calls == {"deployed": 3}
        url = "https://web.staging.example.com"
        assert github.deployed(_view(status="succeeded", forge_ref=ref,
                                     environment_url=url)) == ref  # fmt: skip
        assert github.calls == {"deployed": 4}
        assert github.deployed(_view(status="degraded", forge_ref=ref, log_url=None)) == ref
        assert github.calls == {"deployed": 5}
        assert len(gh.sent("POST", CREATED)) == 1
        assert [s["state"] for s in gh.sent("POST", STATUSES)] == [
            "in_progress",
            "success",
            "failure",
        ]
        _, succeeded, degraded = gh.sent("POST", STATUSES)
        assert succeeded["environment_url"] == url and succeeded["auto_inactive"] is True
        assert "log_url" not in degraded and "environment_url" not in degraded
        assert degraded["description"].startswith("degraded: ")

    def test_deleted_deployment(self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture) -> None:
        """Gone (or the repository no longer accessible): None, so the next one is new."""
        gh.token()
        gh.deployment_status(name="repository-not-found")
        github = forge()
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            assert github.deployed(_view(forge_ref=str(DEPLOYMENT_ID))) is None
        assert "404" in caplog.text
        assert github.calls == {"deployed": 2}


class TestBestEffort:
    def test_inaccessible_repository(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        gh.token()
        gh.create_deployment(OTHER, name="repository-not-found")
        github = forge()
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            assert github.deployed(_view(repository=OTHER)) is None
        assert f"in {OTHER}" in caplog.text and "404 Not Found" in caplog.text
        assert gh.sent("POST", f"/repos/{OTHER}/deployments/{DEPLOYMENT_ID}/statuses") == []
        assert github.calls == {"deployed": 2}  # token exchange, the refused create

    def test_forbidden(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.add("POST", f"/repos/{SOURCE}/deployments", "repository-not-found", status=403,
               body={"message": "Resource not accessible by integration"})  # fmt: skip
        assert forge().deployed(_view()) is None

    def test_ref_not_in_repository(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No retry on another ref: what was deployed is not on GitHub, so say nothing."""
        gh.token()
        gh.create_deployment(name="deployment-ref-not-found")
        github = forge()
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            assert github.deployed(_view()) is None
        assert "422 No ref found" in caplog.text
        assert len(gh.sent("POST", CREATED)) == 1
        assert github.calls == {"deployed": 2}

    def test_no_repository_no_calls(self, gh: GitHubSandbox) -> None:
        github = forge()
        assert github.deployed(_view(repository=None)) is None
        assert github.deployed(_view(repository=None, forge_ref="5")) is None
        assert gh.requests() == []
        assert github.calls == {}

    def test_unknown_status_no_calls(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        github = forge()
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            assert github.deployed(_view(status="exploded", forge_ref="5")) == "5"
        assert "exploded" in caplog.text
        assert gh.requests() == []


def test_local_forge_mirrors_nothing() -> None:
    local = LocalForge(dict)
    assert local.deployed(_view()) is None


def test_enterprise_server_api_url() -> None:
    """The status is a raw request: it must keep GHES's /api/v3 prefix too."""
    api = "https://ghe.example.com/api/v3"
    with sandbox(api) as ghes:
        ghes.token()
        ghes.create_deployment()
        ghes.deployment_status()
        assert forge(api).deployed(_view()) == str(DEPLOYMENT_ID)
        assert ("POST", f"/api/v3{STATUSES}") in ghes.requests()


class TestProductionRetiresEarlier:
    """GitHub's auto_inactive skips production environments (issue 14, finding 7): a
    production success marks the earlier deployments still showing success inactive."""

    EARLIER, FAILED, RETIRED, NEWER = 1879999001, 1879999500, 1879990000, 1880000100

    def _statuses(self, deployment_id: int) -> str:
        return f"/repos/{SOURCE}/deployments/{deployment_id}/statuses"

    def _reads(self, gh: GitHubSandbox) -> list[str]:
        return [p for m, p in gh.requests() if m == "GET"]

    def test_the_previous_success_is_marked_inactive(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.environment_history("production", [
            (self.NEWER, None),  # started after this one: not touched
            (DEPLOYMENT_ID, "in_progress"),  # this one, succeeding now
            (self.FAILED, "failure"),  # never live: left as it is
            (self.EARLIER, "success"),  # live until now
            (self.RETIRED, "inactive"),  # retired by an earlier success: the end
            (1879000000, "success"),  # beyond it: not even read
        ])  # fmt: skip
        github = forge()
        view = _view(environment="production", status="succeeded", forge_ref=str(DEPLOYMENT_ID),
                     description="web 1.2.3 to production")  # fmt: skip
        assert github.deployed(view) == str(DEPLOYMENT_ID)
        (succeeded,) = gh.sent("POST", STATUSES)
        assert succeeded["state"] == "success"
        assert gh.sent("POST", self._statuses(self.EARLIER)) == [
            {"state": "inactive", "description": "superseded by web 1.2.3 to production"}
        ]
        for untouched in (self.NEWER, self.FAILED, self.RETIRED, 1879000000):
            assert gh.sent("POST", self._statuses(untouched)) == []
        (listed,) = [c.request.url for c in gh.rsps.calls if c.request.method == "GET"
                     and c.request.url.split("?")[0].endswith(CREATED)]  # fmt: skip
        assert "environment=production" in listed
        assert [p for p in self._reads(gh) if p.endswith("/statuses")] == [
            f"/repos/{SOURCE}/deployments/{i}/statuses"
            for i in (self.FAILED, self.EARLIER, self.RETIRED)
        ]
        # token, status, list, three status reads, one retirement
        assert github.calls == {"deployed": 7}

    @pytest.mark.parametrize("environment", ["prod", "Production"])
    def test_every_production_name(self, gh: GitHubSandbox, environment: str) -> None:
        gh.token()
        gh.environment_history(environment, [(DEPLOYMENT_ID, "in_progress"),
                                             (self.EARLIER, "success")])  # fmt: skip
        view = _view(environment=environment, status="succeeded", forge_ref=str(DEPLOYMENT_ID))
        forge().deployed(view)
        assert [b["state"] for b in gh.sent("POST", self._statuses(self.EARLIER))] == ["inactive"]

    @pytest.mark.parametrize("status", ["progressing", "failed", "degraded"])
    def test_only_a_success_retires(self, gh: GitHubSandbox, status: str) -> None:
        """A failed rollout leaves the previous one live."""
        gh.token()
        gh.environment_history("production", [(DEPLOYMENT_ID, "in_progress"),
                                              (self.EARLIER, "success")])  # fmt: skip
        forge().deployed(_view(environment="production", status=status,
                               forge_ref=str(DEPLOYMENT_ID)))  # fmt: skip
        assert gh.sent("POST", self._statuses(self.EARLIER)) == []
        assert self._reads(gh) == []

    def test_other_environments_are_left_to_auto_inactive(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.deployment_status()
        github = forge()
        github.deployed(_view(status="succeeded", forge_ref=str(DEPLOYMENT_ID)))
        assert gh.sent("POST", STATUSES)[0]["auto_inactive"] is True
        assert self._reads(gh) == [] and github.calls == {"deployed": 2}

    def test_a_refused_list_is_logged(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        gh.token()
        gh.deployment_status()
        gh.add("GET", CREATED, "repository-not-found", status=403,
               body={"message": "Resource not accessible by integration"})  # fmt: skip
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            ref = forge().deployed(_view(environment="production", status="succeeded",
                                         forge_ref=str(DEPLOYMENT_ID)))  # fmt: skip
        assert ref == str(DEPLOYMENT_ID)
        assert "could not retire the earlier production deployments in acme/web: 403" in (
            caplog.text
        )

    def test_a_connection_error_keeps_the_id(
        self, gh: GitHubSandbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The sandbox answers an unregistered URL with a ConnectionError: the status was
        set, so the deployment's id is still returned (losing it would make a duplicate)."""
        gh.token()
        gh.create_deployment()
        gh.deployment_status()
        with caplog.at_level(logging.WARNING, "bot.forge.github_deployments"):
            ref = forge().deployed(_view(environment="production", status="succeeded"))
        assert ref == str(DEPLOYMENT_ID)
        assert "could not retire the earlier production deployments" in caplog.text
