"""The field types of policy `integrations` (bot/policy/integrations.py): events,
`${VAR}` placeholders, secret names, URLs, repositories, paths and branches, each checked
where the policy is loaded; and the base every target model shares.

Pure (pydantic only): bot.notify renders and delivers what these describe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    JsonValue,
    model_validator,
)

from bot.policy.fields import Loc, located_error
from bot.policy.fields import StrictModel as Strict

EVENTS = (
    "artifact_recorded",
    "promoted",
    "deployed",
    "deployment_failed",
    "rolled_back",
    "drift",
)

VARIABLES = (
    "APP",
    "EVENT",
    "ARTIFACT_ID",
    "ARTIFACT_URL",
    "VERSION",
    "IMAGE",
    "GIT_COMMIT",
    "GIT_TAG",
    "BUILD_ID",
    "BUILD_NUMBER",
    "ENVIRONMENT",
    "FROM_ENVIRONMENT",
    "MANIFEST_COMMIT",
    "CORRELATION_ID",
    "MESSAGE",
)
"""What `${...}` may name. See bot.notify.render.variables for where each comes from."""

TargetKind = Literal[
    "slack",
    "webhook",
    "github_workflow",
    "repository_dispatch",
    "spinnaker",
    "update_gitops_repo",
]
TARGET_KINDS: tuple[TargetKind, ...] = get_args(TargetKind)

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SECRET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
WORKFLOW = re.compile(r"^(?:\d+|[A-Za-z0-9._-]+\.ya?ml)$")

TOKEN = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)(?P<close>\})?")
"""`$${` (a literal `${`), `${NAME}`, or an unterminated `${...` (no `close`)."""


def secret_env_name(name: str) -> str:
    """The variable of a named secret: slack-deploys -> RITMO_NOTIFY__SECRETS__SLACK_DEPLOYS."""
    return "RITMO_NOTIFY__SECRETS__" + name.upper().replace("-", "_")


# -- ${VAR} placeholders ----------------------------------------------------------------


def placeholder_problems(text: str) -> list[str]:
    """What is wrong with the `${...}` in `text` (empty when nothing is)."""
    problems: list[str] = []
    for match in TOKEN.finditer(text):
        name = match.group("name")
        if name is None:
            continue  # `$${`: a literal
        if match.group("close") is None:
            problems.append(
                f"unterminated ${{ in {text!r}; close it with }} or write $${{ for a literal ${{"
            )
        elif name not in VARIABLES:
            if name.upper() in VARIABLES:
                problems.append(f"unknown variable ${{{name}}}; did you mean ${{{name.upper()}}}?")
            else:
                known = ", ".join(VARIABLES)
                problems.append(f"unknown variable ${{{name}}}; the variables are {known}")
    return problems


def _probe(text: str) -> str:
    """`text` with every placeholder replaced by `x`: for checking the shape of a value."""
    return TOKEN.sub(lambda m: "x" if m.group("name") is not None else "$", text)


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str, bool]]:
    """(path, text, is_key) for every string in a value, keys included."""
    if isinstance(value, str):
        yield loc, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield (*loc, key), key, True
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, (*loc, i))


# -- field types ------------------------------------------------------------------------


def _event(value: str) -> str:
    if value not in EVENTS:
        raise ValueError(f"unknown event {value!r}; the events are {', '.join(EVENTS)}")
    return value


def slug(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(
                f"{value!r} is not a valid {what} name; use lowercase letters, digits and '-' "
                "(at most 63, starting and ending with a letter or digit)"
            )
        return value

    return AfterValidator(check)


def _secret(value: str) -> str:
    if not _SECRET.match(value):
        raise ValueError(
            f"{value!r} is not a secret name; use letters, digits, '_' and '-' (the secret "
            "itself goes in RITMO_NOTIFY__SECRETS__<NAME>, never in the policy)"
        )
    return value


def _url(value: str) -> str:
    probe = _probe(value)
    if not re.match(r"^https?://[^\s/?#]+", probe) or any(c.isspace() for c in probe):
        raise ValueError(f"{value!r} is not an http(s) URL; write e.g. https://cd.example.com/hook")
    if "@" in probe.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("must not carry credentials; name a secret with `secret: NAME` instead")
    _literal_host(value)
    return value


def _literal_host(value: str) -> None:
    """A URL's scheme, host and port are written out: a CI value must not choose where
    the request (and its credentials) goes."""
    rest = value.split("://", 1)[1] if "://" in value else ""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "${" in authority.replace("$${", ""):
        raise ValueError(
            f"{value!r} has a ${{VAR}} in its host; write the scheme, host and port out "
            "(a variable may fill a path segment, a query value or the fragment)"
        )


def _repository(value: str) -> str:
    if not REPOSITORY.match(_probe(value)):
        raise ValueError(f"{value!r} is not a repository; write owner/name, e.g. acme/web")
    return value


def _workflow(value: str) -> str:
    if not WORKFLOW.match(_probe(value)):
        raise ValueError(
            f"{value!r} is not a workflow; give its file name (deploy.yml) or numeric id"
        )
    return value


def _repo_path(value: str) -> str:
    probe = _probe(value)
    parts = probe.split("/")
    if (
        any(part in ("", ".", "..") for part in parts)
        or "\\" in probe
        or any(c.isspace() or not c.isprintable() for c in probe)
    ):
        raise ValueError(
            f"{value!r} is not a path in the repository; write it relative to the "
            "repository's root, without '..', e.g. apps/web/overlays/staging/kustomization.yaml"
        )
    return value


_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")


def branch_problem(name: str) -> str | None:
    """Why `name` cannot be a branch Ritmo writes, or None."""
    if (
        not _BRANCH.match(name)
        or ".." in name
        or "//" in name
        or "@{" in name
        or name.endswith(("/", ".", ".lock"))
        or "/." in name
    ):
        return f"{name!r} is not a branch name; write e.g. main"
    return None


def _branch(value: str) -> str:
    problem = branch_problem(_probe(value))
    if problem:
        raise ValueError(problem)
    return value


_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")


def _git_url(value: str) -> str:
    probe = _probe(value)
    if any(c.isspace() for c in probe) or probe.startswith("-"):
        raise ValueError(f"{value!r} is not a git URL")
    if probe.startswith("https://"):
        if not re.match(r"^https://[^\s/?#]+/", probe):
            raise ValueError(f"{value!r} is not a git URL; write e.g. https://github.com/o/r.git")
        if "@" in probe.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "must not carry credentials; name a secret with `secret: NAME` instead"
            )
        _literal_host(value)
        return value
    if probe.startswith(("ssh://", "file:///", "/")) or _SCP_LIKE.match(probe):
        return value
    raise ValueError(
        f"{value!r} is not a git URL Ritmo pushes to; use https://, ssh://, user@host:path, "
        "file:// or an absolute path"
    )


def _key_path(value: str) -> str:
    if not all(part.strip() for part in value.split(".")):
        raise ValueError(f"{value!r} is not a key path; write dotted keys, e.g. image.tag")
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


EventName = Annotated[str, AfterValidator(_event)]
SecretName = Annotated[str, AfterValidator(_secret)]
Url = Annotated[str, AfterValidator(_url)]
Repository = Annotated[str, AfterValidator(_repository)]
RepoPath = Annotated[str, AfterValidator(_repo_path)]
GitBranch = Annotated[str, AfterValidator(_branch)]
GitUrl = Annotated[str, AfterValidator(_git_url)]
KeyPath = Annotated[str, AfterValidator(_key_path)]
Workflow = Annotated[str, AfterValidator(_workflow)]
Payload = dict[str, JsonValue]
OneOrMany = BeforeValidator(_one_or_many)  # a plain string is a list of one


class Target(Strict):
    """A target's fields; every string value may use `${VAR}` (checked here)."""

    @model_validator(mode="after")
    def _checked(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        for field, value in self:
            for loc, text, is_key in _strings(value, (field,)):
                if is_key:
                    if "${" in text:
                        problems.append((loc, "keys are not substituted; use ${VAR} in values"))
                    continue
                problems += [(loc, message) for message in placeholder_problems(text)]
        problems += self._problems()
        if problems:
            raise located_error(type(self).__name__, problems)
        return self

    def _problems(self) -> list[tuple[Loc, str]]:
        """A kind's own cross-field checks."""
        return []
