"""Ingest benchmark: N concurrent registrations through `ritmo serve` vs a naive git loop.

Everything runs on this machine and talks only to 127.0.0.1: a temporary gpg home with a
fresh ed25519 key, bare "remotes" whose pre-receive hook sleeps to stand in for a network
remote, and a real `ritmo serve` subprocess under gunicorn. See benchmarks/README.md.

    python benchmarks/ingest.py [--count 200] [--hook-ms 50]

Exit status: 0 when every commit Ritmo pushed verifies (targets missed are printed as
MISSED but do not fail the run), 1 when verification fails, 2 when the run cannot complete.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot.manifests.records import (  # noqa: E402
    ArtifactSpec,
    build_record,
    record_path,
    render_record,
)
from bot.templates import Templates  # noqa: E402

HOST = "127.0.0.1"
BRANCH = "main"
SERVER_THREADS = 256
TARGET_RATIO = 20.0  # issue 16
TARGET_P99_S = 1.0
START_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 300.0
GIT_TIMEOUT_S = 60.0


class BenchError(Exception):
    """The benchmark could not run to the end; the message says which step failed."""


# -- helpers ---------------------------------------------------------------------------------


def run(
    args: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = GIT_TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(args)} (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def base_env() -> dict[str, str]:
    """The caller's environment without any RITMO_* or GNUPGHOME leaking into the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RITMO_")}
    env.pop("GNUPGHOME", None)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    # Keep git from reading the user's ~/.gitconfig (e.g. a global signing setup).
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return run(["git", *args], cwd=cwd, env=env or base_env()).stdout


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def ritmo_command() -> list[str]:
    script = Path(sys.executable).with_name("ritmo")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())"]


# -- fixtures: key and remotes ---------------------------------------------------------------


def generate_key(home: Path) -> str:
    """A fresh unprotected ed25519 signing key in `home`; returns its fingerprint."""
    home.mkdir(mode=0o700)
    params = (
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Ritmo Bench\n"
        "Name-Email: ritmo-bench@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    run([*gpg, "--gen-key"], stdin=params, env=base_env())
    out = run([*gpg, "--list-secret-keys", "--with-colons"], env=base_env()).stdout
    fingerprints = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
    if not fingerprints:
        raise BenchError(f"no key generated in {home}")
    return fingerprints[0]


RECORDS_ONLY_POLICY = (
    "environments: [{name: dev}, {name: staging}, {name: production}]\n"
    'apps: {"*": {}}\n'  # the benchmark makes its app names up
)


def make_remote(root: Path, name: str, hook_ms: int) -> tuple[Path, str]:
    """A bare remote seeded with one commit, then a slow pre-receive hook; (path, seed sha)."""
    bare = root / f"{name}.git"
    git(root, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    git(bare, "config", "core.logAllRefUpdates", "true")  # the reflog counts pushes
    seed = root / f"{name}-seed"
    git(root, "init", "--quiet", f"--initial-branch={BRANCH}", str(seed))
    (seed / "README.md").write_text("Manifests (benchmark remote).\n")
    # Registration alone is measured: no environment auto-promotes, so each artifact is one
    # commit, as in the naive loop. (Pins chained by policy add one signed commit each.)
    (seed / ".ritmo").mkdir()
    (seed / ".ritmo" / "policy.yaml").write_text(RECORDS_ONLY_POLICY)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com",
        "commit", "--quiet", "-m", "Initial commit")  # fmt: skip
    git(seed, "push", "--quiet", str(bare), BRANCH)
    shutil.rmtree(seed)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\nsleep {hook_ms / 1000:.3f}\n")
    hook.chmod(0o755)
    return bare, git(bare, "rev-parse", BRANCH).strip()


def kill_gpg_agent(home: Path) -> None:
    if home.exists():
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
            timeout=30,
        )


# -- the artifacts ---------------------------------------------------------------------------


