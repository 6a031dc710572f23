"""ArtifactRecord: one artifact as its YAML in the manifests repo records it and the index
keeps it (pure).

The record is still rendered to YAML from the dict `build_record` makes; what reads it
(the index, promotions, rollbacks, audits, the API) gets this type. `to_dict` gives the
dict back as it was, byte for byte once rendered: a record keeps the keys it does not know
(`extra`) and the order it held its keys in (`keys`); `storage_url` and `image` are
written only when the record held them or they are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bot.store.wire_keys import in_order, require, split_known

KIND = "Artifact"
# The keys of a new record, in the order build_record writes them.
KEYS = (
    "apiVersion", "kind", "id", "name", "version", "build_id", "storage_url", "image",
    "checksum", "metadata", "created_at", "signature",
)  # fmt: skip
# Without these no artifact can be indexed.
REQUIRED = ("id", "name", "version", "created_at")
_ATTRIBUTE = {"apiVersion": "api_version"}  # wire key -> attribute, where they differ
_NOT_KEYS = frozenset({"extra", "keys"})


@dataclass(frozen=True)
class ArtifactRecord:
    """One registered artifact; it never changes once written."""

    id: str  # art-<20 hex>, from name and version
    name: str
    version: str
    created_at: str  # UTC, 2026-11-26T01:02:03Z
    api_version: str = ""
    kind: str = KIND
    build_id: str | None = None
    storage_url: str | None = None
    image: str | None = None  # repo:tag or repo@sha256:<digest>
    checksum: str | None = None  # sha256:<64 hex>
    metadata: Mapping[str, Any] = field(default_factory=dict)
    signature: Mapping[str, Any] | None = None  # the signature check's outcome
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys Ritmo does not know
    # The order the record's keys are written in; a known key not in it is written after
    # them once it is set (as a dict appends a new key).
    keys: tuple[str, ...] = field(default=KEYS, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactRecord:
        """Raises ValueError for a mapping that is not an artifact record."""
        require(data, KIND, REQUIRED)
        values, extra = split_known(data, _WIRE)
        return cls(**values, extra=extra, keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The record as git, the index and the API hold it (plain dicts and values)."""
        values = {_WIRE[f.name]: getattr(self, f.name) for f in _FIELDS}
        for key in ("metadata", "signature"):  # a caller's changes stay out of the record
            if isinstance(values[key], Mapping):
                values[key] = dict(values[key])
        return in_order(values, self.keys, self.extra, _DEFAULT)


_FIELDS = tuple(f for f in fields(ArtifactRecord) if f.name not in _NOT_KEYS)
_WIRE = {f.name: {v: k for k, v in _ATTRIBUTE.items()}.get(f.name, f.name) for f in _FIELDS}
# What a key holds when the record lacks it, by key.
_DEFAULT: dict[str, Any] = {
    _WIRE[f.name]: f.default for f in _FIELDS if f.name not in REQUIRED and f.name != "metadata"
} | {"metadata": {}}
