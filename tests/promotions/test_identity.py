"""One person, one identity, whatever its case: the requester of a promotion never
approves it, not under another token, not as `release-bot` after opening as `Release-Bot`.
End to end on a live server, the local forge, real git and gpg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer, git, remote_refs, trailers

BOTH = ["ops-team", "security-team"]


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def _post(base: str, path: str, token: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(base + path, json=body, headers=bearer(token), timeout=60)


def _token(base: str, admin: str, name: str, *scopes: str, groups: list[str]) -> Any:
    return _post(base, "/api/v1/tokens", admin, {"name": name, "scopes": list(scopes),
                                                 "groups": groups})  # fmt: skip


def _revoke(base: str, admin: str, name: str) -> None:
    gone = requests.delete(f"{base}/api/v1/tokens/{name}", headers=bearer(admin), timeout=60)
    assert gone.status_code == 200, gone.text


def test_release_bot_cannot_approve_its_own_request_as_release_bot(
    live_server: str, tokens: dict[str, str], remote: Path
) -> None:
    base, admin = live_server, tokens["admin"]
    # The fixture's promoter is `release-bot`: `Release-Bot` is the same name.
    taken = _token(base, admin, "Release-Bot", "promotions:write", groups=[])
    assert taken.status_code == 409, taken.text
    assert [f["field"] for f in taken.json()["fields"]] == ["name"]
    _revoke(base, admin, "release-bot")
    made = _token(base, admin, "Release-Bot", "promotions:write", "promotions:approve",
                  groups=BOTH)  # fmt: skip
    assert made.status_code == 201, made.text
    opener = made.json()["token"]

    art = _post(base, "/api/v1/artifacts", tokens["ci"], artifact_body(version="2.0.0"))
    assert art.status_code == 201 and art.json()["promotion_status"] == "staging", art.text
    asked = _post(base, f"/api/v1/artifacts/{art.json()['id']}/promote", opener,
                  {"from": "staging", "to": "production"})  # fmt: skip
    assert asked.status_code == 202, asked.text
    request = asked.json()["request"]
    assert request["requested_by"] == "Release-Bot"
    approvals = f"/api/v1/promotions/{request['id']}/approvals"
    refs = remote_refs(remote)

    # No second identity in another case while the first exists.
    twin = _token(base, admin, "release-bot", "promotions:approve", groups=BOTH)
    assert twin.status_code == 409, twin.text
    # Revoked and made again in lower case, it is still the one who asked.
    _revoke(base, admin, "release-bot")
    again = _token(base, admin, "release-bot", "promotions:approve", groups=BOTH)
    assert again.status_code == 201, again.text
    refused = _post(base, approvals, again.json()["token"], {})
    assert refused.status_code == 403, refused.text
    assert "release-bot requested this promotion" in refused.json()["error"]
    assert remote_refs(remote) == refs  # no review commit, nothing merged

    # Two other people: the request merges, and only they are its approvers.
    for name, group in (("alice", "ops-team"), ("bob", "security-team")):
        person = _token(base, admin, name, "promotions:approve", groups=[group])
        assert person.status_code == 201, person.text
        review = _post(base, approvals, person.json()["token"], {})
        assert review.status_code == 201, review.text
    assert review.json()["status"] == "merged", review.json()
    merge = git(remote, "rev-parse", "main").strip()
    said = trailers(remote, merge)
    assert said["Ritmo-Approved-By"] == "alice, bob"
    assert said["Ritmo-Promoted-By"] == "Release-Bot"


def test_ritmo_in_any_case_is_no_token(live_server: str, tokens: dict[str, str]) -> None:
    for name in ("ritmo", "Ritmo", "RITMO"):
        refused = _token(live_server, tokens["admin"], name, "promotions:approve", groups=BOTH)
        assert refused.status_code == 422, refused.text
        assert refused.json()["fields"][0]["field"] == "name"
        assert "reserved" in refused.json()["error"]
    listed = requests.get(
        f"{live_server}/api/v1/tokens", headers=bearer(tokens["admin"]), timeout=60
    ).json()
    assert sorted(t["name"] for t in listed["items"]) == ["admin", "ci", "dashboard", "release-bot"]
