"""Commit signatures from gpg-agent over its Assuan socket: SIGKEY, SETHASH, PKSIGN.

A python-gnupg signature is a `gpg` process (~4-6 ms here, most of it start-up); the agent
answers a PKSIGN in a fraction of a millisecond over a connection kept open. The secret key
never leaves the agent (or the smartcard behind it): Ritmo sends a digest and gets the
raw signature values back, and bot/manifests/openpgp.py builds the packet gpg would.

When the agent cannot be reached or refuses (a key behind a passphrase and no pinentry,
a key type the packet builder does not know), signing falls back to python-gnupg and says
so once in the log; the agent is tried again a while later.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote_to_bytes

from bot.manifests import openpgp
from bot.manifests.signing import CommitSigner

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30.0
_TIMEOUT_SECONDS = 10.0


class AgentUnavailable(Exception):
    """gpg-agent could not be reached, or refused; the message says which."""


@dataclass(frozen=True)
class SigningKey:
    """The key gpg signs with, as gpg chose it: the key (a subkey, when one signs), its
    keygrip in the agent, and the hash gpg picked for it."""

    fingerprint: bytes  # 20 bytes
    keygrip: str
    algorithm: int
    hash_algorithm: int


def keygrip(colons: str, fingerprint: str) -> tuple[str, str] | None:
    """(keygrip, curve) of the key or subkey `fingerprint` in a `--with-colons
    --with-keygrip -K` listing; the fpr and grp records follow the key they describe."""
    curve = ""
    found = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] in ("sec", "ssb"):
            if found:
                return None  # the key had no grp record
            curve = fields[16] if len(fields) > 16 else ""
        elif fields[0] == "fpr" and len(fields) > 9:
            found = fields[9].upper() == fingerprint.upper()
        elif fields[0] == "grp" and found and len(fields) > 9:
            return fields[9], curve
    return None


def signing_key(probe: str, colons: str) -> SigningKey:
    """The key and hash that gpg used for the armoured `probe`, with its keygrip; so the
    agent signs as gpg would, whatever gpg.conf or the key's subkeys say."""
    made = openpgp.facts(openpgp.dearmor(probe))
    fingerprint = made.issuer_fingerprint.hex().upper()
    grip = keygrip(colons, fingerprint)
    if grip is None:
        raise AgentUnavailable(f"no keygrip listed for the signing key {fingerprint}")
    if made.algorithm not in openpgp.SUPPORTED or made.hash_algorithm not in openpgp.HASHES:
        raise AgentUnavailable(
            f"key {fingerprint}: algorithm {made.algorithm} with hash {made.hash_algorithm} "
            "is not one Ritmo builds packets for"
        )
    if made.algorithm == openpgp.EDDSA and grip[1] != "ed25519":
        raise AgentUnavailable(f"key {fingerprint}: EdDSA on {grip[1]} is not built here")
    return SigningKey(made.issuer_fingerprint, grip[0], made.algorithm, made.hash_algorithm)


class Assuan:
    """One connection to gpg-agent: a command, its data lines, its OK or ERR."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(_TIMEOUT_SECONDS)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise AgentUnavailable(f"cannot connect to gpg-agent at {path}: {exc}") from None
        self._lines = self._sock.makefile("rb")
        self._answer()  # the greeting

    def command(self, line: str) -> bytes:
        return self.commands([line])[-1]

    def commands(self, lines: list[str]) -> list[bytes]:
        """Send `lines` in one write and read their answers in order: one round trip, not
        one per command (the agent reads its socket line by line). Any ERR raises, and the
        caller drops the connection, answers left unread with it."""
        try:
            self._sock.sendall(b"".join(line.encode("utf-8") + b"\n" for line in lines))
        except OSError as exc:
            raise AgentUnavailable(f"gpg-agent went away: {exc}") from None
        return [self._answer() for _ in lines]

    def _answer(self) -> bytes:
        data = bytearray()
        while True:
            try:
                raw = self._lines.readline()
            except OSError as exc:
                raise AgentUnavailable(f"gpg-agent did not answer: {exc}") from None
            if not raw:
                raise AgentUnavailable("gpg-agent closed the connection")
            line = raw.rstrip(b"\n")
            if line == b"OK" or line.startswith(b"OK "):
                return bytes(data)
            if line.startswith(b"D "):
                data += unquote_to_bytes(line[2:])  # %25, %0A and %0D are escaped
            elif line.startswith(b"ERR "):
                raise AgentUnavailable(f"gpg-agent refused: {line[4:].decode(errors='replace')}")
            elif line.startswith(b"INQUIRE "):
                # Asking for something (a passphrase) that an unattended server cannot give.
                self._sock.sendall(b"CAN\n")
            # S (status) and # (comment) lines carry nothing needed here.

    def close(self) -> None:
        try:
            self._lines.close()
        finally:
            self._sock.close()


def agent_socket(gnupghome: Path) -> str:
    """The agent's socket for `gnupghome`, the agent started if it was not running."""
    env = {**os.environ, "GNUPGHOME": str(gnupghome)}
    try:
        for command in (["--launch", "gpg-agent"], ["--list-dirs", "agent-socket"]):
            found = subprocess.run(
                ["gpgconf", *command], env=env, check=True, capture_output=True, text=True,
                timeout=_TIMEOUT_SECONDS,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise AgentUnavailable(f"gpgconf could not start or find gpg-agent: {exc}") from None
    return found.stdout.strip()


def key_listing(gnupghome: Path, fingerprint: str) -> str:
    env = {**os.environ, "GNUPGHOME": str(gnupghome)}
    try:
        listed = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--with-keygrip", "--fixed-list-mode", "-K",
             fingerprint], env=env, check=True, capture_output=True, text=True,
            timeout=_TIMEOUT_SECONDS,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise AgentUnavailable(f"gpg could not list the secret key {fingerprint}: {exc}") from None
    return listed.stdout


