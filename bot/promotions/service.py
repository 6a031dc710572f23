"""PromotionService: check a promotion against policy and pin it as one signed commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bot.manifests.plans import Edit, Planned, Reader, Unchanged
from bot.manifests.records import record_path, render_record, split_image
from bot.manifests.trailers import with_trailer
from bot.manifests.writer import Conflict, ManifestWriter
from bot.policy.freeze import frozen_until
from bot.policy.model import AppTarget, Policy, PromotionRule
from bot.promotions.pin import PinError, current_value, pin, pinned_value
from bot.store.artifact_record import ArtifactRecord
from bot.store.index import ArtifactIndex, IndexedArtifact
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates

REGISTERED = "registered"  # the "from" of the first pin, made when an artifact is recorded


class PromotionRefused(Exception):
    """Policy or the artifact's state refuses this promotion; the message says why."""


@dataclass(frozen=True)
class PromotionInput:
    from_env: str
    to_env: str
    notes: str | None = None
    approval_ticket: str | None = None
    approved_by_note: str | None = None  # what the body claimed; never an approval


@dataclass(frozen=True)
class PinChange:
    """Pin an artifact in one overlay.

    Chained after a registration in the same batch, a pin is conditional: `requires` is
    the record file and its bytes, `follows` the previous hop, which must have pinned it.
    `promoted_already` says whether the index's latest promotion into the environment is
    this artifact: then an overlay that pins it already means the promotion was made (a
    retry, or the same ask at another replica), and nothing is written. `replaces` names
    the unrecorded pin (a hand pin) that the value found there is, or None: the commit
    says so in a `Ritmo-Replaces` trailer. It is decided here, against the tip written on.

    `recorded` is what the plan of the record it is chained on decided: a record that was
    on the branch already (a re-sent registration, or a rebuild after a refused push)
    came with its chain, decided then, so the pin writes nothing. `newer_pinned` (automatic
    pins) says whether the value pinned now is an artifact registered after this one: an
    automatic pin only moves an environment forward.
    """

    environment: str
    target: AppTarget
    record: ArtifactRecord
    path: str
    message: str
    requires: tuple[str, bytes] | None = None
    follows: PinChange | None = None
    promoted_already: Callable[[], bool] | None = field(default=None, compare=False)
    replaces: Callable[[str | None], str | None] | None = field(default=None, compare=False)
    recorded: Planned | None = field(default=None, compare=False)
    newer_pinned: Callable[[str | None], bool] | None = field(default=None, compare=False)

    @property
    def same_as(self) -> tuple[str, str, str]:
        """Pins that are the same promotion, whoever asked: the writer makes one commit."""
        return ("pin", self.record.id, self.environment)

    def plan(self, read: Reader) -> Edit | Unchanged:
        if self.recorded is not None and not self.recorded.wrote:
            return Unchanged()
        if self.requires is not None and read(self.requires[0]) != self.requires[1]:
            return Unchanged()
        if self.follows is not None and not self.follows.holds(read):
            return Unchanged()
        text = read(self.path)
        if text is None:
            raise Conflict(
                f"no overlay at {self.path}; create it, or point apps.{self.record.name}"
                ".overlay in the policy at the file to edit"
            )
        try:
            updated = pin(self.target, text.decode(), self.record).encode()
        except (PinError, ValueError) as exc:
            raise Conflict(f"{self.path}: {exc}") from None
        if updated != text and self.newer_pinned is not None:
            if self.newer_pinned(self._current(text)):
                return Unchanged()  # never back to an older artifact by policy
        if updated == text:
            if self.promoted_already is not None and self.promoted_already():
                return Unchanged()
            # Already pinned (by hand, say): the commit still records the promotion.
            return Edit({}, self._message(text))
        return Edit({self.path: updated}, self._message(text))

    def _message(self, text: bytes) -> str:
        hand = self.replaces(self._current(text)) if self.replaces is not None else None
        if hand is None:
            return self.message
        return with_trailer(self.message, "Ritmo-Replaces", f"{hand} (unrecorded)")

    def _current(self, text: bytes | None) -> str | None:
        if text is None:
            return None
        image = split_image(str(self.record.image))[0]
        try:
            return current_value(self.target, text.decode(), image)
        except ValueError:
            return None

    def holds(self, read: Reader) -> bool:
        """Whether the overlay pins this artifact now."""
        current = self._current(read(self.path))
        return current is not None and current == pinned_value(self.target, self.record)


def frozen(policy: Policy, rule: PromotionRule, now: datetime) -> tuple[datetime, str] | None:
    env = policy.environment(rule.to_env)
    return frozen_until(tuple(rule.freeze) + (env.freeze if env else ()), now)


Gate = Callable[[IndexedArtifact, PromotionRule, datetime], str | None]
"""Why the artifact's deployment in the rule's source environment holds it back, or None."""

Unrecorded = Callable[[ArtifactRecord, AppTarget, str, str | None], str | None]
"""The version of the unrecorded pin that pinning the record in an environment replaces
(record, target, environment, value pinned there now), or None (EnvironmentsView)."""


