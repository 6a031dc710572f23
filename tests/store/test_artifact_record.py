"""ArtifactRecord (store/artifact_record.py): a record's YAML in git and its JSON in the
index are read into it and written from it as they were, byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import bounded_yaml
from bot.manifests.records import ArtifactSpec, build_record, parse_record, render_record
from bot.store.artifact_record import KEYS, REQUIRED, ArtifactRecord
from bot.store.index import ArtifactIndex
from bot.store.reindex import _artifact
from bot.store.schema import artifacts, make_engine
from tests.store.wire_records import MAPPING, TEXT, wire_records

AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def _spec(**more: Any) -> ArtifactSpec:
    return ArtifactSpec(
        name="web", version="1.2.0", build_id="b-1", checksum="sha256:" + "a" * 64, **more
    )


def test_a_new_record_is_written_as_build_record_made_it() -> None:
    built = build_record(
        _spec(storage_url="s3://b/web", image="ghcr.io/acme/web:1.2.0", metadata={"sha": "x"}),
        {"status": "verified", "fingerprint": "F" * 40},
        AT,
    )
    record = ArtifactRecord.from_dict(built)
    assert list(built) == list(KEYS) and record.to_dict() == built
    assert list(record.to_dict()) == list(KEYS)
    assert record.image == "ghcr.io/acme/web:1.2.0" and record.metadata == {"sha": "x"}
    assert render_record(record.to_dict()) == render_record(built)


def test_storage_url_and_image_stay_absent_when_the_record_lacked_them() -> None:
    built = build_record(_spec(), {"status": "unsigned"}, AT)
    record = ArtifactRecord.from_dict(built)
    assert record.image is None and record.storage_url is None
    assert "image" not in record.to_dict() and list(record.to_dict()) == list(built)


def test_unknown_keys_and_the_order_of_a_hand_written_record_are_kept() -> None:
    data = (
        b"kind: Artifact\nid: art-1\nnote: by hand\nname: web\nversion: '1.0'\n"
        b"image: null\ncreated_at: '2026-12-01'\nlabels:\n  team: a\n"
    )
    record = ArtifactRecord.from_dict(parse_record(data))
    assert record.extra == {"note": "by hand", "labels": {"team": "a"}}
    assert record.image is None and record.metadata == {}
    assert render_record(record.to_dict()) == data


def test_what_the_caller_changes_in_to_dict_stays_out_of_the_record() -> None:
    record = ArtifactRecord.from_dict(build_record(_spec(metadata={"a": 1}), {}, AT))
    written = record.to_dict()
    written["metadata"]["a"] = 2
    assert record.metadata == {"a": 1}


def test_the_index_json_round_trips_sorted() -> None:
    built = build_record(_spec(image="ghcr.io/acme/web:1.2.0"), {"status": "unsigned"}, AT)
    stored = json.dumps(built, sort_keys=True)
    back = ArtifactRecord.from_dict(json.loads(stored))
    assert back == ArtifactRecord.from_dict(built) and json.dumps(back.to_dict()) == stored


@pytest.mark.parametrize(
    ("change", "says"),
    [({"kind": "Deployment"}, "not an Artifact record"), ({"name": None}, "without name")],
)
def test_what_is_not_an_artifact_is_refused(change: dict[str, Any], says: str) -> None:
    built = build_record(_spec(), {}, AT)
    with pytest.raises(ValueError, match=says):
        ArtifactRecord.from_dict({**built, **change})


_text, _map = TEXT, MAPPING
_known = {
    "apiVersion": _text, "build_id": st.one_of(st.none(), _text),
    "storage_url": st.one_of(st.none(), _text), "image": st.one_of(st.none(), _text),
    "checksum": st.one_of(st.none(), _text), "metadata": _map,
    "signature": st.one_of(st.none(), _map),
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(wire_records(REQUIRED, _known, {"kind": st.just("Artifact")}))
def test_any_record_is_written_as_it_was_read(data: dict[str, Any]) -> None:
    record = ArtifactRecord.from_dict(data)
    written = record.to_dict()
    assert written == data and list(written) == list(data)
    rendered = render_record(data)
    again = ArtifactRecord.from_dict(bounded_yaml.load(rendered, "test"))  # not the cache
    assert render_record(again.to_dict()) == rendered
    stored = json.dumps(data, sort_keys=True)
    assert json.dumps(ArtifactRecord.from_dict(json.loads(stored)).to_dict()) == stored


def test_the_index_keeps_the_json_it_kept_and_answers_as_before(tmp_path: Path) -> None:
    built = build_record(_spec(image="ghcr.io/acme/web:1.2.0"), {"status": "unsigned"}, AT)
    index = ArtifactIndex(make_engine(f"sqlite:///{tmp_path / 'index.db'}"))
    assert index.add([(ArtifactRecord.from_dict(built), "c" * 40)], "c" * 40) == 1
    with index.engine.connect() as conn:
        stored = conn.execute(sa.select(artifacts.c.record)).scalar_one()
    assert stored == json.dumps(built, sort_keys=True)
    found = index.get(built["id"])
    assert found is not None
    assert found.as_json() == {**built, "commit": "c" * 40, "promotion_status": "dev"}


def test_a_file_the_index_cannot_hold_is_skipped() -> None:
    built = build_record(_spec(), {}, AT)
    path = "artifacts/web/1.2.0.yaml"
    assert _artifact(path, render_record(built)) == ArtifactRecord.from_dict(built)
    no_time = render_record({k: v for k, v in built.items() if k != "created_at"})
    assert _artifact(path, no_time) is None  # index.add failed on it with a KeyError
