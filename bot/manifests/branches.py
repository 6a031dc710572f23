"""One signed commit on a branch, written in the caller's thread: the one way Ritmo
writes git outside the writer's batches (a promotion request's branch, a review on it,
another repository's branch for update_gitops_repo).

Under the mirror's lock: fetch the tip to build on, plan the change on its tree, write
the tree and one signed commit, flush the objects, then push, never forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity, read_path, signed_commit, write_tree
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.remote import PushResult


class NothingToBuildOn(Exception):
    """The mirror's own branch, the one a new side branch starts from, does not exist."""


class BranchMoved(Exception):
    """The branch is not where the caller last saw it (or is gone): someone else wrote it."""


class BranchExists(Exception):
    """The branch is there already and does not hold the change; `tip` is its commit."""

    def __init__(self, tip: str) -> None:
        super().__init__(tip)
        self.tip = tip


@dataclass(frozen=True)
class BranchWrite:
    """What `write_branch` did. `commit` is None when the change was already on the base;
    `pushed` is None when nothing was pushed (unchanged, or the branch was kept)."""

    commit: str | None
    base: str
    pushed: PushResult | None = None


def write_branch(
    mirror: Mirror,
    sign: Callable[[bytes], str],
    identity: Identity,
    branch: str | None,
    change: Callable[[Reader], Edit | Unchanged],
    *,
    when: int,
    prefix: str = "",
    expect: str | None = None,
    replace: bool = False,
    keep: Callable[[Reader], bool] | None = None,
) -> BranchWrite:
    """Commit what `change` plans on the base's files; push it to `branch` (None: the
    mirror's own branch).

    Built on the mirror's branch's tip (NothingToBuildOn when it has none), unless
    `expect` is given: then on `branch` itself, which must be at `expect` (BranchMoved).
    `prefix`: the branches fetched to find `branch` (e.g. ritmo/promote/). When `branch`
    exists already: with `replace`, it is deleted (if still where it was, else
    BranchMoved) and the new commit pushed in its place; with `keep`, it is kept when
    `keep` says its tree holds the change, and BranchExists raised when not.
    """
    with mirror.locked():
        existing: str | None = None
        if expect is not None:
            assert branch is not None, "expect names a side branch's tip"
            base = mirror.fetch_branches(prefix).get(branch)
            if base is None or base != expect:
                raise BranchMoved(branch)
        else:
            tip = mirror.fetch()
            if tip is None:
                raise NothingToBuildOn(mirror.branch)
            base = tip
        tree = mirror.tree_of(base)
        plan = change(partial(read_path, mirror, tree))
        if isinstance(plan, Unchanged):
            return BranchWrite(None, base)
        if expect is None and branch is not None and (replace or keep is not None):
            existing = mirror.fetch_branches(prefix).get(branch)
            if existing is not None and keep is not None:
                if keep(partial(read_path, mirror, mirror.tree_of(existing))):
                    return BranchWrite(existing, base)
                raise BranchExists(existing)
        sha = signed_commit(
            mirror,
            sign,
            tree=write_tree(mirror, tree, plan.files) if plan.files else tree,
            parents=[base, *([plan.merge] if plan.merge else [])],
            author=identity,
            committer=identity,
            when=when,
            message=plan.message,
        )
        mirror.flush()
        if existing is not None and replace and not mirror.delete_branch(str(branch), existing):
            raise BranchMoved(str(branch))
        pushed = mirror.push(sha) if branch is None else mirror.push_branch(sha, branch)
        return BranchWrite(sha, base, pushed)
