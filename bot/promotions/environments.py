"""What runs where, as git says it: one cell per app and environment (pure).

A cell is the version the overlay pins at the default branch's tip, the commit that set
it, and whether Ritmo recorded it. A pin is recorded when a Ritmo-signed commit set it
(or recorded it later: a forge merge, a promotion that found it pinned already) and it is
what the index's last promotion or rollback into the environment says. Anything else (a
hand pin, a pin older than Ritmo) is shown as git says, marked unrecorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.manifests.pins import PinCommit
from bot.store.deployment_record import Deployment


@dataclass(frozen=True)
class Known:
    """The artifact record whose image the overlay pins."""

    artifact_id: str
    version: str


@dataclass(frozen=True)
class PinFacts:
    app: str
    env: str
    path: str
    value: str | None  # the tag or digest pinned at the tip; None: nothing pinned
    artifact: Known | None = None
    commit: PinCommit | None = None  # the last first-parent commit that changed the value
    recorder: PinCommit | None = None  # the Ritmo-signed commit that recorded the value
    expected: frozenset[str] | None = None  # the index's last pin(s) here; None: none
    rolled_back_from: str | None = None  # the version a recorded rollback replaced


def is_recorded(facts: PinFacts) -> bool:
    if facts.value is None:
        return facts.expected is None  # pinned nowhere, and Ritmo never pinned it here
    return (
        facts.recorder is not None
        and facts.expected is not None
        and (facts.value in facts.expected)
    )


def version_of(facts: PinFacts) -> str | None:
    """The record's version when a record has the pinned value, else the value itself."""
    return facts.artifact.version if facts.artifact else facts.value


def _stamp(when: int) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pinned_by(facts: PinFacts, recorded: bool) -> str | None:
    if recorded and facts.recorder is not None:
        for key in ("Ritmo-Promoted-By", "Ritmo-Rolled-Back-By", "Ritmo-Merged-By"):
            if who := facts.recorder.one(key):
                return who
    return facts.commit.author if facts.commit else None


def _promotion(recorder: PinCommit | None) -> str | None:
    if recorder is None:
        return None
    if request := recorder.one("Ritmo-Request"):
        return request
    return "pro-" + recorder.sha[:16] if recorder.one("Ritmo-Promotion") else None


def cell(facts: PinFacts) -> dict[str, Any]:
    """The cell as the API gives it, without deployment health (see `with_health`)."""
    recorded = is_recorded(facts)
    commit = facts.commit
    return {
        "version": version_of(facts),
        "pinned": facts.value,
        "artifact_id": facts.artifact.artifact_id if facts.artifact else None,
        "commit": commit.sha if commit else None,
        "recorded": recorded,
        "recorded_by": facts.recorder.sha if recorded and facts.recorder else None,
        "promotion": _promotion(facts.recorder) if recorded else None,
        "pinned_by": _pinned_by(facts, recorded),
        "pinned_at": _stamp(commit.when) if commit else None,
        "rolled_back": recorded and bool(facts.recorder and facts.recorder.one("Ritmo-Rollback")),
        "rolled_back_from": facts.rolled_back_from if recorded else None,
        "path": facts.path,
    }


def with_health(
    cell: Mapping[str, Any], deployment: Deployment | None, version: str | None = None
) -> dict[str, Any]:
    """`cell` with the latest deployment reported for its app and environment; `version`
    is that deployment's artifact version."""
    if deployment is None:
        return {**cell, "health": None, "deployment": None}
    at = max(str(deployment.created_at or ""), str(deployment.updated_at or ""))
    return {
        **cell,
        "health": str(deployment.status),
        "deployment": {
            "id": deployment.id,
            "artifact_id": deployment.artifact_id,
            "version": version or deployment.version,
            "status": str(deployment.status),
            "rolled_back": bool(deployment.rolled_back_by),
            "at": at or None,
        },
    }


def label(cell: Mapping[str, Any]) -> str:
    """One table cell: the version, and for an unrecorded pin its mark and commit."""
    version = cell.get("version") or "-"
    if cell.get("recorded", True):
        return str(version)
    commit = str(cell.get("commit") or "")[:7]
    return f"{version} (unrecorded, {commit})" if commit else f"{version} (unrecorded)"


def replaced(current: str | None, at_tip: str | None, expected: frozenset[str] | None) -> bool:
    """Whether a pin about to be replaced is unrecorded: the value it replaces (`current`)
    is the one at the followed tip (not one Ritmo wrote since, still being pushed) and not
    what the index says Ritmo last pinned there."""
    if current is None or current != at_tip:
        return False
    return expected is None or current not in expected
