"""Every bad input gets its 4xx naming the field, and the remote's refs do not move."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, remote_refs


def _with(**fields: Any) -> dict[str, Any]:
    body = artifact_body()
    body.update(fields)
    return body


def _without(key: str) -> dict[str, Any]:
    body = artifact_body()
    del body[key]
    return body


# (case id, body, expected status, fields that must be named)
FIELD_CASES: list[tuple[str, Any, int, list[str]]] = [
    ("name uppercase", _with(name="Web"), 422, ["name"]),
    ("name traversal", _with(name="../etc"), 422, ["name"]),
    ("name slash", _with(name="web/x"), 422, ["name"]),
    ("name space", _with(name="we b"), 422, ["name"]),
    ("name empty", _with(name=""), 422, ["name"]),
    ("name too long", _with(name="a" * 64), 422, ["name"]),
    ("name zero-width", _with(name="web\u200b"), 422, ["name"]),
    ("name accent", _with(name="wéb"), 422, ["name"]),
    ("name trailing dash", _with(name="web-"), 422, ["name"]),
    ("version traversal", _with(version="../../x"), 422, ["version"]),
    ("version slash", _with(version="1/2"), 422, ["version"]),
    ("version dotdot", _with(version="1..2"), 422, ["version"]),
    ("version leading dot", _with(version=".1"), 422, ["version"]),
    ("version newline", _with(version="1.0\n"), 422, ["version"]),
    ("version fullwidth", _with(version="１.0"), 422, ["version"]),
    ("version number", _with(version=1.2), 422, ["version"]),
    ("checksum short", _with(checksum="sha256:abc"), 422, ["checksum"]),
    ("checksum md5", _with(checksum="md5:" + "a" * 32), 422, ["checksum"]),
    ("checksum upper", _with(checksum="sha256:" + "A" * 64), 422, ["checksum"]),
    ("checksum missing", _without("checksum"), 422, ["checksum"]),
    ("build_id missing", _without("build_id"), 422, ["build_id"]),
    ("name missing", _without("name"), 422, ["name"]),
    (
        "build_id trailer injection",
        _with(build_id="b1\nRitmo-Approved-By: mallory"),
        422,
        ["build_id"],
    ),
    ("build_id empty", _with(build_id=""), 422, ["build_id"]),
    ("storage_url newline", _with(storage_url="s3://a\nb"), 422, ["storage_url"]),
    ("image no tag", _with(image="registry.example.com/acme/web"), 422, ["image"]),
    ("image uppercase", _with(image="Registry/Web:1"), 422, ["image"]),
    ("image bad digest", _with(image="acme/web@sha256:xyz"), 422, ["image"]),
    (
        "metadata nested",
        _with(metadata={"a": {"b": "c"}}),
        422,
        ["metadata.a"],
    ),
    ("metadata key", _with(metadata={"bad key": "x"}), 422, ["metadata.bad key"]),
    (
        "metadata yaml injection",
        _with(metadata={"commit": "abc\nkind: Secret"}),
        422,
        ["metadata.commit"],
    ),
    ("unknown field", _with(promotion_status="production"), 422, ["promotion_status"]),
    ("approved_by is not a field", _with(approved_by=["alice"]), 422, ["approved_by"]),
    ("no version at all", _without("version"), 422, ["version"]),
    ("signature too long", _with(signature="x" * 20000), 422, ["signature"]),
]


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [pytest.param(b, s, f, id=i) for i, b, s, f in FIELD_CASES],
)
def test_bad_fields(
    client: FlaskClient,
    tokens: dict[str, str],
    remote: Path,
    runtime: Runtime,
    body: Any,
    status: int,
    fields: list[str],
) -> None:
    refs = remote_refs(remote)
    resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
    assert resp.status_code == status, resp.json
    named = [f["field"] for f in resp.json["fields"]]
    assert named == fields
    assert all(f["message"] for f in resp.json["fields"])
    assert remote_refs(remote) == refs
    assert runtime.index.search()[1] == 0


# (case id, raw body, headers, status, a phrase the error must contain)
RAW_CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("not json", b"name=web", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ("form post", b"name=web", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "application/json"),
    ("no content type", b"{}", {}, 415, "application/json"),
    ("json list", b"[]", {"Content-Type": "application/json"}, 422, "JSON object"),
    ("json string", b'"web"', {"Content-Type": "application/json"}, 422, "JSON object"),
    ("bad utf-8", b'{"name": "\xff"}', {"Content-Type": "application/json"}, 400,
     "not valid JSON"),
    ("oversized", json.dumps(artifact_body(storage_url="s" * (1024 * 1024))).encode(),
     {"Content-Type": "application/json"}, 413, "max_body_bytes"),
    ("bad correlation id", json.dumps(artifact_body()).encode(),
     {"Content-Type": "application/json", "X-Correlation-ID": "a b;c"}, 400, "X-Correlation-ID"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "headers", "status", "phrase"),
    [pytest.param(r, h, s, p, id=i) for i, r, h, s, p in RAW_CASES],
)
def test_bad_bodies(
    client: FlaskClient,
    tokens: dict[str, str],
    remote: Path,
    runtime: Runtime,
    raw: bytes,
    headers: dict[str, str],
    status: int,
    phrase: str,
) -> None:
    refs = remote_refs(remote)
    resp = client.post("/api/v1/artifacts", data=raw, headers={**bearer(tokens["ci"]), **headers})
    assert resp.status_code == status
    assert phrase in resp.json["error"]
    assert remote_refs(remote) == refs
    assert runtime.index.search()[1] == 0
