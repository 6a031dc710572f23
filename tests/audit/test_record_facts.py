"""`ritmo verify`'s quick reading of a record (bot/audit/record_facts.py) gives what the
YAML loader gives, and leaves to the loader every document not in Ritmo's plain shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.audit.record_facts import quick_record, record_fact
from bot.manifests.records import ArtifactSpec, build_record, record_path, render_record
from bot.store.reindex import record_in


def _slow(path: str, data: bytes) -> dict[str, str] | None:
    record = record_in(path, data)
    if record is None:
        return None
    return {"id": str(record["id"]), "name": str(record["name"]),
            "version": str(record["version"]), "image": str(record.get("image") or "")}  # fmt: skip


def _rendered(version: str = "1.2.3", **extra: object) -> tuple[str, bytes]:
    spec = ArtifactSpec.model_validate(
        {"name": "web", "version": version, "build_id": "b-1",
         "storage_url": "s3://a/web.tgz", "image": f"registry.example.com/web:{version}",
         "checksum": "sha256:" + "a" * 64,
         "metadata": {"commit": "0" * 40, "branch": "main", **extra}}
    )  # fmt: skip
    record = build_record(spec, {"status": "unsigned"}, datetime(2026, 12, 4, tzinfo=UTC))
    return record_path("web", version), render_record(record)


def test_ritmo_s_own_records_are_read_quickly_and_as_the_loader_reads_them() -> None:
    for version in ("1.2.3", "2.0.0-rc.1", "10.0.0"):
        path, data = _rendered(version)
        assert quick_record(data) is not None, data.decode()
        assert record_fact(path, data) == _slow(path, data) is not None


SHAPES = [
    # (what it tests, the text after the header lines)
    ("a comment", "version: 1.2.3 # x\n"),
    ("a number", "version: 1.10\n"),
    ("an int version", "version: 7\n"),
    ("a date elsewhere", "version: 1.2.3\ncreated: 2026-13-45\n"),
    ("a valid date", "version: 1.2.3\ncreated: 2026-12-04\n"),
    ("yes", "version: 1.2.3\nflag: yes\n"),
    ("true", "version: 1.2.3\nflag: true\n"),
    ("null", "version: 1.2.3\nimage: null\n"),
    ("tilde", "version: 1.2.3\nimage: ~\n"),
    ("a duplicate key", "version: 1.2.3\nversion: 1.2.3\n"),
    ("a duplicate nested key", "version: 1.2.3\nmetadata:\n  a: b\n  a: c\n"),
    ("an anchor", "version: &v 1.2.3\nother: *v\n"),
    ("a list", "version: 1.2.3\nmetadata:\n  - a\n"),
    ("deeper nesting", "version: 1.2.3\nmetadata:\n  a:\n    b: c\n"),
    ("a double quote", 'version: "1.2.3"\n'),
    ("a quoted version", "version: '1.2.3'\n"),
    ("an empty mapping", "version: 1.2.3\nmetadata: {}\n"),
    ("an empty value", "version: 1.2.3\nimage:\n"),
    ("an empty value, then more", "version: 1.2.3\nmetadata:\nimage: x/web:1.2.3\n"),
    ("a colon at the end", "version: 1.2.3\nimage: web:\n"),
    ("a tab", "version: 1.2.3\nimage:\tweb\n"),
    ("a bad indent", "version: 1.2.3\n   image: web\n"),
    ("a tag", "version: !!str 1.2.3\n"),
    ("a flow mapping", "version: 1.2.3\nmetadata: {a: b}\n"),
    ("a document marker", "---\nversion: 1.2.3\n"),
    ("a directive", "%YAML 1.1\n---\nversion: 1.2.3\n"),
    ("no newline at the end", "version: 1.2.3"),
    ("a blank line", "version: 1.2.3\n\nimage: web\n"),
    ("a key that is a bool", "version: 1.2.3\ntrue: x\n"),
    ("a key that is a number", "version: 1.2.3\n1: x\n"),
    ("an image mapping", "version: 1.2.3\nimage:\n  a: b\n"),
    ("an image number", "version: 1.2.3\nimage: 12\n"),
    ("non-ASCII", "version: 1.2.3\nimage: wéb\n"),
    ("a CR", "version: 1.2.3\r\nimage: web\r\n"),
    ("the wrong version", "version: 1.2.4\n"),
    ("no id", "version: 1.2.3\n", "kind: Artifact\nname: web\n"),
    ("the wrong kind", "version: 1.2.3\n", "kind: Other\nid: art-1\nname: web\n"),
    ("an octal-looking id", "version: 1.2.3\n", "kind: Artifact\nid: 0o17\nname: web\n"),
]


HEAD = "kind: Artifact\nid: art-1\nname: web\n"


@pytest.mark.parametrize(
    ("what", "body", "head"), [s if len(s) == 3 else (*s, HEAD) for s in SHAPES]
)
def test_every_other_shape_reads_as_the_loader_reads_it(what: str, body: str, head: str) -> None:
    data = (head + body).encode()
    path = "artifacts/web/1.2.3.yaml"
    try:
        slow = _slow(path, data)
    except KeyError:  # a record without an id: the loader's caller fails as before
        with pytest.raises(KeyError):
            record_fact(path, data)
        return
    assert record_fact(path, data) == slow, what
