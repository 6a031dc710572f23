"""The edit update_gitops_repo makes (bot/notify/gitops.py): one value pinned in one YAML
file, a kustomize images[] entry or a helm values key, round-trip so the user's comments
and layout stay; and how a delivery stops (dead or retry) when it cannot be made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml.error import YAMLError

from bot import bounded_yaml
from bot.manifests.overlays import OverlayError, pin_kustomize_image, set_key_path
from bot.manifests.records import split_image


class Stop(Exception):
    """Ends a delivery with an outcome."""

    def __init__(self, status: Literal["retry", "dead"], detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def dead(detail: str) -> Stop:
    return Stop("dead", detail)


def retry(detail: str) -> Stop:
    return Stop("retry", detail)


def _is_path(path: str) -> bool:
    parts = path.split("/")
    return not any(p in ("", ".", "..") for p in parts) and not any(
        c.isspace() or not c.isprintable() or c == "\\" for c in path
    )


def _load(text: str, path: str) -> Any:
    try:
        return bounded_yaml.load(text, path)
    except YAMLError as exc:
        raise dead(f"{path} is not valid YAML: {' '.join(str(exc).split())[:300]}") from None


@dataclass(frozen=True)
class PinEdit:
    """One value to pin in one file: an images[] entry's tag or digest, or a key."""

    path: str
    value: str
    image: str | None = None  # kustomize: the images[] entry's name
    field: str = "newTag"  # kustomize: newTag or digest
    key: str | None = None  # helm values: the dotted key

    def describe(self) -> str:
        if self.key is not None:
            return f"{self.key}: {self.value}"
        return f"images[name={self.image}].{self.field}: {self.value}"

    def done(self, text: str) -> bool:
        """Whether `text` already holds the value; Stop(dead) when it has no place for it."""
        doc = _load(text, self.path)
        if self.key is not None:
            node = doc
            for part in self.key.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise dead(
                        f"{self.path} has no key {self.key}; add it (Ritmo changes a key, it "
                        "does not add one) or fix `key`"
                    )
                node = node[part]
            return node is not None and str(node) == self.value
        images = doc.get("images") if isinstance(doc, dict) else None
        entry = next(
            (e for e in images or [] if isinstance(e, dict) and e.get("name") == self.image),
            None,
        )
        if entry is None:
            raise dead(
                f"{self.path} has no images[] entry named {self.image}; add one "
                f"(- name: {self.image}) or name the entry with `image:`"
            )
        other = "digest" if self.field == "newTag" else "newTag"
        current = entry.get(self.field)
        return current is not None and str(current) == self.value and other not in entry

    def apply(self, text: str) -> str:
        try:
            if self.key is not None:
                return set_key_path(text, self.key, self.value)
            assert self.image is not None
            if self.field == "digest":
                return pin_kustomize_image(text, self.image, digest=self.value)
            return pin_kustomize_image(text, self.image, tag=self.value)
        except OverlayError as exc:
            raise dead(f"{self.path}: {exc}") from None


def edit_for(target: Mapping[str, Any], event: Mapping[str, Any]) -> PinEdit:
    path = str(target.get("path") or "")
    if not _is_path(path):
        raise dead(f"path {path!r} is not a path in the repository (after substitution)")
    pin = target.get("set")
    if isinstance(pin, Mapping):
        field = "digest" if pin.get("digest") is not None else "newTag"
        value = str(pin.get(field) or "")
        image = target.get("image")
        if not image:
            artifact = event.get("artifact")
            reference = artifact.get("image") if isinstance(artifact, Mapping) else None
            if not reference:
                raise dead(
                    "the artifact has no image, so the images[] entry is unknown; "
                    "name it with `image:`"
                )
            try:
                image = split_image(str(reference))[0]
            except ValueError:
                raise dead(f"{reference!r} is not an image reference; set `image:`") from None
        edit = PinEdit(path, value, image=str(image), field=field)
    else:
        edit = PinEdit(path, str(target.get("value") or ""), key=str(target.get("key")))
    if not edit.value:
        raise dead(f"the value for {edit.describe()} is empty for this event; nothing to pin")
    if any(c in edit.value for c in "\r\n"):
        raise dead("the value spans lines; a pinned version is one line")
    return edit


def as_text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise dead(f"{path} is not UTF-8 text") from None


def commit_message(template: str, edit: PinEdit, event: Mapping[str, Any], key: str) -> str:
    subject = template.strip() or f"Update {edit.describe()}"
    artifact = event.get("artifact")
    artifact_id = artifact.get("id") if isinstance(artifact, Mapping) else None
    trailers = [f"Ritmo-Gitops-Event: {event.get('event')} {event.get('id')}"]
    if artifact_id:
        trailers.append(f"Ritmo-Gitops-Artifact: {artifact_id}")
    trailers.append(f"Ritmo-Gitops-Delivery: {key}")
    return f"{subject}\n\n" + "\n".join(trailers) + "\n"
