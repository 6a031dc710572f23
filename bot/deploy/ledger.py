"""The deployment index follows the ledger branch, as the artifact index follows main."""

from __future__ import annotations

import logging

from bot.deploy.records import DEPLOYMENTS_DIR, parse_deployment
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.segments import Written
from bot.store.deployments import DeploymentIndex
from bot.store.reindex import index_ahead

log = logging.getLogger(__name__)


def follow_ledger(
    index: DeploymentIndex, mirror: Mirror, old: str | None, new: str, written: Written | None
) -> None:
    """Runs in the ledger writer's thread. What this process wrote comes from memory;
    what others wrote (another replica, before a restart) is read from the commits since
    the index's tip; only a rewritten branch is read again whole."""
    if written is not None and index.ledger_tip() == old:
        records = [
            parse_deployment(data)
            for c in written
            for path, data in c.files.items()
            if path.startswith(DEPLOYMENTS_DIR + "/")
        ]
        index.save(records, new)
        return
    tip = index.ledger_tip()
    if tip == new:
        return
    if tip and mirror.has_commit(tip) and mirror.is_ancestor(tip, new):
        _update(index, mirror, tip, new)  # on from where the index stands
    elif tip and index_ahead(mirror, tip, new, old):
        return  # another replica sharing the index followed further
    else:
        _replace(index, mirror, new)


def _update(index: DeploymentIndex, mirror: Mirror, since: str, new: str) -> None:
    """Save the deployment files that changed in since..new (new ones in the order the
    ledger added them)."""
    added = [path for _commit, path in mirror.added_files(since, new, DEPLOYMENTS_DIR + "/")]
    order = {path: i for i, path in enumerate(added)}
    tree = mirror.tree_of(new)
    records = []
    for path in sorted(mirror.changed_files(since, new, DEPLOYMENTS_DIR + "/"),
                       key=lambda p: order.get(p, -1)):  # fmt: skip
        data = read_path(mirror, tree, path)
        if data is None:
            continue  # removed by hand: the index keeps what it knew
        try:
            records.append(parse_deployment(data))
        except ValueError:
            log.warning("skipping %s on the ledger: not a deployment record", path)
    index.save(records, new)


def rebuild_ledger(index: DeploymentIndex, mirror: Mirror) -> int:
    """Throw the deployments (and remembered CD reports) away and read them again from
    the ledger branch."""
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
    index.replace(records, new)
    return len(records)
