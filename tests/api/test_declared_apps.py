"""An artifact's name must be an app the policy declares, by name or glob pattern: CI
cannot make up apps (each is a row on every view, a cost on every read). Issue 14, item 5."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.policy.load import default_policy
from bot.policy.model import Policy
from tests.helpers import artifact_body, bearer, remote_refs

DECLARED = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
promotion_rules:
  - {from: dev, to: staging}
apps:
  web: {}
  "team-*": {overlay: "teams/{app}/{env}/kustomization.yaml"}
"""


@pytest.fixture
def remote_policy() -> str:
    return DECLARED


def _post(client: FlaskClient, token: str, name: str) -> tuple[int, dict[str, object]]:
    resp = client.post("/api/v1/artifacts", json=artifact_body(name=name), headers=bearer(token))
    return resp.status_code, resp.get_json()


def test_an_undeclared_app_is_refused_naming_the_known_apps(
    client: FlaskClient, tokens: dict[str, str], remote: Path
) -> None:
    before = remote_refs(remote)
    status, body = _post(client, tokens["ci"], "billing")
    assert status == 422, body
    (field,) = body["fields"]  # type: ignore[misc]
    assert field["field"] == "name"
    assert "'billing' is not an app the policy declares" in field["message"]
    assert "declared: web, team-*" in field["message"]
    assert "apps: {billing: {}}" in field["message"]  # the fix
    assert remote_refs(remote) == before  # nothing written


def test_declared_names_and_patterns_are_accepted(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    assert _post(client, tokens["ci"], "web")[0] == 201
    assert _post(client, tokens["ci"], "team-payments")[0] == 201
    assert _post(client, tokens["ci"], "teampayments")[0] == 422


def test_the_shipped_default_policy_takes_any_name() -> None:
    policy = default_policy()
    assert policy.declares("web") and policy.declares("anything-ci-sends")
    assert policy.app_names == ("web",)  # the pattern is no app of its own


class TestDefaultPolicyRemote:
    """No .ritmo/policy.yaml: the shipped default (`"*"`) applies, as in the quick start."""

    @pytest.fixture
    def remote_policy(self) -> None:
        return None

    def test_registration_of_any_name_works(
        self, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        assert _post(client, tokens["ci"], "made-up-name")[0] == 201


def test_a_name_wins_over_a_pattern_and_patterns_match_in_order() -> None:
    policy = Policy.model_validate(
        {
            "environments": [{"name": "dev"}],
            "apps": {
                "team-*": {"overlay": "teams/{app}/{env}/k.yaml"},
                "team-a*": {"overlay": "a/{app}/{env}/k.yaml"},
                "team-ab": {"overlay": "ab/{app}/{env}/k.yaml"},
            },
        }
    )
    assert policy.target("team-ab").path("team-ab", "dev") == "ab/team-ab/dev/k.yaml"
    assert policy.target("team-ac").path("team-ac", "dev") == "teams/team-ac/dev/k.yaml"
    assert policy.app_names == ("team-ab",)
    assert not policy.declares("web")


def test_drift_finds_the_overlay_of_an_app_declared_by_pattern() -> None:
    from bot.trust.drift import overlay_of

    policy = Policy.model_validate(
        {
            "environments": [{"name": "dev"}, {"name": "prod"}],
            "apps": {"web": {}, "team-*": {"overlay": "teams/{app}/{env}/kustomization.yaml"}},
        }
    )
    found = overlay_of(policy, "teams/team-a/prod/kustomization.yaml")
    assert found is not None and found[:2] == ("team-a", "prod")
    assert found[2].overlay == "teams/{app}/{env}/kustomization.yaml"
    web = overlay_of(policy, "apps/web/overlays/dev/kustomization.yaml")
    assert web is not None and web[:2] == ("web", "dev")
    assert overlay_of(policy, "teams/other/prod/kustomization.yaml") is None
