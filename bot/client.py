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


class Unreachable(requests.RequestException):
    """The server did not answer: refused, timed out, unknown host, not a URL (exit 3)."""

    def __init__(self, server: str, exc: requests.RequestException) -> None:
        # urllib3's reason ends with what happened ("[Errno 111] Connection refused");
        # requests wraps it in pool and retry details no one needs to read.
        inner = getattr(exc.args[0], "reason", None) if exc.args else None
        reason = str(inner if inner is not None else exc).split(">: ", 1)[-1]
        super().__init__(reason)
        self.server = server


class RitmoClient:
    def __init__(self, server: str, token: str, timeout: float = 120) -> None:
        self._base = server.rstrip("/")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        try:
            resp = self._session.request(method, self._base + path, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise Unreachable(self._base, exc) from None
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

    def promote(
        self, artifact_id: str, fields: dict[str, Any], correlation_id: str | None = None
    ) -> ApiResponse:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        return self._call(
            "POST", f"/api/v1/artifacts/{artifact_id}/promote", json=fields, headers=headers
        )

    def promote_by_name(
        self, fields: dict[str, Any], correlation_id: str | None = None
    ) -> ApiResponse:
        """POST /api/v1/promotions: fields carry app, version, to (and optionally from)."""
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        return self._call("POST", "/api/v1/promotions", json=fields, headers=headers)

    def review(self, request_id: str, state: str, commit: str | None = None) -> ApiResponse:
        body: dict[str, Any] = {"state": state}
        if commit is not None:
            body["commit"] = commit
        return self._call("POST", f"/api/v1/promotions/{request_id}/approvals", json=body)

    def list_promotions(self, **query: Any) -> ApiResponse:
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", "/api/v1/promotions", params=params)

    def get_promotion(self, promotion_id: str) -> ApiResponse:
        return self._call("GET", f"/api/v1/promotions/{promotion_id}")

    def apply_policy(
        self, text: str, reason: str | None, correlation_id: str | None = None
    ) -> ApiResponse:
        """PUT /api/v1/policy: the whole policy file's text."""
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        body: dict[str, Any] = {"policy": text}
        if reason:
            body["reason"] = reason
        return self._call("PUT", "/api/v1/policy", json=body, headers=headers)

    def environments(self, app: str | None = None) -> ApiResponse:
        """GET /api/v1/environments: what runs where, as the default branch pins it."""
        return self._call("GET", "/api/v1/environments", params={"app": app} if app else {})

    def list_outbox(
        self, status: str | None = None, page: int = 1, per_page: int = 50
    ) -> ApiResponse:
        params = {"status": status, "page": page, "per_page": per_page}
        query = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", "/api/v1/outbox", params=query)

    def retry_outbox(self, row_id: int) -> ApiResponse:
        return self._call("POST", f"/api/v1/outbox/{row_id}/retry")

    def list_deployments(self, **query: Any) -> ApiResponse:
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", "/api/v1/deployments", params=params)

    def list_audit(self, **query: Any) -> ApiResponse:
        """GET /api/v1/audit: app, env, kind, since, until, page, per_page."""
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", "/api/v1/audit", params=params)

    def rollback(
        self, deployment_id: str, reason: str | None, correlation_id: str | None = None
    ) -> ApiResponse:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        body = {"reason": reason} if reason else {}
        return self._call(
            "POST", f"/api/v1/deployments/{deployment_id}/rollback", json=body, headers=headers
        )

    def all_pages(self, path: str, **query: Any) -> ApiResponse:
        """Every item of a paged list: {"items": [...], "total": n}, or the first error."""
        params = {k: v for k, v in query.items() if v is not None}
        items: list[Any] = []
        page = 1
        while True:
            resp = self._call("GET", path, params={**params, "page": page, "per_page": 500})
            if not resp.ok:
                return resp
            items += resp.body["items"]
            if not resp.body["items"] or len(items) >= resp.body["total"]:
                return ApiResponse(resp.status, {"items": items, "total": len(items)})
            page += 1
