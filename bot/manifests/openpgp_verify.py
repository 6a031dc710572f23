"""Verify OpenPGP v4 signatures in-process, with verdicts in git's `%G?` letters; pure.

`git log %G?` starts one gpg per commit (~6 ms here): at 20,000 commits, two minutes. Here
a signature is parsed, its key found in a keyring read once from gpg (`Key`), and checked
with `cryptography`. What this module cannot judge (a key type or packet it does not
read) is `None`, and the caller asks gpg: a verdict is never guessed.

The letters follow gpg's precedence, as git reads its status lines: a good signature that
has itself expired is X, else one by an expired key Y, else one by a revoked key R, else G
when gpg holds the key valid and U when its validity is unknown. B is bad, E is a key not
in the keyring.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from bot.manifests import openpgp

# Curve OIDs as OpenPGP writes them (RFC 4880bis §9.2), without the DER tag and length.
_ED25519 = bytes.fromhex("2b06010401da470f01")
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
}
_HASHES: dict[int, hashes.HashAlgorithm] = {
    openpgp.SHA224: hashes.SHA224(), openpgp.SHA256: hashes.SHA256(),
    openpgp.SHA384: hashes.SHA384(), openpgp.SHA512: hashes.SHA512(),
}  # fmt: skip
_PUBLIC_KEY, _PUBLIC_SUBKEY = 6, 14
_SIG_CREATED, _SIG_EXPIRES, _ISSUER, _ISSUER_FINGERPRINT = 2, 3, 16, 33


class Unreadable(ValueError):
    """Not something this module judges; gpg does."""


@dataclass(frozen=True)
class Key:
    """A public key or subkey, with what gpg says of it now."""

    fingerprint: str  # upper-case hex
    primary: str  # its primary key's fingerprint (its own, for a primary key)
    algorithm: int
    material: object  # a cryptography public key
    valid: bool = True  # gpg's validity: full, marginal or ultimate (G), else unknown (U)
    expired: bool = False
    revoked: bool = False

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


@dataclass(frozen=True)
class Verdict:
    status: str  # %G?
    signer: str  # %GF: the (sub)key that signed, when known
    primary: str  # %GP
    expires: int = 0  # when the signature itself expires (seconds since the epoch), if ever


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each packet in a binary OpenPGP stream."""
    pos = 0
    while pos < len(data):
        first = data[pos]
        if not first & 0x80:
            raise Unreadable(f"not an OpenPGP packet at byte {pos}")
        if first & 0x40:  # new format
            tag, pos = first & 0x3F, pos + 1
            body = bytearray()
            while True:
                octet = data[pos]
                if octet < 192:
                    size, pos = octet, pos + 1
                elif octet < 224:
                    size, pos = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2
                elif octet == 255:
                    size, pos = struct.unpack(">I", data[pos + 1 : pos + 5])[0], pos + 5
                else:  # a partial length: another chunk follows
                    size = 1 << (octet & 0x1F)
                    body += data[pos + 1 : pos + 1 + size]
                    pos += 1 + size
                    continue
                body += data[pos : pos + size]
                pos += size
                break
            yield tag, bytes(body)
            continue
        tag, kind = (first >> 2) & 0xF, first & 3
        if kind == 3:
            yield tag, data[pos + 1 :]
            return
        width = 1 << kind
        size = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
        start = pos + 1 + width
        if start + size > len(data):
            raise Unreadable("a packet runs past the end of the data")
        yield tag, data[start : start + size]
        pos = start + size


def _mpi(body: bytes, pos: int, *, canonical: bool = False) -> tuple[bytes, int]:
    bits = struct.unpack(">H", body[pos : pos + 2])[0]
    end = pos + 2 + (bits + 7) // 8
    if end > len(body):
        raise Unreadable("an MPI runs past the end of its packet")
    value = body[pos + 2 : end]
    # A signature's values as gpg writes them: the exact bit count, no leading zero. Any
    # other spelling of the same number goes to gpg, so no second encoding reads G here.
    exact = (len(value) - 1) * 8 + value[0].bit_length() if value else 0
    if canonical and bits != exact:
        raise Unreadable("a signature value is not written as gpg writes it")
    return value, end


def _oid(body: bytes, pos: int) -> tuple[bytes, int]:
    size = body[pos]
    return body[pos + 1 : pos + 1 + size], pos + 1 + size


def key_material(body: bytes) -> tuple[str, int, object | None]:
    """(fingerprint, algorithm, public key) of a v4 key packet's body; the key is None for
    algorithms that only encrypt, or that this module does not read."""
    import hashlib

    if not body or body[0] != 4:
        raise Unreadable("not a version 4 key")
    fingerprint = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).hexdigest().upper()
    algorithm = body[5]
    material: object | None = None
    if algorithm == openpgp.RSA:
        n, pos = _mpi(body, 6)
        e, _ = _mpi(body, pos)
        material = rsa.RSAPublicNumbers(
            int.from_bytes(e, "big"), int.from_bytes(n, "big")
        ).public_key()
    elif algorithm == openpgp.EDDSA:
        oid, pos = _oid(body, 6)
        point, _ = _mpi(body, pos)
        if oid == _ED25519 and len(point) == 33 and point[0] == 0x40:
            material = ed25519.Ed25519PublicKey.from_public_bytes(point[1:])
    elif algorithm == openpgp.ECDSA:
        oid, pos = _oid(body, 6)
        point, _ = _mpi(body, pos)
        curve = _CURVES.get(oid)
        if curve is not None:
            material = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    return fingerprint, algorithm, material


