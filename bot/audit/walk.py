"""The walk `ritmo verify` judges: the default branch's first-parent line, read from git.

Oldest first, each commit with the pins it changed (read per the policy in force when it
landed: the trusted policy on its first parent, as bot/policy/trust.py decides it; before
adoption, or in a history with none, the file as it was) and the records it added; then
each other commit of the checked range with its signature status, as checked against a
GnuPG home holding only the trusted public keys.

The walk can go on from where an earlier one stopped (`WalkState`, kept per tip by
bot/audit/tip_cache.py): what a commit is found to be depends only on the commits before
it, so the line after the earlier tip is read alone. Two facts depend on later commits
and are worked out over the whole line each time (`finish`): which commits are before
the policy's adoption, and which policy changes no later commit vouched for.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.audit.record_facts import record_fact
from bot.audit.verify import RecordFact, VerifyCommit
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import RECORDS_DIR, split_image
from bot.manifests.remote import git_environment
from bot.manifests.signed_log import signed_log
from bot.manifests.trailers import parse_trailers
from bot.manifests.verdict_cache import VerdictCache
from bot.policy.commits import policy_commits
from bot.policy.load import BRANCH_POLICY_PATH, PolicyError, default_policy, load_policy_bytes
from bot.policy.model import Policy
from bot.policy.trust import PolicyTrust, TrustKeys, describe, step
from bot.promotions.pin import current_value
from bot.trust.drift import PinMove

_NO_BLOB = "0" * 40
# One record per commit: NUL SOH, then sha, parents and message, then its --raw lines.
_LINE_FORMAT = "--format=%x00%x01%H%x00%P%x00%B%x00"


@dataclass
class WalkState:
    """What a walk found up to `tip`, and what the next commit's reading depends on."""

    tip: str
    line: list[VerifyCommit]  # as read: not yet `finish`ed
    off_line: list[VerifyCommit]  # the range's commits merged in from other branches
    trust: PolicyTrust = field(default_factory=PolicyTrust)
    policies: dict[bytes, Policy] = field(default_factory=dict)
    last_policy: Policy = field(default_factory=default_policy)
    images: dict[str, str] = field(default_factory=dict)  # app -> image its overlays pin
    managed: set[str] = field(default_factory=set)  # apps with a record so far
    file_policy: Policy | None = None  # the file's policy on the last commit, when read
    # False when a verdict may change with time alone (a signature that expires, one only
    # gpg judged): then the state is not kept for a later run.
    lasting: bool = True
    # How bot/audit/tip_cache.py stored it, so keeping it again adds only what is new:
    # the stored parts (each some commits of the line and of the others), how many of
    # each they hold, and the policies they name by position.
    stored: list[bytes] = field(default_factory=list)
    stored_counts: tuple[int, int] = (0, 0)
    stored_policies: list[Policy] = field(default_factory=list)


