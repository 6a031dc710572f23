"""Scale benchmark: registration and promotion latency with a large manifests history.

A bare "remote" is generated with `--apps` apps x 3 environments (kustomize overlays laid out
like templates/scaffold/apps/web) and `--records` artifact records in its history, committed
with `git fast-import` in batches, and another with 100 records. A real `ritmo serve` runs
against each, and `--samples` registrations (which the policy pins in dev), each followed by
its direct promotion dev -> staging (a rule that needs no approval), are timed on the two
servers in turn, so that whatever else the machine does falls on both alike. The ratio of
the medians is printed. Then `ritmo reindex` is timed at the full size, and the peak RSS
(VmHWM) of the gunicorn processes is read from /proc.

    python benchmarks/scale.py [--records 20000] [--apps 500] [--samples 20]

Exit status: 0 when the run completes (targets missed are printed as MISSED), 2 when it cannot.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # noqa: E402
    BRANCH,
    REPO_ROOT,
    BenchError,
    base_env,
    generate_key,
    git,
    mark,
    print_table,
    ritmo_command,
    ritmo_server,
    run,
    workspace,
)

from bot.manifests.records import (  # noqa: E402
    ArtifactSpec,
    artifact_id,
    build_record,
    record_path,
    render_record,
)

SCAFFOLD_APP = REPO_ROOT / "templates" / "scaffold" / "apps" / "web"
ENVIRONMENTS = ("dev", "staging", "production")
SMALL_RECORDS = 100
RECORDS_PER_COMMIT = 100
TARGET_RATIOS = {"register_s": 1.2, "promote_s": 1.5}  # large/small medians (issue 16)
TARGET_REGISTER_MS = 50.0  # one registration at --records, median
TARGET_REINDEX_S = 60.0
TARGET_RSS_MB = 300.0
SERVER_THREADS = 64

# dev pins every new artifact (so it can be promoted from dev); dev -> staging needs no
# approval and does not chain by itself, so the promotion is the API call being timed.
SCALE_POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, requires_approval: false}
  - {from: staging, to: production, requires_approval: false}
apps: {"*": {}}
"""


# -- the generated remote --------------------------------------------------------------------


def app_name(i: int) -> str:
    return f"app-{i:03d}"


def scaffold_for(app: str) -> dict[str, bytes]:
    """templates/scaffold/apps/web with `web` renamed to `app`: base + three overlays."""
    files = {}
    for path in sorted(SCAFFOLD_APP.rglob("*")):
        if path.is_file():
            rel = path.relative_to(SCAFFOLD_APP).as_posix()
            text = path.read_text().replace("acme/web", f"acme/{app}")
            text = text.replace("name: web", f"name: {app}").replace("web-", f"{app}-")
            files[f"apps/{app}/{rel}"] = text.encode()
    return files


