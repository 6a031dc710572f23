"""The `ritmo` command's exit codes, decided here once.

    exit  when                                      domain error       server's answer
    0     done (or nothing to do)                   -                  2xx
    1     refused: fix the input, the token or      NotFound, Invalid, 4xx
          the state; or a check found problems      Refused, Forbidden
          (verify, doctor, policy check)            (any RitmoError)
    2     a usage or configuration error            -                  -
    3     unavailable: nothing changed, retry       Unavailable        5xx, or no answer
          later

The commands raise or call `fail`; `domain_exits` (around every command, in `main`) turns
the domain's errors and an unreachable server into these codes, and `checked` turns the
server's answers into them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
import requests

from bot.client import ApiResponse, Unreachable
from bot.errors import Forbidden, Invalid, NotFound, Refused, RitmoError, Unavailable

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

# Each domain error kind exits with one code, here and nowhere else.
EXIT_CODES: tuple[tuple[type[RitmoError], int], ...] = (
    (NotFound, EXIT_REFUSED),
    (Invalid, EXIT_REFUSED),
    (Refused, EXIT_REFUSED),
    (Forbidden, EXIT_REFUSED),
    (Unavailable, EXIT_UNAVAILABLE),
)


def exit_code(exc: RitmoError) -> int:
    """The exit code for a domain error: any kind not in the table is a refusal."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), EXIT_REFUSED)


def exit_code_for_status(status: int) -> int:
    """The exit code for a server's answer that is not a success: a 5xx says retry later."""
    return EXIT_UNAVAILABLE if status >= 500 else EXIT_REFUSED


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Say why on stderr and exit with `code`."""
    click.echo(f"ritmo: {message}", err=True)
    sys.exit(code)


@contextmanager
def domain_exits() -> Iterator[None]:
    """An unreachable server or a domain error is one line and its exit code, not a traceback."""
    try:
        yield
    except Unreachable as exc:
        fail(f"cannot reach {exc.server}: {exc}", EXIT_UNAVAILABLE)
    except RitmoError as exc:
        fail(str(exc), exit_code(exc))


def checked(server: str, call: Callable[[], ApiResponse]) -> ApiResponse:
    """The response of a successful call; else exit 1 (refused) or 3 (unavailable)."""
    try:
        resp = call()
    except requests.RequestException as exc:
        fail(f"cannot reach {server}: {exc}", EXIT_UNAVAILABLE)
    if not resp.ok:
        fail(f"refused ({resp.status}): {resp.error_text()}", exit_code_for_status(resp.status))
    return resp
