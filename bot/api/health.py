"""Liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from bot.manifests.mirror import TIMED_OUT
from bot.manifests.signing import open_gnupg
from bot.runtime import Runtime

blueprint = Blueprint("health", __name__)

READY_TTL = 5.0  # seconds a readiness answer is reused: probes must not hammer the remote
REMOTE_TIMEOUT = 5.0


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


class Readiness:
    """The remote answers, the index answers, the signing key is there; cached briefly."""

    def __init__(self, runtime: Runtime, ttl: float | None = None) -> None:
        self._runtime = runtime
        self.ttl = READY_TTL if ttl is None else ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, str]] | None = None

    def checks(self) -> dict[str, str]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.ttl:
                self._cached = (now, self._run())
            return dict(self._cached[1])

    def _run(self) -> dict[str, str]:
        checks: dict[str, Callable[[], str | None]] = {
            "remote": self._remote,
            "database": self._database,
            "signing_key": self._signing_key,
        }
        out: dict[str, str] = {}
        for name, check in checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check that breaks is a failing check
                problem = type(exc).__name__
            out[name] = "ok" if problem is None else f"failing: {problem}"
        return out

    def _remote(self) -> str | None:
        why = self._runtime.mirror.unreachable(timeout=REMOTE_TIMEOUT)
        if why == TIMED_OUT:
            return f"the manifests remote did not answer within {REMOTE_TIMEOUT:g}s"
        if why is not None:
            return "the manifests remote cannot be reached (git ls-remote failed)"
        return None

    def _database(self) -> str | None:
        with self._runtime.index.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None

    def _signing_key(self) -> str | None:
        fingerprint = self._runtime.signer.fingerprint
        gpg = open_gnupg(self._runtime.settings.gnupghome)
        if fingerprint not in {k["fingerprint"] for k in gpg.list_keys(secret=True)}:
            return f"no secret key {fingerprint} in the signing keyring"
        return None


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    app = current_app
    readiness = app.extensions.get("ritmo.readiness")
    if readiness is None:
        readiness = app.extensions.setdefault("ritmo.readiness", Readiness(app.extensions["ritmo"]))
    checks = readiness.checks()
    failing = [name for name, status in checks.items() if status != "ok"]
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": checks}
        return jsonify(body), 503
    return jsonify({"status": "ready", "checks": checks}), 200
