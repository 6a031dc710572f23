"""How a record type reads and writes its wire form as it was (pure): the keys it does
not know and the order its keys came in. Used by ArtifactRecord and Deployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def require(data: Mapping[str, Any], kind: str, required: tuple[str, ...]) -> None:
    """Raises ValueError unless `data` is of `kind` and holds every `required` key."""
    article = "an" if kind[0] in "AEIOU" else "a"
    if data.get("kind") != kind:
        raise ValueError(f"not {article} {kind} record")
    missing = [key for key in required if data.get(key) is None]
    if missing:
        raise ValueError(f"{article} {kind} record without {', '.join(missing)}")


def split_known(
    data: Mapping[str, Any], wire: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`data`'s values by attribute name (`wire`: attribute -> key), and the rest."""
    attribute = {key: name for name, key in wire.items()}
    values = {attribute[key]: value for key, value in data.items() if key in attribute}
    return values, {key: value for key, value in data.items() if key not in attribute}


def in_order(
    values: Mapping[str, Any],
    keys: tuple[str, ...],
    extra: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """`values` and `extra` (by key) in `keys`' order; a known key `keys` lacks comes after
    them once it is set (differs from `defaults`, as a dict appends a new key), then the
    unknown keys `keys` lacks."""
    out: dict[str, Any] = {}
    for key in keys:
        if key in values:
            out[key] = values[key]
        elif key in extra:
            out[key] = extra[key]
    for key, value in values.items():
        if key not in out and value != defaults.get(key):
            out[key] = value
    for key, value in extra.items():
        out.setdefault(key, value)
    return out