def artifact_bodies(count: int) -> list[dict[str, Any]]:
    bodies = []
    for i in range(count):
        name, version = f"svc-{i % 20:02d}", f"1.{i // 20}.0"
        bodies.append(
            {
                "name": name,
                "version": version,
                "build_id": f"build-{i}",
                "storage_url": f"s3://artifacts/{name}-{version}.tar.gz",
                "image": f"registry.example.com/acme/{name}:{version}",
                "checksum": "sha256:" + f"{i:064x}",
                "metadata": {"commit": f"{i:040x}", "branch": "main", "repository": "acme/mono"},
            }
        )
    return bodies


# -- 1. the API ------------------------------------------------------------------------------


@dataclass
class ApiResult:
    wall_s: float
    latencies_s: list[float]
    statuses: list[int]
    commits: list[str | None]
    errors: list[str] = field(default_factory=list)


@contextmanager
def ritmo_server(
    work: Path,
    remote: Path,
    gnupghome: Path,
    fingerprint: str,
    scopes: Sequence[str] = ("artifacts:write", "artifacts:read"),
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, str, subprocess.Popen[bytes], dict[str, str], float]]:
    """Start `ritmo serve` with a token of `scopes` and any extra RITMO_* settings; yield
    (base URL, token, process, environment, seconds until /healthz answered); stop it
    and its agents afterwards."""
    port = free_port()
    data_dir = work / "data"
    env = {
        **base_env(),
        "RITMO_DATA_DIR": str(data_dir),
        "RITMO_LISTEN": f"{HOST}:{port}",
        "RITMO_THREADS": str(SERVER_THREADS),
        "RITMO_MANIFESTS__URL": str(remote),
        "RITMO_MANIFESTS__BRANCH": BRANCH,
        "RITMO_SIGNING__KEY": fingerprint,
        "RITMO_SIGNING__GNUPGHOME": str(gnupghome),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **(extra_env or {}),
    }
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    data_dir.mkdir(parents=True, exist_ok=True)  # `ritmo token` refuses outside a data dir
    token_cmd = [*ritmo_command(), "token", "create", "--name", "bench", *scope_args]
    token = run(token_cmd, cwd=work, env=env).stdout.strip().splitlines()[-1]
    log_path = work / "server.log"
    url = f"http://{HOST}:{port}"
    # The access log goes to a file: a pipe nobody drains would stall the server.
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*ritmo_command(), "serve"],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: master, worker, their git and gpg
        )
        try:
            wait_ready(proc, url, log_path)
            yield url, token, proc, env, time.perf_counter() - started
        finally:
            stop(proc)
            kill_gpg_agent(data_dir / "trusted-gnupg")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"ritmo serve exited {proc.returncode}:\n{log_tail(log_path)}")
        if "Ritmo listening on" in log_path.read_text(errors="replace"):
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.1)
    raise BenchError(f"ritmo serve not ready after {START_TIMEOUT_S:.0f}s:\n{log_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (gunicorn shuts down gracefully), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=15)


def run_api(url: str, token: str, bodies: list[dict[str, Any]]) -> ApiResult:
    """Fire every registration at once from its own thread.

    The client is http.client with bodies serialised beforehand: it shares the machine's
    two cores with the server, so the lighter it is, the less it distorts the figures.
    """
    count = len(bodies)
    barrier = threading.Barrier(count)
    latencies = [0.0] * count
    statuses = [0] * count
    commits: list[str | None] = [None] * count
    starts = [0.0] * count
    ends = [0.0] * count
    errors: list[str] = []
    parsed = urllib.parse.urlsplit(url)
    payloads = [json.dumps(body).encode() for body in bodies]

    def one(i: int) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Correlation-ID": f"bench-{i}",
        }
        barrier.wait(timeout=60)
        starts[i] = time.perf_counter()
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("POST", "/api/v1/artifacts", body=payloads[i], headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            statuses[i] = resp.status
            if resp.status == 201:
                commits[i] = json.loads(text).get("commit")
            else:
                errors.append(f"#{i}: {resp.status} {text[:200]!r}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"#{i}: {exc}")
        finally:
            conn.close()
        ends[i] = time.perf_counter()
        latencies[i] = ends[i] - starts[i]

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return ApiResult(max(ends) - min(starts), latencies, statuses, commits, errors)


# -- 2. the naive loop -----------------------------------------------------------------------


def run_naive(
    work: Path, remote: Path, gnupghome: Path, fingerprint: str, bodies: list[dict[str, Any]]
) -> float:
    """One `git commit -S` and one `git push` per artifact, sequentially; returns seconds."""
    env = {**base_env(), "GNUPGHOME": str(gnupghome)}
    clone = work / "naive-clone"
    git(work, "clone", "--quiet", str(remote), str(clone), env=env)
    for key, value in [("user.name", "Naive CI"), ("user.email", "naive-ci@example.com"),
                       ("user.signingkey", fingerprint), ("gpg.program", "gpg")]:  # fmt: skip
        git(clone, "config", key, value, env=env)
    templates = Templates()
    # Render the same record files and messages Ritmo writes, outside the timed loop.
    prepared = []
    for i, body in enumerate(bodies):
        spec = ArtifactSpec.model_validate(body)
        record = build_record(spec, {"status": "unsigned"}, datetime.now(UTC))
        message = templates.render(
            "commit/artifact.txt", record=record, registered_by="naive", correlation_id=f"n-{i}"
        )
        prepared.append((record_path(spec.name, spec.resolved_version()), render_record(record),
                         message))  # fmt: skip
    started = time.perf_counter()
    for path, content, message in prepared:
        target = clone / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        git(clone, "add", "--", path, env=env)
        git(clone, "commit", "--quiet", "-S", "-m", message, env=env)
        git(clone, "push", "--quiet", "origin", BRANCH, env=env)
    return time.perf_counter() - started


# -- 3. verification -------------------------------------------------------------------------


@dataclass
class Verification:
    new_commits: int
    verified: int
    fsck_clean: bool
    pushes: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    remote: Path, seed: str, gnupghome: Path, fingerprint: str, api: ApiResult, count: int
) -> Verification:
    env = {**base_env(), "GNUPGHOME": str(gnupghome)}
    problems: list[str] = []
    # Ritmo's first start adopts the seed's policy in a commit of its own: not a record.
    commits = git(remote, "rev-list", "--reverse", "--invert-grep",
                  "--grep=^Ritmo-Policy-Adopted: yes", f"{seed}..{BRANCH}").split()  # fmt: skip
    if len(commits) != count:
        problems.append(f"expected {count} new commits on {BRANCH}, found {len(commits)}")

    def check(sha: str) -> str | None:
        proc = run(["git", "verify-commit", "--raw", sha], cwd=remote, env=env, check=False)
        good = f"VALIDSIG {fingerprint}" in proc.stderr and "GOODSIG" in proc.stderr
        if proc.returncode != 0 or not good:
            return f"commit {sha} does not verify: {' '.join(proc.stderr.split())[-200:]}"
        files = git(remote, "diff-tree", "--no-commit-id", "--name-status", "-r", sha).split("\n")
        added = [f for f in files if f.startswith("A\tartifacts/")]
        if len(added) != 1 or len([f for f in files if f]) != 1:
            return f"commit {sha} does not add exactly one record: {files}"
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [p for p in pool.map(check, commits) if p]
    problems += failures
    verified = len(commits) - len(failures)

    acknowledged = {c for c in api.commits if c}
    if len(acknowledged) != count:
        problems.append(f"{count - len(acknowledged)} registrations got no 201 with a commit")
    if acknowledged - set(commits):
        problems.append(f"{len(acknowledged - set(commits))} acknowledged commits not on {BRANCH}")
    fsck = run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=remote, check=False)
    fsck_clean = fsck.returncode == 0 and not fsck.stderr.strip() and not fsck.stdout.strip()
    if not fsck_clean:
        problems.append(f"git fsck: {(fsck.stdout + fsck.stderr).strip()[:500]}")
    reflog = git(remote, "reflog", "show", "--format=%H", f"refs/heads/{BRANCH}").split()
    adoptions = git(remote, "rev-list", "--grep=^Ritmo-Policy-Adopted: yes", BRANCH).split()
    pushes = len(reflog) - 1 - len(adoptions)  # the seed's push and the adoption's are not ingest
    return Verification(len(commits), verified, fsck_clean, pushes, problems)


