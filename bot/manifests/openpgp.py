"""OpenPGP v4 detached signatures built around a raw signature (RFC 4880 §5.2), pure.

gpg-agent signs a digest and answers with the bare signature values; everything around
them (the packet, the hashed trailer, the armour) is what gpg itself would write: the
same subpackets in the same order (issuer fingerprint and creation time hashed, issuer
key id not), an old-format packet header and armour without a Version header. Ed25519
and RSA PKCS#1 v1.5 signatures are deterministic, so a signature made here and one made
by `gpg --detach-sign --armor` at the same second are the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# OpenPGP public-key algorithm ids (RFC 4880 §9.1; 22 is EdDSA, RFC 9580's legacy id).
RSA = 1
ECDSA = 19
EDDSA = 22
SUPPORTED = (RSA, ECDSA, EDDSA)

# OpenPGP hash ids; gpg-agent's SETHASH takes libgcrypt's ids, which are the same numbers.
SHA256, SHA384, SHA512, SHA224 = 8, 9, 10, 11
HASHES: dict[int, Callable[[], hashlib._Hash]] = {
    SHA256: hashlib.sha256, SHA384: hashlib.sha384, SHA512: hashlib.sha512, SHA224: hashlib.sha224,
}  # fmt: skip

BINARY_DOCUMENT = 0x00
_ISSUER_FINGERPRINT = 33
_CREATION_TIME = 2
_ISSUER = 16


@dataclass(frozen=True)
class PendingSignature:
    """The part of a signature packet that is hashed with the document, and its digest."""

    hashed: bytes  # version .. hashed subpackets
    digest: bytes
    hash_algorithm: int


@dataclass(frozen=True)
class SignatureFacts:
    """What a v4 signature says of how it was made: by which key, with which hashes."""

    algorithm: int
    hash_algorithm: int
    issuer_fingerprint: bytes


def dearmor(armored: str) -> bytes:
    """The bytes of an armoured block; the checksum line, when there, must match."""
    lines = armored.strip().splitlines()
    try:
        start = lines.index("") + 1
    except ValueError:
        raise ValueError("armour has no blank line after its header") from None
    body = [line for line in lines[start:] if not line.startswith("-----")]
    checksum = body.pop()[1:] if body and body[-1].startswith("=") else None
    data = base64.b64decode("".join(body), validate=True)
    if checksum is not None and base64.b64decode(checksum) != struct.pack(">I", crc24(data))[1:]:
        raise ValueError("armour checksum does not match")
    return data


def facts(signature: bytes) -> SignatureFacts:
    """Read one v4 signature packet's algorithm, hash and issuer fingerprint subpacket."""
    if not signature or not signature[0] & 0x80:
        raise ValueError("not an OpenPGP packet")
    if signature[0] & 0x40:  # new format
        raise ValueError("new-format packets are not read here")
    if (signature[0] >> 2) & 0xF != 2:
        raise ValueError("not a signature packet")
    size = 1 << (signature[0] & 3)
    body = signature[1 + size :]
    if len(body) < 6 or body[0] != 4:
        raise ValueError("not a version 4 signature")
    hashed_len = struct.unpack(">H", body[4:6])[0]
    subpackets = body[6 : 6 + hashed_len]
    issuer = b""
    pos = 0
    while pos < len(subpackets):
        length = subpackets[pos]
        if length >= 192:
            raise ValueError("long subpackets are not read here")
        if subpackets[pos + 1] & 0x7F == _ISSUER_FINGERPRINT and subpackets[pos + 2] == 4:
            issuer = subpackets[pos + 3 : pos + 1 + length]
        pos += 1 + length
    if len(issuer) != 20:
        raise ValueError("the signature names no v4 issuer fingerprint")
    return SignatureFacts(body[2], body[3], issuer)


def _subpacket(kind: int, body: bytes) -> bytes:
    size = len(body) + 1
    assert size < 192, "subpackets here are short"
    return bytes((size, kind)) + body


def hashed_part(fingerprint: bytes, algorithm: int, created: int, hash_algorithm: int) -> bytes:
    """Version 4, binary document, then the issuer fingerprint and creation time."""
    subpackets = _subpacket(_ISSUER_FINGERPRINT, b"\x04" + fingerprint) + _subpacket(
        _CREATION_TIME, struct.pack(">I", created)
    )
    return (
        bytes((4, BINARY_DOCUMENT, algorithm, hash_algorithm))
        + struct.pack(">H", len(subpackets))
        + subpackets
    )


