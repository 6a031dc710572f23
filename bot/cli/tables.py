"""The one printer of the CLI's tables: columns as wide as their widest cell, whatever it is;
and the lines the commands print for an audit event and a promotion request.

A fixed-width format (`{status:12}`) breaks its alignment on a value longer than it planned
for (`failed (rolled back)`); every `ritmo ... list` prints through `table` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click

from bot.statuses import AuditKind, RequestStatus

GAP = "  "


def table(
    heads: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> list[str]:
    """`heads` and `rows` as aligned lines: each column as wide as its widest cell, two
    spaces between columns, the columns numbered in `right` right-aligned (numbers).

    An empty or None cell reads `-`; a cell is one line (whitespace runs become one space),
    so no value can break the grid. Trailing spaces are dropped."""
    grid = [[_cell(c) for c in heads]] + [[_cell(c) for c in row] for row in rows]
    if any(len(row) != len(heads) for row in grid):
        raise ValueError(f"every row must have {len(heads)} cells")
    widths = [max(len(row[i]) for row in grid) for i in range(len(heads))]
    at_right = set(right)
    return [
        GAP.join(
            cell.rjust(width) if i in at_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in grid
    ]


def _cell(value: object) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or "-"


def echo_table(
    heads: list[str], rows: Iterable[Iterable[object]], right: Iterable[int] = ()
) -> None:
    for line in table(heads, [list(row) for row in rows], right):
        click.echo(line)


def audit_row(event: dict[str, Any]) -> list[object]:
    """One audit event as `ritmo audit` shows it."""
    env_text = event["environment"]
    if event.get("from_environment") and event["kind"] == AuditKind.PROMOTED:
        env_text = f"{event['from_environment']}->{event['environment']}"
    actor = event["actor"] or "-"
    # Ritmo's own actor already says so (`ritmo (automatic)`); a token's does not.
    if event.get("automatic") and not actor.endswith("(automatic)"):
        actor += " (automatic)"
    kind = event["kind"] + (" (untrusted)" if event.get("trusted") is False else "")
    version = event["version"]
    if event.get("restored_version"):
        version = f"{version}->{event['restored_version']}"
    return [event["at"], kind, event["app"], env_text, version, actor, event["ticket"],
            event["request_id"], (event["commit"] or "")[:12]]  # fmt: skip


def needs_text(missing: Iterable[dict[str, Any]]) -> str:
    """The approvals a request still needs: `1 from qa, 2 from sre`."""
    return ", ".join(f"{m['count']} from {m['group']}" for m in missing)


def request_line(req: dict[str, Any]) -> str:
    """One line on a promotion request: its status and what it waits for."""
    ident, status = req["id"], req["status"]
    if status == RequestStatus.PENDING:
        progress = req.get("progress") or ""
        if req.get("decision", "pending") == "pending" and req.get("missing"):
            return f"pending: request {ident} needs {needs_text(req['missing'])} ({progress})"
        # blocked (changes requested), frozen, or due to settle: the reason says which
        return f"pending: request {ident} {req.get('decision')}: {req.get('reason')} ({progress})"
    what = f"{req['app']} {req['version']} to {req['to']}"
    if req.get("change") == "policy":
        what = f"policy change {req['version']}"
    if status == RequestStatus.MERGED:
        return f"merged: request {ident} ({what}) merged as {req['merge_commit']}"
    reason = f": {req['reason']}" if req.get("reason") else ""
    return f"{status}: request {ident} ({what}){reason}"
