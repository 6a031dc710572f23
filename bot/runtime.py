"""Build the long-lived parts from Settings, checking each and failing closed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.audit.trail import AuditTrail
from bot.auth import reserved_names
from bot.config import ConfigError, Settings
from bot.deploy.gate import deployment_gate
from bot.deploy.ledger import follow_ledger
from bot.deploy.provenance import read_arrivals
from bot.deploy.records import LEDGER_BRANCH
from bot.deploy.service import DeploymentService
from bot.forge import Forge
from bot.forge.app_token import app_push_token
from bot.forge.github import GitHubForge, github_forge
from bot.forge.github_session import PACING, Pacing
from bot.forge.local import LocalForge
from bot.manifests.agent import AgentSigner
from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity
from bot.manifests.provenance import Signers, trust_home
from bot.manifests.records import split_image
from bot.manifests.remote import Token
from bot.manifests.segments import WriteResult, Written
from bot.manifests.signing import (
    ArtifactVerifier,
    CommitSigner,
    PipelinedSigner,
    find_embedded_key,
    open_gnupg,
    read_keyring,
)
from bot.manifests.writer import Conflict, ManifestWriter, WriteUnavailable
from bot.notify.events import announce, emitter
from bot.notify.gitops import GitopsUpdater
from bot.notify.outbox import Outbox
from bot.policy.adoption import AdoptPolicy
from bot.policy.commits import GitPolicyHistory
from bot.policy.load import PolicyError, policy_from_bytes
from bot.policy.model import PromotionRule
from bot.policy.source import PolicySource
from bot.policy.trust import TrustKeys
from bot.promotions.policy_change import PolicyRequests
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionService
from bot.promotions.view import EnvironmentsView
from bot.registry import ArtifactRegistry
from bot.store.deliveries import DeliveryQueue
from bot.store.deployments import DeploymentIndex
from bot.store.facts import RollbackFact
from bot.store.index import ArtifactIndex, IndexedArtifact
from bot.store.locks import Locks
from bot.store.reindex import follow, history_fact
from bot.store.request_index import RequestIndex
from bot.store.schema import make_engine
from bot.store.token_import import TokenFileError, import_tokens_file
from bot.store.tokens import TokenStore
from bot.templates import Templates
from bot.trust.watch import DriftWatch
from bot.webhooks.router import Router
from bot.webhooks.routes import build_router
from bot.webhooks.worker import DeliveryWorker

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
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
    chain_signer: AgentSigner
    drift: DriftWatch
    environments: EnvironmentsView
    audit: AuditTrail
    forge: Forge  # GitHub, or the local stand-in: the one the requests and deployments use

    def close(self) -> None:
        # What submits writes stops first, then the writers (what they hold queued still
        # needs the signer and the mirrors), then the signer.
        self.drift.close()
        self.outbox.stop()
        self.writer.close()
        self.ledger.close()
        self.chain_signer.close()
        self.mirror.close()
        self.ledger.mirror.close()
        self.forge.close()


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
        gpg.import_keys(read_keyring(Path(keyring), "signing.trusted_keyring"))
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


def trusted_signers(settings: Settings, signer: CommitSigner) -> Signers:
    """The keys whose commit signatures count: Ritmo's, and the policy keys (for policy)."""
    return trust_home(
        settings.data_dir, signer.export_public_key(), signer.fingerprint,
        settings.signing.policy_keys, settings.signing.policy_keyring,
    )  # fmt: skip


def policy_source(
    settings: Settings, signer: CommitSigner, mirror: Mirror, signers: Signers | None = None
) -> PolicySource:
    """The policy in force on `mirror`'s branch, as trusted commits wrote it."""
    signers = signers or trusted_signers(settings, signer)
    keys = TrustKeys(frozenset({signers.ritmo}), signers.policy)
    return PolicySource(policy_from_bytes, GitPolicyHistory(mirror, signers.home), keys)


def push_token(settings: Settings) -> Token:
    """git's credential for the remote: manifests.token, else the GitHub App's over https."""
    return settings.manifests.token or app_push_token(settings)


