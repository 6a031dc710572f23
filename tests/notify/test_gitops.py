"""update_gitops_repo against a real bare repo, real gpg, kubectl; GitHub over `responses`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import responses
from ruamel.yaml import YAML

from bot.manifests.objects import Identity
from bot.manifests.signing import CommitSigner, open_gnupg
from bot.notify.gitops import GitopsUpdater, default_git_url, update_branch
from bot.notify.outbox import Outbox
from bot.notify.outcomes import Outcome
from bot.notify.render import Rendered, render_all
from bot.notify.targets import Sender
from bot.policy.load import PolicyError, PolicyProblem, load_policy
from tests.forge.github_sandbox import sample
from tests.helpers import commits_since, git, remote_refs, trailers, verify_commit
from tests.notify.conftest import START, PolicyHolder, context, free_port, policy_with

GH = "https://api.github.com"
REPOSITORY = "acme/gitops-manifests"
PULLS = f"{GH}/repos/{REPOSITORY}/pulls"
TOKEN = "ghp_gitops_secret_token"
OVERLAY = "apps/web/overlays/staging/kustomization.yaml"
VALUES = "charts/web/values-staging.yaml"

BASE = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:0.9.0
        - name: cache
          image: docker.io/library/redis:7.0
"""

STAGING = """\
# Staging: the ArgoCD app web-staging watches this directory.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: ghcr.io/acme/web  # bumped by Ritmo
    newTag: "1.0.0"
  # the cache is pinned by hand
  - name: docker.io/library/redis
    newTag: "7.2"
"""

HELM_VALUES = """\
# Helm values for staging
image:
  repository: ghcr.io/acme/web
  tag: "1.0.0"  # set by Ritmo
replicas: 2
"""


@dataclass
class GitopsRemote:
    bare: Path
    seed: Path  # a person's clone, to push from "meanwhile"
    url: str

    def main(self) -> str:
        return remote_refs(self.bare)["refs/heads/main"]

    def show(self, rev: str, path: str) -> str:
        return git(self.bare, "show", f"{rev}:{path}")

    def push_by_hand(self, path: str, content: str, message: str) -> str:
        git(self.seed, "pull", "--quiet", "--ff-only", "origin", "main")
        file = self.seed / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
        git(self.seed, "add", "-A")
        git(self.seed, "-c", "user.name=Dana", "-c", "user.email=dana@example.com",
            "commit", "--quiet", "-m", message)  # fmt: skip
        git(self.seed, "push", "--quiet", "origin", "main")
        return self.main()


def make_gitops_remote(root: Path, staging: str = STAGING) -> GitopsRemote:
    bare = root / "gitops.git"
    git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    seed = root / "gitops-seed"
    git(root, "clone", "--quiet", str(bare), str(seed))
    git(seed, "checkout", "--quiet", "-b", "main")
    for path, content in {
        "apps/web/base/kustomization.yaml": BASE,
        "apps/web/base/deployment.yaml": DEPLOYMENT,
        OVERLAY: staging,
        VALUES: HELM_VALUES,
        "README.md": "# gitops\n",
    }.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(content)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com",
        "commit", "--quiet", "-m", "Add web")  # fmt: skip
    git(seed, "push", "--quiet", "origin", "main")
    return GitopsRemote(bare, seed, bare.as_uri())


@pytest.fixture
def gitops_remote(tmp_path: Path) -> GitopsRemote:
    return make_gitops_remote(tmp_path)


class Signer:
    """Ritmo's signer; `before_sign` runs once at the next signature (between fetch and
    push: where another writer's push lands in a race)."""

    def __init__(self, signer: CommitSigner) -> None:
        self._signer = signer
        self.before_sign: Callable[[], object] | None = None
        self.signed = 0

    def __call__(self, payload: bytes) -> str:
        if self.before_sign is not None:
            race, self.before_sign = self.before_sign, None
            race()
        self.signed += 1
        return self._signer.sign(payload)