def record_bytes(i: int, apps: int, created: datetime) -> tuple[str, bytes]:
    name = app_name(i % apps)
    version = f"1.{i // apps}.{i % 7}"
    spec = ArtifactSpec.model_validate(
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
    record = build_record(spec, {"status": "unsigned"}, created)
    return record_path(name, version), render_record(record)


def make_scale_remote(root: Path, name: str, apps: int, records: int) -> tuple[Path, float]:
    """A bare remote: one commit with the policy and every app's overlays, then the records
    in commits of RECORDS_PER_COMMIT, all through one `git fast-import`, then repacked as a
    maintained remote is; (path, seconds)."""
    started = time.perf_counter()
    bare = root / f"{name}.git"
    git(root, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    chunks: list[bytes] = []
    mark = 0
    when = int(time.time()) - records - 3600
    ident = b"Platform Team <platform@example.com>"

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        chunks.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        return mark

    def commit(message: str, files: dict[str, int], parent: int | None) -> int:
        nonlocal mark, when
        mark += 1
        when += 1
        msg = message.encode()
        head = b"commit refs/heads/%s\nmark :%d\n" % (BRANCH.encode(), mark)
        head += b"author %s %d +0000\ncommitter %s %d +0000\n" % (ident, when, ident, when)
        head += b"data %d\n%s\n" % (len(msg), msg)
        if parent is not None:
            head += b"from :%d\n" % parent
        body = b"".join(b"M 100644 :%d %s\n" % (m, p.encode()) for p, m in files.items())
        chunks.append(head + body + b"\n")
        return mark

    seed = {"README.md": blob(b"Manifests (scale benchmark remote).\n"),
            ".ritmo/policy.yaml": blob(SCALE_POLICY.encode())}  # fmt: skip
    for a in range(apps):
        for path, data in scaffold_for(app_name(a)).items():
            seed[path] = blob(data)
    parent = commit(f"Scaffold {apps} apps x {len(ENVIRONMENTS)} environments", seed, None)
    created = datetime.now(UTC)
    for start in range(0, records, RECORDS_PER_COMMIT):
        batch = {}
        for i in range(start, min(records, start + RECORDS_PER_COMMIT)):
            path, data = record_bytes(i, apps, created)
            batch[path] = blob(data)
        parent = commit(f"Import artifact records {start}..{start + len(batch) - 1}", batch,
                        parent)  # fmt: skip
    stream = b"".join(chunks) + b"done\n"
    proc = subprocess.run(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=bare, env=base_env(), input=stream, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"git fast-import: {proc.stderr.decode(errors='replace')[-500:]}")
    # fast-import deltifies each tree against the version before it, so the tip's trees sit
    # at the far end of long delta chains; its manual says to `git repack -a -d` afterwards.
    # -f recomputes the deltas as a maintained remote has them (newest objects whole).
    # Without it git's connectivity check on every push resolves those chains and the
    # benchmark would time fast-import's pack rather than anything a real remote does.
    git(bare, "repack", "-a", "-d", "-f", "-q")
    return bare, time.perf_counter() - started


# -- the server ------------------------------------------------------------------------------


def server_processes(master: int) -> dict[int, str]:
    """The gunicorn master and its direct children that are Python (the workers), by pid."""
    found = {master: "master"}
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            comm = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
        if comm not in ("git", "gpg", "gpg-agent", "gpgconf", "sh"):
            found[int(child)] = f"worker ({comm})"
    return found


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timings:
    records: int
    start_s: float
    register_s: list[float] = field(default_factory=list)
    promote_s: list[float] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def sample(session: requests.Session, url: str, apps: int, i: int, t: Timings,
           keep: bool) -> None:  # fmt: skip
    """One registration (the policy pins it in dev), then its promotion dev -> staging."""
    name = app_name((i * 37) % apps)
    version = f"9.{i}.0"
    body: dict[str, Any] = {
        "name": name,
        "version": version,
        "build_id": f"scale-{i}",
        "image": f"registry.example.com/acme/{name}:{version}",
        "checksum": "sha256:" + f"{10**9 + i:064x}",
        "metadata": {"branch": "main"},
    }
    started = time.perf_counter()
    resp = session.post(f"{url}/api/v1/artifacts", json=body, timeout=120)
    reg = time.perf_counter() - started
    if resp.status_code != 201:
        t.errors.append(f"register {name} {version}: {resp.status_code} {resp.text[:200]}")
        return
    aid = artifact_id(name, version)
    started = time.perf_counter()
    resp = session.post(
        f"{url}/api/v1/artifacts/{aid}/promote", json={"from": "dev", "to": "staging"},
        timeout=120,
    )  # fmt: skip
    pro = time.perf_counter() - started
    if resp.status_code not in (200, 201):
        t.errors.append(f"promote {aid}: {resp.status_code} {resp.text[:200]}")
        return
    if keep:
        t.register_s.append(reg)
        t.promote_s.append(pro)


@dataclass
class Side:
    """One remote and its server: `small` or `large`."""

    label: str
    records: int
    work: Path
    remote: Path
    gen_s: float
    timings: Timings | None = None
    env: dict[str, str] = field(default_factory=dict)


def measure(
    root: Path, apps: int, sizes: tuple[int, int], samples: int,
    gnupghome: Path, fingerprint: str,
) -> tuple[Side, Side, float, str]:  # fmt: skip
    """Generate both remotes, start a server on each, and time calls on the two in turn
    (small then large, then large then small, ...) so that whatever else the machine does
    falls on both alike. Then `ritmo reindex` on the large one; (small, large, reindex s,
    reindex output)."""
    sides = []
    for label, records in zip(("small", "large"), sizes, strict=True):
        work = root / label
        work.mkdir()
        print(f"  {label}: generating {apps} apps x {len(ENVIRONMENTS)} envs + {records} "
              "records ...", flush=True)  # fmt: skip
        remote, gen_s = make_scale_remote(work, "remote", apps, records)
        sides.append(Side(label, records, work, remote, gen_s))
    scopes = ["artifacts:write", "artifacts:read", "promotions:write"]
    threads = {"RITMO_THREADS": str(SERVER_THREADS)}
    with ExitStack() as stack:
        servers = []
        for side in sides:
            print(f"  {side.label}: starting ritmo serve ...", flush=True)
            url, token, proc, env, up_s = stack.enter_context(
                ritmo_server(side.work, side.remote, gnupghome, fingerprint, scopes, threads)
            )
            side.timings, side.env = Timings(side.records, up_s), env
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            servers.append((side, session, url, proc))
        warmup = 2
        print(f"  {samples} registrations + promotions on each, in turn ...", flush=True)
        for i in range(warmup + samples):
            for side, session, url, _ in servers if i % 2 == 0 else servers[::-1]:
                assert side.timings is not None
                sample(session, url, apps, i, side.timings, keep=i >= warmup)
        for side, _, _, proc in servers:
            assert side.timings is not None
            for pid, role in server_processes(proc.pid).items():
                side.timings.peak_rss_mb[f"{role} {pid}"] = vm_hwm_mb(pid)
    large = sides[1]
    print("  ritmo reindex (large) ...", flush=True)
    started = time.perf_counter()
    done = run([*ritmo_command(), "reindex"], cwd=large.work, env=large.env, timeout=900)
    reindex_s = time.perf_counter() - started
    return sides[0], large, reindex_s, " / ".join(done.stdout.strip().splitlines())


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000, help="records in history (20000)")
    parser.add_argument("--apps", type=int, default=500, help="apps, 3 environments each (500)")
    parser.add_argument("--samples", type=int, default=20, help="timed calls of each kind (20)")
    args = parser.parse_args(argv)
    if args.records < 1 or args.apps < 1 or args.samples < 1:
        parser.error("--records, --apps and --samples must be >= 1")

    try:
        with workspace("ritmo-scale-") as (root, gnupghome):
            print(f"setting up in {root}: ed25519 key", flush=True)
            fingerprint = generate_key(gnupghome)
            small_n = min(SMALL_RECORDS, args.records)
            small_side, large_side, reindex_s, reindex_out = measure(
                root, args.apps, (small_n, args.records), args.samples, gnupghome, fingerprint
            )
            assert small_side.timings is not None and large_side.timings is not None
            small, large = small_side.timings, large_side.timings
            report(args, small, large, large_side.gen_s, reindex_s, reindex_out)
            return 0
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    args: argparse.Namespace, small: Timings, large: Timings, gen_s: float,
    reindex_s: float | None, reindex_out: str,
) -> None:  # fmt: skip
    rows: list[tuple[str, str, str]] = [
        ("apps x environments", f"{args.apps} x {len(ENVIRONMENTS)}", ""),
        ("records (small / large)", f"{small.records} / {large.records}", ""),
        ("large remote generated in", f"{gen_s:.1f} s", "(git fast-import)"),
        ("server ready (small / large)", f"{small.start_s:.1f} s / {large.start_s:.1f} s", ""),
    ]
    for label, attr in (("registration", "register_s"), ("promotion dev->staging", "promote_s")):
        s, big = getattr(small, attr), getattr(large, attr)
        ms, ml = median(s), median(big)
        ratio = ml / ms if s and big else float("nan")
        rows.append((f"{label} median (small)", f"{ms * 1000:.1f} ms", f"n={len(s)}"))
        note = f"n={len(big)}"
        if attr == "register_s":
            note += f", target < {TARGET_REGISTER_MS:g} ms: {mark(ml * 1000 < TARGET_REGISTER_MS)}"
        rows.append((f"{label} median (large)", f"{ml * 1000:.1f} ms", note))
        if big:
            rows.append((f"{label} max (large)", f"{max(big) * 1000:.1f} ms", ""))
        target = TARGET_RATIOS[attr]
        rows.append((f"{label} ratio large/small", f"{ratio:.2f}x",
                     f"target <= {target:g}x: {mark(ratio <= target)}"))  # fmt: skip
    if reindex_s is not None:
        rows.append(
            (
                f"ritmo reindex at {large.records}",
                f"{reindex_s:.1f} s",
                f"target < {TARGET_REINDEX_S:g} s: {mark(reindex_s < TARGET_REINDEX_S)}",
            )
        )
    peak = max(large.peak_rss_mb.values(), default=0.0)
    for who, mb in sorted(large.peak_rss_mb.items()):
        rows.append((f"VmHWM {who}", f"{mb:.1f} MB", ""))
    rows.append(
        (
            "server peak RSS (large)",
            f"{peak:.1f} MB",
            f"target < {TARGET_RSS_MB:g} MB: {mark(0 < peak < TARGET_RSS_MB)}",
        )
    )
    print_table("Ritmo scale benchmark", rows)
    if reindex_out:
        print(f"reindex said: {reindex_out}")
    for error in (small.errors + large.errors)[:5]:
        print(f"request error: {error}")


if __name__ == "__main__":
    sys.exit(main())
