"""A request's query string or JSON body as its pydantic model, or the ApiError that says
which fields are wrong: one place, so every view answers a bad request the same way."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from bot.api.errors import ApiError, invalid_fields

M = TypeVar("M", bound=BaseModel)


def query_of(model: type[M]) -> M:
    """The query string as `model`; a bad one answers 400 naming the fields."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise invalid_fields(exc, 400) from None


def json_body() -> Any:
    if not request.is_json:
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "body is not valid JSON: nested too deeply") from None


def body_of(model: type[M], not_an_object: str) -> M:
    """The request's JSON body as `model` (see `model_of`)."""
    return model_of(model, json_body(), not_an_object)


def model_of(model: type[M], raw: Any, not_an_object: str) -> M:
    """A JSON value as `model`; one that is not an object answers 422 `not_an_object`,
    bad fields answer 422 naming them."""
    if not isinstance(raw, dict):
        raise ApiError(422, not_an_object)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid_fields(exc) from None
