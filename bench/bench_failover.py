"""Failover time of daemon replicas on one PostgreSQL store, against the 10 s target.

    python bench/bench_failover.py [--trials 10] [--replicas 3] [--assets 1000]
                                   [--url URL] [--json]

Without --url it starts a throw-away PostgreSQL server (tests/postgres_support.py)
with fsync on. A git repository holds the bundled manifests plus one Fleet of
--assets assets. --replicas real daemons (`python -m fleetward daemon --store URL
--source REPO --state-dir STATE-n --listen 127.0.0.1:0 --interval 600s`) run on
the database; once one leads and has applied the repository, each trial:

1. SIGKILLs the leader's process group (the clock starts just before the signal);
2. *leads*: polls the survivors' `/readyz` every 10 ms until one says
   `"role": "leader"`;
3. *reconciled*: polls the operation log (the database) every 10 ms until the
   run the new leader asks for on taking the lead (trigger `leader`) has ended
   SUCCESS;
4. starts a new replica in the killed one's place and waits until it stands by,
   so every trial starts from --replicas processes.

The median (and the slowest) of both times, over --trials, is printed next to the
target (`ok` or `MISS`), with the bound the README documents for a vanished host
(`store.pg_leader.FAILOVER_BOUND`: TCP keepalives, then a standby's next attempt),
which a SIGKILL does not need: the server ends a killed process's session at once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from daemon_support import DaemonProcess, Daemons, GitRepo, Workspace
from support import isolated_env

from fleetward.store.pg_leader import FAILOVER_BOUND
from fleetward.store.postgres import PostgresStore

TARGET_SECONDS = 10.0
POLL = 0.01
WAIT = 120.0
T = TypeVar("T")


def poll(check: Callable[[], T | None], what: str) -> T:
    """`check()` every POLL seconds until it answers; AssertionError after WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(POLL)
    raise AssertionError(f"timed out after {WAIT:g} s waiting for {what}")


def workspace(root: Path, assets: int) -> tuple[Workspace, GitRepo]:
    """A throw-away HOME and a repository of the bundled manifests and a Fleet of `assets`."""
    home = root / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    env = {k: v for k, v in isolated_env(home).items() if not k.lower().endswith("_proxy")}
    ws = Workspace(root, env)
    repo, _ = ws.repo()
    lines = ["apiVersion: fleetward/v1", "kind: Fleet", "metadata:", "  name: bench", "spec:"]
    lines.append("  assets:")
    for n in range(assets):
        lines += [
            f"    - externalAssetId: BENCH-{n}",
            f"      name: Bench {n}",
            "      type: truck",
            "      attributes: {make: Volvo, model: FH16}",
        ]
    if assets:
        repo.commit("a bench fleet", {"manifests/bench.yaml": "\n".join(lines) + "\n"})
    return ws, repo


def role(daemon: DaemonProcess) -> str | None:
    if daemon.proc.poll() is not None:
        return None
    try:
        found: str = daemon.get("/readyz").json()["role"]
    except (OSError, ValueError, KeyError):
        return None
    return found


def leader_of(replicas: list[DaemonProcess]) -> DaemonProcess | None:
    """The one replica that says it leads, once all the others stand by."""
    roles = [role(d) for d in replicas]
    if roles.count("leader") != 1 or roles.count("standby") != len(replicas) - 1:
        return None
    return replicas[roles.index("leader")]


def reconciled_since(store: PostgresStore, before: set[str]) -> bool:
    """A run the new leader asked for on taking the lead has ended SUCCESS."""
    return any(
        op.operation_id not in before
        and "leader" in op.trigger.split(",")
        and op.state.name == "SUCCESS"
        for op in store.operations.all()
    )


class Replicas:
    """--replicas daemons on one database; a killed one is replaced by a new process."""

    def __init__(self, ws: Workspace, repo: GitRepo, url: str, count: int) -> None:
        self.ws, self.repo, self.url = ws, repo, url
        self.daemons = Daemons(ws)
        self.numbers = iter(range(1_000_000))
        self.live = [self.start() for _ in range(count)]
        for daemon in self.live:
            daemon.wait_started(timeout=WAIT)

    def start(self) -> DaemonProcess:
        n = next(self.numbers)
        return self.daemons.start(
            self.repo.root,
            self.ws.path(f"state-{n}"),
            "--store",
            self.url,
            interval="600s",
            wait=False,
        )

    def replace(self, killed: DaemonProcess) -> None:
        fresh = self.start()
        fresh.wait_started(timeout=WAIT)
        self.live = [fresh if d is killed else d for d in self.live]

    def stop(self) -> None:
        self.daemons.kill_all()


def trial(replicas: Replicas, store: PostgresStore) -> dict[str, float]:
    """Kill the leader; seconds until a survivor leads, and until it has reconciled."""
    leader = poll(lambda: leader_of(replicas.live), "one leader")
    survivors = [d for d in replicas.live if d is not leader]
    before = {op.operation_id for op in store.operations.all()}
    start = time.monotonic()
    leader.kill()
    poll(lambda: leader_of(survivors), "a survivor to lead")
    leads = time.monotonic() - start
    poll(lambda: reconciled_since(store, before), "the new leader's reconcile")
    reconciled = time.monotonic() - start
    replicas.replace(leader)
    poll(lambda: leader_of(replicas.live), "the new replica to stand by")
    return {"leads": leads, "reconciled": reconciled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: start a server)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.replicas < 2:
        parser.error("--replicas must be at least 2: a standby takes over")

    url = args.url
    if url is None:
        import postgres_support

        server = postgres_support.start_server(durable=True)
        url = server.url(server.new_database("failover"))
    root = Path(tempfile.mkdtemp(prefix="fleetward-bench-failover-"))
    ws, repo = workspace(root, args.assets)
    store = PostgresStore(url)
    replicas = Replicas(ws, repo, url, args.replicas)
    try:
        poll(lambda: store.meta().last_applied_revision == repo.head(), "the first apply")
        trials = [trial(replicas, store) for _ in range(args.trials)]
    finally:
        replicas.stop()
        shutil.rmtree(root, ignore_errors=True)
    return report(args, trials)


def report(args: argparse.Namespace, trials: list[dict[str, float]]) -> int:
    figures: dict[str, Any] = {
        "trials": len(trials),
        "replicas": args.replicas,
        "assets": args.assets,
        "target": TARGET_SECONDS,
        "bound": FAILOVER_BOUND,
    }
    for what in ("leads", "reconciled"):
        seconds = [t[what] for t in trials]
        figures[what] = {"median": statistics.median(seconds), "max": max(seconds)}
    if args.json:
        print(json.dumps({**figures, "runs": trials}, indent=2))
        return 0
    print(
        f"{len(trials)} trials, {args.replicas} replicas, SIGKILL of the leader "
        f"(documented bound for a vanished host: {FAILOVER_BOUND:g} s)"
    )
    for what, label in (("leads", "a standby leads"), ("reconciled", "…and has reconciled")):
        median, slowest = figures[what]["median"], figures[what]["max"]
        met = "ok" if median <= TARGET_SECONDS else "MISS"
        print(
            f"  {label:<22} median {median:6.2f} s  max {slowest:6.2f} s  "
            f"target ≤ {TARGET_SECONDS:g} s  {met}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
