"""Which versions may a rollback restore in an environment (pure).

A version is a legitimate rollback target in an environment when it arrived there by a
path the policy held, as trusted commits on the default branch's first-parent line tell:

- a promotion Ritmo signed (`Ritmo-Promotion: x -> env`): a direct promotion the policy
  in force allowed, the first pin of a new record (`registered -> env`), Ritmo's merge of
  an approved request, or Ritmo's record of a merge a person made after the policy held
  (`Ritmo-Policy-Held: yes`);
- a rollback Ritmo signed (`Ritmo-Rollback: env`) that itself restored a legitimate one.

Everything else is not a way in: a commit Ritmo did not sign (a hand pin, the scaffold's
example pins), a merge recorded with `Ritmo-Policy-Held: no`, and a rollback to a version
that had not arrived legitimately (`illegitimate` lists those, for `ritmo verify`).

A version rolled back out of an environment is held there until a promotion into it that
someone asked for (not an automatic one) releases it; a held version is no target either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """A commit of the first-parent line, oldest first: whether Ritmo's key signed it, and
    its trailers."""

    sha: str
    trusted: bool
    trailers: Mapping[str, Sequence[str]]

    def one(self, key: str) -> str | None:
        values = self.trailers.get(key)
        return values[0].strip() if values else None


@dataclass(frozen=True)
class Illegitimate:
    """A trusted rollback commit that restored a version that never arrived legitimately."""

    sha: str
    environment: str
    restored: str


@dataclass
class Arrivals:
    """Per environment: the artifacts that arrived legitimately (in order of arrival,
    newest last, each once) and those held there, with the rollback that holds them."""

    arrived: dict[str, list[str]] = field(default_factory=dict)
    held: dict[str, dict[str, str]] = field(default_factory=dict)
    illegitimate: list[Illegitimate] = field(default_factory=list)

    def legitimate(self, environment: str, artifact_id: str) -> bool:
        return artifact_id in self.arrived.get(environment, [])

    def held_by(self, environment: str, artifact_id: str) -> str | None:
        """The rollback commit that holds the artifact out of the environment, if any."""
        return self.held.get(environment, {}).get(artifact_id)

    def _arrive(self, environment: str, artifact_id: str) -> None:
        line = self.arrived.setdefault(environment, [])
        if artifact_id in line:
            line.remove(artifact_id)
        line.append(artifact_id)


def arrivals(history: Iterable[Entry]) -> Arrivals:
    """What `history` (the first-parent line, oldest first) says arrived where."""
    found = Arrivals()
    for entry in history:
        if not entry.trusted:
            continue  # a person's commit pins nothing legitimately
        promoted = entry.one("Ritmo-Promotion")
        artifact = entry.one("Ritmo-Artifact")
        if artifact is None:
            continue
        held = (entry.one("Ritmo-Policy-Held") or "yes").casefold() != "no"
        if promoted is not None:
            env = promoted.partition(" -> ")[2].strip()
            if not env or not held:
                continue
            found._arrive(env, artifact)
            if not entry.one("Ritmo-Automatic"):
                found.held.get(env, {}).pop(artifact, None)  # asked for: releases the hold
            continue
        into = entry.one("Ritmo-Rollback")
        if not into:
            continue
        failed = entry.one("Ritmo-Rolled-Back")
        if failed:
            found.held.setdefault(into, {})[failed] = entry.sha
        if not found.legitimate(into, artifact) or found.held_by(into, artifact) is not None:
            found.illegitimate.append(Illegitimate(entry.sha, into, artifact))
        elif held:  # a merge recorded as not held is `policy-not-held`, and no way in
            found._arrive(into, artifact)
    return found


def choose_target(
    found: Arrivals,
    environment: str,
    failed_artifact: str,
    ran_well: Sequence[str],
    failed_here: frozenset[str],
    label: Callable[[str], str] = str,
    mine: Callable[[str], bool] = lambda _artifact_id: True,
) -> tuple[str | None, list[str]]:
    """The artifact a rollback of `failed_artifact` out of `environment` restores, and
    why each other one was passed over (for the 409 when there is none).

    `ran_well`: artifacts whose deployments there succeeded (not superseded, not rolled
    back), newest first; the newest that may be restored wins. Failing that, the newest
    legitimate arrival that may. `failed_here`: artifacts whose newest deployment there
    failed or degraded. Never the failed artifact, a held one, or one that failed there.
    `label` names an artifact in the reasons (e.g. "web 1.2.3"); `mine` says whether an
    artifact is the app's (arrivals hold every app's)."""
    why: dict[str, str] = {}

    def allowed(artifact_id: str) -> bool:
        if artifact_id == failed_artifact or not mine(artifact_id):
            return False
        if not found.legitimate(environment, artifact_id):
            why.setdefault(
                artifact_id,
                f"{label(artifact_id)} never arrived in {environment} by a promotion or an "
                "approved request Ritmo signed (a hand pin)",
            )
            return False
        holder = found.held_by(environment, artifact_id)
        if holder is not None:
            why.setdefault(
                artifact_id,
                f"{label(artifact_id)} is held out of {environment} (rollback {holder[:12]})",
            )
            return False
        if artifact_id in failed_here:
            why.setdefault(artifact_id, f"{label(artifact_id)} failed in {environment}")
            return False
        return True

    for artifact_id in ran_well:
        if allowed(artifact_id):
            return artifact_id, []
    for artifact_id in reversed(found.arrived.get(environment, [])):
        if allowed(artifact_id):
            return artifact_id, []
    return None, list(why.values())