@pytest.fixture
def signer(signing_key: tuple[Path, str]) -> Signer:
    home, fingerprint = signing_key
    return Signer(CommitSigner(open_gnupg(home), fingerprint))


@pytest.fixture
def updater(tmp_path: Path, signer: Signer) -> GitopsUpdater:
    return GitopsUpdater(
        tmp_path / "gitops-mirrors",
        signer,
        Identity("Ritmo", "ritmo@example.com"),
        clock=lambda: START,
        allow_local=True,  # the other repository is a bare one in tmp_path
    )


@pytest.fixture
def sender(updater: GitopsUpdater) -> Sender:
    return Sender({"gitops-token": TOKEN}, 2.0, clock=lambda: START, gitops=updater, api_url=GH)


@pytest.fixture
def github() -> Iterator[responses.RequestsMock]:
    """GitHub's API; git runs in subprocesses, so `responses` never sees it."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def target(remote: GitopsRemote, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "repository": REPOSITORY,
        "url": remote.url,
        "branch": "main",
        "path": "apps/web/overlays/${ENVIRONMENT}/kustomization.yaml",
        "set": {"newTag": "${VERSION}"},
        "commit_message": "Update web to ${VERSION} in ${ENVIRONMENT}",
        "secret": "gitops-token",
    }
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


def rendered(spec: dict[str, Any], event_id: str = "pro-1") -> Rendered:
    policy = policy_with(
        [{"on": ["promoted"], "environments": ["staging"], "update_gitops_repo": spec}]
    )
    [one] = render_all(policy.integrations, "promoted", context(event_id))
    return one


def deliver(sender: Sender, spec: dict[str, Any], event_id: str = "pro-1") -> Outcome:
    r = rendered(spec, event_id)
    return sender.send(r.kind, r.target, r.event, r.key)


def pull_created(rsps: responses.RequestsMock, status_name: str = "pull-created") -> None:
    status, headers, body = sample(status_name)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    rsps.add(responses.POST, PULLS, json=body, status=status, headers=headers)


def posted(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(call.request.body or b"{}") for call in rsps.calls]


def kustomize(kubectl: str, remote: GitopsRemote, branch: str, tmp_path: Path) -> list[Any]:
    checkout = tmp_path / f"checkout-{branch.replace('/', '-')}"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(remote.bare), str(checkout))
    proc = subprocess.run(
        [kubectl, "kustomize", str(checkout / "apps/web/overlays/staging")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return list(YAML(typ="safe").load_all(proc.stdout))


def images(documents: list[Any]) -> list[str]:
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    return [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]


# -- the policy ------------------------------------------------------------------------

HEAD = """\
environments:
  - {name: dev}
  - {name: staging}
integrations:
"""


def test_the_documented_shape_loads_and_renders() -> None:
    policy = load_policy(
        HEAD
        + """\
  - on: [promoted]
    environments: [staging]
    update_gitops_repo:
      repository: acme/gitops-manifests
      path: apps/web/overlays/${ENVIRONMENT}/kustomization.yaml
      image: registry.example.com/acme/web
      set: {newTag: "${VERSION}"}
      create_pr: true
  - on: [promoted]
    update_gitops_repo:
      repository: acme/gitops-manifests
      url: git@github.com:acme/gitops-manifests.git
      branch: release/${ENVIRONMENT}
      path: charts/web/values.yaml
      key: image.tag
      value: "${VERSION}"
      create_pr: false
      secret: gitops-token
