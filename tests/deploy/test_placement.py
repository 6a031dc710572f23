"""deploy/placement.py's pure parts as a table: deploy names to (app, env), overlay matches.

`place` itself reads a git mirror and is covered by the deployment integration tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.deploy.placement import PlacementError, _pins, app_environment
from bot.policy.model import AppTarget, Policy
from bot.store.artifact_record import ArtifactRecord

ENVS = [{"name": "dev"}, {"name": "staging"}, {"name": "prod"}]


def policy(apps: dict[str, Any] | None = None, envs: list[dict[str, str]] = ENVS) -> Policy:
    return Policy.model_validate({"environments": envs, "apps": apps or {}})


@pytest.mark.parametrize(
    ("pol", "name", "known", "expected"),
    [
        (policy(), "web-staging", ["web"], ("web", "staging")),
        (policy(), "web-prod", ["api", "web"], ("web", "prod")),
        # An app the policy names is found without any artifact of it.
        (policy({"web": {}}), "web-dev", [], ("web", "dev")),
        # A hyphenated app name.
        (policy(), "checkout-api-prod", ["checkout-api"], ("checkout-api", "prod")),
        # deploy_name overrides the default {app}-{env}, and then the default no longer matches.
        (policy({"web": {"deploy_name": "{env}-frontend"}}), "prod-frontend", [], ("web", "prod")),
        # Ambiguity: "a-b" in "c" and "a" in "b-c" both deploy as "a-b-c". Policy apps win,
        # then known apps in order, each trying environments in policy order.
        (
            policy(envs=[{"name": "c"}, {"name": "b-c"}]),
            "a-b-c",
            ["a-b", "a"],
            ("a-b", "c"),
        ),
        (
            policy(envs=[{"name": "c"}, {"name": "b-c"}]),
            "a-b-c",
            ["a", "a-b"],
            ("a", "b-c"),
        ),
        (policy({"a": {}}, envs=[{"name": "c"}, {"name": "b-c"}]), "a-b-c", ["a-b"], ("a", "b-c")),
    ],
)
def test_app_environment(
    pol: Policy, name: str, known: list[str], expected: tuple[str, str]
) -> None:
    assert app_environment(pol, name, known) == expected


@pytest.mark.parametrize(
    ("pol", "name", "known"),
    [
        (policy(), "web-staging", []),  # no app known at all
        (policy(), "web-qa", ["web"]),  # no such environment
        (policy(), "web", ["web"]),
        (policy(), "", ["web"]),
        (policy(), "WEB-prod", ["web"]),  # names are compared exactly
        (policy({"web": {"deploy_name": "{env}-frontend"}}), "web-prod", []),
    ],
)
def test_app_environment_refuses(pol: Policy, name: str, known: list[str]) -> None:
    with pytest.raises(PlacementError) as raised:
        app_environment(pol, name, known)
    assert raised.value.field == "name"
    assert repr(name) in raised.value.message
    assert "deploy_name" in raised.value.message


REPO = "registry.example/web"
DIGEST = "sha256:" + "e" * 64
KUSTOMIZE = f"images:\n- name: {REPO}\n  newTag: 1.2.3\n"


def rec(image: str | None) -> ArtifactRecord:
    return ArtifactRecord("art-1", "web", "1.2.3", "2026-12-04T10:00:00Z", image=image)


@pytest.mark.parametrize(
    ("target", "text", "record", "pins"),
    [
        (AppTarget(), KUSTOMIZE, rec(f"{REPO}:1.2.3"), True),
        (AppTarget(), KUSTOMIZE, rec(f"{REPO}:1.2.4"), False),
        # Same tag, another repository: not this artifact.
        (AppTarget(), KUSTOMIZE, rec("registry.example/api:1.2.3"), False),
        (
            AppTarget(),
            f"images:\n- name: {REPO}\n  digest: {DIGEST}\n",
            rec(f"{REPO}@{DIGEST}"),
            True,
        ),
        (AppTarget(), KUSTOMIZE, rec(f"{REPO}@{DIGEST}"), False),
        # Records that cannot be pinned never match; they do not raise.
        (AppTarget(), KUSTOMIZE, rec(None), False),
        (AppTarget(), KUSTOMIZE, rec(""), False),
        (AppTarget(), KUSTOMIZE, rec("not an image!"), False),
        (AppTarget(field="digest"), KUSTOMIZE, rec(f"{REPO}:1.2.3"), False),
        # An overlay that is not YAML matches nothing.
        (AppTarget(), "images: [\n", rec(f"{REPO}:1.2.3"), False),
        (
            AppTarget(image="web"),
            "images:\n- name: web\n  newTag: 1.2.3\n",
            rec(f"{REPO}:1.2.3"),
            True,
        ),
        (AppTarget(kind="helm"), "image:\n  tag: 1.2.3\n", rec(f"{REPO}:1.2.3"), True),
        # Helm holds no repository: any image with that tag matches.
        (AppTarget(kind="helm"), "image:\n  tag: 1.2.3\n", rec("other.example/x:1.2.3"), True),
        # A YAML number in a hand-edited values file still reads as its text.
        (AppTarget(kind="helm"), "image:\n  tag: 7\n", rec(f"{REPO}:7"), True),
    ],
)
def test_pins(target: AppTarget, text: str, record: ArtifactRecord, pins: bool) -> None:
    assert _pins(target, text, record) is pins
