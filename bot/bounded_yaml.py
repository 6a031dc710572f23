"""The one YAML loader for everything Ritmo reads: policy, records, overlays, settings.

YAML aliases let a few hundred bytes stand for billions of nodes: ruamel composes an
alias as a reference to the node it names, so parsing stays cheap, but whatever walks the
result (a constructor, the policy's plain copy, pydantic) pays for every expansion. A
document is therefore refused, at `file:line:column`, when it is larger than `max_bytes`,
uses more than `max_aliases` aliases, would expand to more than `max_nodes` nodes or
nests deeper than `max_depth` (deep nesting crashes the C composer and exhausts Python's
stack in the pure one). The counting happens while composing, before anything expands:
a node's expanded size is known when it closes, an alias adds its anchor's size. Safe
loads compose over libyaml's events; round-trip loads (the pure-Python parser, for
comments and positions) are checked over libyaml's events first.

Content that failed once is remembered by its git blob id and refused again without
parsing (a bounded cache): the same broken file is read on every branch move.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
from ruamel.yaml.events import AliasEvent

# The C parser (ruamel.yaml.clib, None without it): records parse several times faster.
from ruamel.yaml.main import CParser  # type: ignore[attr-defined]
from ruamel.yaml.parser import Parser as PureParser
from ruamel.yaml.resolver import VersionedResolver


@dataclass(frozen=True)
class YamlLimits:
    """Far above what a policy, a record, an overlay or a settings file needs (a 2,000-app
    policy is about 100 KB and 10,000 nodes); round-trip parsing of the largest document
    they allow takes seconds, once per blob."""

    max_bytes: int = 256 * 1024  # as PUT /api/v1/policy takes
    max_aliases: int = 1_000
    max_nodes: int = 100_000  # after expanding aliases
    max_depth: int = 100  # Kubernetes manifests nest about 20 deep


LIMITS = YamlLimits()


class YamlRefused(MarkedYAMLError):
    """A document that is not valid YAML or exceeds the limits: `file:line:column: problem`.

    A MarkedYAMLError, so code that reads `problem` and `problem_mark` keeps working."""

    def __init__(self, source: str, line: int, column: int, problem: str) -> None:
        super().__init__(problem=problem, problem_mark=StreamMark(source, 0, line - 1, column - 1))
        self.source, self.line, self.column = source, line, column

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.problem}"


class _Refused(Exception):
    """Raised inside the composer; becomes YamlRefused with the caller's source."""

    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.mark, self.problem = mark, problem


class BoundedComposer(Composer):
    """ruamel's Composer, counting as it goes (see the module docstring)."""

    def compose_document(self) -> Any:
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its size once closed
        self._expanded = 0  # nodes the document stands for so far, aliases expanded
        self._aliases = 0
        self._open = 0  # nodes being composed: the depth
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()  # its start_mark places a refusal
        limits = LIMITS
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            self._aliases += 1
            if self._aliases > limits.max_aliases:
                raise _Refused(
                    event.start_mark, f"too many aliases (more than {limits.max_aliases})"
                )
            size = self._sizes.get(id(node))
            if size is None:
                raise _Refused(
                    event.start_mark, "recursive alias: it refers to a node that contains it"
                )
            self._count(size, event, limits)
            return node
        self._open += 1
        if self._open > limits.max_depth:
            raise _Refused(
                event.start_mark, f"nested too deeply (more than {limits.max_depth} levels)"
            )
        before = self._expanded
        self._count(1, event, limits)
        node = super().compose_node(parent, index)
        self._open -= 1
        if node.anchor is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, size: int, event: Any, limits: YamlLimits) -> None:
        self._expanded += size
        if self._expanded > limits.max_nodes:
            what = "too many aliases: the document" if self._aliases else "the document"
            raise _Refused(
                event.start_mark, f"{what} expands to more than {limits.max_nodes} nodes"
            )


if CParser is not None:

    class _CSafeLoader(BoundedComposer, CParser, SafeConstructor, VersionedResolver):  # type: ignore[misc]
        """libyaml's scanner and parser, this module's composer, the safe constructor.

        YAML(typ="safe") would compose in C, where nothing can count (or stop a deep
        recursion); the events still come from C, so records stay fast."""

        max_depth = 0  # ruamel's own depth check (off: BoundedComposer checks)
        comment_handling = None

        def __init__(self, stream: str | bytes, version: tuple[int, int] | None) -> None:
            CParser.__init__(self, stream)
            self._parser = self._composer = self
            SafeConstructor.__init__(self, loader=self)
            VersionedResolver.__init__(self, version=version, loadumper=self)
            BoundedComposer.__init__(self, loader=self)


