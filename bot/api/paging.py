"""One page of a list answered the same way by every paged endpoint.

The body carries the page's items with total, page and per_page; a `Link: <...>;
rel="next"` header names the next page (the same request with page + 1) when there is one,
as GitHub's API does, so a client follows links instead of counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from flask import Response, jsonify, request, url_for
from pydantic import Field

# The query fields every paged list takes: `page: Page = 1`, `per_page: PerPage = 50`.
Page = Annotated[int, Field(ge=1, le=1_000_000)]  # past it, SQL offsets overflow
PerPage = Annotated[int, Field(ge=1, le=500)]


def offset(page: int, per_page: int) -> int:
    """How many rows come before `page`."""
    return (page - 1) * per_page


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
