"""The order of `ritmo doctor`'s checks; each finding is yielded as soon as it is known."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from bot.config import ConfigError, load_settings
from bot.doctor.findings import Finding, fail, ok, skip
from bot.doctor.local import LocalChecks

LATER = ("remote reachable", "remote writable", "signing key", "policy", "database")


def diagnose(config: Path | None) -> Iterator[Finding]:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        yield fail("settings", str(exc))
        for name in LATER:
            yield skip(name, "needs valid settings")
        return
    where = str(config) if config else "defaults and RITMO_* variables"
    yield ok("settings", f"{where}; forge {settings.forge.kind}")
    with tempfile.TemporaryDirectory(prefix="ritmo-doctor-") as scratch:
        local = LocalChecks(settings, Path(scratch))
        try:
            yield local.remote_reachable()
            yield local.remote_writable()
            yield local.signing_key()
            yield local.policy()
            yield local.database()
        finally:
            local.close()
    if settings.forge.kind == "github":
        from bot.doctor.github import GitHubChecks

        github = GitHubChecks(settings)
        try:
            yield from github.run()
        finally:
            github.close()
    yield local.cd_endpoints()
