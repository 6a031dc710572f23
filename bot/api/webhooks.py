"""POST /webhooks/github: verify, de-duplicate, queue, answer at once; the work happens later.

Acknowledging is: check the HMAC, insert one row (committed, in one transaction with the
deliveries that arrive beside it), answer. The worker that handles the delivery is woken
only once the answer has been sent (WSGI close), so its git and GitHub work never runs
before it. Well-formed signed deliveries are answered before Flask by the WSGI fast path
(bot/api/webhook_ack.py); this view answers the rest (refusals name the header or the
body) and any request the fast path leaves to Flask, with the same decision."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.errors import Forbidden, Invalid
from bot.webhooks.acknowledge import acknowledge
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
    installation = runtime.settings.forge.github.installation_id
    answer = acknowledge(event, body, installation, runtime.router, runtime.deliveries)
    response = jsonify(answer.body)
    if answer.queued:
        response.call_on_close(runtime.webhooks.notify)  # the server closes it once it is sent
    return response, answer.status
