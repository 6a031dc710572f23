"""Which version each environment holds, per app, and the open requests (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.policy.model import POLICY_APP


def _env_order(seen: Iterable[tuple[str, str]]) -> list[str]:
    """Environments in promotion order (dev, staging, production), from the edges seen."""
    edges = {(a, b) for a, b in seen if a != b}
    nodes = sorted({n for edge in edges for n in edge})
    order: list[str] = []
    while nodes:
        ready = [n for n in nodes if not any(b == n and a in nodes for a, b in edges)]
        step = ready[:1] or nodes[:1]  # a cycle: take one and go on
        order += step
        nodes.remove(step[0])
    return [n for n in order if n != "registered"]


def status_data(
    artifacts: list[dict[str, Any]],
    promoted: list[dict[str, Any]],
    merged: list[dict[str, Any]],
    pending: list[dict[str, Any]],
    rolled_back: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Per app, the version each environment holds (its newest promotion or rollback),
    and open requests.

    `promoted` comes newest first (the API's order); a merged request counts from its
    `closed_at`, a direct promotion from its `promoted_at` (or, from an older server
    without it, its artifact's registration). `rolled_back` holds audit `rolled_back`
    events (app, environment, version and artifact_id restored, at, actor, commit): a
    rollback newer than the environment's promotion decides what it holds.
    """
    merged = [r for r in merged if r["app"] != POLICY_APP]  # a policy change pins nothing
    created = {a["id"]: a["created_at"] for a in artifacts}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for p in promoted:
        cells.setdefault(
            (p["app"], p["to"]),
            {"version": p["version"], "artifact_id": p["artifact_id"], "commit": p["commit"],
             "promotion": p["id"], "promoted_by": p["promoted_by"],
             "at": p.get("promoted_at")},
        )  # fmt: skip
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in merged:
        key = (r["app"], r["to"])
        if key not in latest or str(r["closed_at"] or "") > str(latest[key]["closed_at"] or ""):
            latest[key] = r
    for key, r in latest.items():
        direct = cells.get(key)
        direct_at = direct and (direct["at"] or created.get(direct["artifact_id"], ""))
        if direct and str(direct_at) > str(r["closed_at"] or ""):
            continue
        cells[key] = {
            "version": r["version"], "artifact_id": r["artifact_id"],
            "commit": r["merge_commit"], "promotion": r["id"],
            "promoted_by": r["requested_by"], "at": r["closed_at"],
        }  # fmt: skip
    for rb in rolled_back:
        key = (rb["app"], rb["environment"])
        cell = cells.get(key)
        # Same second: the rollback came after the pin it undid.
        if cell is None or str(rb["at"] or "") >= str(cell["at"] or ""):
            cells[key] = {
                "version": rb["version"], "artifact_id": rb["artifact_id"],
                "commit": rb["commit"], "promotion": None, "promoted_by": rb["actor"],
                "at": rb["at"], "rolled_back": True,
            }  # fmt: skip
    edges = [(p["from"], p["to"]) for p in [*promoted, *merged, *pending] if p["app"] != POLICY_APP]
    envs = _env_order(edges)
    envs += sorted({env for _, env in cells} - set(envs))
    apps = sorted({a["name"] for a in artifacts} | {app for app, _ in cells})
    return {
        "environments": envs,
        "apps": [
            {"app": app, "environments": {env: cells.get((app, env)) for env in envs}}
            for app in apps
        ],
        "open_requests": open_requests(pending),
    }


def open_requests(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The open requests as `ritmo status` shows them (pending, as the API describes them)."""
    keep = ("id", "app", "version", "from", "to", "progress", "missing", "decision", "reason",
            "requested_by", "approval_ticket", "opened_at", "head")  # fmt: skip
    return [{k: r.get(k) for k in keep} for r in pending]