def prepare(
    payload: bytes, fingerprint: bytes, algorithm: int, created: int, hash_algorithm: int = SHA256
) -> PendingSignature:
    """What the signer must sign: the digest of the payload and the packet's hashed part."""
    if algorithm not in SUPPORTED:
        raise ValueError(f"public-key algorithm {algorithm} is not supported")
    if hash_algorithm not in HASHES:
        raise ValueError(f"hash algorithm {hash_algorithm} is not supported")
    hashed = hashed_part(fingerprint, algorithm, created, hash_algorithm)
    digest = HASHES[hash_algorithm]()
    digest.update(payload)
    digest.update(hashed)
    digest.update(b"\x04\xff" + struct.pack(">I", len(hashed)))
    return PendingSignature(hashed, digest.digest(), hash_algorithm)


def mpi(value: bytes) -> bytes:
    """A multiprecision integer: its bit count, then its bytes without leading zeros."""
    stripped = value.lstrip(b"\x00")
    bits = len(stripped) * 8 - (8 - stripped[0].bit_length()) if stripped else 0
    return struct.pack(">H", bits) + stripped


def packet(pending: PendingSignature, fingerprint: bytes, values: Sequence[bytes]) -> bytes:
    """The signature packet: hashed part, issuer key id, digest prefix, the values as MPIs."""
    unhashed = _subpacket(_ISSUER, fingerprint[-8:])
    body = (
        pending.hashed
        + struct.pack(">H", len(unhashed))
        + unhashed
        + pending.digest[:2]
        + b"".join(mpi(v) for v in values)
    )
    return _header(2, len(body)) + body


def _header(tag: int, length: int) -> bytes:
    """An old-format packet header, as gpg writes signatures."""
    if length < 0x100:
        return bytes((0x80 | tag << 2, length))
    if length < 0x10000:
        return bytes((0x80 | tag << 2 | 1,)) + struct.pack(">H", length)
    return bytes((0x80 | tag << 2 | 2,)) + struct.pack(">I", length)


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24 = _crc24_table()


def crc24(data: bytes) -> int:
    """The armour checksum (RFC 4880 §6.1), a byte at a time from a table."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24[(crc >> 16) ^ byte]
    return crc


def armor(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    checksum = base64.b64encode(struct.pack(">I", crc24(data))[1:]).decode("ascii")
    return (
        "-----BEGIN PGP SIGNATURE-----\n\n"
        + "\n".join(lines)
        + f"\n={checksum}\n-----END PGP SIGNATURE-----\n"
    )


def parse_sexp(data: bytes) -> list[object]:
    """A canonical S-expression (what gpg-agent answers) as nested lists of bytes."""
    stack: list[list[object]] = [[]]
    pos = 0
    while pos < len(data):
        char = data[pos : pos + 1]
        if char == b"(":
            stack.append([])
            pos += 1
        elif char == b")":
            if len(stack) < 2:
                raise ValueError("unbalanced S-expression")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif char.isdigit():
            colon = data.index(b":", pos)
            size = int(data[pos:colon])
            atom = data[colon + 1 : colon + 1 + size]
            if len(atom) != size:
                raise ValueError("truncated S-expression")
            stack[-1].append(atom)
            pos = colon + 1 + size
        else:
            raise ValueError(f"unexpected byte {char!r} in S-expression at {pos}")
    if len(stack) != 1 or len(stack[0]) != 1 or not isinstance(stack[0][0], list):
        raise ValueError("not one S-expression")
    return stack[0][0]


_VALUE_NAMES = {
    RSA: (b"rsa", (b"s",)), ECDSA: (b"ecdsa", (b"r", b"s")), EDDSA: (b"eddsa", (b"r", b"s")),
}  # fmt: skip


def signature_values(sexp: bytes, algorithm: int) -> list[bytes]:
    """The values of `(sig-val (eddsa (r ..) (s ..)))` and its kin, in packet order."""
    tree = parse_sexp(sexp)
    if not tree or tree[0] != b"sig-val" or len(tree) < 2 or not isinstance(tree[1], list):
        raise ValueError("not a sig-val S-expression")
    name, wanted = _VALUE_NAMES[algorithm]
    inner = tree[1]
    if inner[0] != name:
        raise ValueError(f"gpg-agent signed with {inner[0]!r}, expected {name!r}")
    found = {
        item[0]: item[1]
        for item in inner[1:]
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], bytes)
    }
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ValueError(f"sig-val lacks {missing[0]!r}")
    return [found[n] for n in wanted]
