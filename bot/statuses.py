"""The closed sets of states Ritmo's records move through. API models, CLI choices and
OpenAPI enums derive from these; a bare status string elsewhere is a bug."""

from __future__ import annotations

import enum


class RequestStatus(enum.StrEnum):
    """A promotion request's state: pending until approved and merged, or closed otherwise."""

    PENDING = "pending"
    APPROVED = "approved"
    MERGED = "merged"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    STALE = "stale"
    PROMOTED = "promoted"


class DeploymentStatus(enum.StrEnum):
    """What a CD engine reported of a deployment."""

    PROGRESSING = "progressing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEGRADED = "degraded"


class AuditKind(enum.StrEnum):
    """What an audit trail event says happened."""

    REGISTERED = "registered"
    PROMOTED = "promoted"
    APPROVED = "approved"
    ROLLED_BACK = "rolled_back"
    REQUEST_CLOSED = "request_closed"
    MERGED_OUTSIDE_POLICY = "merged_outside_policy"
    PINNED_OUTSIDE_RITMO = "pinned_outside_ritmo"
    POLICY_CHANGED_OUTSIDE_RITMO = "policy_changed_outside_ritmo"


def values(kind: type[enum.StrEnum]) -> tuple[str, ...]:
    """The wire values of `kind`, in declaration order (for CLI choices and enums)."""
    return tuple(member.value for member in kind)
