"""What `ritmo verify` needs of an artifact record: its id, name, version and image.

Ritmo writes records in one plain shape: `key: value` lines, one level of nested
mappings, plain or single-quoted scalars. A record in exactly that shape is read here
line by line, some fifty times faster than through the YAML loader; anything else (a
comment, a list, an anchor, a tag, a double quote, a value YAML would read as a number
or a date, a duplicate key, ...) goes through the loader as before. The shape is narrow
enough that the loader reads every such document the same way, so the fast reading
never accepts a record the loader would refuse, nor reads one differently
(tests/audit/test_record_facts.py compares the two).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from bot.manifests.records import RECORDS_DIR

_KEY = r"[A-Za-z_][A-Za-z0-9_-]*"
# A plain scalar: starts with a letter or digit; no space, quote, comment, flow or
# indicator characters; not ending in a colon.
_PLAIN = r"[A-Za-z0-9](?:[A-Za-z0-9._/@+:-]*[A-Za-z0-9._/@+-])?"
_QUOTED = r"'[ -&(-~]*'"  # printable ASCII without a single quote inside
_ROW = re.compile(rf"^( {{2}})?({_KEY}):(?: ({_PLAIN}|{_QUOTED}|\{{\}}))?$")
_MAX_BYTES = 64 * 1024
_resolver = VersionedResolver()


def _text(scalar: str) -> str | None:
    """The string a scalar is, or None when YAML would read it as something else."""
    if scalar.startswith("'"):
        return scalar[1:-1]
    # YAML reads a plain scalar as other than a string only when it starts with one of
    # these (a digit, a sign or dot for numbers and dates; true, false, null, and YAML
    # 1.1's yes, no, on, off); the others need no resolver.
    if scalar[0] not in _MAYBE_NOT_TEXT:
        return scalar
    return scalar if _is_text(scalar) else None


_MAYBE_NOT_TEXT = frozenset("0123456789+-.tTfFnNyYoO~")


@lru_cache(maxsize=4096)
def _is_text(scalar: str) -> bool:
    return bool(_resolver.resolve(ScalarNode, scalar, (True, False)) == "tag:yaml.org,2002:str")


def quick_record(data: bytes) -> dict[str, Any] | None:
    """The record read line by line, or None when it is not in Ritmo's plain shape."""
    if len(data) > _MAX_BYTES or not data.endswith(b"\n") or not data.isascii():
        return None
    top: dict[str, Any] = {}
    nested: dict[str, Any] | None = None  # the mapping under the last key without a value
    parent = ""
    for row in data.decode("ascii").split("\n")[:-1]:
        match = _ROW.match(row)
        if match is None or _text(match[2]) is None:
            return None
        indent, key, value = match.groups()
        if indent:
            if nested is None or key in nested or value is None:
                return None  # no key above it, a duplicate, or a second level
            top[parent] = nested
            target = nested
        else:
            if key in top:
                return None
            target, nested, parent = top, None, key
        if value is None:
            target[key] = None  # null, unless rows under it make it a mapping
            nested = {}
        elif value == "{}":
            target[key] = {}
        else:
            text = _text(value)
            if text is None:
                return None
            target[key] = text
    return top


def record_fact(path: str, data: bytes | None) -> dict[str, str] | None:
    """The id, name, version and image of the record at `path` (None: not a record,
    or one the YAML loader refuses)."""
    if data is None:
        return None
    quick = quick_record(data)
    if quick is not None and quick.get("kind") == "Artifact" and _matches(path, quick):
        record: dict[str, Any] | None = quick
    else:
        from bot.store.reindex import record_in  # the index's reader: loaded when needed

        record = record_in(path, data)
    if record is None:
        return None
    return {
        "id": str(record["id"]),
        "name": str(record["name"]),
        "version": str(record["version"]),
        "image": str(record.get("image") or ""),
    }


def _matches(path: str, record: dict[str, Any]) -> bool:
    """Whether the quick reading can stand: the loader's own checks (record_in) would
    pass, else the loader decides (and logs why not)."""
    parts = path.split("/")
    fields = ("id", "name", "version")
    if not isinstance(record.get("image") or "", str):
        return False
    return (
        len(parts) == 3
        and parts[0] == RECORDS_DIR
        and parts[2].endswith(".yaml")
        and all(isinstance(record.get(f), str) for f in fields)
        and (record["name"], record["version"]) == (parts[1], parts[2][:-5])
    )
