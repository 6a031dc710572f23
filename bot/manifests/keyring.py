"""The public keys of a GnuPG home, read from gpg once, for in-process verification.

gpg says what it knows of each key (`--with-colons`: validity, expiry, revocation, which
subkey belongs to which primary) and hands over the key material (`--export`); both are
read again only when the home's keyring or trust database changes, or a minute passes
(a key can expire in the meantime).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from bot.manifests.openpgp_verify import Key, Unreadable, key_material, packets

_TTL_SECONDS = 60.0
_FILES = ("pubring.kbx", "pubring.gpg", "trustdb.gpg", "gpg.conf")
_VALID = set("ufm")  # ultimate, full, marginal: git's %G? says G; anything else U

_cache: dict[str, tuple[tuple[int, ...], float, dict[str, Key]]] = {}
_lock = threading.Lock()


def _gpg(home: Path, *args: str) -> bytes:
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", *args], capture_output=True, check=False, timeout=60,
        env={**os.environ, "GNUPGHOME": str(home)},
    )  # fmt: skip
    if proc.returncode != 0:
        raise Unreadable(f"gpg {args[-1]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def trusts_every_key(gpg_conf: str) -> bool:
    """`trust-model always` (the last trust-model line wins): gpg then prints no TRUST_
    line, and git's %G? says G for every good signature."""
    models = [
        line.split()[1:] for line in gpg_conf.splitlines() if line.split()[:1] == ["trust-model"]
    ]
    return bool(models) and models[-1] == ["always"]


def parse_keys(
    listing: str, exported: bytes, now: int, every_key_valid: bool = False
) -> dict[str, Key]:
    """Keys by fingerprint and by key id, from `--with-colons --fixed-list-mode -k` and
    the binary `--export` of the same home."""
    material: dict[str, tuple[int, object | None]] = {}
    for tag, body in packets(exported):
        if tag in (6, 14):
            try:
                fingerprint, algorithm, public = key_material(body)
            except (Unreadable, ValueError, IndexError):
                continue  # a key type not read here: its signatures go to gpg
            material[fingerprint] = (algorithm, public)
    keys: dict[str, Key] = {}
    primary = ""
    pending: list[str] | None = None
    primary_valid = False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub") and len(fields) > 6:
            pending = fields
        elif fields[0] == "fpr" and pending is not None and len(fields) > 9:
            fingerprint = fields[9].upper()
            if pending[0] == "pub":
                primary = fingerprint
                primary_valid = every_key_valid or pending[1] in _VALID
            expires = int(pending[6]) if pending[6].isdigit() else 0
            algorithm, public = material.get(fingerprint, (int(pending[3] or 0), None))
            key = Key(
                fingerprint=fingerprint, primary=primary, algorithm=algorithm, material=public,
                valid=primary_valid, expired=pending[1] == "e" or 0 < expires <= now,
                revoked=pending[1] == "r",
            )  # fmt: skip
            keys[fingerprint] = key
            keys.setdefault(key.key_id, key)
            pending = None
    return keys


def _stamp(home: Path) -> tuple[int, ...]:
    stamps = []
    for name in _FILES:
        try:
            stamps.append((home / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def keys_of(home: Path) -> dict[str, Key]:
    """The home's keys, from the cache while the home has not changed."""
    name = str(home)
    stamp = _stamp(home)
    with _lock:
        cached = _cache.get(name)
        if cached and cached[0] == stamp and time.monotonic() - cached[1] < _TTL_SECONDS:
            return cached[2]
    listing = _gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys").decode()
    try:
        conf = (home / "gpg.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        conf = ""
    keys = parse_keys(listing, _gpg(home, "--export"), int(time.time()), trusts_every_key(conf))
    with _lock:
        _cache[name] = (stamp, time.monotonic(), keys)
    return keys
