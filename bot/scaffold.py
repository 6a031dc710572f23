"""The `ritmo init` scaffold: an example app with base/ and dev, staging, production overlays."""

from __future__ import annotations

from pathlib import Path

from bot.manifests.plans import Edit, Reader, Unchanged
from bot.templates import TEMPLATES_DIR

SCAFFOLD_DIR = TEMPLATES_DIR / "scaffold"
EXAMPLE_APP = "web"


def scaffold_files(root: Path = SCAFFOLD_DIR) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def write_scaffold(target: Path) -> list[Path]:
    """Write the scaffold under `target`; refuse to overwrite anything already there."""
    files = scaffold_files()
    taken = [target / rel for rel in files if (target / rel).exists()]
    if taken:
        raise FileExistsError(f"{taken[0]} already exists; run `ritmo init` on an empty directory")
    written = []
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


class ScaffoldChange:
    """Seed an empty branch with the scaffold; a branch with content is left alone."""

    def __init__(self, message: str) -> None:
        self._message = message

    def plan(self, read: Reader) -> Edit | Unchanged:
        if any(read(path) is not None for path in scaffold_files()):
            return Unchanged()
        return Edit(scaffold_files(), self._message)
