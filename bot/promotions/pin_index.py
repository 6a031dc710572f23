"""What the index says about a pin: what Ritmo last pinned there, which record a value is.

Cheap reads (SQLite), per pin; the environments table (bot/promotions/pin_read.py) and
the check for an unrecorded pin about to be replaced (bot/promotions/view.py) share them.
"""

from __future__ import annotations

from bot.manifests.pins import PinCommit
from bot.manifests.records import split_image
from bot.policy.model import AppTarget, Policy
from bot.promotions.environments import Known
from bot.promotions.pin import pinned_value
from bot.store.artifact_record import ArtifactRecord
from bot.store.index import ArtifactIndex

Rollbacks = dict[str, tuple[str, str]]  # app -> (rolled back at, restored artifact id)


class IndexReads:
    def __init__(self, index: ArtifactIndex) -> None:
        self._index = index

    def expected(
        self, app: str, env: str, target: AppTarget, rollback: tuple[str, str] | None
    ) -> frozenset[str] | None:
        """The values Ritmo last pinned for `app` in `env`, as the index says: its last
        promotion there, or its latest rollback there (`rollback`) if at least as recent
        (both, within a second)."""
        if rollback is None:  # the usual case: no time to compare, one read
            promoted_id = self._index.last_promoted(app, env)
            last = [("", promoted_id)] if promoted_id else []
        else:
            promoted, _ = self._index.search_promotions(app=app, env=env, limit=1)
            last = [(str(p["promoted_at"] or ""), str(p["artifact_id"])) for p in promoted]
            last.append(rollback)
        if not last:
            return None
        newest = max(at for at, _ in last)
        values = set()
        for at, artifact_id in last:
            found = self._index.get(artifact_id) if at == newest else None
            value = pins_value(target, found.record) if found else None
            if value is not None:
                values.add(value)
        return frozenset(values)

    def latest_rollback(self, app: str, env: str) -> tuple[str, str] | None:
        return self.rollbacks(env, app).get(app)

    def rollbacks(self, env: str, app: str | None = None) -> Rollbacks:
        """Each app's latest rollback in `env` (of the ones the index lists); with `app`,
        up to that app's."""
        found: Rollbacks = {}
        for rollback in self._index.rollbacks(environment=env):
            restored = self._index.get(rollback["restored_artifact"])
            if restored is None:
                continue
            name = str(restored.record.name)
            at = str(rollback["rolled_back_at"] or "")
            found.setdefault(name, (at, str(restored.record.id)))
            if name == app:
                break
        return found

    def known(
        self, app: str, value: str, target: AppTarget, recorder: PinCommit | None
    ) -> Known | None:
        ids = [recorder.one("Ritmo-Artifact")] if recorder else []
        candidates = [self._index.get(i) for i in ids if i]
        candidates += self._index.search(name=app, version=value, limit=1)[0]
        for found in candidates:
            if found is not None and pins_value(target, found.record) == value:
                return Known(found.record.id, str(found.record.version))
        return None

    def apps(self, policy: Policy) -> list[str]:
        return sorted(set(self._index.names()) | set(policy.app_names))

    def image(self, policy: Policy, app: str) -> str | None:
        target = policy.target(app)
        if target.image:
            return target.image
        newest, _ = self._index.search(name=app, limit=1)
        image = newest[0].record.image if newest else None
        return split_image(str(image))[0] if image else None


def pins_value(target: AppTarget, record: ArtifactRecord) -> str | None:
    """The value pinning `record` writes, or None when the target cannot pin it."""
    try:
        return pinned_value(target, record)
    except ValueError:  # PinError: this record cannot be pinned by the target
        return None
