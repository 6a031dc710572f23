"""Where the policy says things run and are pinned: environments (with their freezes and
rollback), and per app the overlay, the CD object and the source repository."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bot.policy.fields import StrictModel
from bot.policy.rules import Freeze, PromotionRule

_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
DEFAULT_OVERLAY = "apps/{app}/overlays/{env}/kustomization.yaml"
_GLOB = re.compile(r"[*?\[]")


def is_pattern(name: str) -> bool:
    """An `apps` key with glob characters (`*`, `?`, `[...]`) declares every app it matches."""
    return bool(_GLOB.search(name))


class Rollback(StrictModel):
    """What Ritmo does when a deployment into the environment fails or degrades."""

    on_failure: Literal["automatic", "manual"] = "manual"
    strategy: Literal["previous_version"] = "previous_version"
    requires_approval: bool = Field(
        default=False,
        description="A manual rollback opens a request judged by the rule into the environment.",
    )


class Environment(StrictModel):
    name: str = Field(pattern=_SLUG)
    auto_promote: bool = Field(
        default=False, description="On the first environment: pin every new artifact here."
    )
    freeze: tuple[Freeze, ...] = ()
    rollback: Rollback = Field(default_factory=Rollback)


class AppTarget(StrictModel):
    """Where and how an app's version is pinned in an environment."""

    overlay: str = DEFAULT_OVERLAY
    kind: Literal["kustomize", "helm"] = "kustomize"
    image: str | None = Field(
        default=None, description="kustomize images[].name; default: the artifact image's repo"
    )
    field: Literal["newTag", "digest"] | None = Field(
        default=None, description="kustomize: default newTag, or digest for @sha256 images"
    )
    key: str = Field(default="image.tag", description="helm: the dotted key to set")

    @field_validator("overlay")
    @classmethod
    def _overlay(cls, value: str) -> str:
        probe = value.replace("{app}", "a").replace("{env}", "e")
        if "{" in probe or probe.startswith("/") or ".." in probe.split("/"):
            raise ValueError(
                "must be a relative path inside the repository, using only {app} and {env} "
                "placeholders"
            )
        return value

    def path(self, app: str, env: str) -> str:
        return self.overlay.replace("{app}", app).replace("{env}", env)


class AppPolicy(AppTarget):
    promotion_rules: tuple[PromotionRule, ...] | None = Field(
        default=None, description="Replaces the top-level rules for this app."
    )
    deploy_name: str = Field(
        default="{app}-{env}",
        description="The ArgoCD Application or Flux object that deploys the app in {env}.",
    )
    rollback: dict[str, Rollback] = Field(
        default_factory=dict, description="environment -> rollback, over the environment's."
    )
    repository: str | None = Field(
        default=None,
        description="owner/name of the app's source repository: where GitHub Deployments go.",
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and (not _REPOSITORY.match(value) or value.endswith(("/.", "/.."))):
            raise ValueError(
                f"{value!r} is not a GitHub repository; write owner/name, e.g. acme/web"
            )
        return value

    @field_validator("deploy_name")
    @classmethod
    def _deploy_name(cls, value: str) -> str:
        probe = value.replace("{app}", "a").replace("{env}", "e")
        if "{" in probe or "}" in probe or "{env}" not in value:
            raise ValueError("must name the environment with {env}, e.g. {app}-{env}")
        return value
