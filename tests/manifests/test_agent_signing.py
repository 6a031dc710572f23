"""Signatures through gpg-agent's socket, checked against gpg itself.

Ed25519 and RSA PKCS#1 v1.5 signatures are deterministic: at the same second, over the same
payload, the agent path and `gpg --detach-sign --armor` must give the same bytes. Every
signature is also checked by `gpg --verify` or `git verify-commit`, never only by Ritmo.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.config import Settings
from bot.manifests import agent as agent_module
from bot.manifests import openpgp
from bot.manifests.agent import AgentSigner, AgentUnavailable, keygrip, signing_key
from bot.manifests.objects import Identity, commit_payload, with_signature
from bot.manifests.signing import CommitSigner, PipelinedSigner, open_gnupg
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git, kill_gpg_agent, verify_commit

RSA_WITH_SIGNING_SUBKEY = (
    "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: cert\nSubkey-Type: RSA\nSubkey-Length: 2048\n"
    "Subkey-Usage: sign\nName-Real: Ritmo RSA\nName-Email: rsa@example.com\nExpire-Date: 0\n"
    "%no-protection\n%commit\n"
)


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A gpg home whose RSA primary key only certifies; a subkey signs."""
    home = tmp_path_factory.mktemp("gnupg-rsa")
    result = open_gnupg(home).gen_key(RSA_WITH_SIGNING_SUBKEY)
    assert result.fingerprint, result.stderr
    yield home, str(result.fingerprint)
    kill_gpg_agent(home)


def gpg_signature(home: Path, payload: bytes, at: int) -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--faked-system-time", f"{at}!", "--detach-sign", "--armor"],
        input=payload, capture_output=True, env={**os.environ, "GNUPGHOME": str(home)}, check=True,
    )  # fmt: skip
    return proc.stdout.decode()


