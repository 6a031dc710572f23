"""Is `listen` free? Checked before `ritmo serve` creates anything, so a port already in use
leaves no data directory, mirror clone or database behind."""

from __future__ import annotations

import errno
import socket

from bot.config import ConfigError


def check_listen(listen: str) -> None:
    """ConfigError naming the setting when host:port cannot be bound now."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")  # [::1]:8080
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"setting listen (RITMO_LISTEN): cannot resolve {host!r} ({exc}); "
            "give an address of this host, e.g. 127.0.0.1:8080"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # As gunicorn binds: a port left in TIME_WAIT by an earlier run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            why = "is already in use" if in_use else f"cannot be bound ({exc.strerror})"
            raise ConfigError(
                f"setting listen (RITMO_LISTEN): {listen} {why}; stop what holds it or "
                "choose another host:port"
            ) from None
