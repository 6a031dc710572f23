"""Loading a policy from YAML, with every problem placed at `file:line:column`.

The text is parsed round-trip (ruamel.yaml) so every mapping and sequence knows where
its keys, values and items are; the plain data is validated by `Policy`; each pydantic
error's path is then walked through the parsed document to the offending key or value
(or, when that is missing, the nearest enclosing node that exists).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from bot import bounded_yaml
from bot.policy.integration_fields import Loc
from bot.policy.model import COHERENCE_ERROR, Policy, coherence_problems, dotted
from bot.shipped import shipped_dir

DEFAULT_POLICY_PATH = shipped_dir("policies") / "default.yaml"
BRANCH_POLICY_PATH = ".ritmo/policy.yaml"

# The YAML keys pydantic names by alias, and the field names also accepted in their place.
_BY_NAME = {"from": "from_env", "to": "to_env"}


@dataclass(frozen=True)
class PolicyProblem:
    """One problem, at a 1-based line and column of a policy file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    """A policy file is not valid; `problems` lists every problem found, in file order."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_policy(text: str, source: str) -> Policy:
    """Parse and validate a policy; raise PolicyError naming every problem in `source`."""
    try:
        document = bounded_yaml.load(text, source, round_trip=True)
    except YAMLError as exc:
        raise PolicyError([_yaml_problem(exc, source)]) from None
    data = _plain(document)
    if data is None:
        data = {}  # an empty file: pydantic says what is missing
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = _without_knock_on(exc.errors())
    found = [(err["loc"], _message(err), err["type"] == "extra_forbidden") for err in errors]
    if isinstance(data, dict) and not any(err["type"] == COHERENCE_ERROR for err in errors):
        # Per-field errors stopped pydantic before the cross-field checks: run them here.
        found += [(loc, _prefixed(loc, msg), False) for loc, msg in coherence_problems(data)]
    problems: list[PolicyProblem] = []
    for loc, message, at_key in found:
        line, column = _position(document, loc, at_key)
        problem = PolicyProblem(source, line, column, message)
        if problem not in problems:
            problems.append(problem)
    problems.sort(key=lambda p: (p.line, p.column))
    raise PolicyError(problems)


def load_policy_bytes(data: bytes, source: str) -> Policy:
    """`load_policy` for a file's bytes, which must be UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        before = data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start]
        column = len(before.decode("utf-8", errors="replace")) + 1
        message = f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        raise PolicyError([PolicyProblem(source, line, column, message)]) from None
    return load_policy(text, source)


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The shipped policies/default.yaml, validated (once)."""
    return load_policy_bytes(DEFAULT_POLICY_PATH.read_bytes(), str(DEFAULT_POLICY_PATH))


def policy_from_branch(read: Callable[[str], bytes | None]) -> Policy:
    """The policy in force on a branch: its .ritmo/policy.yaml, else the shipped default.

    `read` maps a repository path to the file's bytes, or None when there is no such
    file. A file that is present but invalid raises PolicyError: never fall back then.
    """
    data = read(BRANCH_POLICY_PATH)
    if data is None:
        return default_policy()
    return load_policy_bytes(data, BRANCH_POLICY_PATH)


def policy_from_bytes(data: bytes | None) -> Policy:
    """The policy a .ritmo/policy.yaml's bytes say; None (no file): the shipped default."""
    if data is None:
        return default_policy()
    return load_policy_bytes(data, BRANCH_POLICY_PATH)


# -- helpers ---------------------------------------------------------------------------


def _yaml_problem(exc: YAMLError, source: str) -> PolicyProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return PolicyProblem(source, line, column, f"not valid YAML: {problem}")


def _plain(node: Any) -> Any:
    """ruamel's round-trip types as plain dicts, lists, str, bool, int and float."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):  # ScalarBoolean (anchored) is an int
        return bool(node)
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def _without_knock_on(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop "too short" where items inside were invalid: pydantic counts only valid ones."""

    def inside(err: ErrorDetails) -> bool:
        loc = err["loc"]
        return any(len(o["loc"]) > len(loc) and o["loc"][: len(loc)] == loc for o in errors)

    return [e for e in errors if not (e["type"] == "too_short" and inside(e))]


def _message(err: ErrorDetails) -> str:
    loc, kind = err["loc"], err["type"]
    if kind == "extra_forbidden" and loc:
        return _prefixed(loc[:-1], f"unknown key {loc[-1]!r}; remove it or check the spelling")
    if kind == "missing" and loc:
        return _prefixed(loc[:-1], f"missing required key {loc[-1]!r}")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return _prefixed(loc, "must be a mapping (key: value)")
    if kind in ("tuple_type", "list_type"):
        return _prefixed(loc, "must be a list")
    if kind == "too_short" and loc == ("environments",):
        return _prefixed(loc, "list at least one environment, in promotion order")
    if kind == "string_pattern_mismatch" and loc[-1:] == ("name",):
        return _prefixed(
            loc,
            f"{err['input']!r} is not a valid name; use lowercase letters, digits and '-' "
            "(at most 63, starting and ending with a letter or digit), e.g. staging",
        )
    message = err["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        message += f", not {err['input']!r}"
    return _prefixed(loc, message)


def _prefixed(loc: Loc, message: str) -> str:
    if len(loc) >= 2 and loc[-1] == "[key]":
        loc, message = loc[:-2], f"key {loc[-2]!r}: {message}"
    path = dotted(loc)
    return f"{path}: {message}" if path else message


def _position(document: Any, loc: Loc, at_key: bool) -> tuple[int, int]:
    """1-based line and column of the node `loc` leads to in the parsed document.

    The value, or with `at_key` the key, of the last path element; where the path
    leaves the document (a missing key), the last node on it that exists.
    """
    here = _start(document)
    node = document
    for depth, part in enumerate(loc):
        if part == "[key]":
            break  # a bad mapping key: the previous step already points at the key
        want_key = (at_key and depth == len(loc) - 1) or _is_bad_key(loc, depth)
        if isinstance(node, CommentedMap):
            key = part if part in node else _BY_NAME.get(str(part))
            if key is None or key not in node:
                break
            here = _lookup(node.lc.key if want_key else node.lc.value, key, here)
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            here = _lookup(node.lc.item, part, here)
            node = node[part]
        else:
            break
    return here[0] + 1, here[1] + 1


def _lookup(where: Callable[[Any], Any], key: Any, fallback: tuple[int, int]) -> tuple[int, int]:
    try:
        line, column = where(key)
    except (KeyError, TypeError):  # e.g. a key merged in with `<<:`: keep the enclosing node
        return fallback
    return int(line), int(column)


def _is_bad_key(loc: Loc, depth: int) -> bool:
    return depth + 1 < len(loc) and loc[depth + 1] == "[key]"


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)
