"""Signature verdicts over many commits, on every core: checking an Ed25519 signature
holds Python's lock (about 0.2 ms each), so 20,000 of them take one core seconds.

Worker processes are forked with the trusted keys already read (key objects cannot be
sent to another process) and the (payload, signature) pairs; each is told which share
to check and sends back the verdicts. For `ritmo verify` over a whole history only: a
server does not fork workers per request. Anything that goes wrong in the workers
leaves the work to the caller, which checks in-process as before.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence

from bot.manifests.openpgp_verify import Key, Verdict, verdict

# The keys and the signatures, for the forked workers: inherited, not sent.
_KEYS: Mapping[str, Key] = {}
_PAIRS: Sequence[tuple[bytes, str]] = ()
_CHUNK = 1000


def _judge(task: tuple[int, int]) -> list[Verdict | None]:
    start, now = task
    chunk = _PAIRS[start : start + _CHUNK]
    return [verdict(payload, armored, _KEYS, now) for payload, armored in chunk]


def verdicts(
    pairs: Sequence[tuple[bytes, str]], keys: Mapping[str, Key], now: int, workers: int
) -> list[Verdict | None] | None:
    """The verdict of each (payload, armoured signature), in order; None when the workers
    could not be used."""
    global _KEYS, _PAIRS
    tasks = [(start, now) for start in range(0, len(pairs), _CHUNK)]
    _KEYS, _PAIRS = keys, pairs
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            found = pool.map(_judge, tasks, chunksize=1)
    except Exception:
        return None
    finally:
        _KEYS, _PAIRS = {}, ()
    return [v for part in found for v in part]