def open_mirror(settings: Settings, branch: str | None = None, token: Token = None) -> Mirror:
    """`token`: one source for all of a process's mirrors (None: push_token(settings))."""
    return Mirror(
        (settings.data_dir / "mirrors").resolve(),
        settings.remote_url,
        branch or settings.manifests.branch,
        token or push_token(settings),
    )


def open_index(settings: Settings, policy: PolicySource | None = None) -> ArtifactIndex:
    """The index; new records stand in the first environment of `policy` (the policy in
    force; None: nothing is indexed through this one, e.g. a test reading it)."""
    initial: str | Callable[[], str] = "dev"
    if policy is not None:
        initial = lambda: policy().environment_names[0]  # noqa: E731
    try:
        return ArtifactIndex(make_engine(settings.index_url), initial)
    except (SQLAlchemyError, ImportError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"setting database_url (RITMO_DATABASE_URL): cannot open the index ({why}); "
            "point it at a writable sqlite:/// path or a reachable PostgreSQL"
        ) from None


def _adopted(done: Future[WriteResult]) -> None:
    if (exc := done.exception()) is not None:
        log.error("could not adopt the policy: %s", exc)


def adopt_policy(
    settings: Settings, writer: ManifestWriter, policy: PolicySource, templates: Templates
) -> None:
    """Bootstrap: the first start on a branch with no trusted policy adopts its tip's."""
    try:
        writer.write(AdoptPolicy(policy.adopted, templates))
    except (WriteUnavailable, Conflict) as exc:
        raise ConfigError(
            f"cannot adopt the policy on {settings.manifests.branch} of "
            f"{settings.remote_url} ({exc}); Ritmo needs to push there to start"
        ) from None


