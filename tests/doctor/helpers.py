"""`ritmo doctor` runs from a settings file, as a person would run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from bot.cli import main
from bot.config import Settings

ARGOCD_TOKEN = "argocd-notifications-token-0123"


def write_config(path: Path, settings: Settings, **more: Any) -> Path:
    """`settings` (as the fixtures built them) as a YAML settings file, plus `more`."""
    data: dict[str, Any] = {
        "data_dir": str(settings.data_dir),
        "manifests": {"url": settings.manifests.url, "author_email": "ritmo@example.com"},
        "signing": {"gnupghome": str(settings.gnupghome), "key": settings.signing.key},
        "cd": {"argocd_token": ARGOCD_TOKEN},
    }
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def doctor(config: Path, env: dict[str, str] | None = None) -> tuple[Result, dict[str, str]]:
    """Run `ritmo --config FILE doctor`; (result, check name -> its line)."""
    result = CliRunner().invoke(main, ["--config", str(config), "doctor"], env=env)
    lines = {}
    for line in result.stdout.splitlines():
        check = line[6:].split(":", 1)[0]
        lines[check] = line
    return result, lines
