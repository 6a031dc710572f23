"""Telemetry: Prometheus metrics (metrics.py: the registry; collectors.py: what is read at
scrape time; middleware.py: HTTP requests and GET /metrics), OpenTelemetry spans
(tracing.py), JSON logs with correlation and delivery ids (correlation.py) and secrets
masked (logs.py).

Nothing here runs at import time: `instrument(app, runtime, ...)` (bot/app.py create_app),
`setup_tracing()` and `configure_logging()` (bot/app.py, bot/server.py) switch it on.
The domain parts (deploy, promotions, ...) import this room for spans and events, so it
does not import them back: what it must know of them, such as the CD ignored reasons it
counts, is handed in. It reads the index's tables (bot/store) at scrape time.
"""
