"""ArtifactRegistry: validate, verify, record an artifact as one signed commit, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ruamel.yaml.error import YAMLError

from bot.manifests.plans import Edit, Planned, Reader, Unchanged
from bot.manifests.records import (
    ArtifactSpec,
    artifact_id,
    build_record,
    parse_record,
    record_fields,
    record_path,
    render_record,
)
from bot.manifests.signing import ArtifactVerifier
from bot.manifests.writer import Conflict, ManifestWriter
from bot.promotions.service import REGISTERED
from bot.store.artifact_record import ArtifactRecord
from bot.store.group_commit import GroupCommit
from bot.store.index import ArtifactIndex, IndexedArtifact
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates

if TYPE_CHECKING:
    from bot.policy.model import Policy
    from bot.promotions.service import PinChange

WRITE_TIMEOUT = 300


class SignatureRefused(Exception):
    """The artifact's signature is missing, bad or untrusted where it must be good."""


class UnknownApp(Exception):
    """The artifact's name is no app the policy declares (by name or pattern)."""

    def __init__(self, name: str, declared: str) -> None:
        self.name = name
        super().__init__(
            f"{name!r} is not an app the policy declares (declared: {declared}); register "
            f"one of those, or declare it under `apps:` in .ritmo/policy.yaml, e.g. "
            f'apps: {{{name}: {{}}}} or a pattern such as apps: {{"*": {{}}}}'
        )


class ImmutableRecord(Conflict):
    """The name and version are taken by a record with other content."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            f"artifact {name} {version} is already recorded with other content; records are "
            "immutable, so register the change under a new version"
        )


@dataclass(frozen=True)
class Registration:
    created: bool
    artifact: IndexedArtifact
    promotions: list[dict[str, Any]] = field(default_factory=list)


# Pins that policy chains onto a new record: (record, registered_by, correlation_id) -> changes.
Chain = Callable[[dict[str, Any], str, str], "list[PinChange]"]


@dataclass(frozen=True)
class ArtifactChange:
    """Add one record file; a rebase finds it already there (same) or taken (conflict)."""

    spec_fields: dict[str, Any]
    path: str
    content: bytes
    message: str
    planned: Planned = field(default_factory=Planned, compare=False)  # its pins read it

    def plan(self, read: Reader) -> Edit | Unchanged:
        self.planned.wrote = False
        existing = read(self.path)
        if existing is None:
            self.planned.wrote = True
            return Edit({self.path: self.content}, self.message)
        try:
            same = record_fields(parse_record(existing)) == self.spec_fields
        except (ValueError, KeyError, YAMLError):
            same = False  # a file that is not a record holds the path all the same
        if same:
            return Unchanged()
        raise ImmutableRecord(self.spec_fields["name"], self.spec_fields["version"])


class ArtifactRegistry:
    def __init__(
        self,
        writer: ManifestWriter,
        index: ArtifactIndex,
        verifier: ArtifactVerifier,
        templates: Templates,
        require_signatures: bool,
        chain: Chain = lambda record, by, cid: [],
        policy: Callable[[], Policy] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._chain = chain
        self._policy = policy
        self._writer = writer
        self._index = index
        self._verifier = verifier
        self._templates = templates
        self._require_signatures = require_signatures
        self._clock = clock
        # Registrations that arrive together ask the index in one query, started after
        # each of them arrived (so each still sees every record acknowledged before it).
        self._known: GroupCommit[str, IndexedArtifact | None] = GroupCommit(index.get_each)

    @traced("ritmo.record")
    def register(self, spec: ArtifactSpec, registered_by: str, correlation_id: str) -> Registration:
        version = spec.resolved_version()
        policy = self._policy() if self._policy else None
        # CI chooses the name, so CI would choose how many apps every view lists.
        if policy is not None and not policy.declares(spec.name):
            raise UnknownApp(spec.name, policy.declared_apps())
        fields = spec.fields()
        known = self._known.submit(artifact_id(spec.name, version))
        if known is not None:
            if record_fields(known.record.to_dict()) != fields:
                raise ImmutableRecord(spec.name, version)
            return Registration(False, known, self._chained(known.record.id))

        check = self._verifier.check(
            spec.checksum, spec.signature, policy.trusted_keys if policy else ()
        )
        if spec.signature is not None and not check.ok:
            raise SignatureRefused(f"signature: {check.reason}")
        required = self._require_signatures or bool(policy and policy.require_artifact_signatures)
        if required and not check.ok:
            raise SignatureRefused(
                "signature: required by require_artifact_signatures; send an "
                "ASCII-armoured detached signature over the checksum by a trusted key"
            )
        signature: dict[str, Any] = {"status": check.status}
        if check.fingerprint:
            signature["fingerprint"] = check.fingerprint
        if spec.signature:
            signature["armored"] = spec.signature
        record = build_record(spec, signature, self._clock())
        message = self._templates.render(
            "commit/artifact.txt",
            record=record,
            registered_by=registered_by,
            correlation_id=correlation_id,
        )
        change = ArtifactChange(
            fields, record_path(spec.name, version), render_record(record), message
        )
        # A pin is part of its registration: written only if this plan writes the record.
        chained = self._chain(record, registered_by, correlation_id)
        pins = [replace(pin, recorded=change.planned) for pin in chained]
        # Submitted together, so the record and its pins travel in one push.
        recorded, *futures = self._writer.submit_all([change, *pins])
        pinned = list(zip(pins, futures, strict=True))
        result = recorded.result(timeout=WRITE_TIMEOUT)
        promotions = []
        for pin, future in pinned:
            try:
                outcome = future.result(timeout=WRITE_TIMEOUT)
            except Conflict as exc:
                promotions.append({"environment": pin.environment, "error": str(exc)})
                break
            if outcome.commit:
                promotions.append({"environment": pin.environment, "commit": outcome.commit})
        if result.commit is not None:
            event(
                "registered",
                f"registered {record['id']} ({spec.name} {version}) in {result.commit}",
                artifact_id=record["id"],
                app=spec.name,
                version=version,
                commit=result.commit,
                correlation_id=correlation_id,
            )
            for done in promotions:
                if done.get("commit"):
                    event(
                        "promoted",
                        f"promoted {record['id']} ({spec.name} {version}) to "
                        f"{done['environment']} by policy in {done['commit']}",
                        artifact_id=record["id"],
                        app=spec.name,
                        version=version,
                        to=done["environment"],
                        commit=done["commit"],
                        automatic=True,
                    )
            # What the index now says, without asking it: the record as written, standing
            # in the last environment its pins reached.
            reached = [p["environment"] for p in promotions if p.get("commit")]
            status = reached[-1] if reached else self._index.initial_environment
            return Registration(
                True,
                IndexedArtifact(ArtifactRecord.from_dict(record), result.commit, status),
                promotions,
            )
        indexed = self._index.get(record["id"])  # someone else's identical record landed first
        if indexed is None:  # the index follows every push; absence means a bug, not a user error
            raise RuntimeError(f"record {record['id']} was pushed but is not in the index")
        # Its pins came with it: the answer names them, as the first answer did.
        return Registration(False, indexed, self._chained(record["id"]))

    def _chained(self, artifact_id: str) -> list[dict[str, Any]]:
        return self._index.chained_pins(artifact_id, REGISTERED)
