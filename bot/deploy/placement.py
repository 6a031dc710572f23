"""Which artifact an environment runs at a revision, read from the manifests mirror.

A CD engine reports "app X synced revision R". The overlay at R says which version runs;
the last commit on the default branch's first-parent line that touched the overlay is
the pin (a promotion, a merged request, a rollback, or a hand edit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from bot.deploy.records import Placement
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import split_image
from bot.manifests.trailers import parse_trailers
from bot.policy.model import AppTarget, Policy
from bot.promotions.pin import PinError, current_value, pinned_value
from bot.store.artifact_record import ArtifactRecord
from bot.store.index import IndexedArtifact


class PlacementError(Exception):
    """The report names something Ritmo cannot place; `field` is what to fix, `reason`
    why a CD engine's report is ignored (one of intake.IGNORED_REASONS)."""

    def __init__(self, field: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason


def app_environment(policy: Policy, name: str, apps: Iterable[str]) -> tuple[str, str]:
    """(app, environment) whose deploy name (by policy, `{app}-{env}`) is `name`."""
    for app in dict.fromkeys([*policy.app_names, *apps]):
        for env in policy.environment_names:
            if policy.deploy_name(app, env) == name:
                return app, env
    raise PlacementError(
        "name",
        f"no app and environment deploy as {name!r}; name the ArgoCD Application or Flux "
        "object {app}-{env} (e.g. web-staging), or set apps.<app>.deploy_name in the policy",
        "unknown-app",
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
                "unknown-revision",
            )
    tip = mirror.tip()
    if tip is None or not mirror.is_ancestor(revision, tip):
        raise PlacementError(
            "revision",
            f"{revision} is not on {mirror.branch}; Ritmo tracks deployments of its "
            "default branch only",
            "unknown-revision",
        )
    target = policy.target(app)
    path = target.path(app, env)
    text = read_path(mirror, mirror.tree_of(revision), path)
    if text is None:
        raise PlacementError("revision", f"{path} does not exist at {revision}", "unknown-revision")
    pin_commit = mirror.log("-1", "--first-parent", "--format=%H", revision, "--", path).strip()
    trailers = parse_trailers(mirror.log("-1", "--format=%B", pin_commit))
    named = next(iter(trailers.get("Ritmo-Artifact") or []), None)
    first = artifact(named) if named else None
    # The pin commit's own trailer is right unless someone edited the overlay by hand.
    for known in ([first] if first else []) + artifacts_of(app):
        if _pins(target, text.decode(), known.record):
            version = str(known.record.version)
            return Placement(app, env, known.record.id, version, pin_commit, revision, path)
    raise PlacementError(
        "revision",
        f"{path} at {revision[:12]} pins a version of {app} that no recorded artifact has; "
        "register the artifact, or promote through Ritmo",
        "unknown-version",
    )


PIN_SEARCH_LIMIT = 200  # overlay changes looked through for a HelmRelease's version


def pin_of_version(
    mirror: Mirror,
    policy: Policy,
    app: str,
    env: str,
    versions: Sequence[str],
    artifacts_of: Callable[[str], list[IndexedArtifact]],
) -> str:
    """The newest commit on the default branch's first-parent line whose overlay for `env`
    pins a recorded version of `app` among `versions` (a HelmRelease's chart version and
    app version: helm-controller names no commit). The caller holds the mirror's lock."""
    wanted = [a for a in artifacts_of(app) if str(a.record.version) in versions]
    shown = " or ".join(repr(v) for v in versions)
    if not wanted:
        raise PlacementError(
            "versions",
            f"{app} has no recorded version {shown} (the HelmRelease's chart version and app "
            "version); register the artifact under the version the chart carries",
            "unknown-version",
        )
    target = policy.target(app)
    path = target.path(app, env)
    for attempt in range(2):
        tip = mirror.tip() if attempt == 0 else mirror.fetch()
        if tip is None:
            continue
        changes = mirror.log(
            f"-{PIN_SEARCH_LIMIT}", "--first-parent", "--format=%H", tip, "--", path
        ).split()
        for commit in changes:
            text = read_path(mirror, mirror.tree_of(commit), path)
            if text is not None and any(_pins(target, text.decode(), a.record) for a in wanted):
                return commit
    raise PlacementError(
        "versions",
        f"{path} has not pinned {app} {shown} in its last {PIN_SEARCH_LIMIT} changes on "
        f"{mirror.branch}; promote that version to {env} through Ritmo",
        "unknown-version",
    )


def _pins(target: AppTarget, text: str, record: ArtifactRecord) -> bool:
    image = record.image
    if not image:
        return False
    try:
        expected = pinned_value(target, record)
        current = current_value(target, text, split_image(image)[0])
    except (PinError, ValueError):
        return False
    return current == expected
