"""create_app(settings): wires everything; nothing happens at import time."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask

from bot.api import artifacts, cd, deployments, health, outbox, promotions, webhooks
from bot.api.errors import register_error_handlers
from bot.config import ConfigError, Settings, load_settings
from bot.runtime import Runtime, build_runtime


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
    return app


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def create_app_from_env() -> Flask:
    """Factory for WSGI servers: `gunicorn 'bot.app:create_app_from_env()'`."""
    from bot.scheduler import start_scheduler

    configure_logging()
    config = os.environ.get("RITMO_CONFIG")
    try:
        settings = load_settings(Path(config) if config else None)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"ritmo: {exc}", file=sys.stderr)
        # 3 is gunicorn's "worker failed to boot": the master stops instead of respawning.
        sys.exit(3)
    start_scheduler(app.extensions["ritmo"], settings.scheduler_interval)
    app.extensions["ritmo"].webhooks.notify()  # deliveries queued before a restart
    app.extensions["ritmo"].outbox.start()  # and notifications
    return app
