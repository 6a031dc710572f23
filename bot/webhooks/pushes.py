"""A push to the default branch by someone else: the index follows, and an overlay whose
pinned version changed without a Ritmo promotion raises an alert."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import split_image
from bot.policy.model import DEFAULT_OVERLAY, AppTarget, Policy
from bot.promotions.pin import current_value
from bot.webhooks.payloads import for_manifests, is_ritmo, sender
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
router = Router()

_NO_COMMIT = "0" * 40  # GitHub's `before` for a branch that did not exist


@dataclass(frozen=True)
class Bypass:
    """An overlay's pinned version changed by a commit that is not Ritmo's."""

    path: str
    app: str
    env: str
    before: str | None
    after: str | None
    commit: str
    author: str


@router.register("push")
def follow_default_branch(event: Event, runtime: Runtime) -> None:
    payload = event.payload
    branch = runtime.settings.manifests.branch
    if not for_manifests(event, runtime) or payload.get("ref") != f"refs/heads/{branch}":
        return
    if payload.get("deleted") or is_ritmo(runtime, sender(event)):
        return  # Ritmo's own push: the index followed it as it landed
    runtime.writer.sync()
    for bypass in bypasses(payload, runtime):
        log.error(
            "ALERT: %s pins %s %s to %s (was %s) since %s by %s, without a Ritmo promotion",
            bypass.path, bypass.app, bypass.env, bypass.after, bypass.before,
            bypass.commit[:12], bypass.author,
        )  # fmt: skip
        runtime.requests.forge.alert(
            bypass.commit,
            f"this commit pins {bypass.app} {bypass.after} in {bypass.env} ({bypass.path}, "
            f"was {bypass.before}) without a Ritmo promotion; the policy was not applied.",
        )


def bypasses(payload: dict[str, Any], runtime: Runtime) -> list[Bypass]:
    """Each overlay whose pinned value a pushed commit not authored by Ritmo changed.

    A person's merge of a promotion pull request is left to the pull request handler,
    which judges it by the policy."""
    policy = runtime.policy()
    ritmo = runtime.settings.manifests.author_email.casefold()
    mirror = runtime.mirror
    found = []
    with mirror.locked():
        for commit in payload.get("commits") or []:
            author = commit.get("author") or {}
            if str(author.get("email", "")).casefold() == ritmo:
                continue
            sha = str(commit["id"])
            touched = [*(commit.get("added") or []), *(commit.get("modified") or [])]
            overlays = [(p, hit) for p in touched if (hit := _overlay(policy, p)) is not None]
            if not overlays:
                continue
            try:
                parents = _parents(mirror.read(sha)[1])
            except (ValueError, KeyError, OSError):
                log.warning("push commit %s is not on the branch any more; skipped", sha[:12])
                continue
            if any(runtime.requests_index.by_commit(p) for p in parents[1:]):
                continue  # a promotion pull request merged on GitHub
            for path, (app, env, target) in overlays:
                image = _image_name(runtime, app, target)
                old = _pinned(mirror, parents[0] if parents else None, path, target, image)
                new = _pinned(mirror, sha, path, target, image)
                if new != old:
                    who = str(author.get("username") or author.get("name") or "unknown")
                    found.append(Bypass(path, app, env, old, new, sha, who))
    return found


def _overlay(policy: Policy, path: str) -> tuple[str, str, AppTarget] | None:
    """(app, env, target) when `path` is an app's overlay under the policy."""
    envs = set(policy.environment_names)
    for template in {DEFAULT_OVERLAY, *(policy.target(a).overlay for a in policy.apps)}:
        match = _template_pattern(template).match(path)
        if match is None:
            continue
        app, env = match["app"], match["env"]
        target = policy.target(app)
        if env in envs and target.overlay == template:
            return app, env, target
    return None


def _template_pattern(template: str) -> re.Pattern[str]:
    """apps/{app}/overlays/{env}/kustomization.yaml -> a pattern naming app and env."""
    out, seen = "", set()
    for part in re.split(r"(\{app\}|\{env\})", template):
        name = part[1:-1]
        if part in ("{app}", "{env}"):
            out += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
            seen.add(name)
        else:
            out += re.escape(part)
    if "app" not in seen:
        out += "(?P<app>)"
    if "env" not in seen:
        out += "(?P<env>)"
    return re.compile(f"^{out}$")


def _image_name(runtime: Runtime, app: str, target: AppTarget) -> str:
    if target.image:
        return target.image
    latest, _ = runtime.index.search(name=app, limit=1)
    image = latest[0].record.get("image") if latest else None
    return split_image(str(image))[0] if image else app


def _pinned(
    mirror: Mirror, commit: str | None, path: str, target: AppTarget, image: str
) -> str | None:
    if commit is None:
        return None
    data = read_path(mirror, mirror.tree_of(commit), path)
    if data is None:
        return None
    try:
        return current_value(target, data.decode(), image)
    except Exception:  # an overlay someone broke: its value cannot be read, not an alert
        return None


def _parents(raw: bytes) -> list[str]:
    parents = []
    for line in _header(raw):
        if line.startswith("parent "):
            parents.append(line[7:])
    return parents


def _header(raw: bytes) -> Iterator[str]:
    for line in raw.decode(errors="replace").split("\n"):
        if not line:
            return
        yield line
