"""Text templates from templates/: commit messages, PR bodies, the init scaffold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from bot.shipped import shipped_dir

TEMPLATES_DIR = shipped_dir("templates")


class Templates:
    def __init__(self, root: Path = TEMPLATES_DIR) -> None:
        self.root = root
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # commit messages and YAML, never HTML
        )

    def render(self, name: str, **context: Any) -> str:
        return self._env.get_template(name).render(**context)

    def preload(self, *names: str) -> None:
        """Compile these now, so that the first request does not."""
        for name in names:
            self._env.get_template(name)
