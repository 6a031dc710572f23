"""The flat record writer gives ruamel's bytes, or leaves the record to ruamel."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bot import bounded_yaml
from bot.manifests.flat_yaml import render_flat
from bot.manifests.records import ArtifactSpec, build_record, parse_record, render_record


def ruamel(record: dict[str, Any]) -> str:
    """What render_record wrote before the flat writer: the reference."""
    dumper = YAML(typ="safe", pure=False)
    dumper.default_flow_style = False
    dumper.width = 4096
    dumper.representer.sort_base_mapping_type_on_output = False
    buf = io.StringIO()
    dumper.dump(record, buf)
    return buf.getvalue()


# Strings near the edges: YAML 1.1/1.2 types, indicators, colons, spaces, quotes.
TRICKY = [
    "true", "True", "FALSE", "yes", "no", "on", "off", "y", "n", "null", "Null", "~", "",
    "0", "007", "0o17", "0x1F", "0b101", "1_000", "1.0", "1.", ".5", "1e3", "1E+3", "1.0.0",
    ".inf", "-.inf", ".nan", "+1", "-1", "2026-12-04", "2026-12-04T17:26:19Z",
    "2026-1-4 1:02:03", "12:30", "1:2:3", "a:b", "a:", "a::b", "s3://bucket/key.tar.gz",
    "a: b", "a #b", "#a", "-a", "- a", "?a", "@a", "a@b", "&a", "*a", "!a", "%a", "a'b",
    'a"b', "a,b", "[a]", "{a}", "a b", " a", "a ", "a\nb", "=", "<<", "a=b", "a+b", "é",
    "sha256:" + "0" * 64, "0" * 40, "registry.example.com/acme/web@sha256:" + "a" * 64,
]  # fmt: skip
ALPHABET = "az09AZ._/@+=-:#' ,!&*?%[]{}~\"\n\t"
# Mostly strings the flat writer takes (so that it is the one tested), some it must refuse.
texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet="az09AZ._/@+=-:", min_size=1, max_size=12),
    st.text(alphabet=ALPHABET, max_size=12),
)
scalars = st.one_of(texts, texts, st.integers(), st.booleans(), st.floats(allow_nan=False))
flat = st.dictionaries(
    texts,
    st.one_of(scalars, st.dictionaries(texts, scalars, max_size=4)),
    max_size=6,
)


# Strings of the characters the flat writer takes, many of them near numbers and dates.
simple = st.one_of(
    st.text(alphabet="az09AZ._/@+=-:", min_size=1, max_size=12),
    st.text(alphabet="0123456789._-:+eExXoObBTZ", min_size=1, max_size=20),
    st.sampled_from([t for t in TRICKY if " " not in t and "\n" not in t]),
)
simple_flat = st.dictionaries(
    simple,
    st.one_of(simple, st.integers(), st.booleans(), st.dictionaries(simple, simple, max_size=3)),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("value", TRICKY)
def test_each_tricky_string_as_key_and_value(value: str) -> None:
    record = {"kind": "Artifact", value: value, "metadata": {value: value, "n": 3}}
    written = render_flat(record)
    assert written is None or written == ruamel(record)


@settings(max_examples=400, deadline=None)
@given(flat)
def test_the_flat_writer_gives_ruamels_bytes_or_none(record: dict[str, Any]) -> None:
    written = render_flat(record)
    if written is not None:
        assert written == ruamel(record)


@settings(max_examples=1000, deadline=None)
@given(simple_flat)
def test_simple_records_are_written_by_the_flat_writer_as_ruamel_writes_them(
    record: dict[str, Any],
) -> None:
    written = render_flat(record)
    if written is not None:
        assert written == ruamel(record)


def test_a_usual_record_is_written_by_the_flat_writer_and_reads_back() -> None:
    spec = ArtifactSpec.model_validate(
        {
            "name": "web",
            "version": "1.4.0",
            "build_id": "gh-9912-1",
            "storage_url": "s3://artifacts/web-1.4.0.tar.gz",
            "image": "ghcr.io/acme/web:1.4.0",
            "checksum": "sha256:" + "ab" * 32,
            "metadata": {"commit": "0" * 40, "branch": "main", "attempt": 2, "ok": True},
        }
    )
    record = build_record(spec, {"status": "unsigned"}, datetime(2026, 12, 4, tzinfo=UTC))
    assert render_flat(record) is not None
    data = render_record(record)
    assert data.decode() == ruamel(record)
    assert bounded_yaml.load(data, "record") == record
    copy = parse_record(data)  # from the cache of rendered records: a fresh copy each time
    assert copy == record and copy is not parse_record(data)
    copy["metadata"]["branch"] = "changed"
    assert parse_record(data)["metadata"]["branch"] == "main"


def test_a_signed_record_is_left_to_ruamel() -> None:
    armored = "-----BEGIN PGP SIGNATURE-----\n\nabc\n=x\n-----END PGP SIGNATURE-----\n"
    record = {"kind": "Artifact", "signature": {"status": "verified", "armored": armored}}
    assert render_flat(record) is None
    assert render_record(record).decode() == ruamel(record)
