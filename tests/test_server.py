"""How `ritmo serve` configures gunicorn."""

from __future__ import annotations

from bot.config import Settings
from bot.server import _Gunicorn


def test_no_control_socket_shared_by_replicas_on_one_host(settings: Settings) -> None:
    """gunicorn's control socket defaults to ~/.gunicorn/gunicorn.ctl, one per user: two
    replicas on one host would announce the same one. Ritmo does not use it: it is off."""
    served = _Gunicorn(settings)
    assert served.cfg.control_socket_disable is True
    assert served.cfg.settings["worker_class"].get() == "gthread"


def test_gunicorn_builds_no_access_line_of_its_own_with_json_logs(settings: Settings) -> None:
    """With JSON logs Ritmo writes the access line (bot/telemetry/middleware.py); gunicorn's
    logger would build its own for every request all the same, for no handler."""
    served = _Gunicorn(settings.model_copy(update={"log_format": "json"}))
    logger = served.cfg.logger_class(served.cfg)
    assert logger.access(None, None, {}, None) is None  # builds nothing (its atoms need a resp)
    texts = _Gunicorn(settings.model_copy(update={"log_format": "text"}))
    assert texts.cfg.accesslog == "-"
    assert texts.cfg.logger_class.__name__ == "Logger"  # gunicorn's own, with its access line
