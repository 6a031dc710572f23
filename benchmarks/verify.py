"""Verify benchmark: commit signatures and `ritmo verify` over 20,000 Ritmo-signed commits.

The history: one commit with the policy and `--apps` apps' overlays, then `--commits`
registrations, each its own commit adding one artifact record with Ritmo's trailers and
a real signature by a generated key through Ritmo's own signer (gpg-agent's socket).
Trees and commits are built in memory and stored as one pack. The history (bare remote,
its key's GnuPG home, the public key) is kept under `--cache` and reused by later runs;
100 more commits are kept on a second branch for the incremental run.

Timed, each checked against gpg:
- signing the history (first run only): signatures a second;
- the signatures alone: `signed_log` (in-process) over the whole history, and `git log
  %G?` (one gpg per commit) over `--gpg-sample` commits, scaled to the whole (ratio);
- `ritmo verify --repo` over the whole history (target < 15 s);
- `ritmo verify --repo` again after 100 new commits (target < 2 s);
- `GET /api/v1/audit` on a real `ritmo serve` of the same history: the first call, then
  `--requests` more (p50, p99; target p99 < 300 ms), then the first after a registration.
`git verify-commit` checks a sample of the signed commits, and the two signature checks
must give the same verdict on the sample.

    python benchmarks/verify.py [--commits 20000] [--apps 100] [--cache DIR]

Exit status: 0 when the run completes (targets missed are printed as MISSED), 2 when it cannot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # noqa: E402
from ingest import (  # noqa: E402
    BRANCH,
    BenchError,
    base_env,
    generate_key,
    git,
    kill_gpg_agent,
    mark,
    percentile,
    print_table,
    ritmo_command,
    ritmo_server,
)
from scale import SCALE_POLICY, app_name, record_bytes, scaffold_for  # noqa: E402

from bot.manifests.agent import AgentSigner  # noqa: E402
from bot.manifests.mirror import Mirror  # noqa: E402
from bot.manifests.objects import Identity, commit_payload, with_signature, write_tree  # noqa: E402
from bot.manifests.packs import pack  # noqa: E402
from bot.manifests.records import artifact_id  # noqa: E402
from bot.manifests.signed_log import _by_gpg, signed_log  # noqa: E402
from bot.manifests.signing import CommitSigner, PipelinedSigner, open_gnupg  # noqa: E402

TARGET_FULL_S = 15.0
TARGET_INCREMENTAL_S = 2.0
TARGET_AUDIT_P99_MS = 300.0
MORE = 100
MORE_BRANCH = "more"
RITMO = Identity("Ritmo", "ritmo@example.com")


class MemoryStore:
    """The ObjectStore write_tree needs, in memory: sha -> (kind, data)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, bytes]] = {}

    def read(self, sha: str) -> tuple[str, bytes]:
        return self.objects[sha]

    def write(self, kind: str, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha1(b"%s %d\0%s" % (kind.encode(), len(data), data)).hexdigest()
        self.objects[sha] = (kind, data)
        return sha


def build_history(root: Path, commits: int, apps: int) -> tuple[float, int]:
    """The bare remote, key and public key under `root`; (seconds signing, signatures)."""
    bare = root / "remote.git"
    home = root / "gnupg"
    fingerprint = generate_key(home)
    (root / "ritmo.asc").write_text(open_gnupg(home).export_keys(fingerprint))
    git(root, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(bare))
    signer = CommitSigner(open_gnupg(home), fingerprint)
    chain = AgentSigner(signer, fallback=PipelinedSigner(signer))
    store = MemoryStore()
    seed = {"README.md": b"Manifests (verify benchmark remote).\n",
            ".ritmo/policy.yaml": SCALE_POLICY.encode()}  # fmt: skip
    for a in range(apps):
        seed.update(scaffold_for(app_name(a)))
    when = int(time.time()) - commits - MORE - 3600
    tree = write_tree(store, None, seed)
    payload = commit_payload(tree, [], RITMO, RITMO, when, "Scaffold the manifests\n")
    tip = store.write("commit", with_signature(payload, chain.sign(payload)))
    created = datetime.now(UTC)
    signing = 0.0
    main_tip = tip
    for i in range(commits + MORE):
        path, data = record_bytes(i, apps, created)
        name = app_name(i % apps)
        version = path.rsplit("/", 1)[1].removesuffix(".yaml")
        tree = write_tree(store, tree, {path: data})
        message = (
            f"Register {name} {version}\n\nRitmo-Artifact: {artifact_id(name, version)}\n"
            f"Ritmo-Build: build-{i}\nRitmo-Registered-By: ci\nRitmo-Correlation-Id: bench-{i}\n"
        )
        payload = commit_payload(tree, [tip], RITMO, RITMO, when + i + 1, message)
        started = time.perf_counter()
        signature = chain.sign(payload)
        signing += time.perf_counter() - started
        tip = store.write("commit", with_signature(payload, signature))
        if i == commits - 1:
            main_tip = tip
    if not chain.via_agent:
        print("note: gpg-agent unavailable; the history was signed through python-gnupg")
    chain.close()
    proc = subprocess.run(["git", "index-pack", "--stdin"], cwd=bare, env=base_env(),
                          input=pack(list(store.objects.values())), capture_output=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"git index-pack: {proc.stderr.decode(errors='replace')[-300:]}")
    git(bare, "update-ref", f"refs/heads/{BRANCH}", main_tip)
    git(bare, "update-ref", f"refs/heads/{MORE_BRANCH}", tip)
    git(bare, "repack", "-a", "-d", "-q")
    kill_gpg_agent(home)
    return signing, commits + MORE + 1


def cached_history(cache: Path, commits: int, apps: int) -> tuple[Path, str]:
    root = cache / f"verify-{commits}-{apps}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        started = time.perf_counter()
        signing, count = build_history(root, commits, apps)
        took = time.perf_counter() - started
        print(f"built {count} signed commits in {took:.1f} s "
              f"(signing {signing:.1f} s: {count / signing:.0f} signatures/s)")  # fmt: skip
        (root / "done").write_text(f"{took:.1f}\n")
    else:
        print(f"reusing the history in {root}")
    home = root / "gnupg"
    fingerprint = CommitSigner(open_gnupg(home), _only_key(home)).fingerprint
    return root, fingerprint


def _only_key(home: Path) -> str:
    return str(open_gnupg(home).list_keys(secret=True)[0]["fingerprint"])


def timed_verify(root: Path, bare: Path, data_dir: Path, cache: Path) -> tuple[float, str]:
    """`ritmo verify --repo` with its own user cache (`cache`: XDG_CACHE_HOME), so the first
    run starts from nothing kept by earlier benchmarks."""
    env = {**base_env(), "RITMO_DATA_DIR": str(data_dir), "XDG_CACHE_HOME": str(cache)}
    started = time.perf_counter()
    proc = subprocess.run(
        [*ritmo_command(), "verify", "--repo", str(bare), "--trusted-key", str(root / "ritmo.asc")],
        env=env, capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"ritmo verify: exit {proc.returncode}: {proc.stderr[-500:]}")
    return took, proc.stderr.strip().splitlines()[-1]


@dataclass
class AuditTimes:
    first: float
    warm: list[float]
    after: float


def timed_audit(work: Path, bare: Path, home: Path, fingerprint: str, count: int) -> AuditTimes:
    """GET /api/v1/audit on `ritmo serve` of `bare`: first, `count` more, one after a
    registration (which must show as the newest event)."""
    # It indexes the whole history before it answers: on a busy machine, minutes.
    ingest.START_TIMEOUT_S = max(ingest.START_TIMEOUT_S, 900.0)
    server = ritmo_server(work / "serve", bare, home, fingerprint)
    (work / "serve").mkdir()
    with server as (url, token, _, _, _), requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"

        def get() -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            resp = session.get(f"{url}/api/v1/audit", timeout=600)
            took = time.perf_counter() - started
            if resp.status_code != 200:
                raise BenchError(f"GET /api/v1/audit: {resp.status_code} {resp.text[:300]}")
            return took, resp.json()

        first, _ = get()
        warm = sorted(get()[0] for _ in range(count))
        body = {"build_id": "audit-bench", "name": app_name(0), "version": "9.9.9",
                "storage_url": "s3://artifacts/audit-bench.tar.gz",
                "checksum": "sha256:" + "a" * 64}  # fmt: skip
        made = session.post(f"{url}/api/v1/artifacts", json=body, timeout=600)
        if made.status_code != 201:
            raise BenchError(f"registration: {made.status_code} {made.text[:300]}")
        after, page = get()
        if page["items"][0]["version"] != "9.9.9":
            raise BenchError("the audit log does not show the registration first")
    return AuditTimes(first, sorted(warm), after)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=20_000)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--gpg-sample", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ritmo-bench")
    args = parser.parse_args(argv)
    try:
        root, fingerprint = cached_history(args.cache, args.commits, args.apps)
        work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ritmo-verify-bench-{os.getpid()}"
        work.mkdir()
        try:
            return run(args, root, fingerprint, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except BenchError as exc:
        print(f"verify benchmark: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, root: Path, fingerprint: str, work: Path) -> int:
    home = root / "gnupg"
    # A copy whose main can move: the cached remote stays as it was built.
    bare = work / "remote.git"
    git(work, "clone", "--quiet", "--bare", "--local", str(root / "remote.git"), str(bare))
    mirror = Mirror(work / "mirrors", str(bare), BRANCH)
    tip = mirror.fetch()
    if tip is None:
        raise BenchError(f"{bare} has no branch {BRANCH}")
    started = time.perf_counter()
    whole = signed_log(mirror, home, "--first-parent", tip)
    in_process = time.perf_counter() - started
    sample = [c.sha for c in whole[: args.gpg_sample]]
    started = time.perf_counter()
    by_gpg = _by_gpg(mirror, home, "--no-walk=unsorted", *sample)
    gpg_each = (time.perf_counter() - started) / max(1, len(sample))
    ours = {c.sha: c.status for c in whole}
    same = all(ours[c.sha] == c.status for c in by_gpg)
    good = sum(status in "GU" for status in ours.values())
    checked = 0
    for commit in whole[:: max(1, len(whole) // 20)]:  # git verify-commit on 20 of them
        subprocess.run(["git", "verify-commit", commit.sha], cwd=bare, check=True,
                       capture_output=True, env={**base_env(), "GNUPGHOME": str(home)})  # fmt: skip
        checked += 1
    mirror.close()

    full, full_line = timed_verify(root, bare, work / "data-full", work / "xdg-cache")
    git(bare, "update-ref", f"refs/heads/{BRANCH}", f"refs/heads/{MORE_BRANCH}")
    # The same user cache: the second run goes on from the walk the first one kept.
    again, again_line = timed_verify(root, bare, work / "data-full", work / "xdg-cache")

    count = len(whole)
    print_table(
        f"ritmo verify at {count} commits ({args.apps} apps), {datetime.now(UTC):%Y-%m-%d}",
        [
            ("signatures in-process (signed_log)", f"{in_process:.2f} s "
             f"({count / in_process:.0f}/s)", ""),
            ("signatures by gpg (git log %G?)", f"{gpg_each * 1000:.2f} ms each, "
             f"~{gpg_each * count:.0f} s for all", f"{gpg_each * count / in_process:.0f}x"),
            ("verdicts agree with gpg on the sample", f"{len(by_gpg)} commits",
             mark(same and good == count)),
            ("git verify-commit on a sample", f"{checked} commits", mark(True)),
            ("ritmo verify, full", f"{full:.1f} s", mark(full < TARGET_FULL_S)),
            (f"ritmo verify after {MORE} more commits", f"{again:.1f} s",
             mark(again < TARGET_INCREMENTAL_S)),
        ],
    )  # fmt: skip
    print(f"full run: {full_line}\nsecond run: {again_line}", flush=True)
    if not same:
        raise BenchError("in-process verdicts differ from gpg's on the sample")
    audit = timed_audit(work, bare, home, fingerprint, args.requests)
    p50_ms, p99_ms = (percentile(audit.warm, p) * 1000 for p in (50, 99))
    print_table(
        f"GET /api/v1/audit on ritmo serve at {count + MORE} commits",
        [
            ("first call", f"{audit.first * 1000:.0f} ms", ""),
            (f"{len(audit.warm)} more: p50 / p99", f"{p50_ms:.1f} / {p99_ms:.1f} ms",
             mark(p99_ms < TARGET_AUDIT_P99_MS)),
            ("the first after a registration", f"{audit.after * 1000:.0f} ms", ""),
        ],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
