"""DriftWatch: as the mirror follows the default branch, find drift and record it once.

`seen` runs where the index follows (the runtime's `advance`: every fetch, so every
scheduler tick, write, push webhook and audit read), with the mirror locked. It reads the
new first-parent commits, judges them (bot/trust/drift.py) and hands each drift to the
writer as one signed empty commit. The writer plans it again on whatever tip it lands
on, and makes no commit when the branch already records that drift (another replica, or
this one before a restart): the branch is the memory. `landed` runs when the drift commit
is pushed, in the process that pushed it: the ALERT line and the comment on the forge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from functools import partial

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.packs import object_id
from bot.manifests.plans import Change, Edit, Reader, Unchanged
from bot.manifests.provenance import (
    LineCommit,
    Signature,
    Signers,
    drift_recorded,
    first_parent_line,
    signatures,
)
from bot.manifests.segments import WriteResult, Written
from bot.manifests.trailers import parse_trailers
from bot.policy.load import BRANCH_POLICY_PATH, PolicyError, default_policy, load_policy_bytes
from bot.policy.model import AppTarget, Policy
from bot.promotions.pin import current_value
from bot.trust.drift import (
    Drift,
    NewCommit,
    PinMove,
    alert_line,
    classify,
    drift_message,
    forge_text,
    overlay_of,
    recorded_drift,
)

log = logging.getLogger(__name__)

# A process's first look (a start, a fresh mirror) reads up to this many of the newest
# commits: those after Ritmo's last commit landed while no Ritmo was watching. The branch
# says which of them are recorded already.
FIRST_LOOK = 50


@dataclass(frozen=True)
class RecordDrift:
    """The writer's change: one empty commit recording `drift`, unless the branch has it."""

    drift: Drift
    recorded: Callable[[str, str], bool] = field(compare=False)

    @property
    def same_as(self) -> tuple[str, str, str]:
        return ("drift", self.drift.commit, self.drift.kind)

    def plan(self, read: Reader) -> Edit | Unchanged:
        if self.recorded(self.drift.commit, self.drift.kind):
            return Unchanged()
        return Edit({}, drift_message(self.drift))


Submit = Callable[[Change], "Future[WriteResult]"]
Alert = Callable[[str, str], None]


