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
