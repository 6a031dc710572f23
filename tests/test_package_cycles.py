"""No two parts of bot/ import each other: read from the source, no import runs.

A part is a subpackage of bot/ (bot/webhooks) or a top-level module (bot/runtime.py).
Imports under TYPE_CHECKING count too: a cycle for mypy is a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def _part(module: str) -> str | None:
    names = module.split(".")
    return names[1] if names[0] == "bot" and len(names) > 1 else None


def _imported(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            if node.module == "bot":  # `from bot import timestamps`
                found += [f"bot.{alias.name}" for alias in node.names]
    return found


def imports_between_parts() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the modules importing, for every import that
    crosses parts."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(BOT.rglob("*.py")):
        module = ".".join(path.relative_to(BOT.parent).with_suffix("").parts)
        source = _part(module)
        for target in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            part = _part(target)
            if source and part and part != source:
                edges.setdefault((source, part), []).append(module)
    return edges


def test_no_two_parts_import_each_other() -> None:
    edges = imports_between_parts()
    mutual = {frozenset(pair) for pair in edges if pair[::-1] in edges}
    assert mutual == set(), {
        tuple(sorted(pair)): [edges[p] for p in edges if frozenset(p) == pair] for pair in mutual
    }


def test_webhooks_and_runtime_are_one_way() -> None:
    edges = imports_between_parts()
    assert ("runtime", "webhooks") in edges  # the runtime builds the router and the worker
    assert edges.get(("webhooks", "runtime")) is None  # handlers take a HandlerContext


def test_policy_does_not_import_notify() -> None:
    edges = imports_between_parts()
    assert ("notify", "policy") in edges  # the integration model is part of the policy
    assert edges.get(("policy", "notify")) is None
