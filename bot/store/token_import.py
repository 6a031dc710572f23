"""The tokens file of earlier versions (auth.tokens_file) moves into the database, once.

At start-up (and before any `ritmo token` command) an existing file's tokens are copied by
digest, then the file is renamed to `<name>.imported`, so it is neither read nor imported
again. A token whose name is now refused (taken ignoring case, reserved) is left out, with
a warning naming it: its holder needs a new token.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.auth import TokenError, is_among
from bot.store.tokens import TokenStore

log = logging.getLogger(__name__)

IMPORTED_SUFFIX = ".imported"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class TokenFileError(ValueError):
    """The tokens file cannot be read; the message says which and why."""


@dataclass
class Imported:
    names: list[str] = field(default_factory=list)  # copied into the database
    skipped: list[str] = field(default_factory=list)  # "name: why", left out
    renamed_to: Path | None = None


def import_tokens_file(store: TokenStore, path: Path) -> Imported:
    """Copy `path`'s tokens into `store` and rename the file; nothing to do without one."""
    done = Imported()
    if not path.exists():
        return done
    # Workers starting together: one imports, the others find the file gone.
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            return done
        for entry in _entries(path):
            _import(store, entry, done)
        done.renamed_to = path.with_name(path.name + IMPORTED_SUFFIX)
        os.replace(path, done.renamed_to)
    if done.names:
        log.info("imported %d token(s) from %s into the database: %s; the file is now %s",
                 len(done.names), path, ", ".join(done.names), done.renamed_to)  # fmt: skip
    for why in done.skipped:
        log.warning("token not imported from %s: %s; create a new token for its holder",
                    path, why)  # fmt: skip
    return done


def _import(store: TokenStore, entry: dict[str, Any], done: Imported) -> None:
    name = str(entry.get("name", ""))
    sha256 = str(entry.get("sha256", ""))
    if not _SHA256.fullmatch(sha256):
        done.skipped.append(f"{name}: no sha256 digest")
        return
    if store.knows(sha256):
        return  # imported from another replica's copy of the file, or revoked since
    if is_among(name, done.names):
        done.skipped.append(f"{name}: a second token of that name (names ignore case)")
        return
    try:
        store.add(
            name,
            sha256,
            entry.get("scopes", []),
            entry.get("groups", []),
            str(entry.get("created_at", "")),
        )
    except TokenError as exc:
        done.skipped.append(f"{name}: {exc}")
        return
    done.names.append(name)


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(
            f"setting auth.tokens_file (RITMO_AUTH__TOKENS_FILE): cannot import {path} "
            f"({type(exc).__name__}: {exc}); fix the file, or move it away and create "
            "the tokens again with `ritmo token create`"
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TokenFileError(
            f"setting auth.tokens_file (RITMO_AUTH__TOKENS_FILE): {path} holds no list of "
            'tokens under "tokens"; fix the file, or move it away'
        )
    return entries
