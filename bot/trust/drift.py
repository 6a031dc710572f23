"""Drift: a change on the default branch that Ritmo did not make or allow (pure).

A new commit on the branch's first-parent line is drift when it is not signed by Ritmo's
key and it
- changes an app's pinned value in an overlay (`pin`; audit `pinned_outside_ritmo`), or
- changes `.ritmo/policy.yaml` without a signature by a key in `signing.policy_keys`
  either (`policy`; audit `policy_changed_outside_ritmo`).
A person's merge of a promotion request is judged by the pull request handler instead.

Each drift is recorded once, as a Ritmo-signed empty commit with the trailers
`Ritmo-Drift: pin|policy`, `Ritmo-Drift-Commit: <sha>` and `Ritmo-Drift-Detail: <line>`.
The detail is one line, `<what changed>; by <author>`, which this module writes and reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.policy.load import BRANCH_POLICY_PATH
from bot.policy.model import DEFAULT_OVERLAY, AppTarget, Policy, is_pattern
from bot.statuses import AuditKind

DriftKind = Literal["pin", "policy"]
AUDIT_KINDS: dict[DriftKind, AuditKind] = {
    "pin": AuditKind.PINNED_OUTSIDE_RITMO,
    "policy": AuditKind.POLICY_CHANGED_OUTSIDE_RITMO,
}
_WHAT = {"pin": "pinned outside Ritmo", "policy": "policy changed outside Ritmo"}


@dataclass(frozen=True)
class PinMove:
    """An app's pinned value in one environment's overlay, before and after a commit."""

    app: str
    env: str
    path: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class NewCommit:
    """What drift is judged on: one new first-parent commit, as git and gpg saw it."""

    sha: str
    author: str  # "Name <email>"
    pins: tuple[PinMove, ...] = ()
    # blob before, after; only for a change the policy in force does not obey
    policy_change: tuple[str | None, str | None] | None = None
    by_ritmo: bool = False  # a good signature by Ritmo's key
    by_policy_key: bool = False  # a good signature by a key in signing.policy_keys
    merges_request: bool = False  # a person's merge of a promotion request's branch


@dataclass(frozen=True)
class Drift:
    kind: DriftKind
    commit: str  # the offending commit
    detail: str  # one line: what changed; by whom

    @property
    def audit_kind(self) -> AuditKind:
        return AUDIT_KINDS[self.kind]


def classify(commit: NewCommit) -> list[Drift]:
    """The drifts one new commit makes: none, a pin, a policy change, or both."""
    found = []
    if commit.pins and not (commit.by_ritmo or commit.merges_request):
        what = ", ".join(_pin_text(p) for p in commit.pins)
        found.append(Drift("pin", commit.sha, _line(f"{what} without a Ritmo promotion", commit)))
    if commit.policy_change is not None and not commit.by_policy_key:
        before, after = (_short(b) for b in commit.policy_change)
        what = (
            f"changes {BRANCH_POLICY_PATH} ({before} -> {after}) without a signature by Ritmo "
            "or a key in signing.policy_keys"
        )
        found.append(Drift("policy", commit.sha, _line(what, commit)))
    return found


def _pin_text(pin: PinMove) -> str:
    if pin.after is None:
        return f"unpins {pin.app} in {pin.env} ({pin.path}, was {pin.before})"
    return f"pins {pin.app} {pin.after} in {pin.env} ({pin.path}, was {pin.before})"


def _short(blob: str | None) -> str:
    return blob[:12] if blob else "none"


def _line(what: str, commit: NewCommit) -> str:
    return " ".join(f"{what}; by {commit.author}".split())  # one line, whatever the name


# -- the drift commit -------------------------------------------------------------------


def drift_message(drift: Drift) -> str:
    """The drift commit's message: a subject, why, and the trailers."""
    return (
        f"Drift: {drift.commit[:12]} {_WHAT[drift.kind]}\n\n"
        f"Commit {drift.commit} {drift.detail}.\n"
        "Ritmo did not make or allow it; it is recorded here, once.\n\n"
        f"Ritmo-Drift: {drift.kind}\n"
        f"Ritmo-Drift-Commit: {drift.commit}\n"
        f"Ritmo-Drift-Detail: {drift.detail}\n"
    )


def recorded_drift(trailers: dict[str, list[str]]) -> Drift | None:
    """The drift a commit's trailers record, if any."""
    kind = (trailers.get("Ritmo-Drift") or [""])[0]
    commit = (trailers.get("Ritmo-Drift-Commit") or [""])[0]
    detail = (trailers.get("Ritmo-Drift-Detail") or [""])[0]
    if kind not in ("pin", "policy") or not commit:
        return None
    return Drift("pin" if kind == "pin" else "policy", commit, detail)


@dataclass(frozen=True)
class DriftFacts:
    """What a recorded drift's detail says: the author, and the pin when there is one."""

    author: str | None
    app: str | None = None
    env: str | None = None
    version: str | None = None


_ONE_PIN = re.compile(r"^pins (?P<app>\S+) (?P<version>\S+) in (?P<env>\S+) \([^()]*\)")


def facts_of(drift: Drift) -> DriftFacts:
    what, sep, author = drift.detail.rpartition("; by ")
    if not sep:
        what, author = drift.detail, ""
    match = _ONE_PIN.match(what)
    single = match is not None and what.count("), ") == 0
    if drift.kind == "pin" and match and single:
        return DriftFacts(author or None, match["app"], match["env"], match["version"])
    return DriftFacts(author or None)


def alert_line(drift: Drift) -> str:
    """The ERROR log line: starts with ALERT, names the commit, the kind, what changed."""
    return f"ALERT {_WHAT[drift.kind]} ({drift.kind}): commit {drift.commit} {drift.detail}"


def forge_text(drift: Drift) -> str:
    """The comment on the offending commit."""
    if drift.kind == "pin":
        return f"this commit {drift.detail}; the policy was not applied, and Ritmo recorded it."
    return f"this commit {drift.detail}; Ritmo does not obey this policy, and recorded the change."


# -- which overlay a path is ----------------------------------------------------------


def overlay_of(policy: Policy, path: str) -> tuple[str, str, AppTarget] | None:
    """(app, env, target) when `path` is an app's overlay under the policy: an app the
    policy configures, by its own template; any other app, by the default one."""
    envs = set(policy.environment_names)
    for app in policy.app_names:
        target = policy.target(app)
        match = _template_pattern(target.overlay).match(path)
        if match and match["app"] in ("", app) and match["env"] in envs:
            return app, match["env"], target
    for pattern in (k for k in policy.apps if is_pattern(k)):  # names first, then patterns
        overlay = policy.apps[pattern].overlay
        match = _template_pattern(overlay).match(path)
        if match and match["app"] and match["env"] in envs:
            app = match["app"]
            if policy.app(app) is policy.apps[pattern]:  # the pattern that declares it
                return app, match["env"], policy.target(app)
    match = _template_pattern(DEFAULT_OVERLAY).match(path)
    if match is None or match["env"] not in envs:
        return None
    app = match["app"]
    target = policy.target(app)
    return (app, match["env"], target) if target.overlay == DEFAULT_OVERLAY else None


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
