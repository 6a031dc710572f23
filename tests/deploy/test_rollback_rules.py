"""deploy/rollback.py as a table: a RollbackChange planned against overlay texts (no git)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.deploy.rollback import RollbackChange
from bot.manifests.writer import Conflict, Edit, Unchanged
from bot.policy.model import AppTarget
from bot.store.artifact_record import ArtifactRecord

PATH = "apps/web/overlays/prod/kustomization.yaml"
REPO = "registry.example/web"
DIGEST = "sha256:" + "d" * 64


def artifact(version: str, image: str | None = "") -> ArtifactRecord:
    if image is not None:
        image = image or f"{REPO}:{version}"
    return ArtifactRecord("art-" + version, "web", version, "2026-12-04T10:00:00Z", image=image)


UNCHANGED = ("unchanged", "")
FAILED = artifact("1.3.0")
RESTORED = artifact("1.2.0")


def overlay(pin: str, key: str = "newTag") -> bytes:
    return f"images:\n- name: {REPO}\n  {key}: {pin}\n".encode()


def change(
    failed: ArtifactRecord = FAILED, restored: ArtifactRecord = RESTORED, **target: Any
) -> RollbackChange:
    return RollbackChange(
        AppTarget.model_validate(target), PATH, "prod", failed, restored, "Roll back web"
    )


@pytest.mark.parametrize(
    ("plan", "text", "outcome"),
    [
        # The failed pin is there: put the previous one back.
        (change(), overlay("1.3.0"), ("edit", "newTag: 1.2.0")),
        # Already rolled back (a retried rollback): nothing to write. Checked before the
        # "environment moved on" refusal, which would otherwise fire.
        (change(), overlay("1.2.0"), UNCHANGED),
        # Someone promoted 1.4.0 after the failure: a rollback must not undo it.
        (
            change(),
            overlay("1.4.0"),
            ("conflict", "prod no longer runs web 1.3.0 (" + PATH + " pins 1.4.0)"),
        ),
        (change(), b"images: []\n", ("conflict", "pins None); nothing to roll back")),
        (change(), b"", ("conflict", "pins None")),
        (change(), None, ("conflict", "no overlay at " + PATH)),
        (change(), b"images: [\n", ("conflict", PATH + ": not valid YAML")),
        (change(), b"- a list\n", ("conflict", PATH + ": a kustomization must be a mapping")),
        # Nothing to restore to that could be pinned.
        (
            change(restored=artifact("1.2.0", image=None)),
            overlay("1.3.0"),
            ("conflict", "has no image"),
        ),
        # Digest pins, both ways.
        (
            change(artifact("1.3.0", f"{REPO}@{DIGEST}"), artifact("1.2.0")),
            overlay(DIGEST, "digest"),
            ("edit", "newTag: 1.2.0"),
        ),
        (
            change(artifact("1.3.0"), artifact("1.2.0", f"{REPO}@{DIGEST}")),
            overlay("1.3.0"),
            ("edit", f"digest: {DIGEST}"),
        ),
        # A helm values file.
        (change(kind="helm"), b"image:\n  tag: 1.3.0\n", ("edit", "tag: 1.2.0")),
        (change(kind="helm"), b"image:\n  tag: 1.2.0\n", UNCHANGED),
        (change(kind="helm"), b"image:\n  tag: 1.1.0\n", ("conflict", "pins 1.1.0")),
    ],
)
def test_plan(plan: RollbackChange, text: bytes | None, outcome: tuple[str, str]) -> None:
    read = {PATH: text}.get
    kind, needle = outcome
    if kind == "unchanged":
        assert plan.plan(read) == Unchanged()
    elif kind == "conflict":
        with pytest.raises(Conflict) as raised:
            plan.plan(read)
        assert needle in str(raised.value)
    else:
        result = plan.plan(read)
        assert isinstance(result, Edit)
        assert list(result.files) == [PATH]
        assert needle in result.files[PATH].decode()
        assert result.message == "Roll back web"
        assert result.merge is None


def test_plan_reads_only_its_overlay() -> None:
    asked: list[str] = []

    def read(path: str) -> bytes | None:
        asked.append(path)
        return overlay("1.3.0")

    change().plan(read)
    assert asked == [PATH]


def test_plan_is_the_same_when_replanned_after_a_rebase() -> None:
    read = {PATH: overlay("1.3.0")}.get
    first, second = change().plan(read), change().plan(read)
    assert first == second
