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
from ruamel.yaml.util import load_yaml_guess_indent

from bot.bounded_yaml import YamlRefused, bounded, load, load_with


class OverlayError(ValueError):
    """The overlay cannot take the edit as asked; the message names the path and the fix."""


class _LoadsNothing:
    def load(self, _text: str) -> None:
        return None


_LOADS_NOTHING = _LoadsNothing()


class _Document:
    """A YAML file loaded round-trip, dumped back with the indentation it came with."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._yaml = bounded(YAML(typ="rt"))
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096  # never re-wrap the user's long lines
        if not text.strip():
            self.root: Any = None
            return
        try:
            self.root = load_with(self._yaml, text, "overlay")
        except YamlRefused as exc:
            raise OverlayError(
                f"not valid YAML: line {exc.line}, column {exc.column}: {exc.problem}"
            ) from None
        # ruamel's guess of the indentation reads the lines; handed a loader that loads
        # nothing, it does not parse the document a second time (a pin's costliest step).
        _, indent, offset = load_yaml_guess_indent(text, yaml=_LOADS_NOTHING)
        if indent is not None:
            self._yaml.indent(mapping=2, sequence=indent, offset=offset or 0)

    def mapping(self, what: str) -> CommentedMap:
        """The top-level mapping; a file of only comments counts as an empty one."""
        if self.root is None:
            self.root = CommentedMap()
        if not isinstance(self.root, CommentedMap):
            raise OverlayError(f"{what} must be a mapping at the top level")
        return self.root

    def dump(self) -> str:
        buf = io.StringIO()
        self._yaml.dump(self.root, buf)
        out = buf.getvalue()
        if not self.text.strip() or out.startswith(self.text.rstrip("\n")):
            return out
        if _only_comments(self.text):
            # ruamel drops a document that holds nothing but comments; keep them on top.
            return self.text.rstrip("\n") + "\n" + out
        return out


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _load(text: str) -> Any:
    return _Document(text).root


def _reads_as_string(value: str) -> bool:
    # kustomize and Helm read YAML 1.1, where yes/on/y are booleans; check both versions.
    try:
        return all(isinstance(load(value, "value", version=v), str) for v in (None, (1, 1)))
    except YamlRefused:
        return False  # quoted, it reads as the string it is


def _like(old: Any, new: str) -> Any:
    """Keep the quoting style the user chose for the value being replaced."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(new)
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    if (old is None or isinstance(old, str)) and _reads_as_string(new):
        return new
    # A plain scalar that would read back as a number or bool gets quoted.
    return DoubleQuotedScalarString(new)


def _replace_key(entry: CommentedMap, old: str, new: str, value: Any) -> None:
    """Put `new` where `old` was, with its end-of-line comment; drop `old`."""
    if old not in entry:
        entry[new] = value
        return
    position = list(entry).index(old)
    comment = entry.ca.items.pop(old, None)
    del entry[old]
    entry.insert(position, new, value)
    if comment is not None:
        entry.ca.items[new] = comment


def pin_kustomize_image(
    text: str, image: str, tag: str | None = None, digest: str | None = None
) -> str:
    """Set images[name=image].newTag (or .digest) in a kustomization, adding the entry if absent."""
    if (tag is None) == (digest is None):
        raise OverlayError("give exactly one of tag or digest")
    document = _Document(text)
    doc = document.mapping("a kustomization")
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
        if "newTag" in entry:
            entry["newTag"] = _like(entry["newTag"], tag)
            entry.pop("digest", None)
        else:
            _replace_key(entry, "digest", "newTag", _like(None, tag))
    else:
        if "digest" in entry:
            entry["digest"] = _like(entry["digest"], str(digest))
            entry.pop("newTag", None)
        else:
            _replace_key(entry, "newTag", "digest", _like(None, str(digest)))
    return document.dump()


def read_kustomize_image(text: str, image: str) -> str | None:
    """The tag or digest pinned for `image`, or None."""
    quick = _read_kustomize_quick(text, image)
    if quick is not _UNSURE:
        return quick  # type: ignore[return-value]
    doc = _load(text)
    if not isinstance(doc, dict):
        return None
    for entry in doc.get("images") or []:
        if isinstance(entry, dict) and entry.get("name") == image:
            value = entry.get("digest") or entry.get("newTag")
            return None if value is None else str(value)
    return None


_UNSURE = object()


def _read_kustomize_quick(text: str, image: str) -> object:
    """read_kustomize_image's answer through the safe loader (libyaml's events: ten times
    faster than the round trip, and the environments table reads thousands), when the
    values read alike in both (strings or nothing); else _UNSURE: the round trip decides."""
    try:
        doc = load(text, "overlay")
        if not isinstance(doc, dict):
            return _UNSURE
        for entry in doc.get("images") or []:
            if isinstance(entry, dict) and entry.get("name") == image:
                digest, tag = entry.get("digest"), entry.get("newTag")
                if not all(v is None or isinstance(v, str) for v in (digest, tag)):
                    return _UNSURE
                return digest or tag
    except Exception:  # the round trip says what is wrong, or reads what this cannot
        return _UNSURE
    return None


def set_key_path(text: str, key_path: str, value: str) -> str:
    """Set a dotted key path such as `image.tag` in a Helm values file."""
    keys = key_path.split(".")
    if not all(keys):
        raise OverlayError(f"key path {key_path!r} has an empty part; use e.g. image.tag")
    document = _Document(text)
    node = document.mapping("a values file")
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
    return document.dump()


def read_key_path(text: str, key_path: str) -> str | None:
    node = _load(text)
    for key in key_path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return None if node is None else str(node)
