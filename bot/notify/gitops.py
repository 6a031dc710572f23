"""update_gitops_repo: pin a version in another git repository with one signed commit.

For GitOps set-ups where ArgoCD or Flux watch a repository other than Ritmo's. One
delivery of a rendered target (see bot.policy.integrations):

1. Fetch `branch` into a bare mirror of its own under `root` (bot.manifests.mirror; one
   per (url, branch), shared safely across threads and processes by `Mirror.locked`).
2. Read `path` at the tip. A file that already holds the value: delivered, no commit,
   so a second delivery (the outbox delivers at least once) changes nothing.
3. Edit it round-trip (bot.manifests.overlays: the user's comments and layout stay) and
   build one GPG-signed commit on the tip, in process, as the manifests writer does.
4. Without create_pr: fast-forward `branch`. A branch that moved meanwhile refuses the
   push; that is a retry, and the next attempt fetches and rebuilds on the new tip.
   With create_pr: push `ritmo/update/<app>/<version>-<id>` (id: from the delivery's
   idempotency key, so every attempt of one delivery uses the same branch). A branch
   already there that holds the value is reused, never pushed again. Then open the
   pull request into `branch`; "A pull request already exists" counts as delivered.

Pushes are never forced. Outcomes: git unreachable, a refused or failed push, a GitHub
5xx or rate limit: retry. A missing branch, file, images[] entry or key, a repository
or credentials git or GitHub refuse (401/403/404), invalid YAML: dead, with what to fix.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from bot.manifests.branches import BranchExists, NothingToBuildOn, write_branch
from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.remote import PushResult, PushStatus
from bot.notify.gitops_edit import (
    PinEdit,
    Stop,
    as_text,
    commit_message,
    dead,
    edit_for,
    retry,
)
from bot.notify.outcomes import Outcome, classify
from bot.notify.targets import (
    GITHUB_API_VERSION,
    USER_AGENT,
    GitHubAccess,
    HttpRequest,
)
from bot.policy.integration_fields import branch_problem

BRANCH_PREFIX = "ritmo/update/"
T = TypeVar("T")
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
# What git says when retrying cannot help: no such repository, no access, a protected branch.
_GIT_REFUSED = re.compile(
    r"repository not found|repository '[^']*' not found|does not appear to be a git repository"
    r"|authentication failed|could not read (?:username|password)|permission denied"
    r"|returned error: 40[134]|terminal prompts disabled|protected branch|\bGH0\d\d\b",
    re.IGNORECASE,
)


def default_git_url(api_url: str, repository: str) -> str:
    """https://github.com/o/r.git, or the GitHub Enterprise host's (api at /api/v3)."""
    parts = urlsplit(api_url)
    host = parts.netloc
    if host == "api.github.com":
        host = "github.com"
    return f"{parts.scheme or 'https'}://{host}/{repository}.git"


