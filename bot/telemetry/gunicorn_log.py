"""gunicorn's own lines as Ritmo's JSON lines (log_format: json).

gunicorn logs to its loggers `gunicorn.error` (start, workers, errors) and `gunicorn.access`
(one line per request) through handlers it installs itself; this logger class gives
those handlers Ritmo's JSON formatter and secret masking. An access line carries the
route (the Flask URL rule, which the app leaves in the WSGI environ), the status, the
duration in milliseconds and the request's correlation id (the response header).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from gunicorn import glogging

from bot.telemetry.logs import JsonFormatter, RedactingFilter

ROUTE_KEY = "ritmo.route"  # set by the app on every request it routes (telemetry.metrics)


class JsonGunicornLogger(glogging.Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
    ) -> None:
        if not self.access_log_enabled:
            return
        try:
            message, extra = access_line(resp, environ, request_time)
            self.access_log.log(logging.INFO, message, extra=extra)
        except Exception:  # a log line never fails a request
            self.error_log.exception("could not write the access line")


def access_line(
    resp: Any, environ: dict[str, Any], request_time: datetime.timedelta
) -> tuple[str, dict[str, Any]]:
    """The message and the `extra` of one access line (pure)."""
    status = resp.status
    code = int(str(status).split(None, 1)[0]) if status else 0
    headers = {str(k).lower(): v for k, v in (resp.headers or [])}
    method = environ.get("REQUEST_METHOD", "-")
    path = environ.get("PATH_INFO", "")
    route = environ.get(ROUTE_KEY)
    duration_ms = round(request_time.total_seconds() * 1000, 3)
    fields = {
        "method": method,
        "path": path,
        "route": route,
        "status": code,
        "duration_ms": duration_ms,
        "bytes": getattr(resp, "sent", None),
        "remote_addr": environ.get("REMOTE_ADDR"),
    }
    message = f"{method} {route or path} {code} {duration_ms}ms"
    return message, {"fields": fields, "correlation_id": headers.get("x-correlation-id")}
