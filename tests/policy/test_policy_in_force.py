"""The policy in force (issue 13, findings 1 and 6): only trusted commits move it.

Real git, real gpg, the app: a person's unsigned edit of .ritmo/policy.yaml is not
obeyed (ALERT, `ritmo verify` names it); one signed by a policy key is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.cli import main
from bot.config import ConfigError, Settings, load_settings
from bot.manifests.signing import open_gnupg
from bot.runtime import Runtime, build_runtime
from tests.helpers import (
    TWO_APPROVERS_POLICY,
    artifact_body,
    bearer,
    git,
    kill_gpg_agent,
    remote_refs,
    trailers,
    verify_commit,
)

# The same policy with production open to direct promotion: what an attacker pushes.
WEAKENED = TWO_APPROVERS_POLICY.replace(
    """    requires_approval: true
    approvals: [{group: ops-team, count: 1}, {group: security-team, count: 1}]
""",
    "    requires_approval: false\n",
)


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


@pytest.fixture(scope="module")
def platform_lead(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """A person's own gpg key, allowed to change policy: (home, fingerprint, public key file)."""
    home = tmp_path_factory.mktemp("lead-gnupg")
    gpg = open_gnupg(home)
    made = gpg.gen_key(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Platform Lead\n"
        "Name-Email: lead@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    assert made.fingerprint, made.stderr
    public = home / "lead.asc"
    public.write_text(gpg.export_keys(str(made.fingerprint)))
    yield home, str(made.fingerprint), public
    kill_gpg_agent(home)


@pytest.fixture
def settings_overrides(platform_lead: tuple[Path, str, Path]) -> dict[str, Any]:
    _, fingerprint, public = platform_lead
    return {"signing": {"policy_keys": [fingerprint], "policy_keyring": str(public)}}


def _push_policy(
    remote: Path, tmp_path: Path, text: str, sign_with: tuple[Path, str] | None = None
) -> str:
    """A person edits .ritmo/policy.yaml and pushes to main; the new commit's sha."""
    work = tmp_path / "person"
    if not work.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(work))
    git(work, "pull", "--quiet", "--ff-only")
    (work / ".ritmo" / "policy.yaml").write_text(text)
    who = ["-c", "user.name=Mallory", "-c", "user.email=mallory@example.com"]
    env = None
    if sign_with is not None:
        home, fingerprint = sign_with
        who = ["-c", "user.name=Platform Lead", "-c", "user.email=lead@example.com",
               "-c", f"user.signingkey={fingerprint}"]  # fmt: skip
        env = {"GNUPGHOME": str(home)}
    sign = ["-S"] if sign_with else ["--no-gpg-sign"]
    git(work, *who, "commit", "--quiet", *sign, "-am", "Production without approvals", env=env)
    git(work, "push", "--quiet", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def _in_staging(client: FlaskClient, tokens: dict[str, str], version: str = "2.0.0") -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(tokens["ci"])
    )
    assert resp.status_code == 201 and resp.json["promotion_status"] == "staging", resp.json
    return str(resp.json["id"])


def _promote(client: FlaskClient, tokens: dict[str, str], art: str) -> Any:
    return client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(tokens["promoter"]),
    )


def _verify(settings: Settings) -> Any:
    env = {
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
        "RITMO_SIGNING__POLICY_KEYS": f'["{settings.signing.policy_keys[0]}"]',
        "RITMO_SIGNING__POLICY_KEYRING": str(settings.signing.policy_keyring),
    }
    return CliRunner(env=env).invoke(main, ["verify"])


