"""Build the long-lived parts from Settings, checking each and failing closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.auth import TokenStore
from bot.config import ConfigError, Settings
from bot.deploy.gate import deployment_gate
from bot.deploy.ledger import follow_ledger
from bot.deploy.records import LEDGER_BRANCH
from bot.deploy.service import DeploymentService
from bot.environments import environment_names
from bot.forge.github import GitHubForge, github_forge
from bot.forge.local import LocalForge
from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity, read_path
from bot.manifests.signing import (
    ArtifactVerifier,
    CommitSigner,
    PipelinedSigner,
    find_embedded_key,
    open_gnupg,
)
from bot.manifests.writer import ManifestWriter, Written
from bot.notify.events import announce, emitter
from bot.notify.gitops import GitopsUpdater
from bot.notify.outbox import Outbox
from bot.policy.load import PolicyError, policy_from_branch
from bot.policy.model import PromotionRule
from bot.policy.source import PolicySource
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionService
from bot.registry import ArtifactRegistry
from bot.store.deliveries import DeliveryQueue
from bot.store.deployments import DeploymentIndex
from bot.store.index import (
    ArtifactIndex,
    IndexedArtifact,
    RequestIndex,
    RollbackFact,
    make_engine,
)
from bot.store.locks import Locks
from bot.store.reindex import follow, history_fact
from bot.templates import Templates
from bot.webhooks.router import Router
from bot.webhooks.routes import build_router
from bot.webhooks.worker import DeliveryWorker


@dataclass
class Runtime:
    settings: Settings
    signer: CommitSigner
    mirror: Mirror
    index: ArtifactIndex
    tokens: TokenStore
    writer: ManifestWriter
    registry: ArtifactRegistry
    templates: Templates
    policy: PolicySource
    promotions: PromotionService
    requests: RequestService
    requests_index: RequestIndex
    router: Router
    deliveries: DeliveryQueue
    webhooks: DeliveryWorker
    deployments: DeploymentService
    ledger: ManifestWriter
    outbox: Outbox
    chain_signer: PipelinedSigner

    def close(self) -> None:
        self.chain_signer.close()
        self.outbox.stop()
        self.mirror.close()
        self.ledger.mirror.close()
        forge_close = getattr(self.requests.forge, "close", None)
        if forge_close is not None:
            forge_close()


def signing_key(settings: Settings) -> CommitSigner:
    gpg = open_gnupg(settings.gnupghome)
    # The embedded key only ever signs the embedded remote: a real remote needs a real key.
    embedded = find_embedded_key(gpg) if settings.embedded_remote else None
    fingerprint = settings.signing.key or embedded
    if fingerprint is None:
        raise ConfigError(
            "setting signing.key (RITMO_SIGNING__KEY) is not set; set it to the fingerprint "
            f"of the key in {settings.gnupghome} that signs commits to {settings.remote_url}"
        )
    return CommitSigner(gpg, fingerprint)


def artifact_verifier(settings: Settings) -> ArtifactVerifier:
    """A keyring holding only the CI signers' public keys, so nothing else is trusted."""
    home = (settings.data_dir / "trusted-gnupg").resolve()
    gpg = open_gnupg(home)
    keyring = settings.signing.trusted_keyring
    if keyring is not None:
        try:
            armored = Path(keyring).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"setting signing.trusted_keyring (RITMO_SIGNING__TRUSTED_KEYRING): {keyring}: "
                f"{exc.strerror}; point it at a file of armoured public keys"
            ) from None
        gpg.import_keys(armored)
    known = {k["fingerprint"] for k in gpg.list_keys()}
    missing = [f for f in settings.signing.trusted_keys if f not in known]
    if missing:
        raise ConfigError(
            "setting signing.trusted_keys (RITMO_SIGNING__TRUSTED_KEYS): no public key "
            f"{missing[0]} in signing.trusted_keyring; add the CI signer's armoured public key"
        )
    if settings.signing.require_artifact_signatures and not settings.signing.trusted_keys:
        raise ConfigError(
            "setting signing.require_artifact_signatures is on but signing.trusted_keys is empty;"
            " list the fingerprints of the keys CI signs with"
        )
    return ArtifactVerifier(gpg, settings.signing.trusted_keys)


def open_mirror(settings: Settings, branch: str | None = None) -> Mirror:
    return Mirror(
        (settings.data_dir / "mirrors").resolve(),
        settings.remote_url,
        branch or settings.manifests.branch,
        settings.manifests.token,
    )


def open_index(settings: Settings) -> ArtifactIndex:
    try:
        return ArtifactIndex(make_engine(settings.index_url), environment_names()[0])
    except (SQLAlchemyError, ImportError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"setting database_url (RITMO_DATABASE_URL): cannot open the index ({why}); "
            "point it at a writable sqlite:/// path or a reachable PostgreSQL"
        ) from None


