"""One finding per check: ok (with what was seen), fail (with the fix) or skip (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    text: str

    def line(self) -> str:
        label = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}[self.status]
        return f"{label}  {self.check}: {self.text}"


def ok(check: str, text: str) -> Finding:
    return Finding(check, "ok", text)


def fail(check: str, text: str) -> Finding:
    return Finding(check, "fail", text)


def skip(check: str, text: str) -> Finding:
    return Finding(check, "skip", text)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