def bounded(yaml: YAML) -> YAML:
    """`yaml` (configured by the caller, e.g. to keep quotes) composing with the limits.

    The pure-Python parser is used: the C one composes by itself. Load it with `load_with`."""
    if yaml.Parser is CParser:
        yaml.Parser = PureParser
    yaml.Composer = BoundedComposer
    return yaml


def load(
    data: str | bytes,
    source: str,
    round_trip: bool = False,
    version: tuple[int, int] | None = None,
) -> Any:
    """Parse one YAML document with the limits (safe types, or ruamel's round-trip ones);
    `version` (1, 1) reads it as YAML 1.1 does (yes is a bool), as kustomize and Helm do."""
    if round_trip:
        yaml = bounded(YAML(typ="rt"))
        yaml.version = version
        return load_with(yaml, data, source)
    return _guarded(data, source, f"safe {version}", lambda d: _load_safe(d, version))


def load_with(yaml: YAML, data: str | bytes, source: str) -> Any:
    """`yaml.load(data)` for a YAML made by `bounded`, with the limits and the cache."""
    if yaml.Composer is not BoundedComposer:
        raise TypeError("load_with needs a YAML made by bounded()")

    def parse(text: str | bytes) -> Any:
        _precheck(text, yaml.version)
        return yaml.load(text)

    return _guarded(data, source, f"{yaml.typ} {yaml.version}", parse)


def _precheck(data: str | bytes, version: Any) -> None:
    """Compose once over the C parser before the pure one parses: the pure scanner is
    quadratic in open flow collections (`[[[[...` costs seconds long before the depth
    limit is reached), libyaml's is not. Its syntax errors are left to the pure parser,
    whose messages the callers show."""
    if CParser is None:  # pragma: no cover
        return
    loader = _CSafeLoader(data, version)
    try:
        loader.get_single_node()
    except YAMLError:
        pass
    finally:
        loader.dispose()


def _load_safe(data: str | bytes, version: tuple[int, int] | None) -> Any:
    if CParser is None:  # pragma: no cover
        yaml = bounded(YAML(typ="safe", pure=True))
        yaml.version = version
        return yaml.load(data)
    loader = _CSafeLoader(data, version)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# -- refusals, and the cache of content that failed ------------------------------------

_FAILED: OrderedDict[tuple[str, str, YamlLimits], tuple[int, int, str]] = OrderedDict()
_FAILED_LIMIT = 256
_failed_lock = threading.Lock()


def _guarded(data: str | bytes, source: str, kind: str, parse: Any) -> Any:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    key = (blob_id(raw), kind, LIMITS)
    with _failed_lock:
        known = _FAILED.get(key)
        if known is not None:
            _FAILED.move_to_end(key)
    if known is not None:
        raise YamlRefused(source, *known)
    try:
        if len(raw) > LIMITS.max_bytes:
            line, column = _position(raw, LIMITS.max_bytes)
            raise _Refused(
                StreamMark(source, LIMITS.max_bytes, line - 1, column - 1),
                f"too large (more than {LIMITS.max_bytes} bytes)",
            )
        return parse(data)
    except (_Refused, YAMLError) as exc:
        failure = _failure(exc)
    with _failed_lock:
        _FAILED[key] = failure
        if len(_FAILED) > _FAILED_LIMIT:
            _FAILED.popitem(last=False)
    raise YamlRefused(source, *failure)


def _failure(exc: Exception) -> tuple[int, int, str]:
    """(line, column, problem) of a refusal or of ruamel's own error, 1-based."""
    if isinstance(exc, YamlRefused):
        return exc.line, exc.column, str(exc.problem)
    if isinstance(exc, _Refused):
        mark, problem = exc.mark, exc.problem
    else:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    if mark is None:
        return 1, 1, str(problem)
    return int(mark.line) + 1, int(mark.column) + 1, str(problem)


def blob_id(raw: bytes) -> str:
    """The id git gives a blob of these bytes (as bot/manifests/packs.py's object_id)."""
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
