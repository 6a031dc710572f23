"""The checks on this machine and the git remote: the remote, the signing key, the policy in
force, the database, and the CD endpoints' secrets. Each returns one Finding; a later check
that needs an earlier one's result skips when it failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings
from bot.doctor.findings import Finding, fail, ok, one_line, skip
from bot.manifests.mirror import TIMED_OUT, Mirror
from bot.manifests.provenance import trust_home
from bot.manifests.signing import CommitSigner, SigningError
from bot.policy.load import PolicyError, policy_from_bytes
from bot.policy.source import PolicySource
from bot.policy.trust import TrustKeys
from bot.store.schema import SCHEMA_VERSION, make_engine

PUSH_TIMEOUT = 60.0


class LocalChecks:
    def __init__(self, settings: Settings, scratch: Path) -> None:
        self.settings = settings
        self._scratch = scratch  # a temporary directory: the doctor leaves nothing behind
        self.mirror: Mirror | None = None
        self.tip: str | None = None
        self.signer: CommitSigner | None = None

    # -- the remote ------------------------------------------------------------------
    def remote_reachable(self) -> Finding:
        s = self.settings
        if s.embedded_remote and not Path(s.remote_url).exists():
            return fail(
                "remote reachable",
                f"no embedded remote at {s.remote_url}; run `ritmo serve` once to create it, "
                "or set manifests.url (RITMO_MANIFESTS__URL)",
            )
        mirror = Mirror(self._scratch / "mirror", s.remote_url, s.manifests.branch,
                        s.manifests.token)  # fmt: skip
        try:
            mirror.check_reachable()
            self.tip = mirror.fetch()
        except ConfigError as exc:
            return fail("remote reachable", str(exc))
        except OSError as exc:
            return fail("remote reachable", f"{one_line(str(exc))}; check manifests.branch")
        self.mirror = mirror
        where = f"{s.manifests.branch} at {self.tip[:12]}" if self.tip else "no branch yet"
        return ok("remote reachable", f"{mirror.url} ({where})")

    def remote_writable(self) -> Finding:
        name = "remote writable"
        if self.mirror is None:
            return skip(name, "needs the remote")
        branch = self.settings.manifests.branch
        if self.tip is None:
            return skip(name, f"{branch} has no commit to push back yet")
        # Pushing the branch's own tip changes nothing, but the transport still asks the
        # remote for push access (GitHub's receive-pack answers 403 to a read-only token).
        refused = self.mirror.push_refused(self.tip, timeout=PUSH_TIMEOUT)
        if refused == TIMED_OUT:
            return fail(name, f"git push --dry-run did not finish within {PUSH_TIMEOUT:g}s")
        if refused is not None:
            why = one_line(refused, 240)
            return fail(
                name,
                f"git push --dry-run to {self.mirror.url} refused ({why}); give the token in "
                "manifests.token (RITMO_MANIFESTS__TOKEN) or the deploy key write access",
            )
        return ok(name, f"git push --dry-run to {branch} accepted")

    # -- the signing key -------------------------------------------------------------
    def signing_key(self) -> Finding:
        from bot.runtime import signing_key

        name = "signing key"
        home = self.settings.gnupghome
        if not home.exists():  # opening it would create it: the doctor only looks
            embedded = (
                " (`ritmo serve` creates the embedded key there)" * self.settings.embedded_remote
            )
            return fail(
                name,
                f"no GnuPG home at {home}{embedded}; set signing.gnupghome "
                "(RITMO_SIGNING__GNUPGHOME) to the home that holds signing.key",
            )
        try:
            signer = signing_key(self.settings)
            signer.sign(b"ritmo doctor\n")
        except (ConfigError, SigningError) as exc:
            return fail(name, str(exc))
        self.signer = signer
        return ok(name, f"{signer.fingerprint} signs")

    # -- the policy ------------------------------------------------------------------
    def policy(self) -> Finding:
        from bot.policy.commits import GitPolicyHistory

        name = "policy"
        if self.mirror is None or self.signer is None:
            return skip(name, "needs the remote and the signing key")
        s = self.settings
        try:
            signers = trust_home(
                self._scratch, self.signer.export_public_key(), self.signer.fingerprint,
                s.signing.policy_keys, s.signing.policy_keyring,
            )  # fmt: skip
        except ConfigError as exc:
            return fail(name, str(exc))
        keys = TrustKeys(frozenset({signers.ritmo}), signers.policy)
        source = PolicySource(policy_from_bytes, GitPolicyHistory(self.mirror, signers.home), keys)
        try:
            source.refresh(self.tip, strict=True)
        except PolicyError as exc:
            problems = "; ".join(str(p) for p in exc.problems[:3])
            more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
            return fail(
                name,
                f"{problems}{more}; fix .ritmo/policy.yaml (`ritmo policy check FILE` lists "
                "every problem) and change it through `ritmo policy apply`",
            )
        blob = source.in_force_blob()
        what = f"blob {blob[:12]}" if blob else "the shipped default"
        state = "in force" if source.adopted() else "adopted by Ritmo at its first start"
        untrusted = source.untrusted_commits()
        note = (
            f"; {len(untrusted)} untrusted change(s) not obeyed (`ritmo verify` names them)"
            if untrusted else ""
        )  # fmt: skip
        return ok(name, f"{what} valid, {state}{note}")

    # -- the database ----------------------------------------------------------------
    def database(self) -> Finding:
        name = "database"
        url = self.settings.index_url
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                return fail(name, f"no index at {path}; `ritmo serve` (or `ritmo reindex`) "
                                  "creates it from git")  # fmt: skip
        try:
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    tables = sa.inspect(conn).get_table_names()
                    version = None
                    if "index_state" in tables:
                        version = conn.execute(
                            sa.text("SELECT value FROM index_state WHERE key = 'schema'")
                        ).scalar_one_or_none()
            finally:
                engine.dispose()
        except (SQLAlchemyError, ImportError) as exc:
            why = one_line(str(exc), 200)
            return fail(name, f"cannot open {_safe(url)} ({why}); check database_url "
                              "(RITMO_DATABASE_URL)")  # fmt: skip
        if version != SCHEMA_VERSION:
            seen = f"schema {version}" if version else "no Ritmo schema"
            return fail(
                name,
                f"{seen}, this Ritmo needs schema {SCHEMA_VERSION}; `ritmo serve` rebuilds the "
                "index from git as it starts (or `ritmo reindex`)",
            )
        return ok(name, f"{_safe(url)} reachable, schema {version}")

    # -- the CD endpoints ------------------------------------------------------------
    def cd_endpoints(self) -> Finding:
        cd = self.settings.cd
        on = [n for n, secret in (("ArgoCD", cd.argocd_token), ("Flux", cd.flux_secret)) if secret]
        if not on:
            return fail(
                "cd endpoints",
                "neither is on, so no deployment is ever recorded: set cd.argocd_token "
                "(RITMO_CD__ARGOCD_TOKEN) for ArgoCD or cd.flux_secret (RITMO_CD__FLUX_SECRET) "
                "for Flux, 16 characters or more",
            )
        off = [n for n in ("ArgoCD", "Flux") if n not in on]
        return ok(
            "cd endpoints", ", ".join(on) + " secret set" + (f"; {off[0]} off" if off else "")
        )

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
        home = self._scratch / "trust-gnupg"
        if home.exists():
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                           capture_output=True, check=False)  # fmt: skip


def _safe(url: str) -> str:
    """The database URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "database_url"