def build_runtime(settings: Settings, templates: Templates | None = None) -> Runtime:
    """Every check that can fail does so here, before the server takes a request."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    signer = signing_key(settings)
    verifier = artifact_verifier(settings)
    mirror = open_mirror(settings)
    mirror.check_reachable()
    index = open_index(settings)
    templates = templates or Templates()
    policy = PolicySource(policy_from_branch)
    requests_index = RequestIndex(index.engine)

    def github_token() -> str:
        # The forge is built below; dispatches only run once the runtime is up.
        forge = requests.forge
        if not isinstance(forge, GitHubForge):
            raise RuntimeError("GitHub dispatches need forge.kind github, or a named secret")
        return forge.installation_token()

    outbox = Outbox(
        index.engine, policy, settings.notify,
        github_token=github_token if settings.forge.kind == "github" else None,
        api_url=settings.forge.github.api_url,
        gitops=GitopsUpdater(
            (settings.data_dir / "gitops-mirrors").resolve(), signer.sign,
            Identity(settings.manifests.author_name, settings.manifests.author_email),
            allow_local=settings.notify.allow_local_repositories,
        ),
        lease=settings.work_lease,
    )  # fmt: skip

    def advance(old: str | None, new: str, written: Written | None) -> None:
        # Runs in the writer thread, the one thread that reads the mirror.
        follow(index, mirror, new, old, written, requests_index)
        policy.refresh(partial(read_path, mirror, mirror.tree_of(new)))
        if written:  # what this process pushed: recorded, promoted, rolled back
            announce(outbox, index, written)
            rolled = [
                f
                for c in written
                if isinstance(f := history_fact(c.sha, c.message, c.when), RollbackFact)
            ]
            deployments.rolled_back_on_main(rolled)

    # The writers sign chains of commits: the next gpg starts while one signs.
    chain_signer = PipelinedSigner(signer)
    writer = ManifestWriter(
        mirror,
        chain_signer.sign,
        Identity(settings.manifests.author_name, settings.manifests.author_email),
        on_advance=advance,
        attempts=settings.manifests.push_attempts,
    )
    try:
        # Fetch; the index and the policy follow the remote's tip.
        if writer.sync() is None:
            policy.refresh(lambda _path: None)  # an empty remote: the shipped default
    except PolicyError as exc:
        raise ConfigError(
            f"the policy on {settings.manifests.branch} is invalid, so Ritmo will not start; "
            f"fix it (ritmo policy check): {' | '.join(str(p) for p in exc.problems)}"
        ) from None
    deployment_index = DeploymentIndex(index.engine)

    def gate(artifact: IndexedArtifact, rule: PromotionRule, now: datetime) -> str | None:
        latest = deployment_index.latest_of(artifact.record["id"], rule.from_env)
        label = f"{artifact.record['name']} {artifact.record['version']}"
        return deployment_gate(rule, label, latest, now)

    promotions = PromotionService(writer, index, templates, policy, gate=gate)
    tokens = TokenStore(settings.tokens_file)
    identity = Identity(settings.manifests.author_name, settings.manifests.author_email)
    requests = RequestService(
        mirror, writer, signer.sign, identity, promotions, requests_index,
        index.get, templates, policy,
        github_forge(settings, policy) or LocalForge(tokens.memberships),
        Locks(index.engine, settings.data_dir / "locks"), holds=index.holds_of,
    )  # fmt: skip
    registry = ArtifactRegistry(
        writer, index, verifier, templates, settings.signing.require_artifact_signatures,
        chain=promotions.chain, policy=policy,
    )  # fmt: skip
    # Deployments go on a branch of their own: a commit on the default branch would make
    # ArgoCD and Flux sync again, and report again.
    ledger_mirror = open_mirror(settings, LEDGER_BRANCH)
    ledger = ManifestWriter(
        ledger_mirror,
        chain_signer.sign,
        identity,
        on_advance=partial(follow_ledger, deployment_index, ledger_mirror),
        attempts=settings.manifests.push_attempts,
    )
    ledger.sync()
    argocd = (settings.cd.argocd_url or "").rstrip("/")
    deployments = DeploymentService(
        mirror, writer, ledger, index, deployment_index, promotions, requests, templates, policy,
        requests.forge, emit=emitter(outbox),
        log_url=lambda name: f"{argocd}/applications/{name}" if argocd else None,
    )  # fmt: skip
    router = build_router()
    deliveries = DeliveryQueue(index.engine, lease=settings.work_lease)
    # Handlers act through this runtime; the worker asks for it when it runs.
    webhooks = DeliveryWorker(deliveries, router, lambda: runtime)
    runtime = Runtime(
        settings, signer, mirror, index, tokens, writer, registry, templates, policy, promotions,
        requests, requests_index, router, deliveries, webhooks, deployments, ledger, outbox,
        chain_signer,
    )  # fmt: skip

    return runtime
