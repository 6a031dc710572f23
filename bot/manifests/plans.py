"""What a change to a branch plans, given the branch's files: an edit, or nothing to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Edit:
    """Files to add or replace, and the commit message that explains why.

    `merge` makes the commit a merge of that commit (a promotion request's branch) into
    the branch being written, so the request shows as merged.
    """

    files: dict[str, bytes]
    message: str
    merge: str | None = None


@dataclass(frozen=True)
class Unchanged:
    """The branch already says what the change wanted; no commit is needed."""


class Planned:
    """What a change's latest plan decided: whether it wrote. The writer plans a batch's
    jobs in order, so a change chained on another (a pin on its record) and planned after
    it reads what that change decided on the same tip, rebuilt or not."""

    def __init__(self) -> None:
        self.wrote = False


class Change(Protocol):
    """Decides what to write given the branch's current files; called again after a rebase."""

    def plan(self, read: Reader) -> Edit | Unchanged: ...


@dataclass(frozen=True)
class EmptyCommit:
    """A signed commit that changes no file: its message records what happened (a request
    closed, a merge made on the forge)."""

    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        return Edit({}, self.message)
