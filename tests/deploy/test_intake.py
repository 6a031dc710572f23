"""Intake authentication: Flux's generic-hmac signatures and ArgoCD's token header. The
parsers are tested in tests/deploy/test_argocd.py and tests/deploy/test_flux_intake.py."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from bot.deploy.intake import check_flux_signature, check_token

SAMPLES = Path(__file__).resolve().parents[2] / "tests" / "samples"


def sample(kind: str, name: str) -> bytes:
    return (SAMPLES / kind / f"{name}.json").read_bytes()


# ---------------------------------------------------------------------------------------
# Authentication


SECRET = "s3cr3t-hmac-key"


def signature(body: bytes, algorithm: str = "sha256", key: str = SECRET) -> str:
    return f"{algorithm}=" + hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha224", "sha256", "sha384", "sha512"])
def test_flux_signature_right(algorithm: str) -> None:
    body = sample("flux", "kustomization-succeeded")
    assert check_flux_signature(body, signature(body, algorithm), SECRET)


def test_flux_signature_tolerates_case_and_blanks() -> None:
    body = sample("flux", "kustomization-succeeded")
    algorithm, _, digest = signature(body).partition("=")
    assert check_flux_signature(body, f" {algorithm.upper()}={digest.upper()} ", SECRET)


def test_flux_signature_is_over_the_raw_body() -> None:
    body = sample("flux", "kustomization-succeeded")
    reformatted = json.dumps(json.loads(body)).encode()
    assert not check_flux_signature(reformatted, signature(body), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256",
        "=abc",
        "md5=d41d8cd98f00b204e9800998ecf8427e",  # a prefix Flux never sends
        "sha256:{digest}",  # wrong separator
        "sha512={digest}",  # right digest, wrong prefix
        "sha256={digest}00",
        "sha256={short}",  # one hex digit missing
        "sha256=zz{digest}",
        "sha256={wrong}",  # signed with another key
        "sha256={digest}, sha256={digest}",
    ],
)
def test_flux_signature_wrong_or_missing(header: str | None) -> None:
    body = sample("flux", "kustomization-succeeded")
    digest = signature(body).partition("=")[2]
    wrong = signature(body, key="another-key").partition("=")[2]
    if header is not None:
        header = header.format(digest=digest, wrong=wrong, short=digest[:-1])
    assert not check_flux_signature(body, header, SECRET)


def test_flux_signature_needs_a_secret() -> None:
    body = b"{}"
    assert not check_flux_signature(body, signature(body, key=""), "")


def test_flux_signature_non_ascii_header() -> None:
    assert not check_flux_signature(b"{}", "sha256=é" * 10, SECRET)


@pytest.mark.parametrize(
    ("given", "expected", "ok"),
    [
        ("tok-123", "tok-123", True),
        ("tok-124", "tok-123", False),
        ("tok-12", "tok-123", False),
        ("", "tok-123", False),
        (None, "tok-123", False),
        ("", "", False),  # no token configured never matches
        (None, "", False),
        ("tøken", "tøken", True),
        ("tøken", "token", False),
    ],
)
def test_check_token(given: str | None, expected: str, ok: bool) -> None:
    assert check_token(given, expected) is ok


def test_check_token_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("bot.deploy.intake.hmac.compare_digest", spy)
    assert check_token("abc", "abc")
    assert check_flux_signature(b"{}", signature(b"{}"), SECRET)
    assert len(calls) == 2
