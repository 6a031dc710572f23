"""Deployment (store/deployment_record.py): the ledger's YAML and the index's JSON are read
into it and written from it as they were, byte for byte."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.deploy.records import (
    Observation,
    Placement,
    mark_rolled_back,
    observe,
    parse_deployment,
    render_deployment,
)
from bot.manifests.records import API_VERSION, render_record
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import KEYS, REQUIRED, Deployment
from tests.store.wire_records import MAPPING, TEXT, wire_records

PLACE = Placement("web", "dev", "art-1", "1.0.0", "p" * 40, "r" * 40, "apps/web/dev.yaml")
AT = "2026-12-03T10:00:00Z"


def _seen(status: str, **more: Any) -> Observation:
    return Observation(DeploymentStatus(status), "argocd", "on-deployed", "r" * 40, AT, **more)


def test_a_new_record_is_written_as_the_dict_it_replaces() -> None:
    record = observe(None, PLACE, _seen("succeeded", message="synced"))
    assert record is not None
    # The record as a dict literal wrote it, key for key in this order.
    before = {
        "apiVersion": API_VERSION, "kind": "Deployment", "id": PLACE.deployment_id,
        "app": "web", "environment": "dev", "artifact_id": "art-1", "version": "1.0.0",
        "pin_commit": "p" * 40, "overlay": "apps/web/dev.yaml", "status": "succeeded",
        "revision": "r" * 40, "deployed_by": "argocd", "target_type": None,
        "target_url": None, "log_url": None, "created_at": AT, "updated_at": AT,
        "succeeded_at": AT, "superseded": False,
        "history": [{"at": AT, "status": "succeeded", "source": "argocd",
                     "trigger": "on-deployed", "revision": "r" * 40, "message": "synced"}],
    }  # fmt: skip
    assert list(record.to_dict()) == list(KEYS)
    assert render_deployment(record) == render_record(before)
    assert parse_deployment(render_deployment(record)) == record


def test_rolled_back_by_is_absent_until_a_rollback_sets_it() -> None:
    record = observe(None, PLACE, _seen("failed"))
    assert record is not None and "rolled_back_by" not in record.to_dict()
    rolled = mark_rolled_back(record, "c" * 40, "2026-12-03T11:00:00Z")
    written = rolled.to_dict()
    # A dict gained the key at its end, and updated_at kept its place.
    assert list(written)[-1] == "rolled_back_by" and written["rolled_back_by"] == "c" * 40
    assert list(written)[:-1] == list(KEYS) and written["updated_at"] == "2026-12-03T11:00:00Z"
    rendered = render_deployment(rolled)
    again = parse_deployment(rendered)
    assert again.rolled_back_by == "c" * 40 and render_deployment(again) == rendered


def test_unknown_keys_and_the_order_of_a_hand_written_record_are_kept() -> None:
    data = (
        b"kind: Deployment\nid: dep-1\nnote: by hand\napp: web\nenvironment: dev\n"
        b"artifact_id: art-1\npin_commit: p1\nstatus: degraded\ncreated_at: '2026-12-01'\n"
        b"rolled_back_by: null\nlabels:\n  team: a\n"
    )
    record = parse_deployment(data)
    assert record.extra == {"note": "by hand", "labels": {"team": "a"}}
    assert record.rolled_back_by is None and record.history == ()
    assert render_deployment(record) == data
    # What observe sets and the record lacked is written after what it had.
    later = observe(record, replace(PLACE, pin_commit="p1"), _seen("succeeded"))
    assert later is not None
    written = list(later.to_dict())
    assert written[:11] == list(parse_deployment(data).to_dict())
    assert "history" in written[11:] and "succeeded_at" in written[11:]


def test_the_index_json_round_trips_sorted() -> None:
    record = mark_rolled_back(observe(None, PLACE, _seen("degraded")) or pytest.fail(), "c", AT)
    stored = json.dumps(record.to_dict(), sort_keys=True)
    back = Deployment.from_dict(json.loads(stored))
    assert back == record and json.dumps(back.to_dict()) == stored


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"kind": "Artifact"}, "not a Deployment record"),
        ({"status": "rolled-back"}, "status 'rolled-back'"),
        ({"app": None}, "without app"),
    ],
)
def test_what_is_not_a_deployment_is_refused(change: dict[str, Any], says: str) -> None:
    record = observe(None, PLACE, _seen("succeeded"))
    assert record is not None
    with pytest.raises(ValueError, match=says):
        Deployment.from_dict({**record.to_dict(), **change})


_text, _entry = TEXT, MAPPING
_known = {
    "apiVersion": _text, "version": st.one_of(st.none(), _text), "overlay": _text,
    "revision": _text, "deployed_by": st.one_of(st.none(), _text),
    "target_type": st.one_of(st.none(), _text), "target_url": st.one_of(st.none(), _text),
    "log_url": st.one_of(st.none(), _text), "updated_at": _text,
    "succeeded_at": st.one_of(st.none(), _text), "superseded": st.booleans(),
    "history": st.lists(_entry, max_size=3), "rolled_back_by": st.one_of(st.none(), _text),
}  # fmt: skip


_fixed = {"status": st.sampled_from([s.value for s in DeploymentStatus]),
          "kind": st.just("Deployment")}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(wire_records(REQUIRED, _known, _fixed))
def test_any_record_is_written_as_it_was_read(data: dict[str, Any]) -> None:
    record = Deployment.from_dict(data)
    written = record.to_dict()
    assert written == data and list(written) == list(data)
    rendered = render_record(data)
    assert render_deployment(parse_deployment(rendered)) == rendered
    stored = json.dumps(data, sort_keys=True)
    assert json.dumps(Deployment.from_dict(json.loads(stored)).to_dict()) == stored