def gpg_verifies(home: Path, payload: bytes, armored: str, tmp_path: Path) -> str:
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "payload.asc").write_text(armored)
    proc = subprocess.run(
        ["gpg", "--batch", "--status-fd", "1", "--verify", "payload.asc", "payload"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "GNUPGHOME": str(home)}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[GNUPG:] GOODSIG" in proc.stdout and "[GNUPG:] VALIDSIG" in proc.stdout
    return proc.stdout


def agent_signer(home: Path, fingerprint: str, at: int | None = None) -> AgentSigner:
    signer = CommitSigner(open_gnupg(home), fingerprint)
    clock = (lambda: float(at)) if at is not None else None
    fallback = PipelinedSigner(signer)
    made = AgentSigner(signer, fallback=fallback, **({"clock": clock} if clock else {}))
    made.connect()
    return made


@pytest.mark.parametrize("key", ["signing_key", "rsa_key"])
def test_the_agent_signs_the_bytes_gpg_signs(
    key: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    home, fingerprint = request.getfixturevalue(key)
    payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nsame payload, two signers\n"
    frozen = int(time.time())  # one second for both signers, after the key was made
    signer = agent_signer(home, fingerprint, at=frozen)
    assert signer.via_agent
    made = signer.sign(payload)
    assert made == gpg_signature(home, payload, frozen)
    status = gpg_verifies(home, payload, made, tmp_path)
    if key == "rsa_key":  # gpg's key lookup picks the signing subkey, so must the agent path
        sub = openpgp.facts(openpgp.dearmor(made)).issuer_fingerprint.hex().upper()
        assert sub != fingerprint and f"VALIDSIG {sub}" in status
        validsig = next(line for line in status.splitlines() if "VALIDSIG" in line)
        assert validsig.endswith(fingerprint)  # ... whose primary is the configured key
    signer.close()


def test_a_warmed_signer_is_connected_before_its_first_signature(
    signing_key: tuple[Path, str],
) -> None:
    home, fingerprint = signing_key
    signer = CommitSigner(open_gnupg(home), fingerprint)
    made = AgentSigner(signer, fallback=PipelinedSigner(signer))
    assert not made.via_agent
    made.warm()  # what `ritmo serve` does as a worker starts
    assert made.via_agent
    made.warm()  # once connected, nothing more
    assert made.via_agent and made.sign(b"payload\n").startswith("-----BEGIN PGP SIGNATURE")
    made.close()


def test_git_verify_commit_accepts_an_agent_signed_commit(
    signing_key: tuple[Path, str], tmp_path: Path
) -> None:
    home, fingerprint = signing_key
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "--bare", str(repo))
    tree = subprocess.run(
        ["git", "mktree"], cwd=repo, input="", capture_output=True, text=True, check=True
    ).stdout.strip()  # the empty tree
    who = Identity("Ritmo", "ritmo@example.com")
    signer = agent_signer(home, fingerprint)
    parents: list[str] = []
    for n in range(3):  # a chain, as the writer makes them
        payload = commit_payload(tree, parents, who, who, 1796400000 + n, f"commit {n}\n")
        data = with_signature(payload, signer.sign(payload))
        sha = subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo, input=data,
            capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip
        report = verify_commit(repo, sha, home)
        assert f"VALIDSIG {fingerprint}" in report
        parents = [sha]
    signer.close()


def test_no_agent_falls_back_to_python_gnupg_with_one_log_line(
    signing_key: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home, fingerprint = signing_key
    monkeypatch.setattr(agent_module, "agent_socket", lambda _home: str(tmp_path / "no-socket"))
    signer = CommitSigner(open_gnupg(home), fingerprint)
    fallback = PipelinedSigner(signer)
    made = AgentSigner(signer, fallback=fallback)
    with caplog.at_level(logging.WARNING, logger="bot.manifests.agent"):
        first = made.sign(b"one\n")
        second = made.sign(b"two\n")
    assert not made.via_agent
    gpg_verifies(home, b"one\n", first, tmp_path)
    gpg_verifies(home, b"two\n", second, tmp_path)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "python-gnupg" in warnings[0] and "no-socket" in warnings[0]
    made.close()


def test_an_agent_that_goes_away_mid_run_is_replaced_by_python_gnupg(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path_factory.mktemp("gnupg-killed")
    result = open_gnupg(home).gen_key(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Gone\n"
        "Name-Email: gone@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    signer = agent_signer(home, str(result.fingerprint))
    gpg_verifies(home, b"before\n", signer.sign(b"before\n"), tmp_path)
    kill_gpg_agent(home)
    with caplog.at_level(logging.WARNING, logger="bot.manifests.agent"):
        after = signer.sign(b"after\n")  # the kept connection is dead: gpg signs this one
    assert not signer.via_agent
    gpg_verifies(home, b"after\n", after, tmp_path)
    assert any("gpg-agent unavailable" in r.getMessage() for r in caplog.records)
    signer.close()
    kill_gpg_agent(home)


def test_a_probe_gpg_does_not_accept_keeps_the_agent_out(
    signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, fingerprint = signing_key
    signer = CommitSigner(open_gnupg(home), fingerprint)
    monkeypatch.setattr(CommitSigner, "verifies", lambda self, payload, armored: False)
    made = AgentSigner(signer, fallback=PipelinedSigner(signer))
    with pytest.raises(AgentUnavailable, match="did not accept"):
        made.connect()
    assert not made.via_agent
    made.close()


# -- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (b"\x01", b"\x00\x01\x01"),
        (b"\x00\x00\xff", b"\x00\x08\xff"),
        (b"\x7f\x00", b"\x00\x0f\x7f\x00"),
        (b"\x00", b"\x00\x00"),
    ],
)
def test_mpi_counts_bits_from_the_first_set_one(value: bytes, encoded: bytes) -> None:
    assert openpgp.mpi(value) == encoded


def test_crc24_of_rfc4880_vectors() -> None:
    assert openpgp.crc24(b"") == 0xB704CE
    assert openpgp.crc24(b"123456789") == 0x21CF02  # the CRC-24/OPENPGP check value


def test_armour_round_trips_and_a_wrong_checksum_is_refused() -> None:
    data = bytes(range(200))
    armored = openpgp.armor(data)
    assert openpgp.dearmor(armored) == data
    lines = armored.splitlines()
    checksum = next(i for i, line in enumerate(lines) if line.startswith("="))
    lines[checksum] = "=AAAA"
    with pytest.raises(ValueError, match="checksum"):
        openpgp.dearmor("\n".join(lines))


@pytest.mark.parametrize(
    ("sexp", "algorithm", "values"),
    [
        (b"(7:sig-val(5:eddsa(1:r2:\x01\x02)(1:s1:\x03)))", openpgp.EDDSA, [b"\x01\x02", b"\x03"]),
        (b"(7:sig-val(3:rsa(1:s3:abc)))", openpgp.RSA, [b"abc"]),
        (b"(7:sig-val(5:ecdsa(1:s1:b)(1:r1:a)))", openpgp.ECDSA, [b"a", b"b"]),
    ],
)
def test_signature_values_from_the_agents_answer(
    sexp: bytes, algorithm: int, values: list[bytes]
) -> None:
    assert openpgp.signature_values(sexp, algorithm) == values


@pytest.mark.parametrize(
    ("sexp", "error"),
    [
        (b"(7:sig-val(3:rsa(1:s3:abc)))", "expected"),  # asked for EdDSA
        (b"(7:sig-val(5:eddsa(1:r1:a)))", "lacks"),
        (b"(7:sig-val(5:eddsa(1:r9:a)))", "truncated"),
        (b"(7:sig-val(5:eddsa(1:r1:a))", "one S-expression"),
        (b"(7:gen-key)", "not a sig-val"),
    ],
)
def test_malformed_agent_answers_are_refused(sexp: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        openpgp.signature_values(sexp, openpgp.EDDSA)


LISTING = """\
sec:u:2048:1:AAAAAAAAAAAAAAAA:1700000000:::u:::cSC:::+:::23::0:
fpr:::::::::1111111111111111111111111111111111111111:
grp:::::::::GRIPPRIMARY:
uid:u::::1700000000::X::R <r@example.com>::::::::::0:
ssb:u:255:22:BBBBBBBBBBBBBBBB:1700000001::::::s:::+::ed25519::
fpr:::::::::2222222222222222222222222222222222222222:
grp:::::::::GRIPSUB:
"""


def test_keygrip_is_read_for_the_key_or_subkey_named() -> None:
    assert keygrip(LISTING, "1" * 40) == ("GRIPPRIMARY", "")
    assert keygrip(LISTING, "2" * 40) == ("GRIPSUB", "ed25519")
    assert keygrip(LISTING, "3" * 40) is None


def test_signing_key_takes_key_and_hash_from_gpgs_own_signature(
    rsa_key: tuple[Path, str],
) -> None:
    home, fingerprint = rsa_key
    probe = gpg_signature(home, b"probe\n", int(time.time()))
    listing = agent_module.key_listing(home, fingerprint)
    key = signing_key(probe, listing)
    made = openpgp.facts(openpgp.dearmor(probe))
    assert key.fingerprint == made.issuer_fingerprint
    assert key.hash_algorithm == made.hash_algorithm
    assert key.keygrip == keygrip(listing, made.issuer_fingerprint.hex())[0]  # type: ignore[index]


def test_a_registration_is_signed_through_the_agent(
    client: FlaskClient, tokens: dict[str, str], runtime: Runtime, remote: Path, settings: Settings
) -> None:
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert resp.status_code == 201, resp.json
    assert runtime.chain_signer.via_agent  # the writer's chain went through the socket
    report = verify_commit(remote, resp.json["commit"], settings.gnupghome)
    assert f"VALIDSIG {runtime.signer.fingerprint}" in report