def _safe(text: str) -> str:
    """A version as a branch name component."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".-")
    return cleaned[:80]


def update_branch(app: str, version: str, key: str) -> str:
    """ritmo/update/<app>/<version>-<8 hex of the key>, or <16 hex of the key>."""
    digest = key.removeprefix("ritmo-")
    name = _safe(app) or "app"
    version = _safe(version)
    leaf = f"{version}-{digest[:8]}" if version else digest[:16]
    return f"{BRANCH_PREFIX}{name}/{leaf}"


# -- delivery -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Landed:
    sha: str | None  # the commit pushed (or found on the request branch); None: unchanged
    detail: str


class GitopsUpdater:
    """Delivers update_gitops_repo: one signed commit (and maybe a PR) per event.

    `root` holds the bare mirrors (one per url and branch); `sign` and `identity` make
    every commit a signed one, as everything Ritmo commits is.
    """

    def __init__(
        self,
        root: Path,
        sign: Callable[[bytes], str],
        identity: Identity,
        *,
        clock: Callable[[], float] = time.time,
        git_timeout: float = 120.0,
        allow_local: bool = False,
    ) -> None:
        self.root = root
        # A policy must not make Ritmo push into repositories on its own host (its mirrors,
        # the embedded remote): local paths and file:// only when the operator says so.
        self._allow_local = allow_local
        self._sign = sign
        self._identity = identity
        self._clock = clock
        self._git_timeout = git_timeout

    def update(
        self,
        target: Mapping[str, Any],
        event: Mapping[str, Any],
        key: str,
        github: GitHubAccess,
    ) -> Outcome:
        """Deliver once; never raises for what git or GitHub do."""
        secrets = (github.token,) if github.token else ()
        try:
            return self._update(target, event, key, github)
        except Stop as stop:
            return Outcome(stop.status, HttpRequest("", "", {}, None, secrets).hide(stop.detail))

    def _update(
        self,
        target: Mapping[str, Any],
        event: Mapping[str, Any],
        key: str,
        github: GitHubAccess,
    ) -> Outcome:
        repository = str(target.get("repository") or "")
        if not _REPOSITORY.match(repository):
            raise dead(f"{repository!r} is not a repository; write owner/name")
        branch = str(target.get("branch") or "main")
        problem = branch_problem(branch)
        if problem:
            raise dead(f"branch: {problem}")
        edit = edit_for(target, event)
        create_pr = bool(target.get("create_pr", True))
        if create_pr and not github.token:
            raise dead(
                "update_gitops_repo with create_pr needs a GitHub token to open the pull "
                "request: name one with `secret: NAME` (RITMO_NOTIFY__SECRETS__NAME) or run "
                "Ritmo as a GitHub App"
            )
        url = str(target.get("url") or default_git_url(github.api_url, repository))
        if not self._allow_local and (url.startswith(("/", "file:"))):
            raise dead(
                f"update_gitops_repo url {url} is on Ritmo's own host; use an https or ssh "
                "URL, or set notify.allow_local_repositories "
                "(RITMO_NOTIFY__ALLOW_LOCAL_REPOSITORIES)"
            )
        app = str(event.get("app") or "")
        artifact = event.get("artifact") if isinstance(event.get("artifact"), Mapping) else {}
        assert isinstance(artifact, Mapping)
        version = str(artifact.get("version") or "")
        message = commit_message(str(target.get("commit_message") or ""), edit, event, key)
        head = update_branch(app, version, key) if create_pr else None
        landed = self._land(url, branch, repository, edit, message, head, github.token)
        if head is None or landed.sha is None:
            return Outcome("delivered", landed.detail)
        title = message.split("\n", 1)[0]
        body = _pr_body(edit, branch, event, landed.sha)
        return _open_pull(github, repository, title, head, branch, body, key, landed.detail)

    def _land(
        self,
        url: str,
        branch: str,
        repository: str,
        edit: PinEdit,
        message: str,
        head: str | None,
        token: str | None,
    ) -> _Landed:
        """Under the mirror's lock: the commit on `branch` (head None) or on `head`."""
        where = f"{branch} of {repository}"
        try:
            mirror = _Remote(self.root, url, branch, token, timeout=self._git_timeout)
        except OSError as exc:
            raise retry(f"cannot open the mirror of {url}: {exc}") from None

        def change(read: Reader) -> Edit | Unchanged:
            data = read(edit.path)
            if data is None:
                raise dead(f"{edit.path} does not exist on {where}; fix `path`")
            text = as_text(data, edit.path)
            if edit.done(text):
                return Unchanged()
            return Edit({edit.path: edit.apply(text).encode()}, message)

        def holds(read: Reader) -> bool:
            """Whether a request branch an earlier attempt pushed already sets the value."""
            there = read(edit.path)
            return there is not None and edit.done(as_text(there, edit.path))

        try:
            written = write_branch(
                mirror, self._sign, self._identity, head, change, when=int(self._clock()),
                prefix=head.rsplit("/", 1)[0] + "/" if head else "",
                keep=holds if head is not None else None,
            )  # fmt: skip
        except NothingToBuildOn:
            raise dead(f"{url} has no branch {branch}; fix `branch`") from None
        except BranchExists:
            raise dead(
                f"{head} exists in {repository} but does not set {edit.describe()} "
                f"in {edit.path}; delete that branch, then retry the dead letter"
            ) from None
        finally:
            mirror.close()
        sha = written.commit
        if sha is None:
            return _Landed(None, f"{edit.path} on {where} already has {edit.describe()}")
        if written.pushed is None:  # the request branch of an earlier attempt
            return _Landed(sha, f"{head} is already pushed ({sha[:12]})")
        if head is not None:
            _pushed(written.pushed, head, url)
            return _Landed(sha, f"pushed {sha[:12]} to {head}")
        _pushed(written.pushed, branch, url)
        return _Landed(sha, f"pushed {sha[:12]} to {where}")


class _Remote(Mirror):
    """The mirror of a delivery's repository, with git's failures as the delivery's:
    a fetch that fails stops it (dead or retry), a push that cannot run reports FAILED."""

    def fetch(self) -> str | None:
        return _git(super().fetch, self.url)

    def fetch_branches(self, prefix: str) -> dict[str, str]:
        return _git(lambda: super(_Remote, self).fetch_branches(prefix), self.url)

    def push(self, sha: str) -> PushResult:
        return _push(lambda: super(_Remote, self).push(sha))

    def push_branch(self, sha: str, branch: str) -> PushResult:
        return _push(lambda: super(_Remote, self).push_branch(sha, branch))