""",
        "policy.yaml",
    )
    kinds = [i.target[0] for i in policy.integrations]
    assert kinds == ["update_gitops_repo", "update_gitops_repo"]
    first, second = render_all(policy.integrations, "promoted", context())
    assert first.target == {
        "repository": "acme/gitops-manifests",
        "url": None,
        "branch": "main",
        "path": "apps/web/overlays/staging/kustomization.yaml",
        "image": "registry.example.com/acme/web",
        "set": {"newTag": "1.2.3", "digest": None},
        "key": None,
        "value": None,
        "commit_message": "Update web to 1.2.3",
        "create_pr": True,
        "secret": None,
    }
    assert (second.target["branch"], second.target["value"]) == ("release/staging", "1.2.3")
    assert default_git_url(GH, REPOSITORY) == "https://github.com/acme/gitops-manifests.git"
    assert (
        default_git_url("https://ghe.example.com/api/v3", "a/b")
        == "https://ghe.example.com/a/b.git"
    )


def problems(body: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        load_policy(HEAD + body, "policy.yaml")
    return caught.value.problems


GOOD = "{repository: acme/g, path: k.yaml, set: {newTag: '${VERSION}'}"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ("repository: acme/g, path: ../other/k.yaml, set: {newTag: x}", "path", "without '..'"),
        ("repository: acme/g, path: 'a/${APP}/../k.yaml', set: {newTag: x}", "path", "'..'"),
        ("repository: acme/g, path: /etc/k.yaml, set: {newTag: x}", "path", "relative"),
        (
            "repository: acme/g, path: v.yaml, set: {newTag: x}, key: image.tag, value: x",
            "key",
            "one edit per entry",
        ),
        ("repository: acme/g, path: v.yaml", "", "give the edit"),
        ("repository: acme/g, path: v.yaml, key: image.tag", "key", "needs `value`"),
        ("repository: acme/g, path: v.yaml, set: {newTag: a, digest: b}", "set", "exactly one"),
        ("repository: acme/g, path: v.yaml, set: {digest: latest}", "set.digest", "sha256"),
        ("repository: gitops, path: k.yaml, set: {newTag: x}", "repository", "owner/name"),
        (
            "repository: acme/g, url: 'https://bot:tok@github.com/acme/g.git', path: k.yaml, "
            "set: {newTag: x}",
            "url",
            "must not carry credentials",
        ),
        ("repository: acme/g, url: 'ftp://h/g', path: k.yaml, set: {newTag: x}", "url", "git URL"),
        ("repository: acme/g, branch: 'a..b', path: k.yaml, set: {newTag: x}", "branch", "branch"),
        ("repository: acme/g, path: k.yaml, set: {newTag: '${VERSON}'}", "set.newTag", "VERSON"),
    ],
)
def test_policy_problems_name_the_field(fields: str, field: str, message: str) -> None:
    found = problems(f"  - on: [promoted]\n    update_gitops_repo: {{{fields}}}\n")
    assert len(found) == 1, found
    where = "integrations[0].update_gitops_repo" + (f".{field}" if field else "")
    assert found[0].message.startswith(where + ": "), found[0].message
    assert message in found[0].message
    assert found[0].line == 6


def test_update_branch_names() -> None:
    key = "ritmo-" + "ab12cd34" * 5
    assert update_branch("web", "1.2.3", key) == "ritmo/update/web/1.2.3-ab12cd34"
    assert update_branch("web", "", key) == "ritmo/update/web/ab12cd34ab12cd34"
    assert update_branch("web", "1.0..2+build", key) == "ritmo/update/web/1.0.2-build-ab12cd34"


# -- create_pr: a branch with one signed commit, then a pull request ---------------------


def test_create_pr_pushes_one_signed_commit_and_opens_the_pull(
    gitops_remote: GitopsRemote,
    sender: Sender,
    github: responses.RequestsMock,
    signing_key: tuple[Path, str],
    kubectl: str,
    tmp_path: Path,
) -> None:
    pull_created(github)
    base = gitops_remote.main()
    spec = target(gitops_remote)
    outcome = deliver(sender, spec)
    assert outcome.status == "delivered", outcome
    assert "opened pull request https://github.com/acme/manifests/pull/7" in outcome.detail

    branch = update_branch("web", "1.2.3", rendered(spec).key)
    refs = remote_refs(gitops_remote.bare)
    assert refs["refs/heads/main"] == base  # the base branch is left to the pull request
    [commit] = commits_since(gitops_remote.bare, base, branch)
    assert refs[f"refs/heads/{branch}"] == commit
    verify_commit(gitops_remote.bare, commit, signing_key[0])
    assert git(gitops_remote.bare, "log", "-1", "--format=%an <%ae>|%s", commit).strip() == (
        "Ritmo <ritmo@example.com>|Update web to 1.2.3 in staging"
    )
    assert trailers(gitops_remote.bare, commit) == {
        "Ritmo-Gitops-Event": "promoted pro-1",
        "Ritmo-Gitops-Artifact": "art-0123456789abcdef",
        "Ritmo-Gitops-Delivery": rendered(spec).key,
    }
    changed = git(gitops_remote.bare, "diff", "--name-only", base, commit).split()
    assert changed == [OVERLAY]
    # Only the value changed: the comments, the quoting and the other image stay.
    assert gitops_remote.show(commit, OVERLAY) == STAGING.replace('"1.0.0"', '"1.2.3"')
    assert images(kustomize(kubectl, gitops_remote, branch, tmp_path)) == [
        "ghcr.io/acme/web:1.2.3",
        "docker.io/library/redis:7.2",
    ]

    [call] = github.calls
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.headers["Idempotency-Key"] == rendered(spec).key
    body = posted(github)[0]
    assert (body["head"], body["base"]) == (branch, "main")
    assert body["title"] == "Update web to 1.2.3 in staging"
    assert f"Commit: {commit}" in body["body"] and OVERLAY in body["body"]
    assert TOKEN not in outcome.detail


def test_delivering_twice_pushes_once_and_takes_an_open_pull_as_delivered(
    gitops_remote: GitopsRemote, sender: Sender, github: responses.RequestsMock, signer: Signer
) -> None:
    pull_created(github)
    spec = target(gitops_remote)
    assert deliver(sender, spec).status == "delivered"
    refs = remote_refs(gitops_remote.bare)
    github.replace(responses.POST, PULLS, json=sample("pull-exists")[2], status=422)

    again = deliver(sender, spec)
    assert again.status == "delivered", again
    assert "already pushed" in again.detail and "already open" in again.detail
    assert remote_refs(gitops_remote.bare) == refs  # no second commit, nothing pushed
    assert signer.signed == 1
    assert [b["head"] for b in posted(github)] == [
        update_branch("web", "1.2.3", rendered(spec).key)
    ] * 2


def test_a_pull_that_fails_is_retried_without_a_second_push(
    gitops_remote: GitopsRemote, sender: Sender, github: responses.RequestsMock, signer: Signer
) -> None:
    github.add(responses.POST, PULLS, json={"message": "Server Error"}, status=502)
    spec = target(gitops_remote)
    first = deliver(sender, spec)
    assert first.status == "retry" and "HTTP 502" in first.detail
    refs = remote_refs(gitops_remote.bare)
    github.remove(responses.POST, PULLS)
    pull_created(github)
    assert deliver(sender, spec).status == "delivered"
    assert remote_refs(gitops_remote.bare) == refs and signer.signed == 1


def test_a_repository_github_does_not_know_is_dead(
    gitops_remote: GitopsRemote, sender: Sender, github: responses.RequestsMock
) -> None:
    status, _, body = sample("repository-not-found")
    github.add(responses.POST, PULLS, json=body, status=status)
    outcome = deliver(sender, target(gitops_remote))
    assert outcome.status == "dead"
    assert "HTTP 404: Not Found" in outcome.detail
    assert "no such repository, or the token may not open pull requests" in outcome.detail


# -- create_pr: false, straight to the branch --------------------------------------------


def test_without_a_pull_the_branch_fast_forwards(
    gitops_remote: GitopsRemote,
    sender: Sender,
    github: responses.RequestsMock,
    signing_key: tuple[Path, str],
) -> None:
    base = gitops_remote.main()
    outcome = deliver(sender, target(gitops_remote, create_pr=False))
    assert outcome.status == "delivered", outcome
    [commit] = commits_since(gitops_remote.bare, base)
    assert outcome.detail == f"pushed {commit[:12]} to main of {REPOSITORY}"
    assert git(gitops_remote.bare, "rev-parse", f"{commit}^").strip() == base
    verify_commit(gitops_remote.bare, commit, signing_key[0])
    assert gitops_remote.show("main", OVERLAY) == STAGING.replace('"1.0.0"', '"1.2.3"')
    assert len(github.calls) == 0  # no pull request, no API call
    assert set(remote_refs(gitops_remote.bare)) == {"refs/heads/main"}


def test_helm_values_key_and_value(
    gitops_remote: GitopsRemote, sender: Sender, signing_key: tuple[Path, str]
) -> None:
    spec = target(
        gitops_remote, create_pr=False, path=VALUES, set=None, key="image.tag", value="${VERSION}"
    )
    outcome = deliver(sender, spec)
    assert outcome.status == "delivered", outcome
    assert gitops_remote.show("main", VALUES) == HELM_VALUES.replace('"1.0.0"', '"1.2.3"')
    verify_commit(gitops_remote.bare, gitops_remote.main(), signing_key[0])
    missing = deliver(sender, {**spec, "key": "image.version"}, "pro-2")
    assert missing.status == "dead" and "has no key image.version" in missing.detail


def test_a_file_already_at_the_value_is_left_alone(
    tmp_path: Path, sender: Sender, github: responses.RequestsMock, signer: Signer
) -> None:
    remote = make_gitops_remote(tmp_path, STAGING.replace('"1.0.0"', '"1.2.3"'))
    refs = remote_refs(remote.bare)
    for create_pr in (True, False):
        outcome = deliver(sender, target(remote, create_pr=create_pr))
        assert outcome.status == "delivered", outcome
        assert "already has images[name=ghcr.io/acme/web].newTag: 1.2.3" in outcome.detail
    assert remote_refs(remote.bare) == refs and signer.signed == 0
    assert len(github.calls) == 0


def test_a_remote_that_moved_meanwhile_is_rebuilt_on_its_new_tip_never_forced(
    gitops_remote: GitopsRemote, sender: Sender, signer: Signer, signing_key: tuple[Path, str]
) -> None:
    spec = target(gitops_remote, create_pr=False)
    theirs: list[str] = []
    # Dana pushes after Ritmo fetched and before it pushes.
    signer.before_sign = lambda: theirs.append(
        gitops_remote.push_by_hand("README.md", "# gitops, by Dana\n", "Docs")
    )
    first = deliver(sender, spec)
    assert first.status == "retry", first
    assert "moved while Ritmo pushed" in first.detail
    assert gitops_remote.main() == theirs[0]  # Dana's commit stands; nothing was forced

    second = deliver(sender, spec)
    assert second.status == "delivered", second
    [ours] = commits_since(gitops_remote.bare, theirs[0])
    assert git(gitops_remote.bare, "rev-parse", f"{ours}^").strip() == theirs[0]
    verify_commit(gitops_remote.bare, ours, signing_key[0])
    assert gitops_remote.show("main", "README.md") == "# gitops, by Dana\n"
    assert '"1.2.3"' in gitops_remote.show("main", OVERLAY)


# -- what cannot be delivered ------------------------------------------------------------


def test_a_missing_file_image_or_branch_is_dead(
    gitops_remote: GitopsRemote, sender: Sender, signer: Signer
) -> None:
    missing = deliver(sender, target(gitops_remote, path="apps/api/overlays/staging/k.yaml"))
    assert missing.status == "dead"
    assert missing.detail == (
        f"apps/api/overlays/staging/k.yaml does not exist on main of {REPOSITORY}; fix `path`"
    )
    other = deliver(sender, target(gitops_remote, image="ghcr.io/acme/api"))
    assert other.status == "dead"
    assert f"{OVERLAY} has no images[] entry named ghcr.io/acme/api" in other.detail
    branch = deliver(sender, target(gitops_remote, branch="release"))
    assert branch.status == "dead" and "has no branch release" in branch.detail
    assert signer.signed == 0


def test_git_that_cannot_be_reached_is_retried(sender: Sender, gitops_remote: GitopsRemote) -> None:
    down = f"https://127.0.0.1:{free_port()}/acme/gitops-manifests.git"
    outcome = deliver(sender, target(gitops_remote, url=down, create_pr=False))
    assert outcome.status == "retry", outcome
    assert TOKEN not in outcome.detail


def test_credentials_and_the_updater_must_be_there(gitops_remote: GitopsRemote) -> None:
    r = rendered(target(gitops_remote))
    no_secret = Sender({}, 2.0, gitops=GitopsUpdater(Path("/nonexistent"), str, Identity("a", "b")))
    outcome = no_secret.send(r.kind, r.target, r.event, r.key)
    assert outcome.status == "dead" and "RITMO_NOTIFY__SECRETS__GITOPS_TOKEN" in outcome.detail
    no_updater = Sender({"gitops-token": TOKEN}, 2.0).send(r.kind, r.target, r.event, r.key)
    assert no_updater.status == "dead"
    assert no_updater.detail.startswith("update_gitops_repo needs")
    # A pull request needs a token; without a secret or a GitHub App there is none.
    anonymous = rendered(target(gitops_remote, secret=None))
    no_token = no_secret.send(anonymous.kind, anonymous.target, anonymous.event, anonymous.key)
    assert no_token.status == "dead" and "needs a GitHub token" in no_token.detail


def test_repositories_on_ritmos_own_host_need_the_operators_consent(
    gitops_remote: GitopsRemote, signer: Signer, tmp_path: Path
) -> None:
    """A policy cannot make Ritmo push into a repository on its host (its own mirrors,
    the embedded remote) unless notify.allow_local_repositories is set."""
    strict = GitopsUpdater(tmp_path / "m", signer, Identity("Ritmo", "ritmo@example.com"))
    sender = Sender({"gitops-token": TOKEN}, 2.0, gitops=strict)
    for url in (gitops_remote.url, str(gitops_remote.bare)):
        r = rendered(target(gitops_remote, url=url, create_pr=False))
        outcome = sender.send(r.kind, r.target, r.event, r.key)
        assert outcome.status == "dead", outcome
        assert "RITMO_NOTIFY__ALLOW_LOCAL_REPOSITORIES" in outcome.detail


# -- through the outbox ------------------------------------------------------------------


def test_the_outbox_delivers_through_the_updater(
    gitops_remote: GitopsRemote,
    policy: PolicyHolder,
    make_outbox: Callable[..., Outbox],
    updater: GitopsUpdater,
) -> None:
    spec = target(gitops_remote, create_pr=False, secret=None)
    policy.policy = policy_with(
        [{"on": ["promoted"], "environments": ["staging"], "update_gitops_repo": spec}]
    )
    outbox = make_outbox(gitops=updater)
    [row_id] = outbox.emit("promoted", context())
    assert outbox.deliver_due() == 1
    row = outbox.get(row_id)
    assert row is not None and row.status == "delivered", row
    assert '"1.2.3"' in gitops_remote.show("main", OVERLAY)

    without = make_outbox()
    [dead_id] = without.emit("promoted", context("pro-2"))
    without.deliver_due()
    dead = without.get(dead_id)
    assert dead is not None and dead.status == "dead"
    assert (dead.last_error or "").startswith("update_gitops_repo needs")
