"""A pin chained on a registration is part of it: a record already on the remote (a
re-sent registration, a rebuild after a refused push) brings no new pin, and the answer
names the pins that came with it. Automatic pins only move an environment forward."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.config import Settings, load_settings
from bot.manifests.records import ArtifactSpec
from bot.promotions.service import PromotionInput
from bot.runtime import Runtime, build_runtime
from tests.helpers import artifact_body, bearer, commits_since, git, kill_gpg_agent, show

POLICY = """\
apps:
  "*": {}
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true}
  - {from: staging, to: production}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _pinned(remote: Path, env: str) -> str:
    text = show(remote, f"main:apps/web/overlays/{env}/kustomization.yaml")
    match = re.search(r'newTag: "([^"]+)"', text)
    assert match, text
    return match.group(1)


@pytest.fixture
def replica(settings: Settings, remote: Path, tmp_path: Path) -> Iterator[Runtime]:
    """A second replica on the same remote, with its own index, started now: its mirror
    and index stay at this tip until a push of its own is refused."""
    other = load_settings(
        None,
        data_dir=tmp_path / "replica",
        manifests={"url": str(remote), "author_name": "Ritmo", "author_email": "ritmo@example.com"},
        signing={"gnupghome": str(settings.gnupghome), "key": settings.signing.key},
    )
    rt = build_runtime(other)
    yield rt
    rt.close()
    kill_gpg_agent(other.data_dir / "trusted-gnupg")


def _spec(version: str) -> ArtifactSpec:
    return ArtifactSpec(**artifact_body(version=version))


def test_a_replanned_registration_pins_nothing_and_names_the_first_pins(
    runtime: Runtime, replica: Runtime, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both replicas stamp the record in the same second, as when a registration is sent
    # to both at once: byte for byte the same record file.
    stamp = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    for rt in (runtime, replica):
        monkeypatch.setattr(rt.registry, "_clock", lambda: stamp)
    first = runtime.registry.register(_spec("1.0.0"), "ci", "cid-first")
    assert first.created
    assert [p["environment"] for p in first.promotions] == ["dev", "staging"]
    newer = runtime.registry.register(_spec("1.0.1"), "ci", "cid-newer")
    assert [p["environment"] for p in newer.promotions] == ["dev", "staging"]
    tip = git(remote, "rev-parse", "main").strip()

    # The same registration reaches the stale replica: it plans record and pins on its old
    # tip, its push is refused, and it rebuilds on the new tip, where the record is.
    again = replica.registry.register(_spec("1.0.0"), "ci", "cid-again")
    assert replica.writer.push_retries >= 1  # the refused push did happen
    assert _pinned(remote, "dev") == _pinned(remote, "staging") == "1.0.1"
    assert git(remote, "rev-parse", "main").strip() == tip
    assert not again.created
    assert again.artifact.commit == first.artifact.commit
    assert again.promotions == first.promotions  # the same pin commits, none new


def test_a_resent_registration_answers_with_the_same_pin_commits(
    client: FlaskClient, tokens: dict[str, str], remote: Path
) -> None:
    sent = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert sent.status_code == 201, sent.json
    assert [p["environment"] for p in sent.json["promotions"]] == ["dev", "staging"]
    base = git(remote, "rev-parse", "main").strip()
    resent = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert resent.status_code == 200, resent.json
    assert resent.json["promotions"] == sent.json["promotions"]
    assert commits_since(remote, base) == []


def test_an_automatic_pin_never_moves_an_environment_back(runtime: Runtime, remote: Path) -> None:
    old = runtime.registry.register(_spec("1.0.0"), "ci", "c-1").artifact
    runtime.registry.register(_spec("1.0.1"), "ci", "c-2")
    base = git(remote, "rev-parse", "main").strip()

    # Late, by policy (as a deployment gate would): 1.0.0 into staging, which runs 1.0.1.
    ask = PromotionInput("dev", "staging")
    late = runtime.promotions.pin_change(old.record, ask, "ritmo", "c-3", auto=True)
    assert runtime.writer.write(late).commit is None
    assert commits_since(remote, base) == []
    assert _pinned(remote, "staging") == "1.0.1"

    # Asked for explicitly, the same pin is made: a person may go back.
    asked = runtime.promotions.pin_change(old.record, ask, "alice", "c-4", auto=False)
    assert runtime.writer.write(asked).commit is not None
    assert _pinned(remote, "staging") == "1.0.0"
