"""`ritmo verify`: check the default branch's history as an audit trail, from git alone."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.cli.errors import EXIT_REFUSED, fail
from bot.cli.options import settings_from
from bot.config import ConfigError


@click.command("verify")
@click.option(
    "--since",
    metavar="REV|DATE",
    help="Check the commits after REV (any revision of the default branch: a sha, main~5, "
    "HEAD~100), or committed after an ISO date or date-time, only (default: all).",
)
@click.option(
    "--repo",
    "--remote",
    "repo",
    metavar="PATH|URL",
    help="The manifests repository to check (default: manifests.url of the settings).",
)
@click.option("--branch", help="Its default branch (default: manifests.branch).")
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of armoured public keys also trusted to sign; repeat for several.",
)
@click.option(
    "--policy-key",
    "policy_key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of armoured public keys trusted to change the policy only "
    "(besides signing.policy_keys); repeat for several.",
)
@click.option(
    "--cache/--no-cache",
    default=True,
    help="Keep what was judged (signature verdicts, records read, the walk up to the tip) "
    "in the user's cache directory ($XDG_CACHE_HOME/ritmo, else ~/.cache/ritmo), so a "
    "second run reads only the commits after the last tip it checked (default: on).",
)
@click.pass_context
def verify(
    ctx: click.Context,
    since: str | None,
    repo: str | None,
    branch: str | None,
    trusted_keys: tuple[Path, ...],
    policy_key_files: tuple[Path, ...],
    cache: bool,
) -> None:
    """Check the default branch's history as an audit trail, from git alone.

    Reports each problem as `<sha> <kind>: <message>`: a commit with Ritmo- trailers
    not signed by a trusted key (untrusted-signature); a pin changed by an unsigned commit
    without Ritmo trailers (unsigned-pin); a merge of a pin change that Ritmo neither made
    nor recorded (unrecorded-merge), or recorded as merged before its policy held
    (policy-not-held); a pinned version no artifact record has (unknown-version); a version
    pinned in an environment it never reached the one before (skipped-environment); a
    change to .ritmo/policy.yaml that neither Ritmo nor a policy key signed
    (untrusted-policy); a direct pin the trusted policy then required approval for
    (policy-not-held); a rollback to a version that never arrived there by a path the policy
    held (illegitimate-rollback); a commit on the ritmo/deployments ledger branch not signed
    by Ritmo (unsigned-ledger, the whole ledger whatever --since says). Commits before the
    policy's adoption are not judged.
    What was judged is kept outside the repository checked and its data directory (the
    repository must not be able to plant verdicts): see --cache.
    Trusted keys: Ritmo's signing key (signing.key) and each --trusted-key; for policy
    changes also signing.policy_keys (from signing.policy_keyring) and each --policy-key.

    Exit 0: no problem; 1: problems; 2: a usage or configuration error.
    """
    import tempfile

    from bot.audit.history import parse_when
    from bot.audit.local_mirror import LocalMirror
    from bot.audit.log import last_commit_by, resolve
    from bot.audit.repo import (
        TrustedKeyError,
        import_policy_keys,
        trusted_gnupg,
        verify_repository,
    )
    from bot.audit.tip_cache import TipCache
    from bot.manifests.mirror import Mirror
    from bot.manifests.verdict_cache import VerdictCache, user_cache_dir
    from bot.policy.trust import TrustKeys

    settings = settings_from(ctx)
    armoured = []
    for path in trusted_keys:
        try:
            armoured.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--trusted-key {path}: {exc}")
    if repo is None or settings.signing.key is not None:
        from bot.runtime import signing_key  # the server's modules: only when its key is used

        try:
            armoured.append(signing_key(settings).export_public_key())
        except ConfigError as exc:
            if repo is None or not armoured:
                fail(str(exc))
    if not armoured:
        fail("no trusted key: give --trusted-key FILE (`ritmo keys export` prints Ritmo's)")
    listed = settings.signing.policy_keys
    # Keys trusted for policy changes only: signing.policy_keys' keyring, each --policy-key.
    policy_armoured: list[str] = []
    extra: list[str] = []
    sources = [(settings.signing.policy_keyring, policy_armoured)]
    sources += [(path, extra) for path in policy_key_files]
    for source, into in sources:
        if source is None:
            continue
        try:
            into.append(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"policy key file {source}: {exc}")
    branch = branch or settings.manifests.branch
    with tempfile.TemporaryDirectory(prefix="ritmo-verify-") as scratch:
        if repo is None:
            url, token = settings.remote_url, settings.manifests.token
            root = (settings.data_dir / "verify-mirrors").resolve()
        else:
            local = Path(repo)
            url = str(local.resolve()) if local.exists() else repo
            token = settings.manifests.token if url == settings.remote_url else None
            root = Path(scratch)
        if repo is not None and Path(repo).is_dir():  # on this disk: borrow, do not fetch
            mirror: Mirror = LocalMirror(root, Path(url), branch)
        else:
            mirror = Mirror(root, url, branch, token)
        try:
            with mirror.locked(), trusted_gnupg(armoured) as (home, fingerprints):
                policy_fprs = import_policy_keys(home, policy_armoured, listed)
                policy_fprs += import_policy_keys(home, extra, None)
                keys = TrustKeys(frozenset(fingerprints), frozenset(policy_fprs))
                try:
                    tip = mirror.fetch()
                except OSError as exc:  # the user's own repository: all git said
                    fail(f"cannot read {branch} of {url}: {getattr(exc, 'detail', exc)}")
                if tip is None:
                    fail(f"{url} has no branch {branch}")
                base, after = None, ""
                if since is not None and since.strip("0"):
                    when = parse_when(since)
                    if when is not None:  # a date: what was committed after it
                        base, after = last_commit_by(mirror, tip, when), f" after {since}"
                    else:
                        base, after = resolve(mirror, since), f" after {since}"
                        if base is None:
                            fail(
                                f"--since {since}: neither a revision git resolves in {url} "
                                f"nor an ISO date (2024-05-01, 2024-05-01T12:00:00Z)"
                            )
                        if not mirror.is_ancestor(base, tip):
                            fail(f"--since {since}: {base[:12]} is not on {branch}")
                path = user_cache_dir() / "verify-cache.sqlite"
                kept = VerdictCache(path) if cache else None
                tips = TipCache(path) if cache else None
                try:
                    verified = verify_repository(mirror, tip, base, home, keys, kept, tips)
                finally:
                    if kept is not None and tips is not None:
                        kept.close()
                        tips.close()
        except TrustedKeyError as exc:
            fail(f"trusted keys: {exc}")
        finally:
            mirror.close()
    problems, checked = verified.problems, verified.checked
    for problem in problems:
        click.echo(str(problem))
    if verified.before_adoption:
        click.echo(
            f"ritmo verify: {verified.before_adoption} commit(s) before the policy's adoption "
            f"in {verified.adopted_at} are before adoption, not judged",
            err=True,
        )
    where = f"{checked} commit{'s' * (checked != 1)} of {branch}{after}"
    keys_text = f"{len(fingerprints)} trusted key{'s' * (len(fingerprints) != 1)}"
    if problems:
        click.echo(f"ritmo verify: {len(problems)} problem(s) in {where}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"ritmo verify: ok, {where} checked against {keys_text}", err=True)
