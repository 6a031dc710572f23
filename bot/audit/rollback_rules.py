"""`ritmo verify`'s rules on rollbacks and on the deployment ledger (pure).

- `illegitimate-rollback`: a rollback Ritmo signed (`Ritmo-Rollback: env`) restores a
  version that never arrived in that environment by a path the policy held, earlier on
  the first-parent line (bot/deploy/legitimacy.py: a trusted promotion, an approved
  merge, or an earlier such rollback), or one held there.
- `unsigned-ledger`: a commit on the `ritmo/deployments` ledger branch is not signed by a
  trusted key: deployment records there decide rollbacks and deployment gates, and Ritmo
  signs every one it writes.

Commits before the checked range count as they were judged when they landed (as
verify.py's pins do): their promotions are arrivals.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.audit.verify import Problem, RecordFact, VerifyCommit
from bot.deploy.legitimacy import Entry, arrivals


def illegitimate_rollbacks(history: Sequence[VerifyCommit]) -> list[Problem]:
    """One problem per in-range rollback commit that restored what never arrived."""
    line = [c for c in history if c.first_parent]
    known: dict[str, RecordFact] = {r.artifact_id: r for c in line for r in c.records}
    in_range = {c.sha for c in line if c.in_range}
    found = arrivals(
        Entry(c.sha, c.signed or not c.in_range, c.trailers) for c in line
    ).illegitimate
    problems = []
    for bad in found:
        if bad.sha not in in_range:
            continue
        record = known.get(bad.restored)
        what = f"{record.app} {record.version} ({bad.restored})" if record else bad.restored
        problems.append(
            Problem(
                bad.sha,
                "illegitimate-rollback",
                f"rolls {bad.environment} back to {what}, which never arrived in "
                f"{bad.environment} by a promotion the policy held, or is held there",
            )
        )
    return problems


def unsigned_ledger(ledger: Sequence[VerifyCommit], branch: str) -> list[Problem]:
    """One problem per commit of the ledger branch not signed by a trusted key."""
    problems = []
    for commit in ledger:
        if commit.signed:
            continue
        problems.append(
            Problem(
                commit.sha,
                "unsigned-ledger",
                f"on {branch} {commit.how_signed}: deployment records there are Ritmo's, signed",
            )
        )
    return problems
