"""GET / is anonymous, so its cost is bounded: apps come 50 to a page, and a page is
rendered once per change of what it shows (issue 14, item 5)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

import bot.api.dashboard as dashboard_module
from bot.api.dashboard_cache import PageCache
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer

APPS = [f"app-{i:03d}" for i in range(119)] + ["web"]  # web: the scaffold has overlays
POLICY = (
    "environments:\n  - {name: dev, auto_promote: true}\n  - {name: staging}\n"
    "promotion_rules:\n  - {from: dev, to: staging}\n"
    "apps:\n" + "".join(f"  {app}: {{}}\n" for app in APPS)
)


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pages rendered (one entry per render), and slows each a little so that
    callers arriving together overlap."""
    seen: list[int] = []
    real = dashboard_module.render_dashboard

    def counting(runtime: Runtime, data: dict[str, Any]) -> str:
        seen.append(data["page"])
        time.sleep(0.05)
        return real(runtime, data)

    monkeypatch.setattr(dashboard_module, "render_dashboard", counting)
    return seen


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-app="([^"]+)">', page)


def test_apps_come_fifty_to_a_page_with_links(client: FlaskClient) -> None:
    first = client.get("/").get_data(as_text=True)
    assert _rows(first) == APPS[:50]
    assert "Page 1 of 3 (120 apps)" in first
    assert 'rel="next" class="page-link" href="?page=2"' in first
    assert 'href="?page=3"' in first and 'rel="prev"' not in first
    second = client.get("/?page=2").get_data(as_text=True)
    assert _rows(second) == APPS[50:100]
    assert 'rel="prev" class="page-link" href="?page=1"' in second
    last = client.get("/?page=3").get_data(as_text=True)
    assert _rows(last) == APPS[100:]
    assert 'rel="next"' not in last


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?page=4", 404, "past the last page; the pages are 1 to 3"),
        ("?page=0", 400, "greater than or equal to 1"),
        ("?page=abc", 400, "valid integer"),
        ("?page=99999999999", 400, "less than or equal to 100000"),
    ],
)
def test_a_page_out_of_range_names_the_field(
    client: FlaskClient, query: str, status: int, message: str
) -> None:
    resp = client.get("/" + query)
    assert resp.status_code == status
    (field,) = resp.get_json()["fields"]
    assert field["field"] == "page" and message in field["message"]


def test_one_render_per_change(
    client: FlaskClient, tokens: dict[str, str], renders: list[int]
) -> None:
    for _ in range(20):
        assert client.get("/").status_code == 200
    assert renders == [1]
    client.get("/?page=3")
    client.get("/?page=3")
    assert renders == [1, 3]
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(name="web"), headers=bearer(tokens["ci"])
    )
    assert resp.status_code == 201
    pinned = 'data-app="web" data-env="dev">1.2.3</span>'
    time.sleep(1.1)  # the state is read at most once a second (STATE_TTL)
    # The index moved: the kept page is served at once while the new one renders.
    assert pinned not in client.get("/?page=3").get_data(as_text=True)
    cache: PageCache = client.application.extensions["ritmo.dashboard"]
    cache.settle()
    assert pinned in client.get("/?page=3").get_data(as_text=True)
    client.get("/?page=3")
    assert renders == [1, 3, 3]  # page 1 is rendered again only when someone asks


def test_concurrent_anonymous_loads_share_one_render(live_server: str, renders: list[int]) -> None:
    answers: list[int] = []
    start = threading.Barrier(16)

    def load() -> None:
        start.wait()
        answers.append(requests.get(live_server + "/", timeout=60).status_code)

    threads = [threading.Thread(target=load) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 16
    assert renders == [1]


def test_a_kept_page_is_served_while_the_next_renders() -> None:
    now = [0.0]
    cache = PageCache(max_age=60, clock=lambda: now[0])
    made: list[str] = []

    def render() -> str:
        made.append("x")
        return f"page {len(made)}"

    assert cache.get("tip-1", 1, render) == "page 1"  # the first: rendered now
    now[0] = 59
    assert cache.get("tip-1", 1, render) == "page 1"
    now[0] = 60  # ages like "5m ago" would be stale: served, and rendered again
    assert cache.get("tip-1", 1, render) == "page 1"
    cache.settle()
    assert cache.get("tip-1", 1, render) == "page 2"
    assert cache.get("tip-2", 1, render) == "page 2"  # a new state: the same
    cache.settle()
    assert cache.get("tip-2", 1, render) == "page 3"
    assert cache.renders == 3


def test_the_state_is_read_at_most_once_per_ttl() -> None:
    now = [0.0]
    cache = PageCache(clock=lambda: now[0], state_ttl=1.0)
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    assert [cache.state(read) for _ in range(100)] == [1] * 100
    now[0] = 1.0
    assert cache.state(read) == 2 and len(reads) == 2


def test_a_failed_background_render_keeps_the_last_page() -> None:
    cache = PageCache()
    assert cache.get("tip-1", 1, lambda: "page 1") == "page 1"

    def broken() -> str:
        raise RuntimeError("the forge is down")

    assert cache.get("tip-2", 1, broken) == "page 1"
    cache.settle()
    assert cache.get("tip-2", 1, lambda: "page 2") == "page 1"  # rendering now
    cache.settle()
    assert cache.get("tip-2", 1, broken) == "page 2"