def _git(call: Callable[[], T], url: str) -> T:
    """A fetch: its result, or Stop (dead when git says retrying cannot help)."""
    try:
        return call()
    except subprocess.TimeoutExpired:
        raise retry(f"git fetch from {url} timed out") from None
    except OSError as exc:
        text = " ".join(str(exc).split())[:400]
        if _GIT_REFUSED.search(text):
            raise dead(f"{text}; check `url`/`repository` and the token's access") from None
        raise retry(text) from None


def _push(call: Callable[[], PushResult]) -> PushResult:
    try:
        return call()
    except OSError as exc:
        return PushResult(PushStatus.FAILED, str(exc))


def _pushed(result: PushResult, branch: str, url: str) -> None:
    if result.status is PushStatus.PUSHED:
        return
    if result.status is PushStatus.REJECTED:
        raise retry(
            f"{branch} of {url} moved while Ritmo pushed (not a fast-forward); the next "
            "attempt fetches it and rebuilds the commit on its new tip"
        )
    detail = " ".join(result.detail.split())[:400]
    if _GIT_REFUSED.search(detail):
        hint = " (a protected branch takes changes by pull request: set create_pr: true)"
        protected = "protected branch" in detail.lower() or "GH006" in detail
        raise dead(f"{url} refused the push to {branch}: {detail}" + (hint if protected else ""))
    raise retry(f"the push of {branch} to {url} failed: {detail}")


def _pr_body(edit: PinEdit, base: str, event: Mapping[str, Any], sha: str) -> str:
    artifact = event.get("artifact") if isinstance(event.get("artifact"), Mapping) else {}
    assert isinstance(artifact, Mapping)
    lines = [
        f"Ritmo sets `{edit.describe()}` in `{edit.path}` on `{base}`.",
        "",
        f"- App: {event.get('app')}",
        f"- Version: {artifact.get('version', '')}",
        f"- Artifact: {artifact.get('id', '')}",
        f"- Event: {event.get('event')}"
        + (f" in {event['environment']}" if event.get("environment") else "")
        + f" ({event.get('id')})",
        f"- Commit: {sha} (signed by Ritmo)",
    ]
    return "\n".join(lines) + "\n"


def _open_pull(
    github: GitHubAccess,
    repository: str,
    title: str,
    head: str,
    base: str,
    body: str,
    key: str,
    pushed: str,
) -> Outcome:
    """POST /repos/{o}/{r}/pulls -> 201; 422 "already exists" is as good."""
    owner, _, name = repository.partition("/")
    token = github.token or ""
    req = HttpRequest(
        "POST",
        f"{github.api_url.rstrip('/')}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/pulls",
        {
            "User-Agent": USER_AGENT,
            "Idempotency-Key": key,
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "Authorization": f"Bearer {token}",
        },
        {"title": title, "head": head, "base": base, "body": body},
        (token,),
    )
    try:
        with github.session() as session:
            resp = session.request(
                req.method, req.url, headers=req.headers, json=req.json,
                timeout=github.timeout, allow_redirects=False,
            )  # fmt: skip
            with resp:
                status, headers, text = resp.status_code, resp.headers, resp.text
    except (requests.ConnectionError, requests.Timeout) as exc:
        return Outcome("retry", req.hide(f"{pushed}; opening the pull request: {exc}"))
    except requests.RequestException as exc:
        return Outcome("dead", req.hide(f"{pushed}; opening the pull request: {exc}"))
    if status == 201:
        try:
            found = json.loads(text)
        except ValueError:
            found = {}
        where = found.get("html_url") or f"#{found.get('number', '?')}"
        return Outcome("delivered", f"{pushed}; opened pull request {where}")
    if status == 422 and "pull request already exists" in text.lower():
        return Outcome("delivered", f"{pushed}; a pull request from {head} is already open")
    outcome = classify(status, headers, text, github.clock())
    detail = outcome.detail
    if outcome.status == "dead" and status in (403, 404):
        detail += (
            f" ({repository}: no such repository, or the token may not open pull requests "
            "there; check `repository` and the token's access)"
        )
    elif outcome.status == "dead" and status == 401:
        detail += " (GitHub rejected the token)"
    detail = req.hide(f"{pushed}; opening the pull request: {detail}")
    return Outcome(outcome.status, detail, outcome.retry_after)
