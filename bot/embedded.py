"""The embedded default: with nothing configured, Ritmo sets itself up in data_dir."""

from __future__ import annotations

from bot.auth import Scope
from bot.config import Settings
from bot.manifests.mirror import init_bare
from bot.manifests.signing import find_embedded_key, generate_embedded_key, open_gnupg
from bot.runtime import Runtime
from bot.scaffold import EXAMPLE_APP, ScaffoldChange
from bot.store.schema import make_engine
from bot.store.tokens import TokenStore

BANNER = "!" * 72


def prepare_embedded(settings: Settings) -> list[str]:
    """Create what is unconfigured: signing key and bare remote. Returns notes to print."""
    notes: list[str] = []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.signing.key is None and settings.embedded_remote:
        gpg = open_gnupg(settings.gnupghome)
        fingerprint = find_embedded_key(gpg)
        if fingerprint is None:
            fingerprint = generate_embedded_key(gpg, settings.manifests.author_email)
        notes += [
            BANNER,
            f"LOCAL SIGNING KEY {fingerprint}",
            f"  in {settings.gnupghome}, made by Ritmo with no passphrase.",
            "  It is for local use only. For a real manifests repository set",
            "  signing.key (RITMO_SIGNING__KEY) to a key you manage.",
            BANNER,
        ]
    if settings.embedded_remote:
        remote = settings.data_dir.resolve() / "manifests.git"
        if not (remote / "HEAD").exists():
            init_bare(remote, settings.manifests.branch)
        notes.append(f"Manifests remote (embedded): {remote}")
    return notes


def seed_embedded(runtime: Runtime) -> bool:
    """Commit the scaffold to an empty embedded remote; True when it did."""
    if not runtime.settings.embedded_remote or runtime.mirror.tip() is not None:
        return False
    message = runtime.templates.render("commit/init.txt", app=EXAMPLE_APP)
    result = runtime.writer.write(ScaffoldChange(message))
    return result.commit is not None


def create_first_tokens(settings: Settings) -> list[str]:
    """An admin and a CI token for a fresh embedded set-up; shown once, stored as hashes."""
    if not settings.embedded_remote:
        return []
    engine = make_engine(settings.index_url)
    try:
        store = TokenStore(engine)
        if store.names():
            return []
        admin = store.create("admin", [Scope.ADMIN])
        ci = store.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
    finally:
        engine.dispose()  # before the fork: workers open their own
    return [
        "Tokens (shown once; only their hashes are kept):",
        f"  admin (scope admin):                        {admin}",
        f"  ci    (scopes artifacts:write artifacts:read): {ci}",
    ]
