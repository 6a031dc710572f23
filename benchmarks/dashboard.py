"""Dashboard benchmark: anonymous GET / latency at 2,000 apps and 20,000 records.

The remote is generated as benchmarks/scale.py does (`git fast-import`: `--apps` apps x 3
environments of kustomize overlays, `--records` artifact records in its history, the
policy declaring `"*"`). A real `ritmo serve` runs against it. Then:

- the first GET / (the page is rendered: the environments table is read from git);
- `--requests` GET / one after another, then as many again from `--concurrency` threads
  at once: the latency of each, from which p50, p99 and max (target: p99 < 200 ms);
- one registration (the index moves), then the next GET / (rendered again), reported.

    python benchmarks/dashboard.py [--apps 2000] [--records 20000] [--requests 400]

Exit status: 0 when the run completes (targets missed are printed as MISSED), 2 when it cannot.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # noqa: E402
    BenchError,
    generate_key,
    mark,
    percentile,
    print_table,
    ritmo_server,
    workspace,
)
from scale import app_name, make_scale_remote  # noqa: E402

TARGET_P99_MS = 200.0
PER_PAGE = 50


def timed_get(session: requests.Session, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    resp = session.get(url, timeout=900)
    took = time.perf_counter() - started
    if resp.status_code != 200:
        raise BenchError(f"GET {url}: {resp.status_code} {resp.text[:300]}")
    return took, resp.text


def sequential(url: str, count: int) -> list[float]:
    with requests.Session() as session:
        return [timed_get(session, url + "/")[0] for _ in range(count)]


def concurrent(url: str, count: int, threads: int) -> list[float]:
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        with requests.Session() as session:
            for _ in range(n):
                try:
                    took, _ = timed_get(session, url + "/")
                except (BenchError, requests.RequestException) as exc:
                    errors.append(str(exc))
                    return
                with lock:
                    times.append(took)

    share = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(n,)) for n in share]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise BenchError(f"concurrent GET /: {errors[0]}")
    return times


def summary(label: str, values: list[float]) -> list[tuple[str, str, str]]:
    ordered = sorted(values)
    p99 = percentile(ordered, 99) * 1000
    return [
        (f"{label} p50", f"{percentile(ordered, 50) * 1000:.1f} ms", f"n={len(values)}"),
        (f"{label} p99", f"{p99:.1f} ms",
         f"target < {TARGET_P99_MS:g} ms: {mark(p99 < TARGET_P99_MS)}"),
        (f"{label} max", f"{ordered[-1] * 1000:.1f} ms", ""),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=2000, help="apps, 3 environments (2000)")
    parser.add_argument("--records", type=int, default=20000, help="records in history (20000)")
    parser.add_argument("--requests", type=int, default=400, help="timed GET / of each kind")
    parser.add_argument("--concurrency", type=int, default=16, help="threads for the second")
    args = parser.parse_args(argv)
    if min(args.apps, args.records, args.requests, args.concurrency) < 1:
        parser.error("--apps, --records, --requests and --concurrency must be >= 1")
    try:
        with workspace("ritmo-dashboard-") as (root, gnupghome):
            fingerprint = generate_key(gnupghome)
            print(f"generating {args.apps} apps x 3 envs + {args.records} records ...",
                  flush=True)  # fmt: skip
            remote, gen_s = make_scale_remote(root, "remote", args.apps, args.records)
            print("starting ritmo serve ...", flush=True)
            with ritmo_server(root, remote, gnupghome, fingerprint) as (url, token, _, _, up_s):
                with requests.Session() as session:
                    first_s, page = timed_get(session, url + "/")
                print(f"first GET / rendered in {first_s:.1f} s", flush=True)
                rows_on_page = len(re.findall(r'<tr data-app="', page))
                pages = -(-args.apps // PER_PAGE)
                if rows_on_page != min(PER_PAGE, args.apps) or f"of {pages} (" not in page:
                    raise BenchError(f"page 1 shows {rows_on_page} apps, not {PER_PAGE}")
                print(f"timing {args.requests} GET / in a row, then from "
                      f"{args.concurrency} threads ...", flush=True)  # fmt: skip
                one_by_one = sequential(url, args.requests)
                together = concurrent(url, args.requests, args.concurrency)
                kept_s, fresh_s = after_a_change(url, token)
            rows = [
                ("apps x environments", f"{args.apps} x 3", f"{pages} pages of {PER_PAGE}"),
                ("records in history", str(args.records), ""),
                ("remote generated in", f"{gen_s:.1f} s", "(git fast-import)"),
                ("server ready in", f"{up_s:.1f} s", ""),
                ("first GET / (renders)", f"{first_s * 1000:.0f} ms", "once per start"),
                *summary("GET / in a row", one_by_one),
                *summary(f"GET / x{args.concurrency} threads", together),
                ("GET / after a registration", f"{kept_s * 1000:.0f} ms",
                 "the kept page, while the new one renders"),
                ("page shows the registration", f"after {fresh_s:.1f} s",
                 "one background render per change"),
            ]  # fmt: skip
            print_table("Ritmo dashboard benchmark", rows)
            return 0
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


def after_a_change(url: str, token: str) -> tuple[float, float]:
    """Register one artifact (the index moves); (the next GET /, served from the page kept
    while the new one renders in the background; seconds until the page shows it)."""
    name = app_name(0)
    body = {
        "name": name,
        "version": "9.9.9",
        "build_id": "dashboard-bench",
        "image": f"registry.example.com/acme/{name}:9.9.9",
        "checksum": "sha256:" + "d" * 64,
    }
    with requests.Session() as session:
        resp = session.post(
            f"{url}/api/v1/artifacts",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        )
        if resp.status_code != 201:
            raise BenchError(f"register: {resp.status_code} {resp.text[:300]}")
        registered = time.perf_counter()
        took, page = timed_get(session, url + "/")
        while "9.9.9" not in page:
            if time.perf_counter() - registered > 1800:
                raise BenchError("the page did not show the registration within 30 minutes")
            time.sleep(0.5)
            page = timed_get(session, url + "/")[1]
    return took, time.perf_counter() - registered


if __name__ == "__main__":
    sys.exit(main())
