"""A rollback as a change to the environment's overlay: the failed pin out, the previous in."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import Refused
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.records import split_image
from bot.manifests.writer import Conflict
from bot.policy.model import AppTarget
from bot.promotions.pin import PinError, current_value, pin, pinned_value
from bot.store.artifact_record import ArtifactRecord


class RollbackRefused(Refused):
    """Nothing to roll back to, or the environment moved on; the message says which."""


@dataclass(frozen=True)
class RollbackChange:
    """Pin `restored` again, but only while the overlay still pins `failed`: a rollback
    never undoes a promotion that came after the failure."""

    target: AppTarget
    path: str
    environment: str
    failed: ArtifactRecord
    restored: ArtifactRecord
    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        text = read(self.path)
        if text is None:
            raise Conflict(f"no overlay at {self.path}")
        image = split_image(str(self.failed.image))[0]
        try:
            now = current_value(self.target, text.decode(), image)
            updated = pin(self.target, text.decode(), self.restored).encode()
            wanted = pinned_value(self.target, self.restored)
        except (PinError, ValueError) as exc:
            raise Conflict(f"{self.path}: {exc}") from None
        if now == wanted:
            return Unchanged()  # rolled back already (a retried rollback)
        if now != pinned_value(self.target, self.failed):
            raise Conflict(
                f"{self.environment} no longer runs {self.failed.name} "
                f"{self.failed.version} ({self.path} pins {now}); nothing to roll back"
            )
        return Edit({self.path: updated}, self.message)
