"""Detached OpenPGP signatures over the checksum, verified against trusted CI keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gnupg
import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.config import Settings
from bot.manifests.signing import open_gnupg
from bot.runtime import build_runtime
from tests.helpers import artifact_body, bearer, checksum, kill_gpg_agent, remote_refs, show


def _new_key(home: Path, name: str) -> tuple[gnupg.GPG, str]:
    gpg = open_gnupg(home)
    result = gpg.gen_key(
        f"Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: {name}\n"
        f"Name-Email: {name}@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    assert result.fingerprint
    return gpg, str(result.fingerprint)


@pytest.fixture(scope="module")
def ci_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A trusted CI signer and a stranger, each in their own gpg home."""
    trusted_home = tmp_path_factory.mktemp("ci-signer")
    stranger_home = tmp_path_factory.mktemp("stranger")
    trusted, trusted_fpr = _new_key(trusted_home, "ci-signer")
    stranger, stranger_fpr = _new_key(stranger_home, "stranger")
    keyring = tmp_path_factory.mktemp("keyring") / "ci-signers.asc"
    keyring.write_text(trusted.export_keys(trusted_fpr))
    yield {
        "trusted": (trusted, trusted_fpr),
        "stranger": (stranger, stranger_fpr),
        "keyring": keyring,
    }
    kill_gpg_agent(trusted_home)
    kill_gpg_agent(stranger_home)


def _sign(key: tuple[gnupg.GPG, str], data: str) -> str:
    gpg, fpr = key
    return str(gpg.sign(data, keyid=fpr, detach=True))


def _client(settings: Settings, keys: dict[str, object], required: bool) -> FlaskClient:
    _, fpr = keys["trusted"]  # type: ignore[misc]
    configured = settings.model_copy(
        update={
            "signing": settings.signing.model_copy(
                update={
                    "trusted_keyring": keys["keyring"],
                    "trusted_keys": [fpr],
                    "require_artifact_signatures": required,
                }
            )
        }
    )
    return create_app(configured, build_runtime(configured)).test_client()


class TestOptionalSignatures:
    """Signatures are optional, but one that is sent must verify with a trusted key."""

    def test_trusted_signature_is_verified_and_recorded(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str], remote: Path
    ) -> None:
        client = _client(settings, ci_keys, required=False)
        body = artifact_body()
        body["signature"] = _sign(ci_keys["trusted"], body["checksum"])  # type: ignore[arg-type]
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        fpr = ci_keys["trusted"][1]  # type: ignore[index]
        assert resp.json["signature"]["status"] == "verified"
        assert resp.json["signature"]["fingerprint"] == fpr
        record = show(remote, "main:artifacts/web/1.2.3.yaml")
        assert "status: verified" in record and fpr in record
        assert "BEGIN PGP SIGNATURE" in record

    def test_resigned_resend_is_the_same_artifact(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str], remote: Path
    ) -> None:
        """A re-run CI job signs again (new bytes): still the same artifact, 200."""
        client = _client(settings, ci_keys, required=True)
        body = artifact_body()
        body["signature"] = _sign(ci_keys["trusted"], body["checksum"])  # type: ignore[arg-type]
        first = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        refs = remote_refs(remote)
        again = dict(body)
        time.sleep(1.1)  # OpenPGP timestamps have one-second resolution
        again["signature"] = _sign(ci_keys["trusted"], body["checksum"])  # type: ignore[arg-type]
        assert again["signature"] != body["signature"]
        resp = client.post("/api/v1/artifacts", json=again, headers=bearer(tokens["ci"]))
        assert resp.status_code == 200
        assert resp.json["commit"] == first.json["commit"]
        assert remote_refs(remote) == refs

    def test_unsigned_is_accepted(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str]
    ) -> None:
        client = _client(settings, ci_keys, required=False)
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 201
        assert resp.json["signature"] == {"status": "unsigned"}

    @pytest.mark.parametrize(
        ("signer", "signed_text", "reason"),
        [
            ("stranger", None, "unknown key"),
            ("trusted", checksum("another artifact"), "does not verify"),
            ("garbage", None, "does not verify"),
        ],
    )
    def test_bad_signatures_are_refused(
        self,
        settings: Settings,
        ci_keys: dict[str, object],
        tokens: dict[str, str],
        remote: Path,
        signer: str,
        signed_text: str | None,
        reason: str,
    ) -> None:
        client = _client(settings, ci_keys, required=False)
        body = artifact_body()
        if signer == "garbage":
            body["signature"] = (
                "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
            )
        else:
            key = ci_keys[signer]
            body["signature"] = _sign(key, signed_text or body["checksum"])  # type: ignore[arg-type]
        refs = remote_refs(remote)
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 422
        assert resp.json["fields"][0]["field"] == "signature"
        assert reason in resp.json["error"]
        assert remote_refs(remote) == refs


class TestRequiredSignatures:
    """With require_artifact_signatures, an unsigned artifact is refused and nothing written."""

    def test_missing_signature_is_422(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str], remote: Path
    ) -> None:
        client = _client(settings, ci_keys, required=True)
        refs = remote_refs(remote)
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 422
        assert "require_artifact_signatures" in resp.json["error"]
        assert remote_refs(remote) == refs

    def test_signed_is_201(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str]
    ) -> None:
        client = _client(settings, ci_keys, required=True)
        body = artifact_body()
        body["signature"] = _sign(ci_keys["trusted"], body["checksum"])  # type: ignore[arg-type]
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 201


class TestPolicyRequiresSignatures:
    """The policy on the branch can demand signatures and name the keys it trusts."""

    @pytest.fixture
    def remote_policy(self, ci_keys: dict[str, object]) -> str:
        _, fpr = ci_keys["trusted"]  # type: ignore[misc]
        return (
            "environments: [{name: dev}, {name: staging}]\n"
            "apps: {web: {}}\n"
            "require_artifact_signatures: true\n"
            f"trusted_keys: ['{fpr}']\n"
        )

    def test_policy_demands_and_trusts(
        self, settings: Settings, ci_keys: dict[str, object], tokens: dict[str, str], remote: Path
    ) -> None:
        # The keyring holds the CI key, but settings trust no key: the policy does.
        configured = settings.model_copy(
            update={
                "signing": settings.signing.model_copy(
                    update={"trusted_keyring": ci_keys["keyring"]}
                )
            }
        )
        client = create_app(configured, build_runtime(configured)).test_client()
        refs = remote_refs(remote)
        unsigned = client.post(
            "/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"])
        )
        assert unsigned.status_code == 422
        assert remote_refs(remote) == refs
        body = artifact_body()
        body["signature"] = _sign(ci_keys["trusted"], body["checksum"])  # type: ignore[arg-type]
        signed = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert signed.status_code == 201, signed.json
        assert signed.json["signature"]["status"] == "verified"
