"""A batch of writes built as signed commits on one base, and each caller told its outcome.

The writer (bot/manifests/writer.py) decides when to build, push and land; this module
only builds: every change planned on the tree of the one before, one signed commit each.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity, read_path, signed_commit, write_tree
from bot.manifests.plans import Change, Edit, Unchanged
from bot.manifests.remote import PushResult


@dataclass(frozen=True)
class WrittenCommit:
    """A commit this writer pushed, with what it wrote: followers need not re-read git."""

    sha: str
    files: dict[str, bytes]
    message: str
    when: int = 0  # commit time, seconds since the epoch


Written = list[WrittenCommit]  # oldest first


@dataclass(frozen=True)
class WriteResult:
    commit: str | None  # None when the change was already on the branch
    tip: str


@dataclass
class Job:
    change: Change
    future: Future[WriteResult] = field(default_factory=Future)


# Per job: its commit, "" when unchanged, the error it raised, or None when already settled.
Outcome = str | BaseException | None


@dataclass
class Segment:
    """Commits built for some jobs on top of `base`, pushed (or not yet) as one."""

    base: str | None
    head: str | None
    jobs: list[Job]
    outcomes: list[Outcome]
    written: Written
    made: dict[object, Outcome]  # a change's `same_as` -> the commit made for it
    push: Future[PushResult] | None = None


@dataclass(frozen=True)
class Builder:
    """What building a segment needs of its writer."""

    mirror: Mirror
    sign: Callable[[bytes], str]
    identity: Identity
    clock: Callable[[], float]


def build_segment(
    build: Builder, base: str | None, batch: list[Job], prior: dict[object, Outcome] | None = None
) -> Segment:
    """Plan every job on top of `base`: per-job commit (or error), the new head, the files.

    A change whose `same_as` matches one made in this segment, or in `prior` (the
    segment `base` ends), gets that commit: asked twice at once, it is made once."""
    head = base
    tree = build.mirror.tree_of(base) if base else None
    outcomes: list[Outcome] = []
    written: Written = []
    made = dict(prior or {})
    for job in batch:
        if job.future.done():
            outcomes.append(None)
            continue
        same_as = getattr(job.change, "same_as", None)
        if same_as is not None and same_as in made:
            outcomes.append(made[same_as])
            continue
        try:
            plan: Edit | Unchanged = job.change.plan(partial(read_path, build.mirror, tree))
        except Exception as exc:
            outcomes.append(exc)
            continue
        if isinstance(plan, Unchanged):
            outcomes.append("")
            continue
        tree = write_tree(build.mirror, tree, plan.files)
        when = int(build.clock())
        head = signed_commit(
            build.mirror,
            build.sign,
            tree=tree,
            parents=([head] if head else []) + ([plan.merge] if plan.merge else []),
            author=build.identity,
            committer=build.identity,
            when=when,
            message=plan.message,
        )
        outcomes.append(head)
        if same_as is not None:
            made[same_as] = head
        written.append(WrittenCommit(head, plan.files, plan.message, when))
    return Segment(base, head, batch, outcomes, written, made)


def resolve(batch: list[Job], outcomes: list[Outcome], tip: str | None) -> None:
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.future.done() or outcome is None:
            continue
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(WriteResult(commit=outcome or None, tip=tip or ""))
