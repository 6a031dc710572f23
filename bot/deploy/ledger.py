"""The deployment index follows the ledger branch, as the artifact index follows main."""

from __future__ import annotations

import logging

from bot.deploy.records import DEPLOYMENTS_DIR, parse_deployment
from bot.manifests.mirror import Mirror
from bot.manifests.writer import Written
from bot.store.deployments import DeploymentIndex

log = logging.getLogger(__name__)


def follow_ledger(
    index: DeploymentIndex, mirror: Mirror, old: str | None, new: str, written: Written | None
) -> None:
    """Runs in the ledger writer's thread. What this process wrote comes from memory;
    anything else (a restart, another replica's writes) rebuilds from the branch."""
    if written is not None and index.ledger_tip() == old:
        records = [
            parse_deployment(data)
            for c in written
            for path, data in c.files.items()
            if path.startswith(DEPLOYMENTS_DIR + "/")
        ]
        index.save(records, new)
        return
    if index.ledger_tip() == new:
        return
    _replace(index, mirror, new)


def rebuild_ledger(index: DeploymentIndex, mirror: Mirror) -> int:
    """Throw the deployments away and read them again from the ledger branch."""
    index.clear()
    tip = mirror.fetch()
    return _replace(index, mirror, tip) if tip else 0


def _replace(index: DeploymentIndex, mirror: Mirror, new: str) -> int:
    # In the order the ledger first wrote them: the API lists newest first.
    added = mirror.added_files(None, new, DEPLOYMENTS_DIR + "/")
    order = {path: i for i, (_commit, path) in enumerate(added)}
    records = []
    for path, blob in sorted(
        mirror.blobs_under(new, DEPLOYMENTS_DIR + "/").items(),
        key=lambda item: order.get(item[0], len(order)),
    ):
        try:
            records.append(parse_deployment(mirror.read(blob)[1]))
        except ValueError:
            log.warning("skipping %s on the ledger: not a deployment record", path)
    index.clear()
    index.save(records, new)
    return len(records)
