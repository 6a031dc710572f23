"""Promotion requests: a branch whose signed commit pins the overlay, reviews, a signed merge.

The request lives in git: `ritmo/promote/<app>/<env>` holds the request commit (the head
reviewers judge) and one signed commit per review on top. Approving merges it into the
default branch with a signed merge commit whose trailers name who approved. Expiry and
rejection leave a signed closing commit on the default branch. The index only caches.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.manifests.branches import BranchMoved, NothingToBuildOn
from bot.manifests.plans import Edit, Reader
from bot.manifests.records import split_image
from bot.policy.model import PromotionRule
from bot.promotions.pin import current_value, pinned_value
from bot.promotions.reconcile import Reconciling
from bot.promotions.request_view import (
    BRANCH_PREFIX,
    RollbackAsk,
    branch_for,
    lock_name,
    needs,
    overlay_diff,
)
from bot.promotions.service import PromotionInput, PromotionRefused
from bot.statuses import RequestStatus
from bot.store.index import IndexedArtifact
from bot.store.request_record import RequestRecord
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.timestamps import stamp


class RequestService(Reconciling):
    """Promotion requests: opened here; reviewed, merged and closed by RequestReviews
    (bot/promotions/review.py), reconciled with the forge by Reconciling
    (bot/promotions/reconcile.py), read through RequestViews (bot/promotions/request_view.py).
    """

    # -- open --------------------------------------------------------------------
    @traced("ritmo.promote.request")
    def open(
        self,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rule: PromotionRule,
        by: str,
        correlation_id: str,
        rollback: RollbackAsk | None = None,
    ) -> dict[str, Any]:
        """Open the request for app+env; an open older one is superseded by it. Asking
        again for what the open request already asks returns that request.

        With `rollback`, the request pins an earlier artifact again, and its merge is a
        rollback (a hold on the failed artifact) instead of a promotion."""
        with self._locks.hold(lock_name(artifact.record.name, ask.to_env)):
            older = self._requests.open_for(artifact.record.name, ask.to_env)
            if older is not None and self._asks_the_same(older, artifact, ask, rollback):
                return self.describe(older.id)
            return self._open(artifact, ask, rule, by, correlation_id, rollback, older)

    def _asks_the_same(
        self,
        request: RequestRecord,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rollback: RollbackAsk | None,
    ) -> bool:
        return (
            request.artifact_id == artifact.record.id
            and request.from_env == ask.from_env
            and self._rollback_of(request) == rollback
        )

    def _open(
        self,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rule: PromotionRule,
        by: str,
        correlation_id: str,
        rollback: RollbackAsk | None,
        older: RequestRecord | None,
    ) -> dict[str, Any]:
        record = artifact.record
        app, env = record.name, ask.to_env
        now = self._clock()
        pin = self._promotions.pin_change(record, ask, by, correlation_id, auto=False)
        deadline = now + rule.approval_timeout if rule.approval_timeout else None
        message = self._templates.render(
            "commit/request.txt",
            record=record,
            from_env=ask.from_env,
            to_env=env,
            requested_by=by,
            pinned=pinned_value(pin.target, record),
            path=pin.path,
            needs=needs(rule),
            deadline=stamp(deadline) if deadline else None,
            notes=ask.notes,
            approved_by_note=ask.approved_by_note,
            approval_ticket=ask.approval_ticket,
            supersedes=older.id if older else None,
            correlation_id=correlation_id,
            rollback=rollback,
        )
        branch = branch_for(app, env)
        read_before: list[bytes | None] = []
        edits: list[Edit] = []

        def change(read: Reader) -> Edit:
            read_before.append(read(pin.path))
            edit = pin.plan(read)
            assert isinstance(edit, Edit)
            edits.append(edit)
            return Edit(edit.files, message)

        try:
            written = self._writer.write_branch(
                branch, change, when=int(now.timestamp()), prefix=BRANCH_PREFIX, replace=True
            )
        except NothingToBuildOn:
            raise PromotionRefused("the default branch is empty; nothing to promote onto") from None
        except BranchMoved:
            raise PromotionRefused(
                f"{branch} was changed by someone else while Ritmo replaced it; try again"
            ) from None
        head, before, edit = str(written.commit), read_before[-1], edits[-1]
        request_id = "req-" + head[:16]
        after = edit.files.get(pin.path, before or b"")
        body = self._templates.render(
            "pr/request.md",
            record=record,
            to_env=env,
            current=current_value(
                pin.target, (before or b"").decode(), split_image(str(record.image))[0]
            ),
            requested_by=by,
            approval_ticket=ask.approval_ticket,
            diff=overlay_diff(pin.path, before or b"", after),
            needs=needs(rule),
            deadline=stamp(deadline) if deadline else None,
            notes=ask.notes,
            approved_by_note=ask.approved_by_note,
            request_id=request_id,
            correlation_id=correlation_id,
        )
        row = RequestRecord(
            id=request_id,
            artifact_id=record.id,
            app=app,
            version=record.version,
            from_env=ask.from_env,
            to_env=env,
            branch=branch,
            head=head,
            tip=head,
            status=RequestStatus.PENDING,
            requested_by=by,
            approval_ticket=ask.approval_ticket,
            opened_at=stamp(now),
            closed_at=None,
            superseded_by=None,
            merge_commit=None,
            reason=None,
            forge_ref=None,
            body=body,
        )
        view = self._view(row, body)
        row = replace(row, forge_ref=self._forge.opened(view))
        self._requests.save(row)
        event(
            "request_opened",
            f"opened {request_id}: {app} {record.version} {ask.from_env} -> {env} ({record.id})",
            request_id=request_id,
            artifact_id=record.id,
            app=app,
            version=record.version,
            to=env,
            requested_by=by,
            correlation_id=correlation_id,
        )
        if older is not None:
            # The branch already holds the new request: only the old one's record ends,
            # with a pointer to the new one (its pull request, on GitHub).
            where = f" (#{row.forge_ref})" if row.forge_ref else ""
            self.close(
                older.id, RequestStatus.SUPERSEDED, f"superseded by {request_id}{where}",
                superseded_by=request_id, drop_branch=False,
            )  # fmt: skip
        return self.describe(request_id, fresh=True)
