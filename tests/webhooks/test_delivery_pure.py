"""Accepting a GitHub delivery from headers, body and secret, without I/O: one table.

The receiver (tests/webhooks/test_receiver.py) checks the HTTP answers end to end; here
each row says which delivery comes out, or which error kind names which header."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.errors import Forbidden, Invalid, RitmoError
from bot.webhooks.delivery import authenticate, from_http, header, parse
from bot.webhooks.router import Event
from bot.webhooks.verify import signature_for, valid_signature

SECRET = "It's a Secret to Everybody"
UUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
CHECK_RUN = {"action": "completed", "installation": {"id": 7}, "check_run": {}}
BODY = json.dumps(CHECK_RUN).encode()


def _headers(body: bytes = BODY, secret: str = SECRET, **replace: str | None) -> dict[str, str]:
    """GitHub's headers for `body`; `replace` overrides (None drops) one by its
    underscored name, e.g. X_GitHub_Delivery=None."""
    headers: dict[str, str | None] = {
        "X-GitHub-Event": "check_run",
        "X-GitHub-Delivery": UUID,
        "X-Hub-Signature-256": signature_for(secret, body),
        "Content-Type": "application/json",
    }
    for key, value in replace.items():
        headers[key.replace("_", "-")] = value
    return {k: v for k, v in headers.items() if v is not None}


@dataclass(frozen=True)
class Row:
    name: str
    headers: dict[str, str]
    body: bytes = BODY
    secret: str = SECRET
    event: Event | None = None  # the delivery, when accepted
    error: type[RitmoError] | None = None  # else the error kind
    field: str | None = None  # and the header or body it names
    message: str = ""  # and a part of its message


SIG = "X-Hub-Signature-256"
NOT_SIGNED = f"{SIG} is missing or does not match the body"
REQUIRED = "X-GitHub-Event and X-GitHub-Delivery headers are required"


ROWS = [
    # -- accepted
    Row("good signature", _headers(), event=Event("check_run", UUID, CHECK_RUN)),
    Row("unknown event: routing decides, not acceptance", _headers(X_GitHub_Event="star"),
        event=Event("star", UUID, CHECK_RUN)),
    Row("ping", _headers(X_GitHub_Event="ping"), event=Event("ping", UUID, CHECK_RUN)),
    Row("header names in any case",
        {k.lower(): v for k, v in _headers().items()}, event=Event("check_run", UUID, CHECK_RUN)),
    Row("WSGI's title-cased names", {k.title(): v for k, v in _headers().items()},
        event=Event("check_run", UUID, CHECK_RUN)),
    Row("Content-Type is not what decides", _headers(Content_Type="text/plain"),
        event=Event("check_run", UUID, CHECK_RUN)),
    Row("delivery id of 128 characters", _headers(X_GitHub_Delivery="d" * 128),
        event=Event("check_run", "d" * 128, CHECK_RUN)),
    Row("empty object", _headers(b"{}"), body=b"{}", event=Event("check_run", UUID, {})),
    # -- not signed: Forbidden, naming X-Hub-Signature-256 (the receiver answers 401)
    Row("wrong secret", _headers(secret="not the secret"), error=Forbidden, field=SIG,
        message=NOT_SIGNED),
    Row("wrong signature", _headers(X_Hub_Signature_256="sha256=" + "0" * 64), error=Forbidden,
        field=SIG, message=NOT_SIGNED),
    Row("signature one digit short",
        _headers(X_Hub_Signature_256=signature_for(SECRET, BODY)[:-1]), error=Forbidden,
        field=SIG),
    Row("signature in upper case",
        _headers(X_Hub_Signature_256="sha256=" + signature_for(SECRET, BODY)[7:].upper()),
        error=Forbidden, field=SIG),
    Row("missing signature", _headers(X_Hub_Signature_256=None), error=Forbidden, field=SIG,
        message=NOT_SIGNED),
    Row("empty signature", _headers(X_Hub_Signature_256=""), error=Forbidden, field=SIG),
    Row("sha1 only (X-Hub-Signature)",
        {**_headers(X_Hub_Signature_256=None),
         "X-Hub-Signature": "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"},
        error=Forbidden, field=SIG),
    Row("sha1 value in the sha256 header",
        _headers(X_Hub_Signature_256="sha1=757107ea0eb2509fc211221cce984b8a37570b6d"),
        error=Forbidden, field=SIG),
    Row("non-ASCII signature", _headers(X_Hub_Signature_256="sha256=" + "é" * 64),
        error=Forbidden, field=SIG),
    Row("latin-1 bytes in the signature", _headers(X_Hub_Signature_256="sha256=\xff\xfe"),
        error=Forbidden, field=SIG),
    Row("body changed after signing", _headers(), body=BODY.replace(b"completed", b"requested"),
        error=Forbidden, field=SIG),
    Row("empty secret signs nothing", _headers(secret=""), secret="", error=Forbidden,
        field=SIG),
    Row("unsigned and malformed: the signature is checked first",
        _headers(X_Hub_Signature_256=None, X_GitHub_Event=None), body=b"{not json",
        error=Forbidden, field=SIG),
    # -- signed but malformed: Invalid, naming the header or the body (the receiver: 400)
    Row("missing event", _headers(X_GitHub_Event=None), error=Invalid, field="X-GitHub-Event",
        message=REQUIRED),
    Row("empty event", _headers(X_GitHub_Event=""), error=Invalid, field="X-GitHub-Event"),
    Row("missing delivery id", _headers(X_GitHub_Delivery=None), error=Invalid,
        field="X-GitHub-Delivery", message=REQUIRED),
    Row("delivery id over 128 characters", _headers(X_GitHub_Delivery="d" * 129),
        error=Invalid, field="X-GitHub-Delivery", message=REQUIRED),
    Row("bad JSON", _headers(b"{not json"), body=b"{not json", error=Invalid, field="body",
        message="body is not valid JSON: "),
    Row("not UTF-8", _headers(b'{"a": "\xff"}'), body=b'{"a": "\xff"}', error=Invalid,
        field="body", message="body is not valid JSON: "),
    Row("UTF-16 JSON (json.loads alone would take it)",
        _headers('{"a": 1}'.encode("utf-16")), body='{"a": 1}'.encode("utf-16"),
        error=Invalid, field="body", message="body is not valid JSON: "),
    Row("empty body", _headers(b""), body=b"", error=Invalid, field="body",
        message="body is not valid JSON: "),
    Row("JSON list", _headers(b"[1, 2]"), body=b"[1, 2]", error=Invalid, field="body",
        message="body must be a JSON object"),
    Row("JSON string", _headers(b'"x"'), body=b'"x"', error=Invalid, field="body",
        message="body must be a JSON object"),
    Row("nested too deeply", _headers(b"[" * 100_000), body=b"[" * 100_000, error=Invalid,
        field="body", message="body is not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_from_http(row: Row) -> None:
    if row.error is None:
        assert from_http(row.headers, row.body, row.secret) == row.event
        return
    with pytest.raises(row.error) as raised:
        from_http(row.headers, row.body, row.secret)
    assert type(raised.value) is row.error
    assert raised.value.field == row.field
    assert row.message in raised.value.message


# What an HTTP header can carry as text: latin-1 without control characters.
HEADER_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)


@given(value=HEADER_VALUES)
@example(value="sha256=" + "é" * 64)
@example(value="sha256=" + "0" * 64)
def test_any_wrong_signature_is_forbidden(value: str) -> None:
    # Forbidden is the receiver's 401; anything else raised would be a 5xx.
    with pytest.raises(Forbidden):
        from_http(_headers(X_Hub_Signature_256=value), BODY, SECRET)


def test_authenticate_reads_only_the_signature() -> None:
    # The receiver marks a delivery as arriving once it is signed, before parsing it.
    authenticate({"X-Hub-Signature-256": signature_for(SECRET, b"[")}, b"[", SECRET)
    with pytest.raises(Invalid):
        parse({}, b"{}")


def test_header_prefers_the_exact_name() -> None:
    assert header({"x-github-event": "a", "X-GitHub-Event": "b"}, "X-GitHub-Event") == "b"
    assert header({"X-GITHUB-EVENT": "a"}, "X-GitHub-Event") == "a"
    assert header({}, "X-GitHub-Event") is None


class TestSignature:
    """HMAC-SHA256 over the raw body, compared in constant time; fixed vectors."""

    def test_githubs_documented_vector(self) -> None:
        # From GitHub's "Validating webhook deliveries" page.
        expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        assert signature_for("It's a Secret to Everybody", b"Hello, World!") == expected
        assert valid_signature("It's a Secret to Everybody", b"Hello, World!", expected)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            "sha256=" + "0" * 64,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        ],
    )
    def test_refused(self, header: str | None) -> None:
        assert not valid_signature("It's a Secret to Everybody", b"Hello, World!", header)

    def test_body_must_be_the_signed_one(self) -> None:
        good = signature_for("s", b'{"a": 1}')
        assert not valid_signature("s", b'{"a":1}', good)
