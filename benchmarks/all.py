"""Run every benchmark, one after the other, with its defaults; each prints its own figures.

    .venv/bin/python benchmarks/all.py

Order: ingest, scale, webhooks, github_calls, dashboard, verify (the machine should be
otherwise quiet: each measures wall time on shared cores). Exit status: the first non-zero
status of a benchmark (after all ran), or 0.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "ingest.py", "scale.py", "webhooks.py", "github_calls.py", "dashboard.py", "verify.py",
)  # fmt: skip


def main() -> int:
    status = 0
    for name in BENCHMARKS:
        print(f"\n=== benchmarks/{name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(HERE / name)], check=False).returncode
        print(f"=== benchmarks/{name}: exit {code} in {time.perf_counter() - started:.0f} s ===",
              flush=True)  # fmt: skip
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
