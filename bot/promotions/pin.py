"""What pinning an artifact means for an overlay file (pure)."""

from __future__ import annotations

from bot.manifests.overlays import (
    pin_kustomize_image,
    read_key_path,
    read_kustomize_image,
    set_key_path,
)
from bot.manifests.records import split_image
from bot.policy.model import AppTarget
from bot.store.artifact_record import ArtifactRecord


class PinError(ValueError):
    """The artifact cannot be pinned with this target; the message says what to set."""


def _reference(target: AppTarget, record: ArtifactRecord) -> tuple[str, str | None, str | None]:
    image = record.image
    if not image:
        raise PinError(
            f"artifact {record.name} {record.version} has no image; register it with "
            "`image` (repo:tag or repo@sha256:...) so an overlay can pin it"
        )
    repo, tag, digest = split_image(image)
    if target.field == "digest" and digest is None:
        raise PinError(f"apps.{record.name}.field is digest but {image} has no @sha256 digest")
    if target.field == "newTag" and tag is None:
        raise PinError(f"apps.{record.name}.field is newTag but {image} has no tag")
    return target.image or repo, tag, digest


def pinned_value(target: AppTarget, record: ArtifactRecord) -> str:
    """The tag or digest an overlay holds once `record` is pinned."""
    _, tag, digest = _reference(target, record)
    if target.kind == "helm" or target.field == "newTag":
        return str(tag or digest)
    return str(digest or tag)


def pin(target: AppTarget, text: str, record: ArtifactRecord) -> str:
    """`text` (the overlay) with `record`'s image pinned as `target` says."""
    name, tag, digest = _reference(target, record)
    if target.kind == "helm":
        return set_key_path(text, target.key, pinned_value(target, record))
    if target.field == "newTag" or (target.field is None and digest is None):
        return pin_kustomize_image(text, name, tag=tag)
    return pin_kustomize_image(text, name, digest=digest)


def current_value(target: AppTarget, text: str, image_name: str) -> str | None:
    """The tag or digest the overlay pins now."""
    if target.kind == "helm":
        return read_key_path(text, target.key)
    return read_kustomize_image(text, target.image or image_name)
