"""Round-trip overlay edits: pin an image in kustomize images[] or a key path in Helm values.

Pure functions from text to text. ruamel.yaml keeps the user's comments, key order and
quoting; only the pinned value changes.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString


class OverlayError(ValueError):
    """The overlay cannot take the edit as asked; the message names the path and the fix."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    return yaml


def _load(text: str) -> Any:
    return _yaml().load(text) if text.strip() else CommentedMap()


def _dump(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def _like(old: Any, new: str) -> Any:
    """Keep the quoting style the user chose for the value being replaced."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(new)
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    if old is None or isinstance(old, str):
        # A plain scalar that would read back as a number or bool gets quoted.
        probe = YAML(typ="safe").load(new)
        return new if isinstance(probe, str) else DoubleQuotedScalarString(new)
    return DoubleQuotedScalarString(new)


def pin_kustomize_image(
    text: str, image: str, tag: str | None = None, digest: str | None = None
) -> str:
    """Set images[name=image].newTag (or .digest) in a kustomization, adding the entry if absent."""
    if (tag is None) == (digest is None):
        raise OverlayError("give exactly one of tag or digest")
    doc = _load(text)
    if not isinstance(doc, CommentedMap):
        raise OverlayError("a kustomization must be a mapping at the top level")
    images = doc.get("images")
    if images is None:
        images = CommentedSeq()
        doc["images"] = images
    if not isinstance(images, CommentedSeq):
        raise OverlayError("images must be a list of {name, newTag|digest} entries")
    entry = next(
        (e for e in images if isinstance(e, CommentedMap) and e.get("name") == image), None
    )
    if entry is None:
        entry = CommentedMap(name=image)
        images.append(entry)
    if tag is not None:
        entry["newTag"] = _like(entry.get("newTag"), tag)
        entry.pop("digest", None)
    else:
        entry["digest"] = _like(entry.get("digest"), str(digest))
        entry.pop("newTag", None)
    return _dump(doc)


def read_kustomize_image(text: str, image: str) -> str | None:
    """The tag or digest pinned for `image`, or None."""
    doc = _load(text)
    for entry in (doc or {}).get("images") or []:
        if isinstance(entry, dict) and entry.get("name") == image:
            value = entry.get("digest") or entry.get("newTag")
            return None if value is None else str(value)
    return None


def set_key_path(text: str, key_path: str, value: str) -> str:
    """Set a dotted key path such as `image.tag` in a Helm values file."""
    keys = key_path.split(".")
    if not all(keys):
        raise OverlayError(f"key path {key_path!r} has an empty part; use e.g. image.tag")
    doc = _load(text)
    node = doc
    for i, key in enumerate(keys[:-1]):
        child = node.get(key) if isinstance(node, CommentedMap) else None
        if child is None:
            child = CommentedMap()
            node[key] = child
        if not isinstance(child, CommentedMap):
            where = ".".join(keys[: i + 1])
            raise OverlayError(f"{where} is not a mapping, so {key_path} cannot be set")
        node = child
    node[keys[-1]] = _like(node.get(keys[-1]), value)
    return _dump(doc)


def read_key_path(text: str, key_path: str) -> str | None:
    node = _load(text)
    for key in key_path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return None if node is None else str(node)