def build_runtime(
    settings: Settings, templates: Templates | None = None, *, pacing: Pacing = PACING
) -> Runtime:
    """Every check that can fail does so here, before the server takes a request. `pacing`:
    the GitHub forge's pause between requests (tests against a fake GitHub need none)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    signer = signing_key(settings)
    verifier = artifact_verifier(settings)
    credential = push_token(settings)  # one installation token for both mirrors
    mirror = open_mirror(settings, token=credential)
    mirror.check_reachable()
    signers = trusted_signers(settings, signer)
    policy = policy_source(settings, signer, mirror, signers)
    index = open_index(settings, policy)
    templates = templates or Templates()
    requests_index = RequestIndex(index.engine)

    # Ritmo's own identities; any `<slug>[bot]` is refused besides (bot/auth.py check_name).
    reserved = reserved_names(settings.forge.kind, settings.forge.github.bot_login)
    tokens = TokenStore(index.engine, reserved)
    try:
        import_tokens_file(tokens, settings.tokens_file)  # once: the file is renamed
    except TokenFileError as exc:
        raise ConfigError(str(exc)) from None
    forge: Forge = github_forge(settings, policy, pacing) or LocalForge(tokens.memberships)

    def github_token() -> str:
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

    def image_of(app: str) -> str | None:
        latest, _ = index.search(name=app, limit=1)
        if not latest:
            return None
        image = latest[0].record.image
        return split_image(str(image))[0] if image else app

    drift = DriftWatch(
        mirror, signers, image_of, lambda sha: requests_index.by_commit(sha) is not None,
        policy.untrusted_commits, merges_judged_by_forge=settings.forge.kind == "github",
    )  # fmt: skip

    def advance(old: str | None, new: str, written: Written | None) -> None:
        # Runs in the writer thread, the one thread that reads the mirror. The policy
        # first: the index asks it where new records stand.
        policy.refresh(new, old, written)
        follow(index, mirror, new, old, written, requests_index)
        drift.seen(old, new, written)
        if started and not policy.adopted():  # the branch got its first content
            writer.submit(AdoptPolicy(policy.adopted, templates)).add_done_callback(_adopted)
        if written:  # what this process pushed: recorded, promoted, rolled back
            announce(outbox, index, written)
            drift.landed(written)
            rolled = [
                f
                for c in written
                if isinstance(f := history_fact(c.sha, c.message, c.when), RollbackFact)
            ]
            deployments.rollbacks.rolled_back_on_main(rolled)

    # The writers sign chains of commits through gpg-agent's socket, no process per
    # signature; through python-gnupg, the next gpg started early, when the agent cannot.
    chain_signer = AgentSigner(signer, fallback=PipelinedSigner(signer))
    locks = Locks(index.engine, settings.data_dir / "locks")
    # Replicas share PostgreSQL: one writer of the remote's branch at a time, in turn, so
    # none pushes on a stale tip (SQLite is one host, one replica: no lock, pipelined).
    exclusive = None
    if index.engine.dialect.name == "postgresql":
        name = f"manifests-writer:{settings.remote_url}:{settings.manifests.branch}"
        exclusive = partial(locks.in_turn, name)
    writer = ManifestWriter(
        mirror,
        chain_signer.sign,
        Identity(settings.manifests.author_name, settings.manifests.author_email),
        on_advance=advance,
        attempts=settings.manifests.push_attempts,
        exclusive=exclusive,
        known_tip=index.tip,
    )
    started = False
    try:
        # Fetch; the index and the policy follow the remote's tip.
        if writer.sync() is None:
            policy.refresh(None)  # an empty remote: the shipped default
    except PolicyError as exc:
        raise ConfigError(
            f"the policy on {settings.manifests.branch} is invalid, so Ritmo will not start; "
            f"fix it (ritmo policy check): {' | '.join(str(p) for p in exc.problems)}"
        ) from None
    deployment_index = DeploymentIndex(index.engine)

    def gate(artifact: IndexedArtifact, rule: PromotionRule, now: datetime) -> str | None:
        latest = deployment_index.latest_of(artifact.record.id, rule.from_env)
        label = f"{artifact.record.name} {artifact.record.version}"
        return deployment_gate(rule, label, latest, now)

    # What runs where, as git says; it also names the hand pin a promotion replaces.
    environments = EnvironmentsView(
        mirror, index, deployment_index, policy, settings.gnupghome, signer.fingerprint
    )
    promotions = PromotionService(
        writer, index, templates, policy, gate=gate, unrecorded=environments.unrecorded
    )
    identity = Identity(settings.manifests.author_name, settings.manifests.author_email)
    requests = PolicyRequests(  # promotion requests, and requests that change the policy
        mirror, writer, promotions, requests_index,
        index.get, templates, policy,
        forge, locks, holds=index.holds_of,
        report_policy_drift=drift.report_policy,
    )  # fmt: skip
    registry = ArtifactRegistry(
        writer, index, verifier, templates, settings.signing.require_artifact_signatures,
        chain=promotions.chain, policy=policy,
    )  # fmt: skip
    # Deployments go on a branch of their own: a commit on the default branch would make
    # ArgoCD and Flux sync again, and report again.
    ledger_mirror = open_mirror(settings, LEDGER_BRANCH, credential)
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
        forge, emit=emitter(outbox),
        log_url=lambda name: f"{argocd}/applications/{name}" if argocd else None,
        arrivals=partial(read_arrivals, mirror, gnupghome=settings.gnupghome,
                         fingerprint=signer.fingerprint),
    )  # fmt: skip
    router = build_router()
    deliveries = DeliveryQueue(index.engine, lease=settings.work_lease)
    # Handlers act through this runtime; the worker asks for it when it runs.
    webhooks = DeliveryWorker(deliveries, router, lambda: runtime)
    runtime = Runtime(
        settings=settings, signer=signer, mirror=mirror, index=index, tokens=tokens,
        writer=writer, registry=registry, templates=templates, policy=policy,
        promotions=promotions, requests=requests, requests_index=requests_index,
        router=router, deliveries=deliveries, webhooks=webhooks, deployments=deployments,
        ledger=ledger, outbox=outbox, chain_signer=chain_signer, drift=drift,
        environments=environments, audit=AuditTrail(mirror), forge=forge,
    )  # fmt: skip
    if mirror.tip() is not None and not policy.adopted():
        adopt_policy(settings, writer, policy, templates)
    started = True
    # Drift found while starting is recorded now that everything it announces to is up.
    drift.start(writer.submit, forge.alert)
    return runtime