# -- main ------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """The benchmarks' figures: label, value, and a note (a target met or MISSED)."""
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print()
    print(f"{title} ({os.cpu_count()} CPUs)")
    print("-" * (width + value_width + 30))
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:<{value_width}}  {note}".rstrip())
    print("-" * (width + value_width + 30))


@contextmanager
def workspace(prefix: str) -> Iterator[tuple[Path, Path]]:
    """A temporary directory and a gpg home in it, (root, gnupghome), removed at the end,
    gpg-agent included, even when the run is stopped with SIGTERM."""

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_term)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    gnupghome = root / "gnupg"
    try:
        yield root, gnupghome
    finally:
        kill_gpg_agent(gnupghome)
        shutil.rmtree(root, ignore_errors=True)


def report(count: int, hook_ms: int, api: ApiResult, naive_s: float, check: Verification) -> None:
    lat = sorted(api.latencies_s)
    api_rate = count / api.wall_s
    naive_rate = count / naive_s
    ratio = api_rate / naive_rate
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    p99_note = f"target < {TARGET_P99_S:g} s: {mark(p99 < TARGET_P99_S)}"
    ratio_note = f"target >= {TARGET_RATIO:g}x: {mark(ratio >= TARGET_RATIO)}"
    rows = [
        ("artifacts", f"{count}", ""),
        ("pre-receive hook delay", f"{hook_ms} ms", ""),
        ("API wall time", f"{api.wall_s:.2f} s", ""),
        ("API throughput", f"{api_rate:.1f} registrations/s", ""),
        ("API latency p50", f"{p50:.3f} s", ""),
        ("API latency p99", f"{p99:.3f} s", p99_note),
        ("API latency max", f"{lat[-1]:.3f} s", ""),
        ("API responses 201", f"{api.statuses.count(201)}/{count}", ""),
        ("API pushes (batches)", f"{check.pushes}", ""),
        ("naive loop wall time", f"{naive_s:.2f} s", ""),
        ("naive throughput", f"{naive_rate:.2f} registrations/s", ""),
        ("ratio API/naive", f"{ratio:.1f}x", ratio_note),
        ("new signed commits", f"{check.new_commits} (verified {check.verified})", ""),
        ("git fsck", "clean" if check.fsck_clean else "NOT CLEAN", ""),
    ]  # fmt: skip
    print_table("Ritmo ingest benchmark", rows)
    for error in api.errors[:5]:
        print(f"request error: {error}")
    for problem in check.problems[:10]:
        print(f"verification problem: {problem}")
    print(f"every commit verified: {'yes' if check.ok else 'no'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="artifacts to register (200)")
    parser.add_argument("--hook-ms", type=int, default=50, help="pre-receive delay in ms (50)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.count > SERVER_THREADS:
        parser.error(f"--count must be 1..{SERVER_THREADS} so every request is in flight at once")
    if args.hook_ms < 0:
        parser.error("--hook-ms must be >= 0")

    try:
        with workspace("ritmo-bench-") as (root, gnupghome):
            print(f"setting up in {root}: ed25519 key, remotes with a {args.hook_ms} ms hook")
            fingerprint = generate_key(gnupghome)
            bodies = artifact_bodies(args.count)

            api_remote, api_seed = make_remote(root, "api-remote", args.hook_ms)
            print(f"1/3 API: {args.count} concurrent POST /api/v1/artifacts to ritmo serve ...")
            with ritmo_server(root, api_remote, gnupghome, fingerprint) as (url, token, *_):
                api = run_api(url, token, bodies)

            naive_remote, _ = make_remote(root, "naive-remote", args.hook_ms)
            print(f"2/3 naive: {args.count} x (git commit -S; git push) ...")
            naive_s = run_naive(root, naive_remote, gnupghome, fingerprint, bodies)

            print("3/3 verifying every pushed commit (git verify-commit, git fsck) ...")
            check = verify(api_remote, api_seed, gnupghome, fingerprint, api, args.count)
            report(args.count, args.hook_ms, api, naive_s, check)
            return 0 if check.ok else 1
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