class Signs(Protocol):
    def sign(self, payload: bytes) -> str: ...

    def close(self) -> None: ...


_PROBE = b"ritmo: which key and hash does gpg sign with?\n"


class AgentSigner:
    """`sign(payload) -> armoured signature` through gpg-agent, one request at a time over
    one kept connection; `fallback` signs whenever the agent cannot, and closes with it.

    On connecting, gpg signs a probe once (python-gnupg): its packet says which key and
    hash gpg picks, and the agent's signature over the same probe must pass gpg's own
    verification before the agent signs anything else.
    """

    def __init__(
        self,
        signer: CommitSigner,
        fallback: Signs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = signer
        self._fallback = fallback
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: Assuan | None = None
        self._key: SigningKey | None = None
        self._retry_at = 0.0
        self._closed = False

    def connect(self) -> None:
        """Reach the agent, learn gpg's key and hash, check a signature with gpg; raises
        AgentUnavailable saying why not."""
        home = self._signer.gnupghome
        key = signing_key(self._signer.sign(_PROBE), key_listing(home, self._signer.fingerprint))
        conn = Assuan(agent_socket(home))
        try:
            conn.command("RESET")
            probe = self._sign(conn, key, _PROBE)
        except (AgentUnavailable, ValueError) as exc:
            conn.close()
            raise AgentUnavailable(str(exc)) from None
        if not self._signer.verifies(_PROBE, probe):
            conn.close()
            raise AgentUnavailable("gpg did not accept the agent's signature over a probe")
        self._key, self._conn = key, conn

    def warm(self) -> None:
        """Connect now (a server starting), not on the first signature a request waits for;
        when the agent cannot be reached, python-gnupg signs, as `sign` would decide."""
        with self._lock:
            if self._conn is None and not self._closed:
                try:
                    self.connect()
                except AgentUnavailable as exc:
                    self._give_up(exc)

    @property
    def via_agent(self) -> bool:
        return self._conn is not None

    def sign(self, payload: bytes) -> str:
        with self._lock:
            if self._conn is None and not self._closed and time.monotonic() >= self._retry_at:
                try:
                    self.connect()
                except AgentUnavailable as exc:
                    self._give_up(exc)
            if self._conn is not None and self._key is not None:
                try:
                    return self._sign(self._conn, self._key, payload)
                except (AgentUnavailable, ValueError) as exc:
                    self._give_up(exc)
        return self._fallback.sign(payload)

    def _sign(self, conn: Assuan, key: SigningKey, payload: bytes) -> str:
        pending = openpgp.prepare(
            payload, key.fingerprint, key.algorithm, int(self._clock()), key.hash_algorithm
        )
        # One round trip: under load every wait on the socket is also a wait for the GIL.
        *_, answer = conn.commands(
            [
                f"SIGKEY {key.keygrip}",
                f"SETHASH {pending.hash_algorithm} {pending.digest.hex().upper()}",
                "PKSIGN",
            ]
        )
        values = openpgp.signature_values(answer, key.algorithm)
        return openpgp.armor(openpgp.packet(pending, key.fingerprint, values))

    def _give_up(self, exc: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        log.warning("signing through python-gnupg: gpg-agent unavailable (%s)", exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._fallback.close()
