"""In-process commit verdicts against gpg's own, commit by commit.

One history holds a commit of every kind `%G?` tells apart: good (a key the home vouches
for, and one it does not), bad, unknown key, expired signature, expired key, revoked key,
a signing subkey and none. `signed_log` (in-process) and `git log %G?` (one gpg each) must
give the same letter and the same signer and primary key for each.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.manifests import openpgp
from bot.manifests import signed_log as signed_log_module
from bot.manifests.keyring import keys_of
from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity, commit_payload, with_signature
from bot.manifests.openpgp_verify import verdict
from bot.manifests.signed_log import signed_log, split_signature
from bot.manifests.signing import open_gnupg
from tests.helpers import kill_gpg_agent

DAY = 86400
NOW = int(time.time())


def ed25519(name: str, expire: str = "0") -> str:
    return (
        f"Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: {name}\n"
        f"Name-Email: {name.lower()}@example.com\nExpire-Date: {expire}\n%no-protection\n%commit\n"
    )


RSA_SUBKEY = (
    "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: cert\nSubkey-Type: RSA\nSubkey-Length: 2048\n"
    "Subkey-Usage: sign\nName-Real: Sub\nName-Email: sub@example.com\nExpire-Date: 0\n"
    "%no-protection\n%commit\n"
)


def gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["gpg", "--batch", "--yes", *args], input=data, capture_output=True,
        env={**os.environ, "GNUPGHOME": str(home)}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def generate(home: Path, batch: str, at: int | None = None) -> str:
    faked = ["--faked-system-time", f"{at}!"] if at else []
    gpg(home, *faked, "--gen-key", data=batch.encode())
    listing = gpg(home, "--with-colons", "-K").decode().splitlines()
    fprs = [line.split(":")[9] for line in listing if line.startswith("fpr")]
    return fprs[-2] if batch is RSA_SUBKEY else fprs[-1]  # the primary's


class History:
    """A bare mirror, a signers' home per key, and the verifying home `home`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirror = Mirror(root / "mirrors", str(root / "none.git"), "main")
        self.home = root / "verifier"
        open_gnupg(self.home)
        self.tree = subprocess.run(
            ["git", "mktree"], cwd=self.mirror.path, input="", text=True, capture_output=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        self.homes: list[Path] = []
        self.parent: list[str] = []
        self.made: dict[str, str] = {}  # kind -> sha

    def key(self, name: str, batch: str, at: int | None = None) -> tuple[Path, str]:
        home = self.root / name
        open_gnupg(home)
        self.homes.append(home)
        return home, generate(home, batch, at)

    def commit(self, kind: str, signer: Path | None, *sign_args: str, tamper: bool = False) -> str:
        who = Identity("Ritmo", "ritmo@example.com")
        payload = commit_payload(self.tree, self.parent, who, who, NOW, f"{kind}\n")
        data = payload
        if signer is not None:
            signed = payload.replace(b"\n\n", b"\n\ntampered: ", 1) if tamper else payload
            armored = gpg(signer, *sign_args, "--detach-sign", "--armor", data=signed).decode()
            data = with_signature(payload, armored)
        sha = subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=self.mirror.path,
            input=data, capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip
        self.parent = [sha]
        self.made[kind] = sha
        return sha

    def trust(self, home: Path, fingerprint: str, ultimate: bool) -> None:
        gpg(self.home, "--import", data=gpg(home, "--export", fingerprint))
        if ultimate:
            gpg(self.home, "--import-ownertrust", data=f"{fingerprint}:6:\n".encode())


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    made = History(tmp_path_factory.mktemp("verdicts"))
    trusted, trusted_fpr = made.key("trusted", ed25519("Trusted"), at=NOW - 30 * DAY)
    plain, plain_fpr = made.key("plain", ed25519("Plain"))
    stranger, _ = made.key("stranger", ed25519("Stranger"))
    revoked, revoked_fpr = made.key("revoked", ed25519("Revoked"))
    expiring, expiring_fpr = made.key("expiring", ed25519("Expiring", "1d"), at=NOW - 10 * DAY)
    sub, sub_fpr = made.key("sub", RSA_SUBKEY)
    for home, fpr, ultimate in (
        (trusted, trusted_fpr, True), (plain, plain_fpr, False), (revoked, revoked_fpr, True),
        (expiring, expiring_fpr, True), (sub, sub_fpr, False),
    ):  # fmt: skip
        made.trust(home, fpr, ultimate)

    made.commit("good", trusted)
    made.commit("good-unvouched", plain)
    made.commit("bad", trusted, tamper=True)
    made.commit("unknown-key", stranger)
    made.commit("expired-signature", trusted, "--faked-system-time", f"{NOW - 5 * DAY}!",
                "--default-sig-expire", "1d")  # fmt: skip
    made.commit("expired-key", expiring, "--faked-system-time", f"{NOW - 10 * DAY + DAY // 2}!")
    made.commit("revoked-key", revoked)
    made.commit("subkey", sub)
    made.commit("unsigned", None)
    # Revoke after signing, with the certificate gpg made when it generated the key.
    certificate = (revoked / "openpgp-revocs.d" / f"{revoked_fpr}.rev").read_text()
    gpg(made.home, "--import", data=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
    yield made
    for home in [*made.homes, made.home]:
        kill_gpg_agent(home)


EXPECTED = {
    "good": "G", "good-unvouched": "U", "bad": "B", "unknown-key": "E",
    "expired-signature": "X", "expired-key": "Y", "revoked-key": "R", "subkey": "U",
    "unsigned": "N",
}  # fmt: skip


def test_every_verdict_is_gpgs(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    shas = list(history.made.values())
    by_gpg = {
        c.sha: c
        for c in signed_log_module._by_gpg(
            history.mirror, history.home, "--no-walk=unsorted", *shas
        )
    }
    asked: list[str] = []
    real = signed_log_module._by_gpg
    monkeypatch.setattr(
        signed_log_module, "_by_gpg", lambda m, h, *a: asked.extend(a[1:]) or real(m, h, *a)
    )
    in_process = {
        c.sha: c for c in signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas)
    }
    assert asked == []  # every verdict was made in-process
    for kind, sha in history.made.items():
        theirs, ours = by_gpg[sha], in_process[sha]
        assert theirs.status == EXPECTED[kind], (kind, theirs)  # the history is what it claims
        assert (ours.status, ours.signer, ours.primary) == (
            theirs.status, theirs.signer, theirs.primary,
        ), kind  # fmt: skip
        assert (ours.parents, ours.when, ours.author, ours.message) == (
            theirs.parents, theirs.when, theirs.author, theirs.message,
        )  # fmt: skip


def test_a_key_type_not_read_here_is_left_to_gpg(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the keys' material withheld, every signed commit goes to gpg: same verdicts."""
    from dataclasses import replace

    keys = {k: replace(v, material=None) for k, v in keys_of(history.home).items()}
    monkeypatch.setattr(signed_log_module, "keys_of", lambda home: keys)
    shas = list(history.made.values())
    judged = {
        c.sha: c.status
        for c in signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas)
    }
    assert {kind: judged[sha] for kind, sha in history.made.items()} == EXPECTED


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_no_changed_byte_keeps_a_good_signature(history: History, position: int, flip: int) -> None:
    """Flip one byte of the signed payload or of the signature: never G or U."""
    raw = history.mirror.commit_objects([history.made["good"]])[history.made["good"]]
    split = split_signature(raw)
    assert split is not None
    payload, armored = split
    keys = keys_of(history.home)
    assert verdict(payload, armored, keys, NOW).status == "G"  # type: ignore[union-attr]
    changed = bytearray(payload)
    changed[position % len(changed)] ^= flip
    found = verdict(bytes(changed), armored, keys, NOW)
    assert found is not None and found.status == "B"

    packet = bytearray(openpgp.dearmor(armored))
    signed_bytes = _covered_bytes(packet)
    packet[signed_bytes[position % len(signed_bytes)]] ^= flip
    found = verdict(payload, openpgp.armor(bytes(packet)), keys, NOW)
    assert found is None or found.status not in ("G", "U")


def _covered_bytes(packet: bytes) -> list[int]:
    """Positions in a one-packet signature (old-format header, one length octet) that the
    signature covers or that carry its values. By OpenPGP's design the packet's header (its
    framing) and the unhashed subpackets are outside the signature: skipped."""
    assert packet[0] & 0xC3 == 0x80, "an old-format header with one length octet"
    hashed_end = 2 + 6 + int.from_bytes(packet[6:8], "big")
    unhashed_end = hashed_end + 2 + int.from_bytes(packet[hashed_end : hashed_end + 2], "big")
    return [*range(2, hashed_end + 2), *range(unhashed_end, len(packet))]


def test_every_covered_byte_flipped_is_never_good(history: History) -> None:
    """Each covered byte of the signature packet, each single bit and all bits flipped: never
    G or U, and never an exception (a crafted signature must not stop `verify`)."""
    raw = history.mirror.commit_objects([history.made["good"]])[history.made["good"]]
    split = split_signature(raw)
    assert split is not None
    payload, armored = split
    keys = keys_of(history.home)
    base = openpgp.dearmor(armored)
    for position in _covered_bytes(base):
        for flip in (1, 2, 4, 8, 16, 32, 64, 128, 255):
            packet = bytearray(base)
            packet[position] ^= flip
            found = verdict(payload, openpgp.armor(bytes(packet)), keys, NOW)
            assert found is None or found.status not in ("G", "U"), (position, flip)


def test_a_signature_reframed_in_the_new_packet_format_is_still_good(history: History) -> None:
    """The header is framing, not signed: gpg accepts the same packet in either format, and
    so does Ritmo (the test above leaves the header out for this reason)."""
    raw = history.mirror.commit_objects([history.made["good"]])[history.made["good"]]
    split = split_signature(raw)
    assert split is not None
    payload, armored = split
    old = openpgp.dearmor(armored)
    assert old[0] & 0xC3 == 0x80 and old[1] < 192
    reframed = bytes([0xC0 | 2, old[1]]) + old[2:]
    found = verdict(payload, openpgp.armor(reframed), keys_of(history.home), NOW)
    assert found is not None and found.status == "G"


def test_a_value_written_with_a_leading_zero_goes_to_gpg(history: History) -> None:
    """The same number with a leading zero byte (and 8 more bits) is another spelling of the
    signature: Ritmo reads only the one gpg writes, and leaves any other to gpg."""
    raw = history.mirror.commit_objects([history.made["good"]])[history.made["good"]]
    split = split_signature(raw)
    assert split is not None
    payload, armored = split
    packet = openpgp.dearmor(armored)
    hashed_end = 2 + 6 + int.from_bytes(packet[6:8], "big")
    first_value = hashed_end + 2 + int.from_bytes(packet[hashed_end : hashed_end + 2], "big") + 2
    bits = int.from_bytes(packet[first_value : first_value + 2], "big")
    respelled = (
        bytes([packet[0], packet[1] + 1])
        + packet[2:first_value]
        + (bits + 8).to_bytes(2, "big")
        + b"\x00"
        + packet[first_value + 2 :]
    )
    keys = keys_of(history.home)
    assert verdict(payload, openpgp.armor(packet), keys, NOW).status == "G"  # type: ignore[union-attr]
    assert verdict(payload, openpgp.armor(respelled), keys, NOW) is None


def test_trust_model_always_is_read_as_gpg_reads_it(history: History, tmp_path: Path) -> None:
    """Ritmo's trust homes say `trust-model always`: gpg then vouches for every key (G)."""
    home = tmp_path / "always"
    open_gnupg(home)
    for name in ("pubring.kbx", "trustdb.gpg"):
        (home / name).write_bytes((history.home / name).read_bytes())
    (home / "gpg.conf").write_text("trust-model pgp\ntrust-model always\n")
    shas = list(history.made.values())
    theirs = {
        c.sha: c.status
        for c in signed_log_module._by_gpg(history.mirror, home, "--no-walk=unsorted", *shas)
    }
    ours = {c.sha: c.status for c in signed_log(history.mirror, home, "--no-walk=unsorted", *shas)}
    assert ours == theirs
    assert ours[history.made["good-unvouched"]] == "G"
    kill_gpg_agent(home)


def test_kept_verdicts_are_not_judged_again_and_are_the_same(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.manifests.verdict_cache import VerdictCache

    shas = list(history.made.values())
    cache = VerdictCache(tmp_path / "verify-cache.sqlite")
    first = signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas, cache=cache)
    read: list[str] = []
    real = history.mirror.commit_objects
    monkeypatch.setattr(history.mirror, "commit_objects", lambda s: read.extend(s) or real(s))
    again = signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas, cache=cache)
    assert again == first
    # Only what time could change is judged again: the signature that has an expiry date.
    assert read == [history.made["expired-signature"]]
    cache.close()
    # Another state of the keys (one more key known) is another keyring: judged afresh.
    gpg(history.home, "--import", data=gpg(history.root / "stranger", "--export"))
    cache = VerdictCache(tmp_path / "verify-cache.sqlite")
    read.clear()
    third = signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas, cache=cache)
    assert sorted(read) == sorted(shas)
    assert {c.sha: c.status for c in third}[history.made["unknown-key"]] == "U"
    cache.close()


def test_verdicts_in_worker_processes_are_the_same(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ritmo verify` checks many signatures in forked workers
    (bot/manifests/parallel_verdicts.py): every verdict is the one made in-process."""
    from bot.manifests import parallel_verdicts

    shas = list(history.made.values())
    alone = signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas)
    made: list[object] = []
    real = parallel_verdicts.verdicts

    def spy(*args: Any) -> Any:
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(signed_log_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(parallel_verdicts, "_CHUNK", 2)  # several shares, in order
    monkeypatch.setattr(parallel_verdicts, "verdicts", spy)
    shared = signed_log(history.mirror, history.home, "--no-walk=unsorted", *shas, workers=2)
    assert len(made) == 1 and made[0] is not None  # the workers judged them
    assert [(c.sha, c.status, c.signer, c.primary) for c in shared] == [
        (c.sha, c.status, c.signer, c.primary) for c in alone
    ]
