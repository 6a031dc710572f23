"""What Ritmo and git say to each other about a remote: credentials handed through the
environment, push outcomes, and git's failures as a response may show them."""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass


class GitFailed(OSError):
    """A git command failed. Its text is what an API response may say: git's reason
    without the server's paths or the remote's URL; `detail` is all git said (for the log
    and the local CLI)."""

    def __init__(self, public: str, detail: str) -> None:
        super().__init__(public)
        self.detail = detail


# An absolute path or a file:// URL as git quotes them ('/srv/ritmo/data/...').
_PATH = re.compile(r"(?:file://)?(?<![\w.~-])/[^\s'\"`:;,)]+")


def public_reason(said: str, *private: str) -> str:
    """git's own reason, fit for a response: its first fatal:/error: line (else its last
    line), with `private` strings (the remote URL, the mirror's path) and any absolute
    path replaced, so that no answer shows where the server keeps its files."""
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    text = (errors or lines[-1:] or ["no reason given"])[0]
    for secret in sorted((p for p in private if p), key=len, reverse=True):
        text = text.replace(secret, "<manifests remote>")
    return _PATH.sub("<path>", text)


class PushStatus(enum.Enum):
    PUSHED = "pushed"
    REJECTED = "rejected"  # not a fast-forward: someone else pushed first
    FAILED = "failed"  # remote down, hook declined, timeout


@dataclass(frozen=True)
class PushResult:
    status: PushStatus
    detail: str = ""


def git_environment(url: str, token: str | None) -> dict[str, str]:
    """Variables that hand git its credentials; the token never lands in a URL or config."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


# A fixed token, or a source asked at each fetch or push (the GitHub App's token expires).
Token = str | Callable[[], str] | None


def push_failure(stdout: str, stderr: str) -> str:
    """The remote's own reason, without local paths: the porcelain status and remote: lines."""
    status = [ln.split("\t")[-1] for ln in stdout.splitlines() if ln.startswith("!")]
    said = [ln[7:].strip() for ln in stderr.splitlines() if ln.startswith("remote:")]
    parts = status + [ln for ln in said if ln]
    if parts:
        return "; ".join(parts)
    errors = [ln for ln in stderr.splitlines() if ln.startswith("fatal:")]
    return errors[-1] if errors else "the push failed"
