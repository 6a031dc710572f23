"""The decision of which policy is in force (bot/policy/trust.py), over made-up commits."""

from __future__ import annotations

from bot.manifests.trailers import parse_trailers
from bot.policy.trust import PolicyCommit, PolicyTrust, TrustKeys, describe, follow

RITMO, LEAD, OTHER = "A" * 40, "B" * 40, "C" * 40
KEYS = TrustKeys(frozenset({RITMO}), frozenset({LEAD}))


def _c(
    sha: str, blob: str | None = None, by: str = "", trailers: str = "", **kw: object
) -> PolicyCommit:
    changes = "changes_file" not in kw and (blob is not None or kw.get("deletes", False))
    return PolicyCommit(
        sha,
        "G" if by else "N",
        by,
        parse_trailers(f"S\n\n{trailers}") if trailers else {},
        changes_file=bool(kw.get("changes_file", changes)),
        blob=blob,
    )


ADOPT = _c("adopt", by=RITMO, trailers="Ritmo-Policy-Adopted: yes\nRitmo-Policy: b0")


def test_nothing_counts_before_adoption() -> None:
    state = follow(PolicyTrust(), [_c("seed", "b0"), _c("hand", "b1")], KEYS)
    assert not state.adopted and state.untrusted == ()
    state = follow(state, [ADOPT], KEYS)
    assert (state.adopted_at, state.in_force, state.untrusted) == ("adopt", "b0", ())


def test_only_ritmo_or_a_policy_key_moves_the_policy() -> None:
    ritmo = _c("ritmo", "b1", by=RITMO, trailers="Ritmo-Policy: b1")
    state = follow(PolicyTrust(), [ADOPT, ritmo, _c("lead", "b2", by=LEAD), _c("eve", "b3")], KEYS)
    assert state.in_force == "b2"
    assert state.untrusted_shas() == ["eve"]
    # A good signature by a key that is neither Ritmo's nor a policy key: not trusted.
    signed = follow(state, [_c("other", "b4", by=OTHER)], KEYS)
    assert signed.in_force == "b2" and signed.untrusted_shas() == ["eve", "other"]
    assert "not in signing.policy_keys" in describe(signed.untrusted[1])
    assert describe(signed.untrusted[0]) == "is not signed"


def test_a_policy_key_cannot_adopt_or_vouch() -> None:
    lead_adopt = _c("x", by=LEAD, trailers="Ritmo-Policy-Adopted: yes\nRitmo-Policy: b9")
    assert not follow(PolicyTrust(), [lead_adopt], KEYS).adopted
    vouch = _c("v", by=LEAD, trailers="Ritmo-Policy: b9")
    assert follow(PolicyTrust(), [ADOPT, vouch], KEYS).in_force == "b0"


def test_a_later_ritmo_policy_vouches_for_an_untrusted_change() -> None:
    state = follow(PolicyTrust(), [ADOPT, _c("eve", "b1"), _c("mal", "b2")], KEYS)
    assert state.in_force == "b0" and state.untrusted_shas() == ["eve", "mal"]
    vouched = follow(state, [_c("ok", by=RITMO, trailers="Ritmo-Policy: b1")], KEYS)
    assert vouched.in_force == "b1" and vouched.untrusted_shas() == ["mal"]


def test_a_change_back_to_the_policy_in_force_is_not_listed_and_deletion_is() -> None:
    state = follow(PolicyTrust(), [ADOPT, _c("same", "b0"), _c("gone", None, deletes=True)], KEYS)
    assert state.untrusted_shas() == ["gone"] and state.untrusted[0].blob is None
    assert state.in_force == "b0"


def test_a_bad_signature_by_ritmo_is_untrusted() -> None:
    bad = PolicyCommit("bad", "B", RITMO, {}, changes_file=True, blob="b1")
    state = follow(PolicyTrust(), [ADOPT, bad], KEYS)
    assert (
        state.untrusted_shas() == ["bad"] and describe(state.untrusted[0]) == "has a bad signature"
    )


def test_ritmo_signature_without_a_vouch_moves_nothing() -> None:
    """Ritmo's signed merge of a promotion branch someone slipped a policy edit into: the
    signature is Ritmo's, but Ritmo never judged that policy (no Ritmo-Policy)."""
    merged = _c("merge", "b1", by=RITMO, trailers="Ritmo-Request: req-1")
    state = follow(PolicyTrust(), [ADOPT, merged], KEYS)
    assert state.in_force == "b0" and state.untrusted_shas() == ["merge"]
    assert "no Ritmo-Policy trailer" in describe(state.untrusted[0])
