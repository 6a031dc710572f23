"""POST /webhooks/github: verify, de-duplicate, queue, answer at once; the work happens later.

Acknowledging is: check the HMAC, insert one row (committed, in one transaction with the
deliveries that arrive beside it), answer. The worker that handles the delivery is woken
only once the answer has been sent (WSGI close), so its git and GitHub work never runs
before it."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from bot.api.errors import ApiError
from bot.runtime import Runtime
from bot.webhooks.router import Event
from bot.webhooks.verify import valid_signature

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/github")
def receive_github() -> tuple[Response, int]:
    runtime: Runtime = current_app.extensions["ritmo"]
    secret = runtime.settings.forge.github.webhook_secret
    if runtime.settings.forge.kind != "github" or not secret:
        raise ApiError(404, "GitHub webhooks need forge.kind github (and its webhook_secret)")
    body = request.get_data(cache=False)  # 413 past max_body_bytes
    if not valid_signature(secret, body, request.headers.get("X-Hub-Signature-256")):
        raise ApiError(401, "X-Hub-Signature-256 is missing or does not match the body")
    runtime.webhooks.arriving()  # the worker holds back while a burst is being answered
    name = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not name or not delivery or len(delivery) > 128:
        raise ApiError(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "body must be a JSON object")
    if name == "ping":
        return jsonify({"status": "pong", "zen": payload.get("zen")}), 200
    event = Event(name, delivery, payload)
    installation = runtime.settings.forge.github.installation_id
    tracked = name in ("installation", "installation_repositories")  # every installation
    if not tracked and event.installation_id not in (None, installation):
        # Another installation of the same app: not the manifests repository Ritmo serves.
        return jsonify({"status": "ignored", "installation": event.installation_id}), 202
    if not runtime.router.handles(event):
        return jsonify({"status": "ignored", "event": name, "action": payload.get("action")}), 202
    if not runtime.deliveries.accept(delivery, name, body.decode()):
        return jsonify({"status": "duplicate", "delivery": delivery}), 200
    answer = jsonify({"status": "queued", "delivery": delivery})
    answer.call_on_close(runtime.webhooks.notify)  # the server closes it once it is sent
    return answer, 202
