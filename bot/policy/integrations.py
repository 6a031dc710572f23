"""Policy `integrations`: which other systems Ritmo tells, about which events, and how.

```yaml
integrations:
  - on: [promoted, deployed]          # required: events (one event may be a plain string)
    apps: [web]                       # optional: only these apps (default: every app)
    environments: [staging]           # optional: only events in these environments
    name: staging-deploys             # optional: a label shown by `ritmo outbox list`
    slack: {secret: slack_deploys, text: "${APP} ${VERSION} is in ${ENVIRONMENT}"}
  - on: [artifact_recorded]
    webhook:
      url: https://cd.example.com/api/v1/deployments
      method: POST                    # POST (default), PUT or PATCH
      secret: cd_token                # sent as Authorization: Bearer <secret>
      headers: {X-Team: web}          # optional, no credentials here
      body: {artifact_id: "${ARTIFACT_ID}", environment: staging, version: "${VERSION}"}
  - on: [promoted]
    github_workflow:                  # POST /repos/{o}/{r}/actions/workflows/{w}/dispatches
      repository: acme/web
      workflow: deploy.yml            # the file name, or the numeric workflow id
      ref: main                       # default main
      inputs: {version: "${VERSION}"}
      # secret: NAME (a token); default: Ritmo's GitHub App installation token
  - on: [promoted]
    repository_dispatch:              # POST /repos/{o}/{r}/dispatches
      repository: acme/web
      event_type: deploy
      client_payload: {version: "${VERSION}"}
  - on: [deployed]
    spinnaker:                        # a Gate webhook trigger
      url: https://gate.example.com/webhooks/webhook/ritmo
      secret: gate_token              # optional; sent in the header `secret_header`
      secret_header: X-Ritmo-Token    # default X-Ritmo-Token
      parameters: {version: "${VERSION}"}
  - on: [promoted]
    environments: [staging]
    update_gitops_repo:               # a signed commit in another repo, e.g. ArgoCD's
      repository: acme/gitops-manifests   # owner/name on GitHub: where the PR opens
      url: https://github.com/acme/gitops-manifests.git  # optional, see below
      branch: main                    # the branch to change, or the PR's base; default main
      path: apps/web/overlays/staging/kustomization.yaml
      image: registry.example.com/acme/web  # optional: kustomize images[].name
      set: {newTag: "${VERSION}"}     # or {digest: ...}; or, for Helm values, instead:
      # key: image.tag
      # value: "${VERSION}"
      commit_message: "Update web to ${VERSION}"   # default "Update ${APP} to ${VERSION}"
      create_pr: true                 # default true; false pushes straight to `branch`
      # secret: NAME (a token); default: Ritmo's GitHub App installation token
```

update_gitops_repo (bot.notify.gitops) edits one file of another git repository, for
GitOps set-ups where ArgoCD or Flux watch a repo other than Ritmo's: with `set`, the
images[] entry named `image` of a kustomization (default: the artifact image's
repository, without tag); with `key` + `value`, a dotted key of a Helm values file.
The entry or key must already be there (a typo must not add a new one). `url` is any git
URL: https://, ssh://, user@host:path, file:// or an absolute path; by default the
repository on GitHub (GitHub Enterprise: the host of forge.github.api_url). The token
(the named secret, else Ritmo's installation token) reaches git over https through the
environment only, and authenticates the pull request. The commit is signed with Ritmo's
key. With `create_pr` the commit goes on `ritmo/update/<app>/<version>-<id>` made from
`branch`'s tip, and a pull request into `branch` is opened; without it, the commit
fast-forwards `branch` (a branch that moved meanwhile is fetched and the commit rebuilt
on the next attempt; never forced). A file that already holds the value is not touched.
`path`, `branch` and `url` may use `${VAR}` too (e.g. overlays/${ENVIRONMENT}/...).

Events: artifact_recorded (no environment), promoted, deployed, deployment_failed,
rolled_back, drift (a pin or a policy change Ritmo did not make; its app and environment
are those of the pin when one pin moved, else empty; no artifact). An entry with
`environments` never matches an event without one.

Exactly one target key per entry. A webhook without `body` sends the event document
(event, id, app, environment, artifact record, correlation id, extra); Spinnaker gets
`{"parameters": ..., "artifacts": [...], "ritmo": <event document>}`.

Every string value of the target (recursively in mappings and lists; not the keys) may
use `${VAR}`, one of `VARIABLES`; `$${` writes a literal `${`. A value missing for the
event (no environment, no git tag) is the empty string. An unknown variable is an
error at load time, placed at the value.

Credentials never live in the policy: `secret: NAME` names the setting
`notify.secrets.NAME` (RITMO_NOTIFY__SECRETS__NAME; '-' in the name is '_' there).
For slack it is the incoming-webhook URL; for webhook and the GitHub targets (and
update_gitops_repo) a bearer token; for spinnaker the value of `secret_header`.

This module is pure (pydantic only); the field types are bot/policy/integration_fields.py.
bot.notify renders and delivers what it describes (bot.notify.render, targets, gitops).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from bot.policy.fields import Loc, located_error
from bot.policy.fields import StrictModel as Strict
from bot.policy.integration_fields import (
    TARGET_KINDS,
    EventName,
    GitBranch,
    GitUrl,
    KeyPath,
    OneOrMany,
    Payload,
    RepoPath,
    Repository,
    SecretName,
    Target,
    TargetKind,
    Url,
    Workflow,
    slug,
)

_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_RESERVED_HEADERS = {
    "authorization",
    "content-length",
    "content-type",
    "host",
    "idempotency-key",
    "user-agent",
}

# -- targets ----------------------------------------------------------------------------


class SlackTarget(Target):
    """An incoming webhook; `secret` names the webhook URL (it is the credential)."""

    secret: SecretName
    text: str = Field(min_length=1)


class WebhookTarget(Target):
    url: Url
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    secret: SecretName | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: Payload | None = None

    def _problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        for name in self.headers:
            if not _HEADER.match(name):
                problems.append((("headers", name), f"{name!r} is not an HTTP header name"))
            elif name.lower() in _RESERVED_HEADERS:
                problems.append(
                    (
                        ("headers", name),
                        f"{name} is set by Ritmo; credentials go in `secret: NAME`",
                    )
                )
        return problems


class GitHubWorkflowTarget(Target):
    """workflow_dispatch; `secret` names a token, default: Ritmo's installation token."""

    repository: Repository
    workflow: Workflow
    ref: str = Field(default="main", min_length=1)
    inputs: dict[str, str | int | float | bool] = Field(default_factory=dict)
    secret: SecretName | None = None


