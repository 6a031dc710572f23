"""The X-Hub-Signature-256 check, over the raw body, in constant time (pure)."""

from __future__ import annotations

import hashlib
import hmac


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is GitHub's HMAC-SHA256 of `body` under `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 401).
    given = header.encode("utf-8", "replace")
    return hmac.compare_digest(signature_for(secret, body).encode("ascii"), given)
