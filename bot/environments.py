"""The ordered environments an artifact moves through, read from the default policy."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from bot.config import ConfigError

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def environment_names(policy_file: Path = DEFAULT_POLICY) -> list[str]:
    """Environment names in promotion order; the first is where new artifacts start."""
    data = YAML(typ="safe").load(policy_file.read_text(encoding="utf-8")) or {}
    entries = data.get("environments") or []
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    if not names or len(names) != len(entries) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{policy_file}: environments must be a non-empty list of {{name: ...}}")
    return [str(n) for n in names]
