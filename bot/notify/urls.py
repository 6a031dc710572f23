"""Pure: `${VAR}` in a URL template, each value percent-encoded where it stands, and the
check that the rendered URL still goes where the template says.

Values come from CI (build ids, versions, commit metadata), so a value must never
change where a request (and its `Authorization` header) goes. Each value is encoded as
one path segment, query value or fragment: `/`, `?`, `#`, `&`, `=`, `@`, `%` and every
other reserved character become `%XX`. What encoding cannot stop (a value that is `..`,
or a value placed inside the host) the check refuses: the rendered URL must keep the
template's scheme, host and port, and its path must start with the template's literal
path prefix once dot segments are resolved (as `requests` resolves them before sending).

Git URLs (update_gitops_repo) get the same treatment: `https://`, `ssh://`, `file://`,
`user@host:path` and absolute paths.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bot.policy.integration_fields import TOKEN

_SCP_LIKE = re.compile(r"^(?P<authority>[A-Za-z0-9._-]+@[A-Za-z0-9.-]+):(?P<rest>.*)$")


def substitute_text(text: str, values: Mapping[str, str]) -> str:
    """`${VAR}` -> its value, `$${` -> `${`. Names were checked when the policy loaded;
    one that is still unknown (or unterminated) is left as written."""

    def one(match: Any) -> str:
        name = match.group("name")
        if name is None:
            return "${"
        if match.group("close") is None or name not in values:
            return str(match.group(0))
        return values[name]

    return TOKEN.sub(one, text)


def render_url(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `${VAR}` replaced by its value, percent-encoded with nothing
    left safe; `$${` writes a literal `${`. Unknown names are left as written."""
    return substitute_text(template, {name: quote(v, safe="") for name, v in values.items()})


def literal_prefix(template: str) -> str:
    """The template's text before its first `${VAR}` (`$${` read as `${`)."""
    out: list[str] = []
    at = 0
    for match in TOKEN.finditer(template):
        out.append(template[at : match.start()])
        if match.group("name") is not None:
            return "".join(out)
        out.append("${")
        at = match.end()
    out.append(template[at:])
    return "".join(out)


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, authority, path) of an http(s), ssh, file, scp-like or path URL."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        cut = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
        authority, rest = rest[:cut], rest[cut:]
    else:
        scp = _SCP_LIKE.match(url)
        scheme = ""
        authority, rest = (scp["authority"], scp["rest"]) if scp else ("", url)
    cut = min((rest.find(c) for c in "?#" if c in rest), default=len(rest))
    return scheme.lower(), authority.lower(), rest[:cut]


def _resolved(path: str) -> str:
    """`path` with `.` and `..` segments resolved (RFC 3986 5.2.4, as urllib3 does)."""
    if not path:
        return path
    segments = path.split("/")
    if not any(s in (".", "..") for s in segments):
        return path
    resolved = posixpath.normpath(path)
    if path.endswith("/") or segments[-1] in (".", ".."):
        resolved = resolved.rstrip("/") + "/"
    return resolved if path.startswith("/") or resolved == "." else resolved.lstrip("/")


def url_problem(template: str, rendered: str) -> str | None:
    """Why `rendered` does not go where `template` says, or None when it does."""
    prefix = literal_prefix(template)
    if prefix == template and rendered == template:
        return None  # no variables: the policy's own URL
    want_scheme, want_authority, want_path = _split(prefix)
    got_scheme, got_authority, got_path = _split(rendered)
    # A template with a variable in the host has a shorter literal authority: refused
    # unless the value was empty.
    if got_scheme != want_scheme or got_authority != want_authority:
        shown = f"{got_scheme}://{got_authority}" if got_scheme else got_authority
        return (
            f"refused: the rendered URL goes to {shown or 'another place'}, not to the "
            f"template's {prefix!r}; a CI value may fill a path segment or query value, "
            "never the scheme, host or port"
        )
    if not _resolved(got_path).startswith(_resolved_prefix(want_path)):
        return (
            f"refused: the rendered URL's path {_resolved(got_path)!r} leaves the template's "
            f"path {want_path!r} (a CI value such as '..' climbed out of it)"
        )
    return None


def _resolved_prefix(path: str) -> str:
    """The literal path prefix, with any dot segments the template itself writes resolved;
    a partial last segment (`/builds/v` of `/builds/v${VERSION}`) is kept as written."""
    head, _, tail = path.rpartition("/")
    if not head and not path.startswith("/"):
        return path
    resolved = _resolved(head + "/")
    return resolved + tail
