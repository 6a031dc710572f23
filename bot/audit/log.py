"""The audit log read from the manifests repository's default branch.

Callers hold `mirror.locked()` and have fetched: this reads the branch as last fetched.
Artifacts are named by their record paths (`artifacts/<app>/<version>.yaml`) at the tip,
so the log needs git alone, never the index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.audit.history import (
    AuditEvent,
    Window,
    audit_events,
    page_of,
    parse_when,
    select,
)
from bot.manifests.mirror import Mirror
from bot.manifests.records import RECORDS_DIR, artifact_id
from bot.manifests.trailers import COMMIT_FORMAT, Commit, read_commits

# Commits that record an event; everything else on the branch (a person's edits,
# deployments are on another branch) is left out by git already.
_EVENT_GREP = (
    "^Ritmo-(Registered-By|Promotion|Rollback|Request-Closed|Approved-By|Policy-Held|Drift): "
)
_RECORD_PATH = re.compile(rf"^{RECORDS_DIR}/([^/]+)/([^/]+)\.yaml$")
# What `since`/`until` may be: a date-time, a sha, a branch, `main~3`; never an option.
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:+~^@{}-]{0,199}$"


@dataclass(frozen=True)
class Range:
    """The part of the branch to read: after `since` (exclusive) up to `until` (inclusive),
    both commits; None: from the start, up to the tip."""

    since: str | None = None
    until: str | None = None


def branch_commits(mirror: Mirror, tip: str, span: Range = Range()) -> list[Commit]:
    """The first-parent commits of the branch that record events, newest first."""
    until = span.until or tip
    rev = f"{span.since}..{until}" if span.since else until
    out = mirror.log(
        "--first-parent", "-E", f"--grep={_EVENT_GREP}",
        COMMIT_FORMAT, rev, "--",
    )  # fmt: skip
    return read_commits(out)


def record_path_artifact(path: str) -> tuple[str, tuple[str, str]] | None:
    """(artifact id, (app, version)) that a record's path names; None for other paths."""
    match = _RECORD_PATH.match(path)
    if match is None:
        return None
    app, version = match.groups()
    return artifact_id(app, version), (app, version)


def known_artifacts(mirror: Mirror, tip: str) -> dict[str, tuple[str, str]]:
    """artifact id -> (app, version) for every record on the branch at `tip`."""
    return dict(
        found
        for path in mirror.blobs_under(tip, RECORDS_DIR + "/")
        if (found := record_path_artifact(path)) is not None
    )


# `HEAD` and what is relative to it (`HEAD~100`, `HEAD^2`): the mirror is bare and its
# own HEAD names no branch, so these mean the tip of the default branch as fetched.
_HEAD = re.compile(r"^HEAD(?=$|[~^])")


def resolve(mirror: Mirror, revision: str) -> str | None:
    """The commit `revision` names in the mirror (a sha, `main`, `main~2`, `HEAD~100`),
    or None."""
    if not re.match(REVISION_PATTERN, revision):
        return None
    revision = _HEAD.sub(f"refs/remotes/origin/{mirror.branch}", revision, count=1)
    for candidate in (revision, f"origin/{revision}"):
        try:
            sha = mirror.log("-1", "--format=%H", f"{candidate}^{{commit}}", "--").strip()
        except OSError:
            continue
        if sha:
            return sha
    return None


def last_commit_by(mirror: Mirror, tip: str, when: datetime) -> str | None:
    """The newest commit of the branch's first-parent line committed at or before `when`;
    None when every commit is later."""
    stamp = f"@{int(when.timestamp())}"
    found = mirror.log("-1", "--first-parent", f"--before={stamp}", "--format=%H", tip, "--")
    return found.strip() or None


def on_first_parent_line(mirror: Mirror, sha: str, tip: str) -> bool:
    """Whether `sha` is on the branch's own line (first parents from `tip`), not only
    reachable from it: a request branch's commits are reachable once merged, and are not
    the branch's history."""
    parents = mirror.log("-1", "--format=%P", sha, "--").split()
    line = mirror.log("--first-parent", "--format=%H", tip, "--not", *parents, "--")
    return sha in line.split()


Trusted = Callable[[Sequence[str]], set[str]]
"""Which of these commits are signed by a trusted key (bot/audit/repo.trusted_commits)."""


def read_audit(
    mirror: Mirror,
    tip: str,
    window: Window,
    span: Range = Range(),
    page: int = 1,
    per_page: int = 50,
    trusted: Trusted | None = None,
    kept: Callable[[str], list[AuditEvent]] | None = None,
) -> tuple[list[AuditEvent], int]:
    """One page of the events in `span` that `window` keeps, newest first; and the total.
    With `trusted`, each event of the page says whether its commit is trusted. `kept`:
    every event at a tip, from bot/audit/trail.py, used when the span is the whole line."""
    if kept is not None and span == Range():
        events = kept(tip)
    else:
        names = known_artifacts(mirror, tip)
        events = audit_events(branch_commits(mirror, tip, span), names.get)
    found, total = page_of(select(events, window), page, per_page)
    if trusted is not None:
        good = trusted([e.commit for e in found])
        found = [replace(e, trusted=e.commit in good) for e in found]
    return found, total


def time_or_revision(
    mirror: Mirror, text: str | None, end: bool
) -> tuple[datetime | None, str | None, bool]:
    """`since`/`until` as (time, commit, ok): an ISO date or date-time, else a revision."""
    if text is None:
        return None, None, True
    when = parse_when(text, end=end)
    if when is not None:
        return when, None, True
    sha = resolve(mirror, text)
    return None, sha, sha is not None
