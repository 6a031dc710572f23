"""Webhook benchmark: acknowledgement latency of N concurrent GitHub deliveries.

A real `ritmo serve` with forge.kind github (a generated RSA app key, the sandbox's app id,
installation and repository, a webhook secret) and a small local bare remote. Its api_url
points at a tiny local HTTP server standing in for GitHub, so nothing leaves 127.0.0.1: it
answers every call with a 404 and counts them (acknowledging must not need GitHub; the
webhook worker may call it afterwards, and those calls are reported).

Each round sends `--deliveries` signed POST /webhooks/github at once, each on a connection
of its own, from one thread over non-blocking sockets (`--client threads`: a thread per
delivery, the earlier client, which adds its own queueing on the shared cores), a mix
built from tests/samples/github/webhooks/: `pull_request_review` submitted on the
manifests repository (queued), `issue_comment` from another installation and repository
(acknowledged and ignored) and `ping`. Every delivery has its own X-GitHub-Delivery id.

    python benchmarks/webhooks.py [--deliveries 100] [--rounds 3] [--threads 64]
                                  [--client selector|threads]

A delivery's latency runs from the moment its connection is opened to the last byte of
its answer. Each round also reports the CPU time the server's processes spent meanwhile.

Exit status: 0 when every delivery was acknowledged with 200/202 (a missed latency target is
printed as MISSED), 1 when some were not, 2 when the run cannot complete.
"""

from __future__ import annotations

import argparse
import copy
import errno
import hashlib
import hmac
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (server_processes(), vm_hwm_mb())
from ingest import (  # noqa: E402
    HOST,
    REPO_ROOT,
    BenchError,
    generate_key,
    make_remote,
    mark,
    percentile,
    print_table,
    ritmo_server,
    workspace,
)

SAMPLES = REPO_ROOT / "tests" / "samples" / "github" / "webhooks"
APP_ID = 4242
INSTALLATION_ID = 77
REPOSITORY = "acme/manifests"
WEBHOOK_SECRET = "It's a Secret to Everybody"
TARGET_P99_S = 0.1  # issue 16
REQUEST_TIMEOUT_S = 120.0


# -- a stand-in for api.github.com -----------------------------------------------------------


