"""Where the shipped templates/ and policies/ are, found through importlib.resources.

The top-level folders are the source. The wheel carries them inside the package, as
bot/_shipped/templates and bot/_shipped/policies (pyproject.toml maps them there); a source
checkout (an editable install, or PYTHONPATH) reads them where they are, beside bot/.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGED = "_shipped"


def shipped_dir(folder: str) -> Path:
    """`templates` or `policies`, as a directory on disk (jinja2 and the scaffold walk it)."""
    package = Path(str(files("bot")))  # a regular package unpacked on disk: a plain path
    packaged = package / PACKAGED / folder
    if packaged.is_dir():
        return packaged
    source = package.parent / folder
    if source.is_dir():
        return source
    raise FileNotFoundError(f"Ritmo's {folder}/ is neither at {packaged} nor at {source}")
