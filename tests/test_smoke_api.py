"""Registering an artifact writes one signed commit with trailers on the remote."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from bot.config import Settings
from tests.helpers import artifact_body, bearer, commits_since, git, trailers, verify_commit


def test_register_creates_signed_commit(
    client: FlaskClient, tokens: dict[str, str], remote: Path, settings: Settings
) -> None:
    base = git(remote, "rev-parse", "main").strip()
    resp = client.post(
        "/api/v1/artifacts",
        json=artifact_body(),
        headers={**bearer(tokens["ci"]), "X-Correlation-ID": "corr-1"},
    )
    assert resp.status_code == 201, resp.json
    new = commits_since(remote, base)
    assert new == [resp.json["commit"]]
    verify_commit(remote, new[0], settings.gnupghome)
    assert trailers(remote, new[0])["Ritmo-Correlation-Id"] == "corr-1"
