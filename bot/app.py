"""create_app(settings): wires everything; nothing happens at import time."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask

from bot.api import (
    artifacts,
    cd,
    deployments,
    environments,
    health,
    outbox,
    promotions,
    tokens,
    webhook_ack,
    webhooks,
)
from bot.api import audit as audit_api
from bot.api import policy as policy_api
from bot.api.dashboard import blueprint as dashboard_blueprint
from bot.api.errors import register_error_handlers
from bot.api.openapi import blueprint as openapi_blueprint
from bot.config import ConfigError, Settings, load_settings
from bot.deploy.intake import IGNORED_REASONS
from bot.runtime import Runtime, build_runtime
from bot.telemetry import logs
from bot.telemetry.middleware import instrument
from bot.telemetry.tracing import setup_tracing


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ritmo"] = runtime or build_runtime(settings)
    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(artifacts.blueprint)
    app.register_blueprint(promotions.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(deployments.blueprint)
    app.register_blueprint(cd.blueprint)
    app.register_blueprint(outbox.blueprint)
    app.register_blueprint(tokens.blueprint)
    app.register_blueprint(audit_api.blueprint)
    app.register_blueprint(policy_api.blueprint)
    app.register_blueprint(environments.blueprint)
    app.register_blueprint(openapi_blueprint)
    app.register_blueprint(dashboard_blueprint)
    # /metrics, request metrics, log correlation ids
    metrics = instrument(app, app.extensions["ritmo"], ignored_reasons=IGNORED_REASONS)
    # Signed GitHub deliveries are acknowledged before Flask: a burst pays for every step.
    webhook_ack.install(app, app.extensions["ritmo"], metrics)
    return app


def configure_logging(settings: Settings | None = None) -> None:
    """JSON lines on stderr (settings.log_format), secrets masked (bot/telemetry/logs.py)."""
    logs.configure_logging(settings.log_format if settings else "json", logging.INFO)
    if settings is not None:
        logs.add_secrets(logs.secrets_of(settings))


def create_app_from_env() -> Flask:
    """Factory for WSGI servers: `gunicorn 'bot.app:create_app_from_env()'`."""
    from bot.scheduler import start_scheduler

    configure_logging()
    setup_tracing()  # only if the OTEL_* variables ask for it
    config = os.environ.get("RITMO_CONFIG")
    try:
        settings = load_settings(Path(config) if config else None)
        configure_logging(settings)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"ritmo: {exc}", file=sys.stderr)
        # 3 is gunicorn's "worker failed to boot": the master stops instead of respawning.
        sys.exit(3)
    start_scheduler(app.extensions["ritmo"], settings.scheduler_interval)
    app.extensions["ritmo"].webhooks.notify()  # deliveries queued before a restart
    app.extensions["ritmo"].outbox.start()  # and notifications
    return app
