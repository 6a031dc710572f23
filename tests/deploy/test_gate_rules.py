"""deploy/gate.py as a table: which deployment in the source environment lets an artifact on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.deploy.gate import deployment_gate
from bot.policy.model import PromotionRule
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment
from bot.timestamps import parse

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LABEL = "web 1.2.3"


def rule(**fields: Any) -> PromotionRule:
    return PromotionRule.model_validate({"from": "staging", "to": "prod", **fields})


def deployed(status: str = "succeeded", **fields: Any) -> Deployment:
    return Deployment(
        id="dep-1", app="web", environment="staging", artifact_id="art-1", pin_commit="p1",
        status=DeploymentStatus(status), created_at="2026-12-03T10:00:00Z", **fields,
    )  # fmt: skip


def ago(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("fields", "latest", "says"),
    [
        # A rule that asks nothing of deployments never waits, whatever they are.
        ({}, None, None),
        ({}, deployed("failed"), None),
        ({"requires_deployment": True}, None, "has no deployment in staging yet"),
        ({"requires_deployment": True}, deployed("progressing"), "in staging is progressing"),
        ({"requires_deployment": True}, deployed("failed"), "in staging is failed"),
        ({"requires_deployment": True}, deployed("degraded"), "is degraded"),
        ({"requires_deployment": True}, deployed(), None),
        # Superseded is checked before the status: a succeeded report about an old revision.
        ({"requires_deployment": True}, deployed(superseded=True), "history only"),
        ({"requires_deployment": True}, deployed("failed", superseded=True), "history only"),
        # soak implies requires_deployment.
        ({"soak": "1h"}, None, "has no deployment in staging yet"),
        ({"soak": "1h"}, deployed("failed"), "is failed"),
        ({"soak": "1h"}, deployed(succeeded_at=ago(timedelta(minutes=59))), "soaks in staging"),
        # The boundary: exactly the soak later, it may go.
        ({"soak": "1h"}, deployed(succeeded_at=ago(timedelta(hours=1))), None),
        ({"soak": "1h"}, deployed(succeeded_at=ago(timedelta(hours=1, seconds=-1))), "soaks"),
        ({"soak": "1d"}, deployed(succeeded_at=ago(timedelta(days=2))), None),
        # A succeeded record without succeeded_at (written before soak existed) is not held.
        ({"soak": "1h"}, deployed(), None),
        ({"soak": "1h"}, deployed(succeeded_at=None), None),
    ],
)
def test_deployment_gate(
    fields: dict[str, Any], latest: Deployment | None, says: str | None
) -> None:
    reason = deployment_gate(rule(**fields), LABEL, latest, NOW)
    if says is None:
        assert reason is None
    else:
        assert reason is not None and says in reason
        assert reason.startswith(LABEL)
        assert "staging -> prod" in reason or "soaks" in reason


def test_soak_names_when_in_utc() -> None:
    latest = deployed(succeeded_at="2026-12-03T11:30:00Z")
    reason = deployment_gate(rule(soak="1h"), LABEL, latest, NOW)
    assert reason == (
        "web 1.2.3 soaks in staging until 2026-12-03T12:30:00Z (policy soak 1:00:00); "
        "promote it after that"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03T12:00:00Z", datetime(2026, 12, 3, 12, 0, tzinfo=UTC)),
        ("2026-12-03T12:00:00+00:00", datetime(2026, 12, 3, 12, 0, tzinfo=UTC)),
        ("2026-12-03T13:00:00+01:00", datetime(2026, 12, 3, 12, 0, tzinfo=UTC)),
        ("2026-12-03T12:00:00.250Z", datetime(2026, 12, 3, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)
