"""Which artifact an environment runs at a revision, read from the manifests mirror.

A CD engine reports "app X synced revision R". The overlay at R says which version runs;
the last commit on the default branch's first-parent line that touched the overlay is
the pin (a promotion, a merged request, a rollback, or a hand edit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot.deploy.records import Placement
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import split_image
from bot.manifests.trailers import parse_trailers
from bot.policy.model import AppTarget, Policy
from bot.promotions.pin import PinError, current_value, pinned_value
from bot.store.index import IndexedArtifact


class PlacementError(Exception):
    """The report names something Ritmo cannot place; `field` is what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def app_environment(policy: Policy, name: str, apps: Iterable[str]) -> tuple[str, str]:
    """(app, environment) whose deploy name (by policy, `{app}-{env}`) is `name`."""
    for app in dict.fromkeys([*policy.apps, *apps]):
        for env in policy.environment_names:
            if policy.deploy_name(app, env) == name:
                return app, env
    raise PlacementError(
        "name",
        f"no app and environment deploy as {name!r}; name the ArgoCD Application or Flux "
        "object {app}-{env} (e.g. web-staging), or set apps.<app>.deploy_name in the policy",
    )


def place(
    mirror: Mirror,
    policy: Policy,
    app: str,
    env: str,
    revision: str,
    artifact: Callable[[str], IndexedArtifact | None],
    artifacts_of: Callable[[str], list[IndexedArtifact]],
) -> Placement:
    """What `env` runs at `revision`. The caller holds the mirror's lock."""
    if not mirror.has_commit(revision):
        mirror.fetch()
        if not mirror.has_commit(revision):
            raise PlacementError(
                "revision",
                f"{revision} is not a commit of the manifests repository; report the "
                "revision the CD engine synced from it",
            )
    tip = mirror.tip()
    if tip is None or not mirror.is_ancestor(revision, tip):
        raise PlacementError(
            "revision",
            f"{revision} is not on {mirror.branch}; Ritmo tracks deployments of its "
            "default branch only",
        )
    target = policy.target(app)
    path = target.path(app, env)
    text = read_path(mirror, mirror.tree_of(revision), path)
    if text is None:
        raise PlacementError("revision", f"{path} does not exist at {revision}")
    pin_commit = mirror.log("-1", "--first-parent", "--format=%H", revision, "--", path).strip()
    trailers = parse_trailers(mirror.log("-1", "--format=%B", pin_commit))
    named = next(iter(trailers.get("Ritmo-Artifact") or []), None)
    first = artifact(named) if named else None
    # The pin commit's own trailer is right unless someone edited the overlay by hand.
    for known in ([first] if first else []) + artifacts_of(app):
        if _pins(target, text.decode(), known.record):
            version = str(known.record["version"])
            return Placement(app, env, known.record["id"], version, pin_commit, revision, path)
    raise PlacementError(
        "revision",
        f"{path} at {revision[:12]} pins a version of {app} that no recorded artifact has; "
        "register the artifact, or promote through Ritmo",
    )


def _pins(target: AppTarget, text: str, record: dict[str, Any]) -> bool:
    image = record.get("image")
    if not image:
        return False
    try:
        expected = pinned_value(target, record)
        current = current_value(target, text, split_image(str(image))[0])
    except (PinError, ValueError):
        return False
    return current == expected