class TestAdoption:
    def test_first_start_adopts_the_tip_policy_in_one_signed_commit(
        self, runtime: Runtime, remote: Path, settings: Settings
    ) -> None:
        tip = git(remote, "rev-parse", "main").strip()
        said = trailers(remote, tip)
        blob = git(remote, "rev-parse", "main:.ritmo/policy.yaml").strip()
        assert said == {"Ritmo-Policy-Adopted": "yes", "Ritmo-Policy": blob}
        verify_commit(remote, tip, settings.gnupghome)
        assert git(remote, "rev-list", "--count", "main").strip() == "2"  # seed + adoption
        assert runtime.policy.adopted() and runtime.policy.untrusted_commits() == []
        # A restart (and a second replica) reads the adoption from git: no second one.
        again = build_runtime(settings)
        again.close()
        assert git(remote, "rev-parse", "main").strip() == tip

    @pytest.mark.parametrize("remote_policy", [None])
    def test_no_policy_file_adopts_the_shipped_default_written_there(
        self, runtime: Runtime, remote: Path
    ) -> None:
        from bot.policy.load import DEFAULT_POLICY_PATH

        written = git(remote, "show", "main:.ritmo/policy.yaml")
        assert written == DEFAULT_POLICY_PATH.read_text()
        assert trailers(remote, "main")["Ritmo-Policy-Adopted"] == "yes"

    def test_a_missing_policy_key_refuses_to_start(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        empty = tmp_path / "empty.asc"
        empty.write_text("")
        bad = load_settings(
            None,
            data_dir=settings.data_dir,
            manifests={"url": settings.remote_url},
            signing={
                "gnupghome": str(settings.signing.gnupghome),
                "key": settings.signing.key,
                "policy_keys": ["A" * 40],
                "policy_keyring": str(empty),
            },
        )
        with pytest.raises(ConfigError, match=r"^setting signing.policy_keys .*AAAA"):
            build_runtime(bad)
        gone = bad.model_copy(
            update={"signing": bad.signing.model_copy(update={"policy_keyring": tmp_path / "no"})}
        )
        with pytest.raises(ConfigError, match=r"^setting signing.policy_keyring .*no: No such"):
            build_runtime(gone)


class TestUntrustedPolicy:
    def test_unsigned_policy_edit_is_not_obeyed_alerted_and_named_by_verify(
        self,
        runtime: Runtime,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        tmp_path: Path,
        settings: Settings,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        art = _in_staging(client, tokens)
        bad = _push_policy(remote, tmp_path, WEAKENED)
        with caplog.at_level(logging.ERROR):
            runtime.writer.sync()  # Ritmo fetches (a push webhook or the scheduler)
            runtime.writer.sync()  # and again: still one alert for the commit
            runtime.drift.settle()  # the drift record (a signed empty commit) has landed
        alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT ")]
        assert len(alerts) == 1 and bad in alerts[0] and "without a signature" in alerts[0]
        refused = [r.getMessage() for r in caplog.records if "it is not obeyed" in r.getMessage()]
        assert len(refused) == 1 and bad in refused[0] and "not signed" in refused[0]
        assert trailers(remote, "main")["Ritmo-Drift-Commit"] == bad
        assert runtime.policy.untrusted_commits() == [bad]

        before = remote_refs(remote)["refs/heads/main"]
        resp = _promote(client, tokens, art)
        # The trusted policy still asks for approval: a request, not a direct pin.
        assert resp.status_code == 202, resp.json
        assert resp.json["status"] == "pending"
        assert "Ritmo-Promotion" not in trailers(remote, "main")
        assert remote_refs(remote)["refs/heads/main"] == before

        result = _verify(settings)
        assert result.exit_code == 1, result.output
        assert f"{bad} untrusted-policy:" in result.output

    def test_restart_reaches_the_same_decision(
        self, runtime: Runtime, remote: Path, tmp_path: Path, settings: Settings
    ) -> None:
        bad = _push_policy(remote, tmp_path, WEAKENED)
        runtime.close()
        again = build_runtime(settings)
        try:
            assert again.policy.untrusted_commits() == [bad]
            rule = again.policy().rule("web", "staging", "production")
            assert rule is not None and rule.requires_approval
        finally:
            again.close()

    def test_commit_signed_by_a_policy_key_is_obeyed(
        self,
        runtime: Runtime,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        tmp_path: Path,
        settings: Settings,
        platform_lead: tuple[Path, str, Path],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        art = _in_staging(client, tokens)
        home, fingerprint, _ = platform_lead
        good = _push_policy(remote, tmp_path, WEAKENED, sign_with=(home, fingerprint))
        with caplog.at_level(logging.ERROR):
            runtime.writer.sync()
        assert not [r for r in caplog.records if r.getMessage().startswith("ALERT ")]
        assert runtime.policy.untrusted_commits() == []
        resp = _promote(client, tokens, art)
        assert resp.status_code == 201, resp.json
        assert resp.json["status"] == "promoted"
        result = _verify(settings)
        assert result.exit_code == 0, result.output
        assert good not in result.output


class TestFirstEnvironment:
    BRANCH_POLICY = """\
environments:
  - {name: development, auto_promote: true}
  - {name: qa}
  - {name: production}
promotion_rules:
  - {from: development, to: qa}
  - {from: qa, to: production, requires_approval: true,
     approvals: [{group: ops-team, count: 1}]}
apps:
  web: {}
"""

    @pytest.mark.parametrize("remote_policy", [BRANCH_POLICY])
    def test_new_artifact_starts_in_the_branch_policy_first_environment(
        self, runtime: Runtime, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        # No image: the record alone, no pin (the scaffold has no `development` overlay).
        body = artifact_body(version="0.9.0")
        del body["image"]
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        assert resp.json["promotion_status"] == "development"
        got = client.get(f"/api/v1/artifacts/{resp.json['id']}", headers=bearer(tokens["ci"]))
        assert got.json["promotion_status"] == "development"


def test_signed_policy_keys_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"signing.policy_keys .*40-hex"):
        load_settings(None, signing={"policy_keys": ["not-a-fingerprint"]})


class TestVouching:
    def test_a_ritmo_signed_ritmo_policy_puts_a_hand_change_in_force(
        self,
        runtime: Runtime,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        tmp_path: Path,
        settings: Settings,
    ) -> None:
        from bot.manifests.writer import Edit

        art = _in_staging(client, tokens)
        bad = _push_policy(remote, tmp_path, WEAKENED)
        runtime.writer.sync()
        assert runtime.policy.untrusted_commits() == [bad]
        blob = git(remote, "rev-parse", f"{bad}:.ritmo/policy.yaml").strip()

        class Vouch:  # what Ritmo writes when it accepts a policy PR a person merged
            def plan(self, read: Any) -> Edit:
                return Edit({}, f"Accept the policy in {bad}\n\nRitmo-Policy: {blob}\n")

        vouch = runtime.writer.write(Vouch()).commit
        assert vouch is not None
        verify_commit(remote, vouch, settings.gnupghome)
        assert runtime.policy.untrusted_commits() == []
        resp = _promote(client, tokens, art)
        assert resp.status_code == 201, resp.json
        result = _verify(settings)
        assert result.exit_code == 0, result.output


def test_two_replicas_starting_together_adopt_once(
    remote: Path, signing_key: tuple[Path, str], tmp_path: Path
) -> None:
    import threading

    home, fingerprint = signing_key
    seed = git(remote, "rev-parse", "main").strip()
    made: list[Runtime] = []
    errors: list[BaseException] = []

    def start(name: str) -> None:
        settings = load_settings(
            None,
            data_dir=tmp_path / name,
            manifests={"url": str(remote)},
            signing={"gnupghome": str(home), "key": fingerprint},
        )
        try:
            made.append(build_runtime(settings))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        line = git(remote, "rev-list", f"{seed}..main").split()
        assert len(line) == 1 and trailers(remote, line[0])["Ritmo-Policy-Adopted"] == "yes"
        assert all(rt.policy.adopted() for rt in made)
    finally:
        for rt in made:
            rt.close()
            kill_gpg_agent(rt.settings.data_dir / "trusted-gnupg")


def test_verify_names_a_signed_direct_pin_the_trusted_policy_did_not_allow(
    runtime: Runtime, client: FlaskClient, tokens: dict[str, str], settings: Settings
) -> None:
    """A Ritmo-signed direct pin into production (no request) under a policy that asks for
    approval: what a Ritmo that obeyed an untrusted policy would have written."""
    from bot.promotions.service import PromotionInput

    art = _in_staging(client, tokens)
    indexed = runtime.index.get(art)
    assert indexed is not None
    # Straight to the writer, past PromotionService.check: signed, but never allowed.
    change = runtime.promotions.pin_change(
        indexed.record, PromotionInput("staging", "production"), "release-bot", "c-1", auto=False
    )
    pinned = runtime.writer.write(change).commit
    assert pinned is not None
    result = _verify(settings)
    assert result.exit_code == 1, result.output
    assert f"{pinned} policy-not-held: pins web 2.0.0 staging -> production directly" in (
        result.output
    )
