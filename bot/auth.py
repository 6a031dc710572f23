"""API tokens: scoped bearer tokens, stored only as hashes, compared in constant time."""

from __future__ import annotations

import enum
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TOKEN_PREFIX = "ritmo_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Scope(enum.StrEnum):
    ARTIFACTS_WRITE = "artifacts:write"
    ARTIFACTS_READ = "artifacts:read"
    PROMOTIONS_WRITE = "promotions:write"
    PROMOTIONS_APPROVE = "promotions:approve"
    DEPLOYMENTS_WRITE = "deployments:write"
    ADMIN = "admin"


class TokenError(ValueError):
    """A token cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who an API call comes from: the token's name is the caller's identity."""

    name: str
    scopes: frozenset[Scope]
    groups: frozenset[str] = frozenset()

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _digest(token: str) -> str:
    # Tokens are 256 random bits, so a plain hash is enough; no password stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Token hashes in a JSON file; re-read when another process (`ritmo token create`) writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._entries: list[dict[str, Any]] = []

    def create(self, name: str, scopes: list[str], groups: list[str] | None = None) -> str:
        if not _NAME.match(name):
            raise TokenError(f"name {name!r}: use letters, digits and . _ @ - (max 128)")
        try:
            parsed = sorted({Scope(s) for s in scopes})
        except ValueError as exc:
            known = ", ".join(s.value for s in Scope)
            raise TokenError(f"scope: {exc}; known scopes: {known}") from None
        if not parsed:
            raise TokenError("scope: give at least one --scope")
        for group in groups or []:
            if not _NAME.match(group):
                raise TokenError(f"group {group!r}: use letters, digits and . _ @ -")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = {
            "name": name,
            "sha256": _digest(token),
            "scopes": [s.value for s in parsed],
            "groups": sorted(set(groups or [])),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            entries.append(entry)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump({"tokens": entries}, out, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        return token

    def authenticate(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        match: dict[str, Any] | None = None
        for entry in self._current():
            # Compare against every entry so timing does not tell which one matched.
            if hmac.compare_digest(digest, entry["sha256"]):
                match = entry
        if match is None:
            return None
        return Principal(
            name=match["name"],
            scopes=frozenset(Scope(s) for s in match["scopes"]),
            groups=frozenset(match.get("groups", [])),
        )

    def memberships(self) -> dict[str, frozenset[str]]:
        """group -> the token names (users) that carry it: the local forge's groups."""
        groups: dict[str, set[str]] = {}
        for entry in self._current():
            for group in entry.get("groups", []):
                groups.setdefault(group, set()).add(entry["name"])
        return {g: frozenset(names) for g, names in groups.items()}

    def names(self) -> list[str]:
        return [e["name"] for e in self._current()]

    def _current(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return []
            if mtime != self._mtime:
                self._entries = self._read()
                self._mtime = mtime
            return self._entries

    def _read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                entries: list[dict[str, Any]] = json.load(handle)["tokens"]
                return entries
        except FileNotFoundError:
            return []
