"""Git objects as git stores them: their ids, and packs of them for `git index-pack`."""

from __future__ import annotations

import hashlib
import struct
import zlib

_PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}


def object_id(kind: str, data: bytes) -> str:
    """The sha git gives an object of this kind and content."""
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def pack(objects: list[tuple[str, bytes]]) -> bytes:
    """A version-2 pack of whole (undeltified) objects, as `git index-pack --stdin` reads."""
    out = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    for kind, data in objects:
        size = len(data)
        byte = (_PACK_TYPES[kind] << 4) | (size & 0x0F)
        size >>= 4
        while size:
            out.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        out.append(byte)
        out += zlib.compress(data, 1)
    out += hashlib.sha1(out).digest()
    return bytes(out)
