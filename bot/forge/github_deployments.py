"""Ritmo's deployments mirrored as GitHub Deployments in each app's source repository.

Best effort throughout: GitHub's refusals are logged, never raised, since Ritmo's own
record of a deployment is in git.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from github import GithubException

from bot.forge import DeploymentView
from bot.forge.github_session import GitHubSession, clip, message
from bot.statuses import DeploymentStatus

log = logging.getLogger(__name__)

# Ritmo's deployment states as GitHub deployment status states.
DEPLOYMENT_STATES: dict[str, str] = {
    "progressing": "in_progress",
    "succeeded": "success",
    "failed": "failure",
    "degraded": "failure",  # GitHub has no "degraded": the description says it
    "inactive": "inactive",
}
PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})
RETIRE_WINDOW = 30  # earlier deployments looked at when a production one succeeds


class GitHubDeployments:
    """The deployments half of the GitHub forge, over its session."""

    def __init__(self, session: GitHubSession) -> None:
        self._session = session

    def deployed(self, deployment: DeploymentView) -> str | None:
        """Mirror a deployment as a GitHub Deployment in the app's source repository.

        Without `forge_ref`: create the deployment, then add its status (two requests);
        with it, only add the status (one). Returns the GitHub deployment id, or None when
        nothing could be mirrored: the repository may be outside the installation, or the
        ref unknown there. Best effort: GitHub's refusals are logged, never raised, since
        Ritmo's own record is in git."""
        if deployment.repository is None:
            return None
        state = DEPLOYMENT_STATES.get(deployment.status)
        if state is None:
            log.warning(
                "deployment %s: no GitHub deployment state for status %r; not mirrored",
                deployment.id, deployment.status,
            )  # fmt: skip
            return deployment.forge_ref
        repository = deployment.repository
        with self._session.operation("deployed"):
            forge_ref = deployment.forge_ref
            if forge_ref is None and deployment.mirrored_before:
                forge_ref = self._find(repository, deployment)
            if forge_ref is None:
                try:
                    created = self._session.github.get_repo(repository).create_deployment(
                        ref=deployment.ref,
                        auto_merge=False,  # never merge the default branch into the ref
                        required_contexts=[],  # CI already ran: the artifact exists
                        payload={"ritmo_deployment": deployment.id},
                        environment=deployment.environment,
                        description=clip(deployment.description),
                        transient_environment=False,
                        production_environment=_is_production(deployment.environment),
                    )
                except GithubException as exc:
                    # 404/403: not in this installation; 422: the ref is not in the repository.
                    log.warning(
                        "could not create a GitHub deployment of %s in %s for %s (%s): %s %s",
                        deployment.ref[:40], repository, deployment.id, deployment.environment,
                        exc.status, message(exc),
                    )  # fmt: skip
                    return None
                if created.id is None:  # a 202 "Auto-merged": not with auto_merge False
                    log.warning(
                        "GitHub created no deployment in %s for %s", repository, deployment.id
                    )
                    return None
                forge_ref = str(created.id)
            try:
                self._status(repository, forge_ref, state, deployment)
            except GithubException as exc:
                log.warning(
                    "could not set the status of GitHub deployment %s in %s (%s, %s): %s %s",
                    forge_ref, repository, deployment.id, state, exc.status, message(exc),
                )  # fmt: skip
                if deployment.forge_ref is not None and exc.status in (403, 404):
                    return None  # gone, or no longer accessible
                return forge_ref
            if state == "success" and _is_production(deployment.environment):
                self._retire_earlier(repository, int(forge_ref), deployment)
            return forge_ref

    def _retire_earlier(self, repository: str, newest: int, deployment: DeploymentView) -> None:
        """GitHub's auto_inactive skips production environments: mark the environment's
        earlier deployments that still show success inactive, newest first, up to one
        already inactive (the success that retired it retired those before it too).

        One list, one status read per earlier deployment looked at, one write per one
        retired: usually four requests. Best effort, like the mirroring itself."""
        path = f"/repos/{repository}/deployments"
        request = self._session.request
        try:
            listed = request(
                "GET", path, parameters={"environment": deployment.environment,
                                         "per_page": RETIRE_WINDOW},
            )  # fmt: skip
            earlier = sorted(
                (int(d["id"]) for d in listed or [] if int(d["id"]) < newest), reverse=True
            )
            for deployment_id in earlier:
                statuses = request(
                    "GET", f"{path}/{deployment_id}/statuses", parameters={"per_page": 1}
                )
                latest = statuses[0]["state"] if statuses else None
                if latest == "inactive":
                    break
                if latest != "success":
                    continue  # failed or never finished: it was never the live one
                request(
                    "POST",
                    f"{path}/{deployment_id}/statuses",
                    input={
                        "state": "inactive",
                        "description": clip(f"superseded by {deployment.description}"),
                    },
                    headers={"Accept": "application/vnd.github+json"},
                )
        except GithubException as exc:
            log.warning(
                "could not retire the earlier %s deployments in %s: %s %s",
                deployment.environment, repository, exc.status, message(exc),
            )  # fmt: skip
        except requests.RequestException as exc:  # the id made above must not be lost
            log.warning(
                "could not retire the earlier %s deployments in %s: %s",
                deployment.environment, repository, exc,
            )  # fmt: skip

    def _find(self, repository: str, deployment: DeploymentView) -> str | None:
        """The GitHub deployment made for `deployment` before, found by the payload Ritmo
        gave it, among the newest of its ref and environment (one request)."""
        try:
            listed = self._session.github.get_repo(repository).get_deployments(
                ref=deployment.ref, environment=deployment.environment
            )
            for found in listed.get_page(0):
                if (found.payload or {}).get("ritmo_deployment") == deployment.id:
                    return str(found.id)
        except GithubException as exc:
            log.warning(
                "could not look up the GitHub deployment of %s in %s: %s %s",
                deployment.id, repository, exc.status, message(exc),
            )  # fmt: skip
        return None

    def _status(
        self, repository: str, forge_ref: str, state: str, deployment: DeploymentView
    ) -> None:
        """POST .../deployments/{id}/statuses: PyGithub's create_status has no log_url."""
        description = deployment.description
        if deployment.status == DeploymentStatus.DEGRADED:
            description = f"degraded: {description}"
        body: dict[str, Any] = {
            "state": state,
            "description": clip(description),
            # Only a success retires the environment's earlier deployments: a failed
            # rollout leaves the previous one live (GitHub's default would be true).
            "auto_inactive": state == "success",
        }
        if deployment.log_url is not None:
            body["log_url"] = deployment.log_url
        if deployment.environment_url is not None:
            body["environment_url"] = deployment.environment_url
        self._session.request(
            "POST",
            f"/repos/{repository}/deployments/{forge_ref}/statuses",
            input=body,
            headers={"Accept": "application/vnd.github+json"},
        )


def _is_production(environment: str) -> bool:
    return environment.casefold() in PRODUCTION_ENVIRONMENTS