class PromotionService:
    def __init__(
        self,
        writer: ManifestWriter,
        index: ArtifactIndex,
        templates: Templates,
        policy: Callable[[], Policy],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gate: Gate | None = None,
        unrecorded: Unrecorded | None = None,
    ) -> None:
        self._writer = writer
        self._unrecorded = unrecorded
        self._index = index
        self._templates = templates
        self._policy = policy
        self._clock = clock
        self._gate = gate

    def check(self, artifact: IndexedArtifact, ask: PromotionInput) -> PromotionRule:
        """The rule that governs this promotion; PromotionRefused when there is none or it
        cannot happen now (wrong source, a skipped environment, a freeze)."""
        policy = self._policy()
        record = artifact.record
        app = record.name
        names = policy.environment_names
        for env in (ask.from_env, ask.to_env):
            if env not in names:
                raise PromotionRefused(f"unknown environment {env!r}; environments: {names}")
        if ask.from_env != artifact.promotion_status:
            raise PromotionRefused(
                f"{app} {record.version} is in {artifact.promotion_status}, not "
                f"{ask.from_env}; promote it from {artifact.promotion_status}"
            )
        following = policy.next_environment(ask.from_env)
        if following != ask.to_env:
            hint = f"promote to {following} first" if following else "it is the last one"
            raise PromotionRefused(f"{ask.from_env} -> {ask.to_env} skips an environment; {hint}")
        rule = policy.rule(app, ask.from_env, ask.to_env)
        if rule is None:
            raise PromotionRefused(
                f"no promotion rule from {ask.from_env} to {ask.to_env} for {app} in the policy"
            )
        now = self._clock()
        freeze = frozen(policy, rule, now)
        if freeze is not None:
            until, reason = freeze
            why = f" ({reason})" if reason else ""
            raise PromotionRefused(
                f"{ask.to_env} is frozen until {until.isoformat()}{why}; try again after that"
            )
        if self._gate is not None and (held := self._gate(artifact, rule, now)):
            raise PromotionRefused(held)
        return rule

    @traced("ritmo.promote")
    def promote(
        self,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        by: str,
        correlation_id: str,
        auto: bool = False,
    ) -> dict[str, Any]:
        """Pin `artifact` in `ask.to_env` directly; only for rules without approval."""
        rule = self.check(artifact, ask)
        if rule.requires_approval:
            raise PromotionRefused(
                f"{ask.from_env} -> {ask.to_env} needs approval by policy; open a request"
            )
        now = self._clock()
        record = artifact.record
        change = self.pin_change(record, ask, by, correlation_id, auto=auto)
        result = self._writer.write(change)
        if result.commit:
            event(
                "promoted",
                f"promoted {record.id} ({record.name} {record.version}) "
                f"{ask.from_env} -> {ask.to_env} in {result.commit}",
                artifact_id=record.id,
                app=record.name,
                version=record.version,
                to=ask.to_env,
                commit=result.commit,
                promoted_by=by,
                correlation_id=correlation_id,
            )
        return {
            "status": "promoted" if result.commit else "unchanged",
            "environment": ask.to_env,
            "commit": result.commit,
            "promoted_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pinned": pinned_value(change.target, record),
        }

    def chain(self, written: dict[str, Any], by: str, correlation_id: str) -> list[PinChange]:
        """Pins that follow a new record (as build_record made it) by policy: the first
        environment, then every rule that auto-promotes without approval, as far as the
        chain goes."""
        policy = self._policy()
        first = policy.environments[0]
        if not first.auto_promote or not written.get("image"):
            return []
        record = ArtifactRecord.from_dict(written)
        requires = (record_path(record.name, record.version), render_record(written))
        now = self._clock()
        changes: list[PinChange] = []
        hop = PromotionInput(REGISTERED, first.name)
        while True:
            try:
                pin_change = self.pin_change(
                    record, hop, by, correlation_id, auto=True, requires=requires, policy=policy
                )
            except PromotionRefused:
                return changes  # nothing to pin with (e.g. a digest-only target, no digest)
            if changes:
                pin_change = replace(pin_change, follows=changes[-1])
            changes.append(pin_change)
            nxt = policy.next_environment(hop.to_env)
            rule = policy.rule(record.name, hop.to_env, nxt) if nxt else None
            if rule is None or not rule.auto_promote or frozen(policy, rule, now):
                return changes
            if rule.gated_on_deployment:
                return changes  # goes on when the deployment succeeds (bot/deploy)
            hop = PromotionInput(hop.to_env, rule.to_env)

    def pin_change(
        self,
        record: ArtifactRecord,
        ask: PromotionInput,
        by: str,
        correlation_id: str,
        auto: bool,
        requires: tuple[str, bytes] | None = None,
        policy: Policy | None = None,
    ) -> PinChange:
        target = (policy or self._policy()).target(record.name)
        path = target.path(record.name, ask.to_env)
        try:
            pinned = pinned_value(target, record)
        except PinError as exc:
            raise PromotionRefused(str(exc)) from None
        message = self._templates.render(
            "commit/promotion.txt",
            record=record,
            from_env=ask.from_env,
            to_env=ask.to_env,
            promoted_by=by,
            auto=auto,
            pinned=pinned,
            path=path,
            notes=ask.notes,
            approved_by_note=ask.approved_by_note,
            approval_ticket=ask.approval_ticket,
            correlation_id=correlation_id,
        )
        app, env, artifact = record.name, ask.to_env, record.id
        unrecorded = self._unrecorded

        def newer_pinned(value: str | None) -> bool:
            """Whether `value` pins the artifact last promoted into `env`, registered
            after this one (a rollback or a hand pin is not a promotion: it may be left)."""
            running = self._index.last_promoted(app, env)
            if value is None or running is None or running == artifact:
                return False
            known = self._index.get(running)
            if known is None or pinned_value(target, known.record) != value:
                return False
            return self._index.registered_after(running, artifact)

        return PinChange(
            env, target, record, path, message, requires,
            promoted_already=lambda: self._index.last_promoted(app, env) == artifact,
            replaces=(lambda now: unrecorded(record, target, env, now)) if unrecorded else None,
            newer_pinned=newer_pinned if auto else None,
        )  # fmt: skip
