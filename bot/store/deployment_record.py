"""Deployment: one deployment as the ledger branch records it and the index keeps it (pure).

The ledger's YAML and the API's JSON are written from `to_dict`, and must stay as they
were byte for byte: a record keeps the keys it does not know (`extra`) and the order it
held its keys in (`keys`), and a key it did not hold is written only once it has a value.
`rolled_back_by` is the one Ritmo itself leaves out until a rollback sets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bot.statuses import DeploymentStatus
from bot.store.wire_keys import in_order, require, split_known

KIND = "Deployment"
# The keys of a new record, in the order the ledger writes them.
KEYS = (
    "apiVersion", "kind", "id", "app", "environment", "artifact_id", "version", "pin_commit",
    "overlay", "status", "revision", "deployed_by", "target_type", "target_url", "log_url",
    "created_at", "updated_at", "succeeded_at", "superseded", "history",
)  # fmt: skip
# Without these no deployment can be indexed.
REQUIRED = ("id", "app", "environment", "artifact_id", "pin_commit", "status", "created_at")
_ATTRIBUTE = {"apiVersion": "api_version"}  # wire key -> attribute, where they differ
_NOT_KEYS = frozenset({"extra", "keys"})


@dataclass(frozen=True)
class Deployment:
    """One deployment; `dataclasses.replace` makes the next state."""

    id: str
    app: str
    environment: str
    artifact_id: str
    pin_commit: str
    status: DeploymentStatus
    created_at: str  # UTC, 2026-11-26T01:02:03Z
    api_version: str = ""
    kind: str = KIND
    version: str | None = None
    overlay: str | None = None
    revision: str | None = None
    deployed_by: str | None = None
    target_type: str | None = None
    target_url: str | None = None
    log_url: str | None = None
    updated_at: str | None = None
    succeeded_at: str | None = None
    # About a revision older than the environment's pin: history only.
    superseded: bool = False
    history: tuple[Mapping[str, Any], ...] = ()  # the reports, oldest first
    rolled_back_by: str | None = None  # the commit that rolled it back
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys Ritmo does not know
    # The order the record's keys are written in; a known key not in it is written after
    # them once it is set (as a dict appends a new key).
    keys: tuple[str, ...] = field(default=KEYS, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        """Raises ValueError for a mapping that is not a deployment record."""
        require(data, KIND, REQUIRED)
        try:
            status = DeploymentStatus(data["status"])
        except ValueError:
            raise ValueError(f"a Deployment record with status {data['status']!r}") from None
        values, extra = split_known(data, _WIRE)
        values["history"] = tuple(data.get("history") or ())
        return cls(**{**values, "status": status}, extra=extra, keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The record as the ledger and the API write it (plain types, as YAML knows no
        enums)."""
        values = {_WIRE[f.name]: getattr(self, f.name) for f in _FIELDS}
        values["status"] = str(self.status)
        values["history"] = [dict(entry) for entry in self.history]
        return in_order(values, self.keys, self.extra, _DEFAULT)


_FIELDS = tuple(f for f in fields(Deployment) if f.name not in _NOT_KEYS)
_WIRE = {f.name: {v: k for k, v in _ATTRIBUTE.items()}.get(f.name, f.name) for f in _FIELDS}
# What a key holds when the record lacks it, by key and as written.
_DEFAULT: dict[str, Any] = {
    _WIRE[f.name]: f.default for f in _FIELDS if f.name not in REQUIRED and f.name != "history"
} | {"history": []}