class _Objects:
    """Reads blobs and policies for one walk; the policies parsed are the state's."""

    def __init__(self, mirror: Mirror, state: WalkState) -> None:
        self.mirror, self.state = mirror, state

    def blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """sha -> content, one `git cat-file --batch` for all."""
        wanted = sorted({s for s in shas if s != _NO_BLOB})
        if not wanted:
            return {}
        proc = subprocess.run(
            ["git", "cat-file", "--batch"], cwd=self.mirror.path,
            input="\n".join(wanted).encode() + b"\n", capture_output=True,
            env={**os.environ, **git_environment(self.mirror.url, None)}, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise self.mirror._failed("git cat-file", proc.stderr.decode(errors="replace"))
        found: dict[str, bytes] = {}
        out, pos = proc.stdout, 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3:
                size = int(header[2])
                found[header[0].decode()] = out[pos : pos + size]
                pos += size + 1
        return found

    def _parsed(self, key: bytes, data: bytes | None) -> Policy:
        state = self.state
        if key not in state.policies:
            try:
                if data is None:
                    raise ValueError("unreadable")
                state.policies[key] = load_policy_bytes(data, BRANCH_POLICY_PATH)
            except (ValueError, PolicyError, Exception):  # Ritmo kept the last valid one
                state.policies[key] = state.last_policy
        state.last_policy = state.policies[key]
        return state.policies[key]

    def policy_at(self, commit: str) -> Policy:
        data = read_path(self.mirror, self.mirror.tree_of(commit), BRANCH_POLICY_PATH)
        if data is None:
            return default_policy()
        return self._parsed(data, data)

    def trusted(self, blob: str | None) -> Policy:
        """The policy a trusted blob says (None: the shipped default)."""
        if blob is None:
            return default_policy()
        if blob.encode() in self.state.policies:
            return self._parsed(blob.encode(), None)
        try:
            data: bytes | None = self.mirror.read(blob)[1]
        except Exception:
            data = None
        return self._parsed(blob.encode(), data)


class _Overlays:
    """Which overlays a commit touched, as (app, env, path) in app then env order. Each
    app's overlay paths are worked out once per policy, and looked up by path: a commit
    costs what it touched, not apps x environments."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._apps: set[str] = set()
        self._by_path: dict[str, list[tuple[str, int, str, str]]] = {}  # path -> hits

    def touched(
        self, policy: Policy, managed: set[str], touched: set[str]
    ) -> list[tuple[str, str, str]]:
        if policy is not self._policy:
            self._policy, self._apps, self._by_path = policy, set(), {}
        for app in (managed | set(policy.app_names)) - self._apps:
            target = policy.target(app)
            for i, env in enumerate(policy.environment_names):
                path = target.path(app, env)
                self._by_path.setdefault(path, []).append((app, i, env, path))
            self._apps.add(app)
        hits = sorted(hit for path in touched for hit in self._by_path.get(path, ()))
        return [(app, env, path) for app, _, env, path in hits]


def _line(mirror: Mirror, rev: str) -> list[tuple[str, tuple[str, ...], str, list[list[str]]]]:
    """(sha, parents, message, [status, old blob, new blob, path]...) of each commit of
    `rev`'s first-parent line, oldest first; a merge's changes against its first parent."""
    out = mirror.log(
        "--first-parent", "--reverse", "--root", "--no-renames", "--diff-merges=first-parent",
        "--raw", "--no-abbrev", _LINE_FORMAT, rev, "--",
    )  # fmt: skip
    found = []
    for chunk in out.split("\0\x01")[1:]:
        sha, parents, message, raw = chunk.split("\0", 3)
        changes = []
        for row in raw.splitlines():
            meta, _, path = row.partition("\t")
            parts = meta.split()
            if path and len(parts) >= 5 and meta.startswith(":"):
                changes.append([parts[4][:1], parts[2], parts[3], path])
        found.append((sha.strip(), tuple(parents.split()), message, changes))
    return found


def _record_facts(
    objects: _Objects, places: list[tuple[str, str, str]], cache: VerdictCache | None
) -> dict[str, dict[str, str] | None]:
    """`<commit>:<path>` -> the id, name, version and image of the record added there
    (None: not a readable record); what `cache` kept is not read again."""
    keys = [f"{sha}:{path}" for sha, path, _ in places]
    found: dict[str, dict[str, str] | None] = cache.records(keys) if cache else {}
    todo = [(key, path, blob) for (_, path, blob), key in zip(places, keys, strict=True)]
    todo = [t for t in todo if t[0] not in found]
    blobs = objects.blobs([blob for _, _, blob in todo])
    new = {key: record_fact(path, blobs.get(blob)) for key, path, blob in todo}
    if cache is not None and new:
        cache.keep_records(new)
    return {**found, **new}


def walk(
    mirror: Mirror,
    tip: str,
    since: str | None,
    gnupghome: Path,
    keys: TrustKeys,
    cache: VerdictCache | None = None,
    start: WalkState | None = None,
) -> WalkState:
    """The walk of since..tip (all of it without `since`), going on from `start` (a walk
    up to an earlier tip on `tip`'s first-parent line, without `since`)."""
    state = start or WalkState(tip, [], [])
    after = start.tip if start else None
    rev = f"{since or after}..{tip}" if since or after else tip
    # git reads the line and the policy commits on the other core while this one checks
    # the signatures.
    with ThreadPoolExecutor(max_workers=2) as pool:
        line_read = pool.submit(_line, mirror, f"{after}..{tip}" if after else tip)
        events_read = pool.submit(policy_commits, mirror, tip, after, gnupghome)
        ranged = signed_log(
            mirror, gnupghome, "--reverse", "--topo-order", rev, cache=cache,
            workers=min(4, os.cpu_count() or 1),
        )  # fmt: skip
        line = line_read.result()
        events = {c.sha: c for c in events_read.result()}
    state.lasting = state.lasting and all(c.lasting for c in ranged)
    signed = {c.sha: c for c in ranged}
    objects = _Objects(mirror, state)
    added = [
        (sha, path, new)
        for sha, _, _, changes in line
        for status, _, new, path in changes
        if status == "A" and path.startswith(RECORDS_DIR + "/")
    ]
    facts = _record_facts(objects, added, cache)
    overlays = _Overlays()
    moves: list[tuple[int, str, str, str, str, str, Policy, str]] = []  # pins to read
    read: list[VerifyCommit] = []
    for sha, parents, message, changes in line:
        parent = parents[0] if parents else None
        if state.trust.adopted:
            policy = objects.trusted(state.trust.in_force)
        else:
            # The file's policy on the first parent: read again only after a change.
            if state.file_policy is None or parent is None:
                state.file_policy = objects.policy_at(parent or sha)
            policy = state.file_policy
        records = []
        for status, _, _, path in changes:
            if status != "A" or not path.startswith(RECORDS_DIR + "/"):
                continue
            record = facts[f"{sha}:{path}"]
            if record is None:
                continue
            values: set[str] = set()
            if record["image"]:
                repo, tag, digest = split_image(str(record["image"]))
                state.images[record["name"]] = repo
                values = {v for v in (tag, digest) if v}
            records.append(
                RecordFact(record["id"], record["name"], record["version"], frozenset(values))
            )
            state.managed.add(record["name"])
        blobs = {path: (old, new) for _, old, new, path in changes}
        if BRANCH_POLICY_PATH in blobs:
            state.file_policy = None  # the next commit's first parent is this one
        for app, env, path in overlays.touched(policy, state.managed, set(blobs)):
            image = policy.target(app).image or state.images.get(app, app)
            old, new = blobs[path]
            moves.append((len(read), app, env, path, old, new, policy, image))
        found = signed.get(sha)
        status, signer = (found.status, found.fingerprint) if found else ("N", "")
        read.append(
            VerifyCommit(
                sha=sha,
                parents=parents,
                trailers=parse_trailers(message),
                in_range=found is not None,
                signature=status,
                signer=signer,
                policy_key=signer in keys.policy and signer not in keys.ritmo,
                environments=tuple(policy.environment_names),
                records=tuple(records),
                policy=policy if state.trust.adopted else None,
                adopts_policy=step(PolicyTrust(), events[sha], keys).adopted
                if sha in events and not state.trust.adopted
                else False,
            )
        )
        if sha in events:
            state.trust = step(state.trust, events[sha], keys)
    read = _with_pins(objects, read, moves)
    state.line += read
    on_line = {c.sha for c in read}
    state.off_line += [
        VerifyCommit(
            sha=c.sha,
            parents=c.parents,
            trailers=parse_trailers(c.message),
            first_parent=False,
            signature=c.status,
            signer=c.fingerprint,
            policy_key=c.fingerprint in keys.policy and c.fingerprint not in keys.ritmo,
        )
        for c in ranged
        if c.sha not in on_line
    ]
    state.tip = tip
    return state


def _with_pins(
    objects: _Objects,
    read: list[VerifyCommit],
    moves: list[tuple[int, str, str, str, str, str, Policy, str]],
) -> list[VerifyCommit]:
    """The commits with the pins they moved: the overlays before and after, read at once."""
    blobs = objects.blobs([b for *_, old, new, _, _ in moves for b in (old, new)])

    def pinned(blob: str, app: str, policy: Policy, image: str) -> str | None:
        data = blobs.get(blob)
        if data is None:
            return None
        try:
            return current_value(policy.target(app), data.decode(), image)
        except Exception:  # an overlay someone broke: no value can be read from it
            return None

    pins: dict[int, list[PinMove]] = {}
    for i, app, env, path, old, new, policy, image in moves:
        before, after = pinned(old, app, policy, image), pinned(new, app, policy, image)
        if before != after:
            pins.setdefault(i, []).append(PinMove(app, env, path, before, after))
    return [replace(c, pins=tuple(pins[i])) if i in pins else c for i, c in enumerate(read)]


def finish(state: WalkState) -> list[VerifyCommit]:
    """The input of `verify`: the line with what later commits decide about each (before
    the policy's adoption; policy changes no later commit vouched for), then the range's
    other commits."""
    adoption = state.trust.adopted_at
    shas = [c.sha for c in state.line]
    before = shas.index(adoption) if adoption in shas else 0
    untrusted = {u.sha: describe(u) for u in state.trust.untrusted}
    line = [
        replace(c, before_adoption=i < before, untrusted_policy=untrusted.get(c.sha, ""))
        if i < before or c.sha in untrusted
        else c
        for i, c in enumerate(state.line)
    ]
    return line + state.off_line


def range_order(history: Sequence[VerifyCommit]) -> list[str]:
    """The range's commits, oldest first, parents before children: each first-parent
    commit after the commits its merge brought in. Worked out from the commits alone, so
    a walk in two parts orders them as one does."""
    side = {c.sha: c for c in history if not c.first_parent}
    placed: set[str] = set()
    order: list[str] = []
    for commit in history:
        if not commit.first_parent:
            continue
        stack = [(sha, False) for sha in reversed(commit.parents[1:]) if sha in side]
        while stack:
            sha, expanded = stack.pop()
            if sha in placed:
                continue
            if expanded:
                placed.add(sha)
                order.append(sha)
                continue
            stack.append((sha, True))
            stack += [(p, False) for p in reversed(side[sha].parents) if p in side]
        if commit.in_range:
            order.append(commit.sha)
    return order + [sha for sha in side if sha not in placed]
