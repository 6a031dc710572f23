"""The CLI's one table printer, and the audit row it prints (exact text)."""

from __future__ import annotations

import pytest

from bot.audit.history import events_of
from bot.cli.tables import audit_row, table
from bot.manifests.trailers import Commit, parse_trailers

ART = "art-00000000000000000001"
OLD = "art-00000000000000000002"
NAMES = {ART: ("web", "2.0.0"), OLD: ("web", "1.0.0")}


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    lines = table(
        ["ID", "STATUS", "UPDATED"],
        [["dep-1", "failed (rolled back)", "2026-12-03T10:00:00Z"], ["dep-22", "ok", None]],
    )
    assert lines == [
        "ID      STATUS                UPDATED",
        "dep-1   failed (rolled back)  2026-12-03T10:00:00Z",
        "dep-22  ok                    -",
    ]


@pytest.mark.parametrize(
    "value", ["", "a", "failed (rolled back)", "x" * 300, "two\nlines", "tab\there", "ünï"]
)
def test_any_value_keeps_the_grid(value: str) -> None:
    lines = table(["A", "B", "C"], [[value, value, "end"], ["1", "2", "end"]])
    starts = {line.index("end") for line in lines[1:]}
    assert len(starts) == 1 and lines[0].index("C") == starts.pop()
    assert all("\n" not in line and "\t" not in line for line in lines)


def test_right_aligned_numbers_and_a_row_of_the_wrong_length() -> None:
    assert table(["ID", "N"], [[7, 1], [1234, 10]], right=(0, 1)) == [
        "  ID   N",
        "   7   1",
        "1234  10",
    ]
    with pytest.raises(ValueError, match="2 cells"):
        table(["ID", "N"], [[1]])


def _event(trailers: str) -> dict[str, object]:
    message = f"Subject\n\nBody.\n\n{trailers}\n"
    commit = Commit("a" * 40, ("p",), 1_700_000_000, parse_trailers(message))
    (event,) = events_of(commit, NAMES.get)
    return event.as_json()


def test_an_automatic_promotion_by_ritmo_says_automatic_once() -> None:
    # What Ritmo writes when a deployment gate promotes (bot/deploy/records.AUTOMATIC).
    event = _event(
        f"Ritmo-Promotion: dev -> staging\nRitmo-Artifact: {ART}\n"
        "Ritmo-Promoted-By: ritmo (automatic)\nRitmo-Automatic: policy"
    )
    assert audit_row(event)[1:6] == ["promoted", "web", "dev->staging", "2.0.0",
                                     "ritmo (automatic)"]  # fmt: skip
    by_token = _event(
        f"Ritmo-Promotion: registered -> dev\nRitmo-Artifact: {ART}\n"
        "Ritmo-Promoted-By: ci\nRitmo-Automatic: policy"
    )
    assert audit_row(by_token)[5] == "ci (automatic)"


def test_a_rollback_row_shows_the_version_rolled_back_and_the_one_restored() -> None:
    event = _event(
        f"Ritmo-Rollback: staging\nRitmo-Artifact: {OLD}\nRitmo-Rolled-Back: {ART}\n"
        "Ritmo-Rolled-Back-By: ritmo (automatic)"
    )
    assert (event["version"], event["restored_version"]) == ("2.0.0", "1.0.0")
    assert audit_row(event)[1:6] == ["rolled_back", "web", "staging", "2.0.0->1.0.0",
                                     "ritmo (automatic)"]  # fmt: skip


@pytest.mark.parametrize(
    ("by", "said"),
    [
        ("ritmo (automatic)", "dev -> staging by ritmo (automatic), by policy."),
        ("ci", "dev -> staging by ci (automatic, by policy)."),
    ],
)
def test_an_automatic_promotion_commit_says_automatic_once(by: str, said: str) -> None:
    from bot.templates import Templates

    message = Templates().render(
        "commit/promotion.txt", record={"name": "web", "version": "2.0.0", "id": ART},
        from_env="dev", to_env="staging", promoted_by=by, auto=True, pinned="2.0.0",
        path="apps/web/overlays/staging/kustomization.yaml", notes=None,
        approved_by_note=None, approval_ticket=None, correlation_id="c-1",
    )  # fmt: skip
    assert message.splitlines()[2] == said
    assert f"Ritmo-Promoted-By: {by}" in message
