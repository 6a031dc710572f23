"""Where a deployment is mirrored on the forge: the policy's repository, the record's
commit (pure).

CI metadata is only what a CI token claims, so it never chooses the repository: a GitHub
Deployment starts the `on: deployment` workflows of the repository it is made in. The
policy in force names the app's source repository (`apps.<app>.repository`); the
artifact record's `metadata.commit` is the ref, and only when it is a full commit sha.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class ForgeTarget:
    repository: str  # owner/name
    ref: str  # a 40-hex commit sha


@dataclass(frozen=True)
class NotMirrored:
    reason: str
    expected: bool = False  # no repository configured: normal, not worth a warning


def forge_target(
    app: str, repository: str | None, metadata: Mapping[str, Any]
) -> ForgeTarget | NotMirrored:
    """The repository and ref to mirror `app`'s deployment to, or why there are none."""
    if repository is None:
        return NotMirrored(
            f"the policy names no source repository for {app}; set apps.{app}.repository "
            "(owner/name) to mirror its deployments",
            expected=True,
        )
    commit = metadata.get("commit")
    if not isinstance(commit, str) or not _SHA.match(commit):
        return NotMirrored(
            f"the artifact's metadata.commit ({str(commit)[:60]!r}) is not a 40-hex commit "
            f"sha of {repository}; register artifacts with the full commit sha"
        )
    return ForgeTarget(repository, commit.lower())
