"""One page of a list answered the same way by every paged endpoint.

The body carries the page's items with total, page and per_page; a `Link: <...>;
rel="next"` header names the next page (the same request with page + 1) when there is one,
as GitHub's API does, so a client follows links instead of counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify, request, url_for


def has_next(page: int, per_page: int, total: int) -> bool:
    return page * per_page < total


def page_of(
    endpoint: str, items: Sequence[Any], total: int, page: int, per_page: int, **more: Any
) -> Response:
    """The JSON answer for page `page` of `endpoint`'s list; `more`: further body fields."""
    body: dict[str, Any] = {
        "items": list(items),
        "total": total,
        "page": page,
        "per_page": per_page,
        **more,
    }
    response = jsonify(body)
    if has_next(page, per_page, total):
        args = {**request.args.to_dict(), "page": str(page + 1)}
        next_url = url_for(endpoint, **args)  # type: ignore[arg-type]
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response