class RepositoryDispatchTarget(Target):
    """repository_dispatch; `secret` names a token, default: Ritmo's installation token."""

    repository: Repository
    event_type: str = Field(min_length=1, max_length=100)
    client_payload: Payload = Field(
        default_factory=dict, description="GitHub allows at most 10 top-level keys."
    )
    secret: SecretName | None = None

    def _problems(self) -> list[tuple[Loc, str]]:
        if len(self.client_payload) > 10:
            message = "GitHub accepts at most 10 top-level keys; nest the rest"
            return [(("client_payload",), message)]
        return []


class SpinnakerTarget(Target):
    """A Gate webhook trigger: POST {url} (…/webhooks/webhook/<source>)."""

    url: Url
    secret: SecretName | None = None
    secret_header: str = Field(default="X-Ritmo-Token", pattern=_HEADER.pattern)
    parameters: Payload = Field(default_factory=dict)
    artifacts: tuple[Payload, ...] = ()


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImagePin(Target):
    """What to pin on a kustomization's images[] entry: exactly one of newTag, digest."""

    newTag: str | None = Field(default=None, min_length=1, max_length=128)  # noqa: N815
    digest: str | None = Field(default=None, min_length=1, max_length=200)

    def _problems(self) -> list[tuple[Loc, str]]:
        if (self.newTag is None) == (self.digest is None):
            return [((), 'give exactly one of newTag or digest, e.g. {newTag: "${VERSION}"}')]
        if self.digest is not None and "${" not in self.digest:
            if not _DIGEST.match(self.digest):
                return [(("digest",), f"{self.digest!r} is not sha256:<64 hex digits>")]
        return []


