"""OpenPGP signing and verification through python-gnupg."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gnupg

from bot.config import ConfigError

EMBEDDED_KEY_NAME = "Ritmo local signing key"


class SigningError(Exception):
    """gpg refused to sign; the message says why."""


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of checking a detached signature against the trusted keys."""

    status: str  # verified | unsigned | bad | untrusted
    fingerprint: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def open_gnupg(home: Path) -> gnupg.GPG:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)  # gpg refuses homes others can read
    return gnupg.GPG(gnupghome=str(home))


class CommitSigner:
    """Signs commit payloads with one secret key; fails closed if the key is absent."""

    def __init__(self, gpg: gnupg.GPG, fingerprint: str) -> None:
        secret = {k["fingerprint"] for k in gpg.list_keys(secret=True)}
        if fingerprint not in secret:
            raise ConfigError(
                f"setting signing.key (RITMO_SIGNING__KEY): no secret key {fingerprint} in "
                f"{gpg.gnupghome}; import it there or set signing.gnupghome to its home"
            )
        self._gpg = gpg
        self.fingerprint = fingerprint

    def sign(self, payload: bytes) -> str:
        result = self._gpg.sign(payload, keyid=self.fingerprint, detach=True, binary=False)
        if not result or result.fingerprint != self.fingerprint:
            raise SigningError(f"gpg could not sign with {self.fingerprint}: {result.status}")
        return str(result)

    def export_public_key(self) -> str:
        armored: str = self._gpg.export_keys(self.fingerprint)
        return armored


def generate_embedded_key(gpg: gnupg.GPG, email: str) -> str:
    """Create the unprotected ed25519 key that the embedded default signs with."""
    batch = (
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\n"
        f"Name-Real: {EMBEDDED_KEY_NAME}\nName-Email: {email}\n"
        "Expire-Date: 0\n%no-protection\n%commit\n"
    )
    result = gpg.gen_key(batch)
    if not result.fingerprint:
        raise ConfigError(f"could not generate a signing key in {gpg.gnupghome}: {result.stderr}")
    return str(result.fingerprint)


def find_embedded_key(gpg: gnupg.GPG) -> str | None:
    for key in gpg.list_keys(secret=True):
        if any(EMBEDDED_KEY_NAME in uid for uid in key["uids"]):
            return str(key["fingerprint"])
    return None


class ArtifactVerifier:
    """Checks CI's detached signatures over an artifact checksum against trusted keys."""

    def __init__(self, gpg: gnupg.GPG, trusted: list[str]) -> None:
        self._gpg = gpg
        self._trusted = set(trusted)

    def check(
        self, checksum: str, armored: str | None, also_trusted: Iterable[str] = ()
    ) -> SignatureCheck:
        if not armored:
            return SignatureCheck("unsigned")
        with tempfile.NamedTemporaryFile("w", suffix=".asc", delete=False) as sig:
            sig.write(armored)
        try:
            result = self._gpg.verify_data(sig.name, checksum.encode())
        finally:
            os.unlink(sig.name)
        # Subkey signatures report the primary key in pubkey_fingerprint.
        fpr = result.pubkey_fingerprint or result.fingerprint
        if not result.valid:
            if result.status == "no public key":
                return SignatureCheck("untrusted", result.key_id, "signed by an unknown key")
            return SignatureCheck("bad", fpr, f"signature does not verify ({result.status})")
        if fpr not in self._trusted and fpr not in set(also_trusted):
            return SignatureCheck(
                "untrusted", fpr, f"key {fpr} is in neither signing.trusted_keys nor the policy's"
            )
        return SignatureCheck("verified", fpr)
