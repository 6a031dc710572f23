"""POST /webhooks/github: verify, de-duplicate, queue, answer at once; the work happens later.

Acknowledging is: check the HMAC, insert one row (committed, in one transaction with the
deliveries that arrive beside it), answer. The worker that handles the delivery is woken
only once the answer has been sent (WSGI close), so its git and GitHub work never runs
before it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.errors import Forbidden, Invalid
from bot.webhooks.delivery import authenticate, parse

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/github")
def receive_github() -> tuple[Response, int]:
    runtime = current_runtime()
    secret = runtime.settings.forge.github.webhook_secret
    if runtime.settings.forge.kind != "github" or not secret:
        raise ApiError(404, "GitHub webhooks need forge.kind github (and its webhook_secret)")
    body = request.get_data(cache=False)  # 413 past max_body_bytes
    try:
        authenticate(request.headers, body, secret)
        runtime.webhooks.arriving()  # the worker holds back while a burst is being answered
        event = parse(request.headers, body)
    except Forbidden as exc:
        raise ApiError(401, exc.message) from None  # GitHub's receivers answer 401, not 403
    except Invalid as exc:
        raise ApiError(400, exc.message) from None  # and 400 for a malformed delivery
    name, delivery, payload = event.name, event.delivery_id, event.payload
    if name == "ping":
        return jsonify({"status": "pong", "zen": payload.get("zen")}), 200
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
