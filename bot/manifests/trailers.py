"""Commit trailers: the audit trail Ritmo writes and reads back (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.*)$")


def parse_trailers(message: str) -> dict[str, list[str]]:
    """Trailers of the message's last paragraph, as git interpret-trailers reads them."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    found: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line.strip())
        if not match:
            return {}  # git only takes a paragraph made wholly of trailers
        found.setdefault(match[1], []).append(match[2].strip())
    return found


class Trailered:
    """A commit record's trailers, and `one(key)`: a trailer's first value, or None."""

    trailers: dict[str, list[str]]

    def one(self, key: str) -> str | None:
        values = self.trailers.get(key)
        return values[0] if values else None


@dataclass(frozen=True)
class Commit(Trailered):
    """A commit as git gives it: sha, parents, commit time (epoch seconds), trailers."""

    sha: str
    parents: tuple[str, ...]
    when: int
    trailers: dict[str, list[str]]


# `git log` output that `read_commits` reads.
COMMIT_FORMAT = "--format=%x00%H%x00%P%x00%ct%x00%B"


def read_commits(log: str) -> list[Commit]:
    """The commits of `git log` output written in COMMIT_FORMAT, in its order."""
    parts = log.split("\0")[1:]
    commits = []
    for i in range(0, len(parts) - 3, 4):
        sha, parents, when, message = parts[i : i + 4]
        commits.append(
            Commit(sha.strip(), tuple(parents.split()), int(when), parse_trailers(message))
        )
    return commits


def promotion_hop(trailers: dict[str, list[str]]) -> tuple[str, str] | None:
    """("staging", "production") from `Ritmo-Promotion: staging -> production`."""
    values = trailers.get("Ritmo-Promotion")
    if not values:
        return None
    source, sep, target = values[0].partition(" -> ")
    return (source.strip(), target.strip()) if sep else None


def with_trailer(message: str, key: str, value: str) -> str:
    """`message` with one more trailer, at the end of its closing trailer paragraph."""
    return message.rstrip("\n") + f"\n{key}: {value}\n"