class FakeGitHub:
    """Answers every request with a JSON 404 and counts them by method and path."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        calls = self.calls
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with lock:
                    calls[f"{self.command} {self.path.split('?')[0]}"] += 1
                body = b'{"message": "Not Found (benchmark stand-in)"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def rsa_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


# -- deliveries ------------------------------------------------------------------------------


def deliveries(count: int, round_no: int) -> list[tuple[str, str, bytes]]:
    """(event, delivery id, body): half reviews (queued), a quarter comments from another
    installation (ignored), a quarter pings."""
    review = json.loads((SAMPLES / "pull_request_review-submitted.json").read_text())
    comment = json.loads((SAMPLES / "issue_comment-created.json").read_text())
    other = copy.deepcopy(comment)
    other["installation"] = {"id": INSTALLATION_ID + 1000}
    other["repository"]["full_name"] = "other-org/other-repo"
    other["repository"]["name"] = "other-repo"
    out = []
    for i in range(count):
        delivery = f"bench-{round_no}-{i}-{os.getpid()}"
        kind = i % 4
        if kind in (0, 2):
            payload = copy.deepcopy(review)
            payload["review"]["id"] = 10_000_000 + round_no * 100_000 + i
            out.append(("pull_request_review", delivery, json.dumps(payload).encode()))
        elif kind == 1:
            out.append(("issue_comment", delivery, json.dumps(other).encode()))
        else:
            ping = {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "App"}}
            out.append(("ping", delivery, json.dumps(ping).encode()))
    return out


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


Outcome = tuple[list[float], list[int], list[str], float, list[str]]


def request_bytes(host: str, port: int, event: str, delivery: str, body: bytes) -> bytes:
    """One delivery as GitHub sends it, on a connection of its own."""
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
        f"X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {delivery}\r\n"
        f"X-Hub-Signature-256: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def complete(answer: bytes) -> bool:
    """Has the whole answer arrived: its head, and as many body bytes as it announced?"""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False  # no length: it ends when the server closes


def fire(url: str, batch: list[tuple[str, str, bytes]]) -> Outcome:
    """Every delivery at once from one thread over non-blocking sockets: each one's clock
    starts as its connection is opened (connection setup counts, as for GitHub's) and stops
    at the last byte of its answer (as http.client reads it: the announced Content-Length);
    then the client closes the connection. The requests are built before any clock starts, and
    the client spends little CPU of the two cores it shares with the server."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or HOST, parsed.port or 80
    requests = [request_bytes(host, port, event, delivery, body) for event, delivery, body in batch]
    count = len(batch)
    starts, ends = [0.0] * count, [0.0] * count
    answers = [bytearray() for _ in range(count)]
    sent = [0] * count
    failed: dict[int, str] = {}
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            starts[i] = time.perf_counter()
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                failed[i], ends[i] = f"connect: {os.strerror(code)}", time.perf_counter()
                sock.close()
                continue
            selector.register(sock, selectors.EVENT_WRITE, i)
        open_ = count - len(failed)
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while open_ and time.monotonic() < deadline:
            for key, events in selector.select(timeout=1.0):
                i, sock = key.data, key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if events & selectors.EVENT_WRITE:
                        sent[i] += sock.send(requests[i][sent[i] :])
                        if sent[i] == len(requests[i]):
                            selector.modify(sock, selectors.EVENT_READ, i)
                        continue
                    chunk = sock.recv(65536)
                except OSError as exc:
                    failed[i], chunk = str(exc), b""
                if chunk:
                    answers[i] += chunk
                    if not complete(answers[i]):
                        continue
                ends[i] = time.perf_counter()  # all of it, or the server closed
                selector.unregister(sock)
                sock.close()
                open_ -= 1
        for i, sock in enumerate(socks):
            if ends[i] == 0.0:
                failed.setdefault(i, f"no answer within {REQUEST_TIMEOUT_S:g} s")
                ends[i] = time.perf_counter()
                sock.close()
    statuses, outcomes, errors = [0] * count, [""] * count, []
    for i, raw in enumerate(answers):
        head, _, text = bytes(raw).partition(b"\r\n\r\n")
        try:
            statuses[i] = int(head.split(b" ", 2)[1])
            outcomes[i] = f"{batch[i][0]} {json.loads(text).get('status')}"
        except (IndexError, ValueError):
            outcomes[i] = f"{batch[i][0]} ?"
        if i in failed:
            errors.append(f"#{i}: {failed[i]}")
        elif statuses[i] not in (200, 202):
            errors.append(f"#{i} {batch[i][0]}: {statuses[i]} {text[:200]!r}")
    latencies = [end - start for start, end in zip(starts, ends, strict=True)]
    return latencies, statuses, outcomes, max(ends) - min(starts), errors


def fire_threads(url: str, batch: list[tuple[str, str, bytes]]) -> Outcome:
    """The earlier client (--client threads): a thread per delivery, released together by a
    barrier, http.client each. Its hundred threads contend for the client's interpreter
    and for the two cores: a thread that has its answer waits for its turn to stop its
    clock, so this client adds its own queueing to what it measures."""
    count = len(batch)
    barrier = threading.Barrier(count)
    latencies = [0.0] * count
    statuses = [0] * count
    outcomes = [""] * count
    starts = [0.0] * count
    ends = [0.0] * count
    errors: list[str] = []
    parsed = urllib.parse.urlsplit(url)
    prepared = [
        (body, {"Content-Type": "application/json", "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(body),
                "User-Agent": "GitHub-Hookshot/bench"})
        for event, delivery, body in batch
    ]  # fmt: skip

    def one(i: int) -> None:
        body, headers = prepared[i]
        barrier.wait(timeout=60)
        starts[i] = time.perf_counter()
        conn = http.client.HTTPConnection(
            parsed.hostname or HOST, parsed.port, timeout=REQUEST_TIMEOUT_S
        )
        try:
            conn.request("POST", "/webhooks/github", body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            statuses[i] = resp.status
            try:
                outcomes[i] = f"{batch[i][0]} {json.loads(text).get('status')}"
            except ValueError:
                outcomes[i] = f"{batch[i][0]} ?"
            if resp.status not in (200, 202):
                errors.append(f"#{i} {batch[i][0]}: {resp.status} {text[:200]!r}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"#{i}: {exc}")
        finally:
            conn.close()
        ends[i] = time.perf_counter()
        latencies[i] = ends[i] - starts[i]

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return latencies, statuses, outcomes, max(ends) - min(starts), errors


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100, help="concurrent deliveries (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of them (3)")
    parser.add_argument("--threads", type=int, default=64, help="server threads (Ritmo's 64)")
    parser.add_argument("--client", choices=("selector", "threads"), default="selector",
                        help="one thread over non-blocking sockets (default), or a thread "
                        "per delivery (the earlier client)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--deliveries, --rounds and --threads must be >= 1")

    try:
        with workspace("ritmo-webhooks-") as (root, gnupghome):
            print(f"setting up in {root}: ed25519 key, bare remote, RSA app key", flush=True)
            fingerprint = generate_key(gnupghome)
            remote, _ = make_remote(root, "remote", 0)
            with FakeGitHub() as github:
                forge_env = {
                    "RITMO_FORGE__KIND": "github",
                    "RITMO_FORGE__GITHUB__APP_ID": str(APP_ID),
                    "RITMO_FORGE__GITHUB__PRIVATE_KEY": rsa_key_pem(),
                    "RITMO_FORGE__GITHUB__INSTALLATION_ID": str(INSTALLATION_ID),
                    "RITMO_FORGE__GITHUB__REPOSITORY": REPOSITORY,
                    "RITMO_FORGE__GITHUB__WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "RITMO_FORGE__GITHUB__API_URL": github.url,
                    "RITMO_THREADS": str(args.threads),
                }
                served = ritmo_server(root, remote, gnupghome, fingerprint, ["artifacts:read"],
                                     forge_env)  # fmt: skip
                with served as (url, _token, proc, _env, up_s):
                    startup_calls = sum(github.calls.values())
                    print(
                        f"ready in {up_s:.1f} s ({startup_calls} GitHub calls at start-up); "
                        f"{args.rounds} x {args.deliveries} concurrent deliveries ...",
                        flush=True,
                    )
                    rounds = []
                    send = fire if args.client == "selector" else fire_threads
                    workers = list(scale.server_processes(proc.pid))
                    for r in range(args.rounds):
                        batch = deliveries(args.deliveries, r)
                        cpu = cpu_seconds(workers)
                        outcome = send(url, batch)
                        rounds.append((batch, *outcome, cpu_seconds(workers) - cpu))
                        time.sleep(1.0)  # let the worker drain between rounds
                    time.sleep(2.0)
                    rss = {who: scale.vm_hwm_mb(pid)
                           for pid, who in scale.server_processes(proc.pid).items()}  # fmt: skip
                calls = dict(github.calls)
            return report(args, rounds, startup_calls, calls, rss)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


def report(args: argparse.Namespace, rounds: list, startup_calls: int,  # type: ignore[type-arg]
           calls: dict[str, int], rss: dict[str, float]) -> int:  # fmt: skip
    rows: list[tuple[str, str, str]] = [
        ("concurrent deliveries x rounds", f"{args.deliveries} x {args.rounds}", ""),
        ("server threads / client", f"{args.threads} / {args.client}", ""),
    ]
    all_lat: list[float] = []
    by_event: dict[str, list[float]] = {}
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    for r, (batch, lat, st, oc, wall, errs, cpu) in enumerate(rounds, 1):
        s = sorted(lat)
        timing = f"{wall:.3f} s / {percentile(s, 50):.3f} s / {percentile(s, 99):.3f} s"
        rows.append((f"round {r} wall / p50 / p99", timing, f"server CPU {cpu * 1000:.0f} ms"))
        all_lat += lat
        statuses.update(st)
        outcomes.update(oc)
        errors += errs
        for (event, _d, _b), latency in zip(batch, lat, strict=True):
            by_event.setdefault(event, []).append(latency)
    s = sorted(all_lat)
    p99 = percentile(s, 99)
    rows.append(("ack latency p50 (all)", f"{percentile(s, 50) * 1000:.1f} ms", ""))
    rows.append(
        (
            "ack latency p99 (all)",
            f"{p99 * 1000:.1f} ms",
            f"target < {TARGET_P99_S * 1000:g} ms: {mark(p99 < TARGET_P99_S)}",
        )
    )
    rows.append(("ack latency max", f"{s[-1] * 1000:.1f} ms", ""))
    for event, lat in sorted(by_event.items()):
        e = sorted(lat)
        rows.append((f"  {event} p50 / p99", f"{percentile(e, 50) * 1000:.1f} ms / "
                     f"{percentile(e, 99) * 1000:.1f} ms", f"n={len(e)}"))  # fmt: skip
    rows.append(("responses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())), ""))
    for outcome, n in sorted(outcomes.items()):
        rows.append((f"  answered {outcome}", f"{n}", ""))
    rows.append(("GitHub calls at start-up / in all", f"{startup_calls} / {sum(calls.values())}",
                 ""))  # fmt: skip
    for who, mb in sorted(rss.items()):
        rows.append((f"VmHWM {who}", f"{mb:.1f} MB", ""))
    print_table("Ritmo webhook benchmark", rows)
    for path, n in sorted(calls.items(), key=lambda kv: -kv[1])[:8]:
        print(f"GitHub stand-in call: {n} x {path}")
    for error in errors[:5]:
        print(f"delivery error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