class GitopsRepoTarget(Target):
    """A signed commit editing one file in another git repository (bot.notify.gitops)."""

    repository: Repository
    url: GitUrl | None = None
    branch: GitBranch = "main"
    path: RepoPath
    image: str | None = Field(default=None, min_length=1, max_length=255)
    set: ImagePin | None = None
    key: KeyPath | None = None
    value: str | None = None
    commit_message: str = Field(default="Update ${APP} to ${VERSION}", min_length=1)
    create_pr: bool = True
    secret: SecretName | None = None

    def _problems(self) -> list[tuple[Loc, str]]:
        if self.set is not None and (self.key is not None or self.value is not None):
            both = "key" if self.key is not None else "value"
            return [
                (
                    (both,),
                    "one edit per entry: `set` pins a kustomization image, `key` + `value` "
                    "set a Helm values key; split them into separate entries",
                )
            ]
        if self.set is None and self.key is None and self.value is None:
            return [
                (
                    (),
                    'give the edit: set: {newTag: "${VERSION}"} (a kustomization) or '
                    'key: image.tag with value: "${VERSION}" (Helm values)',
                )
            ]
        if self.set is None:
            if self.key is None:
                return [(("value",), "`value` needs `key`, the dotted key it sets")]
            if self.value is None:
                return [(("key",), '`key` needs `value`, e.g. value: "${VERSION}"')]
            if self.image is not None:
                return [(("image",), "`image` names a kustomization entry; it goes with `set`")]
        return []


AnyTarget = (
    SlackTarget
    | WebhookTarget
    | GitHubWorkflowTarget
    | RepositoryDispatchTarget
    | SpinnakerTarget
    | GitopsRepoTarget
)


class Integration(Strict):
    """On `on` events (for `apps`, in `environments`), tell one target."""

    on: Annotated[tuple[EventName, ...], OneOrMany] = Field(min_length=1)
    apps: Annotated[tuple[Annotated[str, slug("app")], ...], OneOrMany] = ()
    environments: Annotated[tuple[Annotated[str, slug("environment")], ...], OneOrMany] = ()
    name: str | None = Field(default=None, min_length=1, max_length=128)
    slack: SlackTarget | None = None
    webhook: WebhookTarget | None = None
    github_workflow: GitHubWorkflowTarget | None = None
    repository_dispatch: RepositoryDispatchTarget | None = None
    spinnaker: SpinnakerTarget | None = None
    update_gitops_repo: GitopsRepoTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        given = [kind for kind in TARGET_KINDS if getattr(self, kind) is not None]
        if not given:
            raise located_error(
                "Integration",
                [((), "give one target: " + ", ".join(TARGET_KINDS))],
            )
        if len(given) > 1:
            raise located_error(
                "Integration",
                [
                    (
                        (kind,),
                        f"one target per entry, but {' and '.join(given)} are set; "
                        "split them into separate entries",
                    )
                    for kind in given[1:]
                ],
            )
        return self

    @property
    def target(self) -> tuple[TargetKind, AnyTarget]:
        for kind in TARGET_KINDS:
            found: AnyTarget | None = getattr(self, kind)
            if found is not None:
                return kind, found
        raise AssertionError("validated: exactly one target")  # pragma: no cover

    def matches(self, event: str, app: str, environment: str | None) -> bool:
        if event not in self.on:
            return False
        if self.apps and app not in self.apps:
            return False
        return not self.environments or environment in self.environments
