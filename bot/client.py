"""A small HTTP client for the Ritmo API, used by the CLI that CI jobs call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        if isinstance(self.body, dict) and "error" in self.body:
            lines = [str(self.body["error"])]
            lines += [f"  {f['field']}: {f['message']}" for f in self.body.get("fields", [])]
            return "\n".join(lines)
        return str(self.body)


class RitmoClient:
    def __init__(self, server: str, token: str, timeout: float = 120) -> None:
        self._base = server.rstrip("/")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        resp = self._session.request(method, self._base + path, timeout=self._timeout, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        return ApiResponse(resp.status_code, body)

    def register_artifact(
        self, fields: dict[str, Any], correlation_id: str | None = None
    ) -> ApiResponse:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        return self._call("POST", "/api/v1/artifacts", json=fields, headers=headers)

    def get_artifact(self, artifact_id: str) -> ApiResponse:
        return self._call("GET", f"/api/v1/artifacts/{artifact_id}")

    def list_artifacts(self, **query: Any) -> ApiResponse:
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", "/api/v1/artifacts", params=params)
