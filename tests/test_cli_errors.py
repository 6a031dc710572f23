"""The CLI's exit codes: each domain error kind and each server answer exits with one code."""

from __future__ import annotations

import pytest
import requests

from bot.api.errors import status_of
from bot.cli.errors import (
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    domain_exits,
    exit_code,
    exit_code_for_status,
)
from bot.client import Unreachable
from bot.errors import Forbidden, Invalid, NotFound, Refused, RitmoError, Unavailable

KINDS = [
    (NotFound, EXIT_REFUSED),
    (Invalid, EXIT_REFUSED),
    (Refused, EXIT_REFUSED),
    (Forbidden, EXIT_REFUSED),
    (Unavailable, EXIT_UNAVAILABLE),
    (RitmoError, EXIT_REFUSED),
]


@pytest.mark.parametrize(("kind", "code"), KINDS)
def test_each_kind_exits_with_its_code(kind: type[RitmoError], code: int) -> None:
    assert exit_code(kind("no such app: web")) == code


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, 1), (401, 1), (403, 1), (404, 1), (409, 1), (422, 1), (429, 1),
     (500, 3), (502, 3), (503, 3), (504, 3)],
)  # fmt: skip
def test_each_server_answer_exits_with_its_code(status: int, code: int) -> None:
    assert exit_code_for_status(status) == code


@pytest.mark.parametrize(("kind", "code"), KINDS)
def test_the_api_answer_of_a_kind_exits_as_the_kind_does(kind: type[RitmoError], code: int) -> None:
    """A command that calls the server exits as one that met the domain error itself."""
    assert exit_code_for_status(status_of(kind("x"))) == code


@pytest.mark.parametrize(("kind", "code"), KINDS)
def test_a_domain_error_is_one_line_and_its_exit_code(
    kind: type[RitmoError], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited, domain_exits():
        raise kind("no such app: web")
    assert exited.value.code == code
    assert capsys.readouterr().err == "ritmo: no such app: web\n"


def test_an_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    refused = requests.ConnectionError("[Errno 111] Connection refused")
    with pytest.raises(SystemExit) as exited, domain_exits():
        raise Unreachable("http://127.0.0.1:9", refused)
    assert exited.value.code == EXIT_UNAVAILABLE
    assert capsys.readouterr().err == (
        "ritmo: cannot reach http://127.0.0.1:9: [Errno 111] Connection refused\n"
    )


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), domain_exits():
        raise KeyError("a bug is a traceback, not an exit code")
