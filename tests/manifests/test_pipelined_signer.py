"""PipelinedSigner: python-gnupg signatures with the next gpg started early."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from bot.manifests.signing import CommitSigner, PipelinedSigner, SigningError, open_gnupg


@pytest.fixture
def signer(signing_key: tuple[Path, str]) -> CommitSigner:
    home, fingerprint = signing_key
    return CommitSigner(open_gnupg(home), fingerprint)


def _verifies(signer: CommitSigner, payload: bytes, armored: str) -> bool:
    gpg = open_gnupg(Path(str(signer._gpg.gnupghome)))  # noqa: SLF001 - the same key ring
    with tempfile.NamedTemporaryFile("w", suffix=".asc") as sig:
        sig.write(armored)
        sig.flush()
        verified = gpg.verify_data(sig.name, payload)
    return bool(verified) and verified.fingerprint == signer.fingerprint


def test_each_signature_is_over_its_own_payload(signer: CommitSigner) -> None:
    pipelined = PipelinedSigner(signer)
    try:
        payloads = [f"tree {i:040d}\n\ncommit {i}\n".encode() for i in range(6)]
        signatures = [pipelined.sign(p) for p in payloads]
        for payload, armored in zip(payloads, signatures, strict=True):
            assert armored.startswith("-----BEGIN PGP SIGNATURE-----")
            assert _verifies(signer, payload, armored)
        # A signature does not verify another payload: nothing was mixed up.
        assert not _verifies(signer, payloads[0], signatures[1])
    finally:
        pipelined.close()


def test_two_writers_may_share_it(signer: CommitSigner) -> None:
    pipelined = PipelinedSigner(signer)
    found: dict[bytes, str] = {}

    def chain(name: str) -> None:
        for i in range(4):
            payload = f"{name} {i}\n".encode()
            found[payload] = pipelined.sign(payload)

    threads = [threading.Thread(target=chain, args=(n,)) for n in ("main", "ledger")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipelined.close()
    assert len(found) == 8
    assert all(_verifies(signer, p, s) for p, s in found.items())


def test_after_close_it_signs_the_plain_way(signer: CommitSigner) -> None:
    def waiting() -> int:
        return sum(t.name == "ritmo-gpg" and t.is_alive() for t in threading.enumerate())

    pipelined = PipelinedSigner(signer)
    pipelined.sign(b"first\n")
    armed = waiting()  # the next signature's gpg, started early
    pipelined.close()
    assert waiting() == armed - 1
    assert _verifies(signer, b"later\n", pipelined.sign(b"later\n"))


def test_a_key_gpg_cannot_use_fails_the_signature(signer: CommitSigner) -> None:
    broken = CommitSigner.__new__(CommitSigner)
    broken._gpg = signer._gpg  # noqa: SLF001
    broken.fingerprint = "0" * 40  # no such key
    pipelined = PipelinedSigner(broken)
    try:
        with pytest.raises(SigningError, match="could not sign"):
            pipelined.sign(b"payload\n")
    finally:
        pipelined.close()