@dataclass(frozen=True)
class Signature:
    algorithm: int
    hash_algorithm: int
    hashed: bytes  # the packet's hashed part: version .. hashed subpackets
    created: int
    expires: int  # seconds after `created`; 0 never
    issuer_fingerprint: str
    issuer: str  # key id, upper-case hex
    left16: bytes
    values: tuple[bytes, ...]


def _subpackets(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        first = data[pos]
        if first < 192:
            size, pos = first, pos + 1
        elif first < 255:
            size, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
        else:
            size, pos = struct.unpack(">I", data[pos + 1 : pos + 5])[0], pos + 5
        if size == 0 or pos + size > len(data):
            raise Unreadable("a subpacket runs past its area")
        yield data[pos] & 0x7F, data[pos + 1 : pos + size]
        pos += size


def parse_signature(armored: str) -> Signature:
    """The one v4 signature packet of an armoured detached signature."""
    try:
        found = list(packets(openpgp.dearmor(armored)))
    except (ValueError, IndexError, struct.error) as exc:
        raise Unreadable(f"unreadable signature: {exc}") from None
    if len(found) != 1 or found[0][0] != 2:
        raise Unreadable("not one signature packet")
    body = found[0][1]
    try:
        if body[0] != 4 or body[1] != openpgp.BINARY_DOCUMENT:
            raise Unreadable("not a version 4 signature over a binary document")
        hashed_len = struct.unpack(">H", body[4:6])[0]
        hashed_area = body[6 : 6 + hashed_len]
        pos = 6 + hashed_len
        unhashed_len = struct.unpack(">H", body[pos : pos + 2])[0]
        unhashed_area = body[pos + 2 : pos + 2 + unhashed_len]
        pos += 2 + unhashed_len
        left16 = body[pos : pos + 2]
        pos += 2
        values = []
        while pos < len(body):
            value, pos = _mpi(body, pos, canonical=True)
            values.append(value)
    except (IndexError, struct.error) as exc:
        raise Unreadable(f"truncated signature packet: {exc}") from None
    try:
        hashed = list(_subpackets(hashed_area))
        unhashed = list(_subpackets(unhashed_area))
    except (IndexError, struct.error) as exc:  # a length octet at the end of its area
        raise Unreadable(f"truncated subpacket: {exc}") from None
    created = expires = 0
    issuer_fingerprint = issuer = ""
    for kind, data in hashed:
        if kind == _SIG_CREATED and len(data) == 4:
            created = struct.unpack(">I", data)[0]
        elif kind == _SIG_EXPIRES and len(data) == 4:
            expires = struct.unpack(">I", data)[0]
        elif kind == _ISSUER_FINGERPRINT and len(data) == 21 and data[0] == 4:
            issuer_fingerprint = data[1:].hex().upper()
        elif kind == _ISSUER and len(data) == 8:
            issuer = data.hex().upper()
    for kind, data in unhashed:  # not covered by the signature: a hint
        if kind == _ISSUER and len(data) == 8 and not issuer:
            issuer = data.hex().upper()
    return Signature(
        algorithm=body[2], hash_algorithm=body[3], hashed=body[: 6 + hashed_len],
        created=created, expires=expires, issuer_fingerprint=issuer_fingerprint,
        issuer=issuer or issuer_fingerprint[-16:], left16=left16, values=tuple(values),
    )  # fmt: skip


def _checks(key: Key, signature: Signature, digest: bytes) -> bool:
    chosen = _HASHES[signature.hash_algorithm]
    material = key.material
    try:
        if isinstance(material, ed25519.Ed25519PublicKey) and len(signature.values) == 2:
            r, s = (v.rjust(32, b"\x00") for v in signature.values)
            material.verify(r + s, digest)
        elif isinstance(material, rsa.RSAPublicKey) and len(signature.values) == 1:
            value = signature.values[0].rjust((material.key_size + 7) // 8, b"\x00")
            material.verify(value, digest, padding.PKCS1v15(), Prehashed(chosen))
        elif isinstance(material, ec.EllipticCurvePublicKey) and len(signature.values) == 2:
            r_int, s_int = (int.from_bytes(v, "big") for v in signature.values)
            dss = encode_dss_signature(r_int, s_int)
            material.verify(dss, digest, ec.ECDSA(Prehashed(chosen)))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verdict(payload: bytes, armored: str, keys: Mapping[str, Key], now: int) -> Verdict | None:
    """What gpg would say of `armored` over `payload`, in `%G?` letters; None when this
    module cannot tell (then ask gpg). `keys`: by fingerprint and by key id."""
    try:
        signature = parse_signature(armored)
    except Unreadable:
        return None
    if signature.hash_algorithm not in _HASHES:
        return None
    key = keys.get(signature.issuer_fingerprint) or keys.get(signature.issuer)
    if key is None:
        return Verdict("E", "", "") if signature.issuer else None  # as git: no key named
    if key.material is None or key.algorithm != signature.algorithm:
        return None
    hasher = hashes.Hash(_HASHES[signature.hash_algorithm])
    hasher.update(payload)
    hasher.update(signature.hashed)
    hasher.update(b"\x04\xff" + struct.pack(">I", len(signature.hashed)))
    digest = hasher.finalize()
    primary = keys.get(key.primary, key)
    if digest[:2] != signature.left16 or not _checks(key, signature, digest):
        return Verdict("B", "", "")  # gpg names no key for a bad signature (no VALIDSIG)
    if signature.expires and signature.created + signature.expires <= now:
        status = "X"
    elif key.expired or primary.expired:
        status = "Y"
    elif key.revoked or primary.revoked:
        status = "R"
    else:
        status = "G" if primary.valid else "U"
    expires = signature.created + signature.expires if signature.expires else 0
    return Verdict(status, key.fingerprint, key.primary, expires)
