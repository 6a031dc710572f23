"""Bootstrap: the one signed commit that adopts the policy found on the branch (pure plan).

Whoever installs Ritmo vouches for the `.ritmo/policy.yaml` at the tip when Ritmo first
starts there; with no file, Ritmo writes its shipped default into it, so the policy in
force is always a blob on the branch. Two replicas starting together both plan it: the
fast-forward push lets one land, and the other re-plans on the new tip, sees the adoption
and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.manifests.packs import object_id
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.writer import Conflict
from bot.policy.load import (
    BRANCH_POLICY_PATH,
    DEFAULT_POLICY_PATH,
    PolicyError,
    load_policy_bytes,
)
from bot.templates import Templates


class AdoptPolicy:
    """The `Change` that adopts the tip's policy, unless the branch has adopted one."""

    same_as = "adopt-policy"  # asked twice in one batch, it is made once

    def __init__(self, adopted: Callable[[], bool], templates: Templates) -> None:
        self._adopted = adopted
        self._templates = templates

    def plan(self, read: Reader) -> Edit | Unchanged:
        if self._adopted():  # the source followed the tip this plan is built on
            return Unchanged()
        data = read(BRANCH_POLICY_PATH)
        files = {}
        if data is not None:
            try:
                load_policy_bytes(data, BRANCH_POLICY_PATH)
            except PolicyError as exc:  # never vouch for a policy Ritmo cannot obey
                raise Conflict(
                    f"{BRANCH_POLICY_PATH} is invalid, so Ritmo does not adopt it; fix it "
                    f"(ritmo policy check): {' | '.join(str(p) for p in exc.problems)}"
                ) from None
        else:
            data = DEFAULT_POLICY_PATH.read_bytes()
            files[BRANCH_POLICY_PATH] = data
        message = self._templates.render(
            "commit/policy-adopted.txt",
            path=BRANCH_POLICY_PATH,
            blob=object_id("blob", data),
            written=bool(files),
        )
        return Edit(files, message)