class DriftWatch:
    def __init__(
        self,
        mirror: Mirror,
        signers: Signers,
        image_of: Callable[[str], str | None],
        is_request_commit: Callable[[str], bool],
        untrusted_policy: Callable[[], Collection[str]],
        merges_judged_by_forge: bool = False,
        first_look: int = FIRST_LOOK,
    ) -> None:
        """`image_of(app)`: the image name an app's overlays pin, None while the app has
        no artifact record (its overlays are the team's own until then).
        `untrusted_policy()`: the commits whose policy change the policy in force does not
        obey; a change it obeys (signed, or vouched for by a later Ritmo-Policy) is no drift.
        `merges_judged_by_forge`: a merge that changes the policy is a pull request the
        forge's handler judges (vouched for, or reported here); not judged twice."""
        self._mirror = mirror
        self._signers = signers
        self._image_of = image_of
        self._is_request_commit = is_request_commit
        self._untrusted_policy = untrusted_policy
        self._merges_judged_by_forge = merges_judged_by_forge
        self._first_look = first_look
        self._looked = False
        self._policies: dict[bytes, Policy] = {}
        self._lock = threading.Lock()
        self._submit: Submit | None = None
        self._alert: Alert | None = None
        self._owed: list[Drift] = []  # found before start, or whose write failed
        self._asked: set[tuple[str, str]] = set()
        self._waiting: list[Future[WriteResult]] = []
        self._comments = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ritmo-drift")
        self._commented: list[Future[None]] = []

    def start(self, submit: Submit, alert: Alert) -> None:
        """The runtime is whole: write what was found while it was being built."""
        self._submit, self._alert = submit, alert
        self._ask_owed()

    # -- finding ----------------------------------------------------------------------
    def seen(self, old: str | None, new: str, written: Written | None) -> None:
        """The mirror moved from `old` to `new`; `written` when this process pushed it."""
        if written is not None:
            return  # Ritmo's own commits, on top of a tip already looked at
        first = not self._looked or old is None
        if not first and old == new:
            self._ask_owed()
            return
        try:
            if not first and not self._mirror.is_ancestor(str(old), new):
                first = True  # the branch was rewritten: look again from its tip
            drifts = self.find(None if first else old, new)
        except (OSError, ValueError):
            log.exception("could not look for drift up to %s; the next fetch looks again", new)
            return
        self._looked = True
        with self._lock:
            self._owed += drifts
        self._ask_owed()

    def find(self, since: str | None, tip: str) -> list[Drift]:
        """The drift in since..tip (without `since`: the newest commits), oldest first."""
        line = first_parent_line(self._mirror, since, tip, self._first_look)
        if since is None:
            line = self._after_ritmo(line)
        judged: list[tuple[LineCommit, tuple[PinMove, ...], tuple[str | None, str | None]]] = []
        for commit in line:
            parent = commit.parents[0] if commit.parents else None
            pins = self._pins(commit, parent)
            change = self._policy_change(commit, parent)
            if pins or change[0] != change[1]:
                judged.append((commit, pins, change))
        signed = signatures(self._mirror, self._signers, [c.sha for c, _, _ in judged])
        disobeyed = set(self._untrusted_policy())
        ritmo = frozenset({self._signers.ritmo})
        drifts = []
        for commit, pins, change in judged:
            signature = signed.get(commit.sha, Signature("N", frozenset()))
            drifts += classify(
                NewCommit(
                    sha=commit.sha,
                    author=commit.author,
                    pins=pins,
                    policy_change=(
                        change
                        if change[0] != change[1]
                        and commit.sha in disobeyed
                        and not (self._merges_judged_by_forge and len(commit.parents) > 1)
                        else None
                    ),
                    by_ritmo=signature.by(ritmo),
                    by_policy_key=signature.by(self._signers.policy),
                    merges_request=any(self._is_request_commit(p) for p in commit.parents[1:]),
                )
            )
        return drifts

    def _after_ritmo(self, line: list[LineCommit]) -> list[LineCommit]:
        """The commits after Ritmo's newest: the earlier ones were looked at when Ritmo
        wrote after them, or came before Ritmo managed the branch at all (not drift)."""
        ritmo = frozenset({self._signers.ritmo})
        for i in range(len(line) - 1, -1, -1):
            if not line[i].ritmo_trailers:
                continue
            found = signatures(self._mirror, self._signers, [line[i].sha]).get(line[i].sha)
            if found is not None and found.by(ritmo):
                return line[i + 1 :]
        reaches_root = bool(line) and not line[0].parents
        return [] if reaches_root else line

    def _read(self, commit: str | None, path: str) -> bytes | None:
        if commit is None:
            return None
        return read_path(self._mirror, self._mirror.tree_of(commit), path)

    def _policy_at(self, commit: str | None) -> Policy:
        """The branch's policy as it stood at `commit` (a broken one: the last good)."""
        data = self._read(commit, BRANCH_POLICY_PATH)
        if data is None:
            return default_policy()
        if data not in self._policies:
            try:
                self._policies[data] = load_policy_bytes(data, BRANCH_POLICY_PATH)
            except PolicyError:
                return default_policy()
        return self._policies[data]

    def _pins(self, commit: LineCommit, parent: str | None) -> tuple[PinMove, ...]:
        """The pins `commit` changed, read per the policy before it."""
        policy = None
        moves = []
        for path in commit.paths:
            if not path.endswith((".yaml", ".yml")) or path == BRANCH_POLICY_PATH:
                continue
            policy = policy or self._policy_at(parent)
            hit = overlay_of(policy, path)
            if hit is None:
                continue
            app, env, target = hit
            image = self._image_of(app)
            if image is None:
                continue  # no artifact of this app yet: not under Ritmo
            before, after = (
                self._value(c, path, target, target.image or image) for c in (parent, commit.sha)
            )
            if before != after:
                moves.append(PinMove(app, env, path, before, after))
        return tuple(moves)

    def _value(self, commit: str | None, path: str, target: AppTarget, image: str) -> str | None:
        data = self._read(commit, path)
        if data is None:
            return None
        try:
            return current_value(target, data.decode(), image)
        except Exception:  # an overlay someone broke: no value to read
            return None

    def _policy_change(
        self, commit: LineCommit, parent: str | None
    ) -> tuple[str | None, str | None]:
        if BRANCH_POLICY_PATH not in commit.paths:
            return (None, None)
        blobs = []
        for at in (parent, commit.sha):
            data = self._read(at, BRANCH_POLICY_PATH)
            blobs.append(None if data is None else object_id("blob", data))
        return blobs[0], blobs[1]

    # -- recording --------------------------------------------------------------------
    def report_policy(self, commit: str, detail: str) -> None:
        """A policy change another part of Ritmo found outside its rule (a policy pull
        request merged without it): a `policy` drift, recorded once like what the watcher
        finds. `detail`: one line, `<what changed>; by <author>`."""
        with self._lock:
            self._owed.append(Drift("policy", commit, detail))
        self._ask_owed()

    def _ask_owed(self) -> None:
        submit = self._submit
        if submit is None:
            return
        with self._lock:
            owed, self._owed = self._owed, []
            owed = [d for d in owed if (d.commit, d.kind) not in self._asked]
            self._asked.update((d.commit, d.kind) for d in owed)
        for drift in owed:
            future = submit(RecordDrift(drift, self._recorded))
            future.add_done_callback(partial(self._written, drift))
            with self._lock:
                self._waiting.append(future)

    def _recorded(self, commit: str, kind: str) -> bool:
        tip = self._mirror.tip()
        return tip is not None and drift_recorded(self._mirror, self._signers, commit, kind, tip)

    def _written(self, drift: Drift, future: Future[WriteResult]) -> None:
        if future.exception() is None:
            return
        log.warning(
            "could not record drift %s of %s (%s); trying again at the next fetch",
            drift.kind, drift.commit[:12], future.exception(),
        )  # fmt: skip
        with self._lock:
            self._asked.discard((drift.commit, drift.kind))
            self._owed.append(drift)

    def landed(self, written: Written) -> None:
        """Ritmo's drift commits just pushed by this process: say so, once."""
        for commit in written:
            drift = recorded_drift(parse_trailers(commit.message))
            if drift is None:
                continue
            log.error("%s (recorded in %s)", alert_line(drift), commit.sha)
            alert = self._alert
            if alert is not None:
                done = self._comments.submit(self._comment, alert, drift)
                with self._lock:
                    self._commented.append(done)

    @staticmethod
    def _comment(alert: Alert, drift: Drift) -> None:
        try:
            alert(drift.commit, forge_text(drift))
        except Exception:  # the record is in git; the comment is a courtesy
            log.exception("could not comment on %s", drift.commit[:12])

    def settle(self, timeout: float = 120) -> None:
        """Wait until the drift found so far is recorded (or failed) and announced."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        wait_all(waiting, timeout=timeout)
        with self._lock:
            commented, self._commented = self._commented, []
        wait_all(commented, timeout=timeout)

    def close(self) -> None:
        self._comments.shutdown(wait=True)
