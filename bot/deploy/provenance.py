"""Read from git how versions arrived in environments (the I/O beside legitimacy.py)."""

from __future__ import annotations

from pathlib import Path

from bot.deploy.legitimacy import Arrivals, Entry, arrivals
from bot.manifests.mirror import Mirror
from bot.manifests.signed_log import signed_log
from bot.manifests.trailers import parse_trailers

# Only commits that promote or roll back: their signatures are the ones worth checking.
HISTORY_GREP = "^Ritmo-(Promotion|Rollback): "


def read_arrivals(mirror: Mirror, tip: str, gnupghome: Path, fingerprint: str) -> Arrivals:
    """What the default branch's first-parent line up to `tip` says arrived where; a
    commit counts only when `fingerprint` (Ritmo's key) signed it. The caller holds the
    mirror's lock."""
    line = signed_log(
        mirror, gnupghome, "--first-parent", "--reverse", "-E", f"--grep={HISTORY_GREP}", tip
    )
    return arrivals(Entry(c.sha, c.signed_by(fingerprint), parse_trailers(c.message)) for c in line)
