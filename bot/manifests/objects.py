"""Git objects built in process: tree edits and signed commit payloads (no work tree)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

BLOB_MODE = 0o100644
EXECUTABLE_MODE = 0o100755
TREE_MODE = 0o040000


class ObjectStore(Protocol):
    """The two operations tree editing needs from a git object database."""

    def read(self, sha: str) -> tuple[str, bytes]: ...

    def write(self, kind: str, data: bytes) -> str: ...


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def stamp(self, when: int, offset_minutes: int = 0) -> str:
        sign = "+" if offset_minutes >= 0 else "-"
        hours, minutes = divmod(abs(offset_minutes), 60)
        return f"{self.name} <{self.email}> {when} {sign}{hours:02d}{minutes:02d}"


def _entries(store: ObjectStore, tree_sha: str | None) -> dict[str, tuple[int, bytes]]:
    if tree_sha is None:
        return {}
    kind, data = store.read(tree_sha)
    if kind != "tree":
        raise ValueError(f"{tree_sha} is a {kind}, not a tree")
    return dict(_parse_tree(data))


@lru_cache(maxsize=1024)
def _parse_tree(data: bytes) -> tuple[tuple[str, tuple[int, bytes]], ...]:
    # A batch re-reads the same few trees for every commit; parsing them once pays off.
    entries = []
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = int(data[pos:space], 8)
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries.append((name, (mode, data[nul + 1 : nul + 21])))
        pos = nul + 21
    return tuple(entries)


def _serialise_tree(entries: dict[str, tuple[int, bytes]]) -> bytes:
    # Plain loop rather than GitPython's tree_to_stream, which re-validates every name
    # each time: trees of thousands of records are rewritten for every commit.
    return b"".join(
        b"%o %s\0%s" % (mode, name.encode("utf-8", "surrogateescape"), binsha)
        for name, (mode, binsha) in sorted(entries.items(), key=_sort_key)
    )


def _sort_key(item: tuple[str, tuple[int, bytes]]) -> bytes:
    # git orders tree entries as if directory names ended with "/".
    name, (mode, _) = item
    return (name + "/" if mode == TREE_MODE else name).encode()


def write_tree(store: ObjectStore, base: str | None, files: Mapping[str, bytes]) -> str:
    """Return the sha of `base` with `files` (path -> content) added or replaced."""
    for path in files:
        parts = path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"{path!r} is not a clean relative path")
    return _write_tree(store, base, files, "")


def _write_tree(store: ObjectStore, base: str | None, files: Mapping[str, bytes], at: str) -> str:
    here: dict[str, bytes] = {}
    below: dict[str, dict[str, bytes]] = {}
    for path, content in files.items():
        head, sep, rest = path.partition("/")
        if sep:
            below.setdefault(head, {})[rest] = content
        else:
            here[head] = content
    clash = set(here) & set(below)
    if clash:
        raise ValueError(f"{at}{min(clash)} cannot be both a file and a directory")
    entries = _entries(store, base)
    for name, content in here.items():
        mode = entries.get(name, (BLOB_MODE, b""))[0]
        if mode not in (BLOB_MODE, EXECUTABLE_MODE):
            kind = "a directory" if mode == TREE_MODE else "not a regular file"
            raise ValueError(f"{at}{name} is {kind}, so it cannot be written as a file")
        # An executable file stays executable.
        entries[name] = (mode, bytes.fromhex(store.write("blob", content)))
    for name, sub in below.items():
        mode, binsha = entries.get(name, (TREE_MODE, b""))
        if mode != TREE_MODE:
            raise ValueError(f"{at}{name} is a file, not a directory")
        child = _write_tree(store, binsha.hex() if binsha else None, sub, f"{at}{name}/")
        entries[name] = (TREE_MODE, bytes.fromhex(child))
    return store.write("tree", _serialise_tree(entries))


def read_path(store: ObjectStore, tree_sha: str | None, path: str) -> bytes | None:
    """Content of the blob at `path` under `tree_sha`, or None when there is none."""
    parts = path.split("/")
    current = tree_sha
    for i, part in enumerate(parts):
        entry = _entries(store, current).get(part)
        if entry is None:
            return None
        mode, binsha = entry
        if i == len(parts) - 1:
            if mode == TREE_MODE:
                return None
            return store.read(binsha.hex())[1]
        if mode != TREE_MODE:
            return None
        current = binsha.hex()
    return None


def commit_payload(
    tree: str,
    parents: list[str],
    author: Identity,
    committer: Identity,
    when: int,
    message: str,
) -> bytes:
    """The commit text that gets signed: everything but the gpgsig header."""
    lines = [f"tree {tree}"]
    lines += [f"parent {p}" for p in parents]
    lines.append(f"author {author.stamp(when)}")
    lines.append(f"committer {committer.stamp(when)}")
    body = message if message.endswith("\n") else message + "\n"
    return ("\n".join(lines) + "\n\n" + body).encode()


def with_signature(payload: bytes, armored: str) -> bytes:
    """Insert `armored` as the gpgsig header, where `git verify-commit` looks for it."""
    header, sep, body = payload.partition(b"\n\n")
    sig_lines = armored.strip("\n").split("\n")
    gpgsig = "gpgsig " + "\n ".join(sig_lines)
    return header + b"\n" + gpgsig.encode() + sep + body


def signed_commit(
    store: ObjectStore,
    sign: Callable[[bytes], str],
    *,
    tree: str,
    parents: list[str],
    author: Identity,
    committer: Identity,
    when: int,
    message: str,
) -> str:
    payload = commit_payload(tree, parents, author, committer, when, message)
    return store.write("commit", with_signature(payload, sign(payload)))
