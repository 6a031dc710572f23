"""The ordered environments an artifact moves through, read from the default policy."""

from __future__ import annotations

from pathlib import Path

from bot.config import ConfigError
from bot.policy.load import DEFAULT_POLICY_PATH, PolicyError, default_policy, load_policy_bytes

DEFAULT_POLICY = DEFAULT_POLICY_PATH


def environment_names(policy_file: Path = DEFAULT_POLICY) -> list[str]:
    """Environment names in promotion order; the first is where new artifacts start.

    The policy is fully validated: an invalid one refuses start-up (ConfigError) with
    every problem at its file:line:column.
    """
    try:
        if policy_file == DEFAULT_POLICY:
            policy = default_policy()
        else:
            policy = load_policy_bytes(policy_file.read_bytes(), str(policy_file))
    except OSError as exc:
        raise ConfigError(f"policy file {policy_file}: {exc.strerror}") from None
    except PolicyError as exc:
        raise ConfigError(f"invalid policy; fix it and start again:\n{exc}") from None
    return policy.environment_names
