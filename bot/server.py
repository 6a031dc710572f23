"""Run the app under gunicorn from the `ritmo serve` command."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from bot.config import Settings

if TYPE_CHECKING:
    from bot.runtime import Runtime


class _WithoutAccessLine(Logger):  # type: ignore[misc]
    """gunicorn's logger, less its access line: with JSON logs Ritmo writes its own. Given a
    log config, gunicorn builds its line (a dozen atoms a request) even with no handler to
    take it; in a burst of webhook deliveries that is CPU the answers wait for."""

    def access(self, *_args: Any) -> None:
        pass


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": self._settings.listen,
            "workers": self._settings.workers,
            "worker_class": "gthread",
            "threads": self._settings.threads,
            "timeout": 300,  # a request waits for its push; the push has its own bound
            "accesslog": "-",
        }
        if self._settings.log_format == "json":
            from bot.telemetry.logs import gunicorn_logconfig

            options["accesslog"] = None  # Ritmo's own access line, as JSON
            options["logconfig_dict"] = gunicorn_logconfig()
            options["logger_class"] = _WithoutAccessLine
        if "control_socket_disable" in self.cfg.settings:  # gunicorn 25 and later
            # Ritmo never uses gunicorn's control interface, and its default socket
            # (~/.gunicorn/gunicorn.ctl) is one per user: two replicas on one host share it.
            options["control_socket_disable"] = True
        if self._settings.workers > 1:
            from bot.telemetry.metrics import worker_exited

            options["child_exit"] = lambda _server, worker: worker_exited(worker.pid)
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Built in each worker after the fork, so git processes and threads are its own.
        from bot.app import configure_logging, create_app
        from bot.scheduler import start_scheduler
        from bot.telemetry.tracing import setup_tracing

        configure_logging(self._settings)
        setup_tracing()  # only if the OTEL_* variables ask for it
        app = create_app(self._settings)
        start_scheduler(app.extensions["ritmo"], self._settings.scheduler_interval)
        app.extensions["ritmo"].webhooks.notify()  # deliveries queued before a restart
        app.extensions["ritmo"].outbox.start()  # and notifications
        runtime = app.extensions["ritmo"]
        threading.Thread(
            target=_warm_up, args=(runtime,), name="ritmo-warm-up", daemon=True
        ).start()
        return app


def _warm_up(runtime: Runtime) -> None:
    """What the first registrations would wait for otherwise: gpg-agent's connection (gpg
    signs and checks a probe: about 0.1 s) and the commit message templates."""
    runtime.chain_signer.warm()
    runtime.templates.preload("commit/artifact.txt", "commit/promotion.txt")


def run_gunicorn(settings: Settings) -> None:
    if settings.workers > 1:
        # One set of counters summed over the workers, whichever answers /metrics.
        from bot.telemetry.metrics import prepare_multiprocess

        prepare_multiprocess(settings.data_dir / "prometheus")
    _Gunicorn(settings).run()
