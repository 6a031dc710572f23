"""Deployment (store/deployment_record.py): the ledger's YAML and the index's JSON are read
into it and written from it as they were, byte for byte."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import bounded_yaml
from bot.manifests.records import render_record
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import REQUIRED, Deployment

RECORD = {
    "kind": "Deployment", "id": "dep-1", "app": "web", "environment": "dev",
    "artifact_id": "art-1", "pin_commit": "p1", "status": "succeeded",
    "created_at": "2026-12-03T10:00:00Z",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"kind": "Artifact"}, "not a Deployment record"),
        ({"status": "rolled-back"}, "status 'rolled-back'"),
        ({"app": None}, "without app"),
    ],
)
def test_what_is_not_a_deployment_is_refused(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Deployment.from_dict({**RECORD, **change})


_text = st.text(string.ascii_letters + string.digits + " -:./", max_size=12)
_value = st.one_of(st.none(), st.booleans(), st.integers(), _text)
_entry = st.dictionaries(_text, _value, max_size=4)
_known = {
    "apiVersion": _text, "version": st.one_of(st.none(), _text), "overlay": _text,
    "revision": _text, "deployed_by": st.one_of(st.none(), _text),
    "target_type": st.one_of(st.none(), _text), "target_url": st.one_of(st.none(), _text),
    "log_url": st.one_of(st.none(), _text), "updated_at": _text,
    "succeeded_at": st.one_of(st.none(), _text), "superseded": st.booleans(),
    "history": st.lists(_entry, max_size=3), "rolled_back_by": st.one_of(st.none(), _text),
}  # fmt: skip


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {key: draw(_text.filter(bool)) for key in REQUIRED}
    fields["status"] = draw(st.sampled_from(list(DeploymentStatus))).value
    fields["kind"] = "Deployment"
    for key, values in _known.items():
        if draw(st.booleans()):
            fields[key] = draw(values)
    unknown = draw(st.dictionaries(st.text(string.ascii_lowercase, min_size=1), _value))
    fields.update({k: v for k, v in unknown.items() if k not in fields and k not in _known})
    order = draw(st.permutations(list(fields)))
    return {key: fields[key] for key in order}


@settings(max_examples=300, deadline=None)
@given(_records())
def test_any_record_is_written_as_it_was_read(data: dict[str, Any]) -> None:
    record = Deployment.from_dict(data)
    written = record.to_dict()
    assert written == data and list(written) == list(data)
    rendered = render_record(data)
    assert (
        render_record(Deployment.from_dict(bounded_yaml.load(rendered, "t")).to_dict()) == rendered
    )
    stored = json.dumps(data, sort_keys=True)
    assert json.dumps(Deployment.from_dict(json.loads(stored)).to_dict()) == stored
