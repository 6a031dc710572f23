"""Advice on a valid policy: what it allows is likely not what its author meant (pure).

`ritmo policy check` prints these as warnings; they never make a policy invalid.
"""

from __future__ import annotations

from bot.policy.model import Policy


def warnings(policy: Policy) -> list[str]:
    """One line per surprise in `policy`, in a fixed order; [] when there is none."""
    found = []
    if not policy.apps:
        found.append(
            "no apps declared: every artifact registration is refused (422); declare "
            'the apps under apps:, by name or pattern ("*" for any)'
        )
    return found
