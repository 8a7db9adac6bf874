"""Daemon benchmarks against the targets in bench/README.md: measured value, target and ratio.

    python bench/bench_daemon.py [--workdir DIR] [--sizes 1000,100000] [--json] [--quick]
                                 [--commits 20] [--soak 1000] [--warm-n 100000]
                                 [--only latency,warm,soak] [--policies]

Three measurements, each against the real code (bench/generate.py repositories,
one commit, Fleets of 1,000 assets per file):

1. commit → applied latency — per N in --sizes: the real daemon runs as a
   subprocess (`python -m fleetward daemon --source REPO --state-dir STATE
   --listen 127.0.0.1:0 --interval 600s --log-format json`) on a copy of the
   generated repository. Once it has applied the first revision, each of
   --commits one-file commits (one attribute of one asset in one fleet file
   gets a new value; `git commit -qam`) is timed from the moment `git commit`
   returns (the ref has moved) until `STATE/status/summary.json` shows
   `applied.revision` == the new HEAD (polled every 5 ms: stat, then read when
   the file changed). Between commits the daemon is left to go quiet, so every
   commit starts from an idle daemon. Median and p90 against 0.5 s (N = 1,000)
   and 3 s (N = 100,000). Per commit it also records the daemon's phase times
   (deltas of `fleetward_reconcile_duration_seconds` from /metrics), how many
   runs the commit caused, and a split of the latency from file times:
   commit → run starts (operations.json first rewritten: RESOLVING recorded),
   run (the daemon's own duration), after the run (last operations.json write
   → plan.txt: health, metrics, operation counts), status files (plan.txt →
   summary.json), detection (summary.json written → seen here).
2. warm re-plan vs cold plan at --warm-n (default 100,000, the largest size) —
   in fresh child processes: `seed` applies variant 1 to an empty state
   directory; then `warm` builds the daemon's own `Daemon` object (its
   `Reconciler` with `RunSettings` and `OperationLog`, status writer, health,
   metrics; no threads) and runs `Daemon._reconcile`: the first run is the
   cold plan (fresh process, store already holding variant 1: a no-op plan);
   after `edit_to_v2(..., git=True)` (a one-file commit) the same long-lived
   objects run again: the warm re-plan. Ratio = warm / cold of
   fetch + load + desire + plan; target ≤ 5 %. Every phase is printed for
   both, plus the time the daemon spends after the run (status files, health,
   operation log). Further one-file commits give more warm samples, and one
   more runs under cProfile: the top 15 functions by cumulative (and by own)
   time are printed and the raw stats kept in the workdir.
3. soak — the daemon on N = 1,000 with `--webhook-secret`, driven through
   --soak reconciles by signed webhooks (`X-Hub-Signature-256: sha256=<HMAC of
   the body>` to POST /v0/webhook); each waits until summary.json's
   lastOperation is the 202's operation_id in a final state; a one-file commit
   precedes every 10th webhook. RSS (/proc/PID/status VmRSS) after the warm-up
   (a tenth of the reconciles) and at the end, child processes, open fds and
   threads at the end, and idle CPU over 10 s afterwards (/proc/PID/stat).
   Webhook → final times are reported per tenth of the soak (the operation
   log fills up to its 1,000-entry cap meanwhile), and after the soak up to 10
   one-file commits are timed commit → applied as in part 1, with the log full.

`--policies`: before the first run, latency and warm commit one more file,
`manifests/bench-policies.yaml`, with two SyncPolicies (see POLICIES_YAML):
`bench-window` selects the even-numbered fleets by name glob with an
always-open WINDOW (`cron: "0 * * * *"`, `duration: 1h`: every hour's window
ends as the next opens; --policy-cron changes the cron) and `bench-auto` the
fleets labelled tier production or staging with `approval: auto`,
`maxStopFraction: 0.5` (the even ones among them stay with bench-window, the
stricter); the rest is ungoverned. Both edited files (the v2 file fleet-0000 and
the Editor's middle file) are even, so every measured change is governed by the
window policy, and every stored object is counted per policy by the plan's
guards. Changes still apply at once, so figures compare with a run without
--policies; each sample records which policy governed its changes and how many
were held (expected 0). Work directories get a `-policies` suffix.

`--quick`: N = 1,000 only, 5 commits, warm re-plan at N = 1,000, 100 soak
reconciles — a smoke check in under a minute. `--workdir` keeps (and reuses)
the generated base repositories; every measurement works on a fresh copy.
Times come from `time.perf_counter` (durations) and `time.time` (to compare
with file mtimes).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate as gen

TARGET_LATENCY = {1_000: 0.5, 100_000: 3.0}  # median commit → applied, seconds
TARGET_WARM_RATIO = 0.05
TARGET_RSS_GROWTH_MB = 5.0  # "no growth": tolerance for allocator noise
TARGET_IDLE_CPU_PCT = 1.0  # "~0 %" of one core
WARM_PHASES = ("fetch", "load", "desire", "plan")
ALL_PHASES = ("fetch", "load", "desire", "plan", "apply")
POLL_S = 0.005
SOAK_SECRET = "s"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- repositories ------------------------------------------------------------------------


def base_repo(workdir: Path, n: int, seed: int) -> Path:
    """A generated git repository for N, reused from `workdir` if the generator has not changed."""
    return gen.cached(workdir, n, seed, _log)


def _workspace(
    workdir: Path, name: str, n: int, seed: int, policy_cron: str | None
) -> tuple[Path, Path, Path, dict[str, Any] | None]:
    """A clean `workdir/name[-policies]` with a private copy of the base repository for N
    (and the SyncPolicies committed into it): (root, repo, state dir, policies)."""
    root = workdir / (name + ("-policies" if policy_cron else ""))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    repo = fresh_copy(base_repo(workdir, n, seed), root / "repo")
    pol = add_policies(repo, policy_cron) if policy_cron else None
    return root, repo, root / "state", pol


def fresh_copy(base: Path, dest: Path) -> Path:
    """A private copy of a base repository (measurements commit into it)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, symlinks=True)
    return dest


def head(repo: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


_MAKE = re.compile(r"(make: )([^,}\n]+)")


class Editor:
    """One-file commits: one attribute (`make`) of the first asset of one fleet file gets a
    new value each time (a new blob every commit, as a real edit would be)."""

    def __init__(self, repo: Path, n: int) -> None:
        self.repo = repo
        self.path = gen.file_path(repo, gen.file_count(n) // 2)  # a file in the middle
        self.count = 0
        found = _MAKE.search(self.path.read_text(encoding="utf-8"))
        assert found is not None, f"no 'make:' attribute in {self.path}"
        self.base = found.group(2).strip()

    def edit(self) -> None:
        self.count += 1
        text = self.path.read_text(encoding="utf-8")
        text = _MAKE.sub(lambda m: f"{m.group(1)}{self.base} r{self.count}", text, count=1)
        self.path.write_text(text, encoding="utf-8")

    def commit(self) -> None:
        gen._git(self.repo, "commit", "-q", "-am", f"bench edit {self.count}")


# -- SyncPolicies (--policies) ----------------------------------------------------------------

POLICY_FILE = "bench-policies.yaml"
# "0 * * * *" with 1h: always open, one window per hour. Not "* * * * *" (overlapping
# windows): their opensAt moves every minute, so the daemon's hold_overruns holds any
# write whose expected end crosses a minute boundary, as if its window were closing.
DEFAULT_POLICY_CRON = "0 * * * *"
POLICIES_YAML = """\
# fleetward bench: SyncPolicies exercising governance at scale (bench_daemon.py --policies).
apiVersion: fleetward/v1
kind: SyncPolicy
metadata:
  name: bench-window
spec:
  selector:
    kinds: [Fleet]
    names: ["fleet-*[02468]"]        # the even-numbered fleets: half of them
  schedule: {{type: WINDOW, cron: "{cron}", duration: 1h}}   # always open
  approval: auto
---
apiVersion: fleetward/v1
kind: SyncPolicy
metadata:
  name: bench-auto
spec:
  selector:
    kinds: [Fleet]
    matchExpressions:
      - {{key: tier, operator: In, values: [production, staging]}}
  schedule: {{type: IMMEDIATE}}
  approval: auto
  maxStopFraction: 0.5
"""
_TIER = re.compile(r"^  labels: \{.*\btier: (\w+)", re.MULTILINE)


def add_policies(repo: Path, cron: str) -> dict[str, Any]:
    """Commit POLICIES_YAML into a repository copy; which fleets each policy governs."""
    (repo / gen.MANIFEST_DIR / POLICY_FILE).write_text(
        POLICIES_YAML.format(cron=cron), encoding="utf-8"
    )
    gen._git(repo, "add", f"{gen.MANIFEST_DIR}/{POLICY_FILE}")
    gen._git(repo, "commit", "-q", "-m", "bench: SyncPolicies")
    fleets: dict[str, int] = {"bench-window": 0, "bench-auto": 0, "(none)": 0}
    for path in sorted((repo / gen.MANIFEST_DIR).glob("fleet-*.yaml")):
        with path.open(encoding="utf-8") as fh:
            head_text = "".join(fh.readline() for _ in range(6))
        tier = _TIER.search(head_text)
        if int(path.stem.rsplit("-", 1)[1]) % 2 == 0:
            fleets["bench-window"] += 1  # stricter (WINDOW) than bench-auto where both select
        elif tier is not None and tier.group(1) in ("production", "staging"):
            fleets["bench-auto"] += 1
        else:
            fleets["(none)"] += 1
    return {"file": f"{gen.MANIFEST_DIR}/{POLICY_FILE}", "cron": cron, "fleets": fleets}


def _policy_line(pol: dict[str, Any] | None) -> str | None:
    if not pol:
        return None
    f = pol["fleets"]
    return (
        f'      with SyncPolicies ({pol["file"]}): bench-window (WINDOW "{pol["cron"]}" 1h, '
        f"always open) governs {f['bench-window']} fleet(s), bench-auto (auto, "
        f"maxStopFraction 0.5) {f['bench-auto']}, ungoverned {f['(none)']}"
    )


# -- the daemon as a subprocess -------------------------------------------------------------


class DaemonProc:
    def __init__(self, repo: Path, state: Path, log_path: Path, *extra: str) -> None:
        self.repo = repo
        self.state = state
        self.summary_path = state / "status" / "summary.json"
        self.log_path = log_path
        self._log_fh = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetward",
                "daemon",
                "--source",
                str(repo),
                "--state-dir",
                str(state),
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "600s",
                "--log-format",
                "json",
                *extra,
            ],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        self.url: str | None = None
        self._seen: tuple[int, int] | None = None
        self.summary: dict[str, Any] | None = None
        self.summary_id: tuple[int, int] | None = None

    # summary.json, read only when it changed (it is replaced atomically: a new inode)
    def poll_summary(self) -> dict[str, Any] | None:
        try:
            st = os.stat(self.summary_path)
        except FileNotFoundError:
            return None
        ident = (st.st_ino, st.st_mtime_ns)
        if ident != self._seen:
            try:
                self.summary = json.loads(self.summary_path.read_bytes())
            except (OSError, ValueError):
                return self.summary  # replaced between stat and read: next poll
            self._seen = ident
            self.summary_id = ident
        return self.summary

    def wait_applied(
        self, sha: str, timeout: float, ops_mtimes: list[float] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """Poll until summary.json's applied.revision == sha; (perf_counter when seen, summary).

        With `ops_mtimes`, every new mtime of operations.json seen meanwhile is appended
        (it is rewritten when a run starts, before its write, and when it ends)."""
        deadline = time.perf_counter() + timeout
        ops_path = self.state / "operations.json"
        while True:
            if ops_mtimes is not None:
                try:
                    m = os.stat(ops_path).st_mtime
                    if not ops_mtimes or m != ops_mtimes[-1]:
                        ops_mtimes.append(m)
                except OSError:
                    pass
            s = self.poll_summary()
            now = time.perf_counter()
            if s is not None and (s.get("applied") or {}).get("revision") == sha:
                return now, s
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode}; see {self.log_path}"
                )
            if now > deadline:
                last = (s or {}).get("lastOperation")
                raise TimeoutError(f"revision {sha[:7]} not applied after {timeout:.0f} s: {last}")
            time.sleep(POLL_S)

    def wait_operation(self, op_id: str, timeout: float) -> tuple[float, dict[str, Any]]:
        deadline = time.perf_counter() + timeout
        while True:
            s = self.poll_summary()
            now = time.perf_counter()
            last = (s or {}).get("lastOperation") or {}
            if last.get("id") == op_id and last.get("state") in (
                "SUCCESS",
                "FAILURE",
                "CANCELLED",
                "TIMEOUT",
            ):
                return now, s  # type: ignore[return-value]
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode}; see {self.log_path}"
                )
            if now > deadline:
                raise TimeoutError(f"operation {op_id} not final after {timeout:.0f} s: {last}")
            time.sleep(POLL_S)

    def settle(self, quiet: float, timeout: float = 120.0) -> None:
        """Wait until summary.json has not changed for `quiet` seconds (no run in flight)."""
        deadline = time.perf_counter() + timeout
        self.poll_summary()
        last_id, since = self.summary_id, time.perf_counter()
        while time.perf_counter() < deadline:
            time.sleep(0.02)
            self.poll_summary()
            if self.summary_id != last_id:
                last_id, since = self.summary_id, time.perf_counter()
            elif time.perf_counter() - since >= quiet:
                return

    def find_url(self) -> str:
        s = self.poll_summary()
        url = ((s or {}).get("daemon") or {}).get("listen")
        if not url:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"fleetward daemon started"' in line:
                    url = json.loads(line).get("listen")
        if not url:
            raise RuntimeError("cannot find the daemon's HTTP address")
        self.url = url
        return url

    def metrics(self) -> dict[str, float]:
        """Phase sums and counts of the reconcile-duration histogram."""
        assert self.url is not None
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(
                r'fleetward_reconcile_duration_seconds_(sum|count)\{phase="(\w+)"\} (\S+)', line
            )
            if m:
                out[f"{m.group(2)}_{m.group(1)}"] = float(m.group(3))
        return out

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return self.proc.returncode

    def log_runs(self) -> list[dict[str, Any]]:
        runs = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if str(rec.get("message", "")).startswith("reconcile"):
                runs.append(rec)
        return runs


# /proc readings


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def proc_children(pid: int) -> list[str]:
    """Direct children (every thread's), as 'pid:comm:state'."""
    kids: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ids = (task / "children").read_text().split()
        except OSError:
            continue
        for child in ids:
            try:
                stat = Path(f"/proc/{child}/stat").read_text()
                comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                state = stat.rsplit(")", 1)[1].split()[0]
            except OSError:
                comm, state = "?", "?"
            kids.append(f"{child}:{comm}:{state}")
    return kids


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# -- 1. commit → applied latency ----------------------------------------------------------


def bench_latency(
    n: int, seed: int, workdir: Path, commits: int, policy_cron: str | None = None
) -> dict[str, Any]:
    root, repo, state, pol = _workspace(workdir, f"latency-{n}", n, seed, policy_cron)
    editor = Editor(repo, n)
    first = head(repo)
    _log(f"  N={n:,}: starting the daemon; waiting for the first apply")
    t0 = time.perf_counter()
    d = DaemonProc(repo, state, root / "daemon.log")
    samples: list[dict[str, Any]] = []
    try:
        d.wait_applied(first, timeout=1800)
        first_apply_s = time.perf_counter() - t0
        d.find_url()
        d.settle(quiet=1.0)
        status_dir = state / "status"
        for i in range(commits):
            before = d.metrics()
            editor.edit()
            t_start = time.perf_counter()
            editor.commit()
            t_commit = time.perf_counter()
            wall_commit = time.time()
            sha = head(repo)
            ops_mtimes: list[float] = []
            t_seen, summary = d.wait_applied(sha, timeout=600, ops_mtimes=ops_mtimes)
            ops_mtimes = [m for m in ops_mtimes if m >= wall_commit - 0.001]
            wall_seen = time.time() - (time.perf_counter() - t_seen)
            latency = t_seen - t_commit
            try:
                summary_mtime = os.stat(d.summary_path).st_mtime
                plan_mtime = os.stat(status_dir / "plan.txt").st_mtime
            except OSError:
                summary_mtime = plan_mtime = float("nan")
            d.settle(quiet=min(5.0, max(0.3, 1.5 * latency)))
            after = d.metrics()
            phases = {
                p: after.get(f"{p}_sum", 0.0) - before.get(f"{p}_sum", 0.0) for p in ALL_PHASES
            }
            runs = int(after.get("fetch_count", 0) - before.get("fetch_count", 0))
            op = summary.get("lastOperation") or {}
            run_s = float(op.get("durationSeconds") or 0.0)
            status_s = summary_mtime - plan_mtime
            detect_s = wall_seen - summary_mtime
            nan = float("nan")
            run_start = ops_mtimes[0] if ops_mtimes else nan  # RESOLVING recorded
            run_end = ops_mtimes[-1] if len(ops_mtimes) > 1 else nan  # final state recorded
            # --policies: the policies plan.txt names for its changes; changes held back
            governed_by = sorted(_plan_policies(status_dir / "plan.txt"))
            held = sum(int(h.get("changes") or 0) for h in summary.get("held") or [])
            sample = {
                "sha": sha,
                "latency_s": latency,
                "commit_cmd_s": t_commit - t_start,
                "latency_from_commit_start_s": t_seen - t_start,
                "run_s": run_s,
                "status_files_s": status_s,  # plan.txt written → summary.json written
                "detect_s": detect_s,  # summary.json written → seen here
                # commit returned → the run recorded RESOLVING (watch debounce, queue, op log write)
                "wait_s": run_start - wall_commit,
                # final state recorded → plan.txt written (health, metrics, op counts, plan render)
                "after_run_s": plan_mtime - run_end,
                "ops_writes_seen": len(ops_mtimes),
                "runs": runs,
                "phases": phases,
                "trigger": op.get("trigger"),
                "plan_summary": op.get("planSummary"),
                "held": held,
                "governed_by": governed_by,
            }
            samples.append(sample)
            _log(
                f"    commit {i + 1}/{commits}: {latency * 1000:.0f} ms "
                f"(run {run_s * 1000:.0f} ms, {runs} run(s), trigger {op.get('trigger')}"
                + (f", governed by {', '.join(governed_by) or '-'}, held {held}" if pol else "")
                + ")"
            )
        runs_log = d.log_runs()
        rss = proc_status(d.pid)
    finally:
        rc = d.stop()
    lat = [s["latency_s"] for s in samples]
    target = TARGET_LATENCY.get(n)
    triggers: dict[str, int] = {}
    for r in runs_log:
        triggers[str(r.get("trigger"))] = triggers.get(str(r.get("trigger")), 0) + 1

    def med(key: str) -> float:
        return statistics.median(s[key] for s in samples)

    return {
        "n": n,
        "commits": commits,
        "first_apply_s": first_apply_s,
        "median_s": statistics.median(lat),
        "p90_s": _pct(lat, 0.9),
        "min_s": min(lat),
        "max_s": max(lat),
        "target_s": target,
        "ratio": statistics.median(lat) / target if target else None,
        "split_median_s": {
            k: med(k)
            for k in (
                "commit_cmd_s",
                "wait_s",
                "run_s",
                "after_run_s",
                "status_files_s",
                "detect_s",
            )
        },
        "phases_median_s": {
            p: statistics.median(s["phases"][p] for s in samples) for p in ALL_PHASES
        },
        "runs_per_commit": [s["runs"] for s in samples],
        "runs_by_trigger": triggers,
        "daemon_rss_mb": rss.get("VmRSS", 0) / 1024,
        "daemon_hwm_mb": rss.get("VmHWM", 0) / 1024,
        "daemon_exit": rc,
        "policies": pol,
        "governed_by": sorted({p for s in samples for p in s["governed_by"]}),
        "held_total": sum(s["held"] for s in samples),
        "samples": samples,
    }


_PLAN_POLICY = re.compile(r"  policy ([A-Za-z0-9._-]+)")


def _plan_policies(path: Path) -> set[str]:
    """The policies the changes of status/plan.txt name (`  policy NAME`)."""
    try:
        return set(_PLAN_POLICY.findall(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return set()


# -- 2. warm re-plan vs cold plan (child processes) -----------------------------------------


def _phases(report: Any) -> dict[str, float]:
    return {k: float(v) for k, v in report.phases.items()}


def child_seed(repo: Path, state: Path) -> dict[str, Any]:
    """Apply the repository's HEAD (variant 1) to an empty state directory."""
    from fleetward.daemon.reconciler import Reconciler
    from fleetward.operations import Operation
    from fleetward.pipeline import SourceOptions, now_iso
    from fleetward.runs import RunSettings
    from fleetward.store.operations import OperationLog

    settings = RunSettings(
        sources=SourceOptions(str(repo), "HEAD", gen.MANIFEST_DIR), state_dir=state
    )
    rec = Reconciler(settings, OperationLog(state))
    t = time.perf_counter()
    report = rec.run(Operation.new("bench-seed", now_iso()))
    return {
        "state": report.operation.state.name,
        "message": report.operation.message,
        "summary": dict(report.operation.plan_summary or {}),
        "phases": _phases(report),
        "total_s": time.perf_counter() - t,
    }


class _Clock:
    """Wraps callables on instances to sum their time."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def wrap(self, name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            s = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - s

        return wrapper


def child_warm(
    repo: Path, state: Path, n: int, seed: int, repeats: int, prof_out: Path
) -> dict[str, Any]:
    import cProfile
    import pstats

    from fleetward.daemon.config import DaemonConfig
    from fleetward.operations import Operation
    from fleetward.pipeline import now_iso
    from fleetward.service import build_daemon

    config = DaemonConfig(source=str(repo), state_dir=str(state), interval=600.0)
    daemon = build_daemon(config)
    clock = _Clock()
    daemon.reconciler.run = clock.wrap("reconciler.run", daemon.reconciler.run)  # type: ignore[method-assign]
    daemon.status.write = clock.wrap("status.write", daemon.status.write)  # type: ignore[method-assign]
    daemon.operations.all = clock.wrap("operations.all", daemon.operations.all)  # type: ignore[method-assign]
    daemon.health.record = clock.wrap("health.record", daemon.health.record)  # type: ignore[method-assign]

    def one(trigger: str) -> dict[str, Any]:
        clock.t.clear()
        c0 = time.process_time()
        t0 = time.perf_counter()
        report = daemon._reconcile(Operation.new(trigger, now_iso()))
        total = time.perf_counter() - t0
        cpu = time.process_time() - c0
        phases = _phases(report)
        run_s = clock.t.get("reconciler.run", 0.0)
        return {
            "state": report.operation.state.name,
            "message": report.operation.message,
            "summary": dict(report.operation.plan_summary or {}),
            "phases": phases,
            "replan_s": sum(phases.get(p, 0.0) for p in WARM_PHASES),
            "run_s": run_s,
            "reconcile_s": total,
            "cpu_s": cpu,
            "after_run": {k: v for k, v in clock.t.items() if k != "reconciler.run"},
            "after_run_total_s": total - run_s,
            "revision": report.revision.id if report.revision else None,
            # which policy governed how many of the plan's changes, and how many were held
            "governed": (
                {k: int(v.get("changes", 0)) for k, v in report.plan.policies.items()}
                if report.plan is not None
                else {}
            ),
            "held": report.decision.held_count() if report.decision is not None else 0,
        }

    result: dict[str, Any] = {}
    result["cold"] = one("bench-cold")
    gen.edit_to_v2(repo, n, seed, git=True)
    result["warm_v2"] = one("bench-warm-v2")
    editor = Editor(repo, n)
    extra = []
    for _ in range(max(0, repeats - 1)):
        editor.edit()
        editor.commit()
        extra.append(one("bench-warm"))
    result["warm_more"] = extra
    # One more one-file commit, profiled.
    editor.edit()
    editor.commit()
    prof = cProfile.Profile()
    prof.enable()
    profiled = one("bench-warm-profiled")
    prof.disable()
    result["warm_profiled"] = profiled
    prof.dump_stats(str(prof_out))
    tops = {}
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(15)
        text = buf.getvalue()
        start = text.find("   ncalls")
        tops[key] = text[start:].rstrip() if start >= 0 else text.rstrip()
    result["profile"] = tops
    result["profile_file"] = str(prof_out)
    st = proc_status(os.getpid())
    result["rss_mb"] = st.get("VmRSS", 0) / 1024
    result["hwm_mb"] = st.get("VmHWM", 0) / 1024
    result["documents_cache"] = {
        "hits": daemon.reconciler.engine.documents.hits,
        "misses": daemon.reconciler.engine.documents.misses,
    }
    return result


def _run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_child", *args],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_warm(
    n: int, seed: int, workdir: Path, repeats: int, policy_cron: str | None = None
) -> dict[str, Any]:
    root, repo, state, pol = _workspace(workdir, f"warm-{n}", n, seed, policy_cron)
    _log(f"  N={n:,}: seeding the store with variant 1 (child process)")
    seed_run = _run_child(["seed", str(repo), str(state)])
    if seed_run["state"] != "SUCCESS":
        raise RuntimeError(f"seeding failed: {seed_run['message']}")
    _log(f"  N={n:,}: cold plan, then warm re-plans (fresh child process)")
    res = _run_child(
        ["warm", str(repo), str(state), str(n), str(seed), str(repeats), str(root / "warm.prof")]
    )
    cold, warm = res["cold"], res["warm_v2"]
    warm_all = [warm] + res["warm_more"]
    res.update(
        n=n,
        seed_run=seed_run,
        ratio=warm["replan_s"] / cold["replan_s"],
        ratio_median=statistics.median(w["replan_s"] for w in warm_all) / cold["replan_s"],
        target=TARGET_WARM_RATIO,
        policies=pol,
    )
    return res


# -- 3. soak ---------------------------------------------------------------------------------


def _webhook(url: str, secret: str, body: bytes) -> dict[str, Any]:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        url + "/v0/webhook",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sig,
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 202:
            raise RuntimeError(f"webhook answered {resp.status}")
        return json.loads(resp.read())


def bench_soak(
    seed: int, workdir: Path, reconciles: int, late_commits: int, n: int = 1_000
) -> dict[str, Any]:
    root, repo, state, _ = _workspace(workdir, "soak", n, seed, None)
    editor = Editor(repo, n)
    warmup = max(1, reconciles // 10)
    _log(f"  soak: N={n:,}, {reconciles} webhook reconciles (commit every 10th)")
    d = DaemonProc(repo, state, root / "daemon.log", "--webhook-secret", SOAK_SECRET)
    durations: list[float] = []
    trajectory: list[dict[str, Any]] = []
    failures: list[str] = []
    coalesced = 0
    try:
        d.wait_applied(head(repo), timeout=600)
        url = d.find_url()
        d.settle(quiet=0.5)
        seen_ids: set[str] = set()
        for i in range(1, reconciles + 1):
            if i % 10 == 0:
                editor.edit()
                editor.commit()
            body = json.dumps(
                {"ref": "refs/heads/main", "after": head(repo) if i % 10 == 0 else None, "n": i}
            ).encode()
            t0 = time.perf_counter()
            answer = _webhook(url, SOAK_SECRET, body)
            op_id = answer["content"]["operation_id"]
            if op_id in seen_ids:
                coalesced += 1
            seen_ids.add(op_id)
            t1, summary = d.wait_operation(op_id, timeout=300)
            durations.append(t1 - t0)
            last = summary["lastOperation"]
            if last["state"] != "SUCCESS":
                failures.append(f"{i}: {last['state']} {last.get('message')}")
            if i == warmup or i % max(1, reconciles // 10) == 0 or i == reconciles:
                st = proc_status(d.pid)
                block = durations[-max(1, reconciles // 10) :]
                trajectory.append(
                    {
                        "reconcile": i,
                        "block_median_s": statistics.median(block),
                        "rss_mb": st["VmRSS"] / 1024,
                        "threads": st["Threads"],
                        "fds": proc_fds(d.pid),
                        "children": proc_children(d.pid),
                    }
                )
        # wait for a watch-triggered run the last commit may still have queued
        d.settle(quiet=1.0)
        applied_ok = (d.poll_summary() or {}).get("applied", {}).get("revision") == head(repo)
        # commit → applied (watch-triggered, as in part 1) once the operation log is full
        late: list[float] = []
        for _ in range(late_commits):
            editor.edit()
            editor.commit()
            t_commit = time.perf_counter()
            t_seen, _summary = d.wait_applied(head(repo), timeout=120)
            late.append(t_seen - t_commit)
            d.settle(quiet=0.5)
        st_end = proc_status(d.pid)
        kids = proc_children(d.pid)
        fds = proc_fds(d.pid)
        fd_targets: dict[str, int] = {}
        for fd in os.listdir(f"/proc/{d.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{d.pid}/fd/{fd}")
            except OSError:
                continue
            kind = (
                target.split(":")[0]
                if ":" in target and not target.startswith("/")
                else ("file" if target.startswith("/") else target)
            )
            fd_targets[kind] = fd_targets.get(kind, 0) + 1
        _log("  soak: idle CPU over 10 s")
        cpu0, w0 = proc_cpu_s(d.pid), time.perf_counter()
        time.sleep(10)
        cpu1, w1 = proc_cpu_s(d.pid), time.perf_counter()
        idle_pct = 100 * (cpu1 - cpu0) / (w1 - w0)
        runs_log = d.log_runs()
        op_count = len(json.loads((state / "operations.json").read_text()).get("operations", {}))
    finally:
        rc = d.stop()
    warm_rss = next(t["rss_mb"] for t in trajectory if t["reconcile"] == warmup)
    end_rss = st_end["VmRSS"] / 1024
    first = durations[:warmup]
    lastn = durations[-warmup:]
    return {
        "n": n,
        "reconciles": reconciles,
        "warmup": warmup,
        "runs_logged": len(runs_log),
        "coalesced_webhooks": coalesced,
        "failures": failures,
        "applied_head_at_end": applied_ok,
        "rss_warm_mb": warm_rss,
        "rss_end_mb": end_rss,
        "rss_growth_mb": end_rss - warm_rss,
        "rss_hwm_mb": st_end["VmHWM"] / 1024,
        "children_end": kids,
        "git_children_end": [k for k in kids if "git" in k.split(":")[1]],
        "fds_warm": next(t["fds"] for t in trajectory if t["reconcile"] == warmup),
        "fds_end": fds,
        "fd_kinds_end": fd_targets,
        "threads_warm": next(t["threads"] for t in trajectory if t["reconcile"] == warmup),
        "threads_end": st_end["Threads"],
        "idle_cpu_pct": idle_pct,
        "idle_cpu_s": cpu1 - cpu0,
        "webhook_to_final_median_s": statistics.median(durations),
        "webhook_to_final_p90_s": _pct(durations, 0.9),
        "first_median_s": statistics.median(first),
        "last_median_s": statistics.median(lastn),
        "operations_kept": op_count,
        "trajectory": trajectory,
        "commit_durations_s": [durations[i - 1] for i in range(10, reconciles + 1, 10)],
        "late_commit_latency_s": late,
        "late_commit_median_s": statistics.median(late) if late else None,
        "daemon_exit": rc,
    }


# -- report ----------------------------------------------------------------------------------


def src_fingerprint() -> dict[str, Any]:
    """A hash of fleetward's source files (to notice code changing under a long run)."""
    import fleetward

    root = Path(fleetward.__file__).resolve().parent
    h = hashlib.sha256()
    newest = 0.0
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
        newest = max(newest, f.stat().st_mtime)
    return {
        "sha256": h.hexdigest()[:12],
        "newest": time.strftime("%H:%M:%S", time.localtime(newest)),
    }


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    git_version = subprocess.run(
        ["git", "--version"], check=False, capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "git": git_version,
        "src": src_fingerprint(),
        "versions": {
            n: ver(n)
            for n in ("fleetward", "tinydb", "GitPython", "watchfiles", "uvicorn", "ruamel.yaml")
        },
    }


def _verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISS"


ROW = "  {:<40} {:>26}   {:<12} {}"


def _ms(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def render(info: dict[str, Any], out: dict[str, Any]) -> str:
    v = info["versions"]
    changed = info.get("src_after", info["src"])["sha256"] != info["src"]["sha256"]
    src_line = (
        f"{info['git']}, tinydb {v['tinydb']}, GitPython {v['GitPython']}, "
        f"watchfiles {v['watchfiles']}, uvicorn {v['uvicorn']}; fleetward source "
        f"{info['src']['sha256']} (newest file {info['src']['newest']})"
    )
    if changed:
        src_line += f" — CHANGED during the run to {info['src_after']['sha256']}"
    title = (
        f"fleetward bench_daemon — Python {info['python']}, {info['cpu_count']} CPUs, "
        f"load avg at start {info['loadavg'][0]:.2f}, {info['platform']}"
    )
    lines = [
        title,
        src_line,
        "",
    ]
    for r in out.get("latency", []):
        lines.append(
            f"1. commit → applied, N = {r['n']:,} — {r['commits']} one-file commits, daemon subprocess "
            f"(first apply took {r['first_apply_s']:.1f} s)"
        )
        pl = _policy_line(r.get("policies"))
        if pl:
            lines.append(
                pl
                + f"; changes governed by {', '.join(r['governed_by']) or 'none'}, "
                + f"{r['held_total']} held"
            )
        lines.append(ROW.format("measure", "value", "target", "ratio / verdict"))
        t = r["target_s"]
        lines.append(
            ROW.format(
                "median commit → applied",
                _ms(r["median_s"]),
                f"≤ {t:g} s" if t else "(none at this N)",
                f"{r['ratio']:.2f}×  {_verdict(r['median_s'], t)}" if t else "",
            )
        )
        lines.append(
            ROW.format(
                "p90 (min … max)",
                f"{_ms(r['p90_s'])} ({_ms(r['min_s'])} … {_ms(r['max_s'])})",
                "",
                f"{r['p90_s'] / t:.2f}× of target" if t else "",
            )
        )
        sp = r["split_median_s"]
        lines.append(
            "      split (medians): "
            + f"commit → run starts {_ms(sp['wait_s'])}, run {_ms(sp['run_s'])}, "
            + f"after the run {_ms(sp['after_run_s'])}, "
            + f"status files {_ms(sp['status_files_s'])}, detection {_ms(sp['detect_s'])}; "
            + f"git commit itself {_ms(sp['commit_cmd_s'])}"
        )
        ph = r["phases_median_s"]
        lines.append(
            "      daemon phases (median per commit, all its runs): "
            + ", ".join(f"{p} {_ms(ph[p])}" for p in ALL_PHASES)
        )
        lines.append(
            f"      runs per commit: {r['runs_per_commit']}; runs by trigger: {r['runs_by_trigger']}; "
            f"daemon RSS {r['daemon_rss_mb']:.0f} MB (peak {r['daemon_hwm_mb']:.0f} MB)"
        )
        lines.append("")
    w = out.get("warm")
    if w:
        cold, warm = w["cold"], w["warm_v2"]
        lines.append(
            f"2. warm re-plan vs cold plan, N = {w['n']:,} — Daemon._reconcile in a fresh process; "
            f"store seeded with variant 1 ({w['seed_run']['total_s']:.1f} s)"
        )
        pl = _policy_line(w.get("policies"))
        if pl:
            gov = [x.get("governed", {}) for x in [warm, *w["warm_more"]]]
            lines.append(
                pl
                + "; warm plans' changes per policy: "
                + ", ".join(str(g or "{}") for g in gov)
                + f"; held {sum(x.get('held', 0) for x in [warm, *w['warm_more']])}"
            )
        lines.append(ROW.format("measure", "value", "target", "ratio / verdict"))
        lines.append(
            ROW.format(
                "cold plan (no-op), fetch…plan",
                _ms(cold["replan_s"]),
                "",
                f"plan {cold['summary']}",
            )
        )
        lines.append(
            ROW.format(
                "warm re-plan after edit_to_v2",
                _ms(warm["replan_s"]),
                "",
                f"plan {warm['summary']}",
            )
        )
        lines.append(
            ROW.format(
                "warm / cold",
                f"{100 * w['ratio']:.1f} %",
                f"≤ {100 * TARGET_WARM_RATIO:.0f} %",
                f"{w['ratio'] / TARGET_WARM_RATIO:.2f}×  {_verdict(w['ratio'], TARGET_WARM_RATIO)}",
            )
        )
        more = [x["replan_s"] for x in w["warm_more"]]
        if more:
            lines.append(
                ROW.format(
                    "  (median of all warm samples)",
                    f"{100 * w['ratio_median']:.1f} %",
                    "",
                    "other one-file commits: " + ", ".join(_ms(x) for x in more),
                )
            )
        for label, r in (("cold", cold), ("warm v2", warm)):
            ph = r["phases"]
            ar = r["after_run"]
            lines.append(
                f"      {label:<8} phases: "
                + ", ".join(f"{p} {_ms(ph[p])}" for p in ALL_PHASES if p in ph)
                + f" | run {_ms(r['run_s'])}; after the run {_ms(r['after_run_total_s'])} ("
                + ", ".join(f"{k} {_ms(v)}" for k, v in ar.items())
                + f"); whole reconcile {_ms(r['reconcile_s'])}, CPU {_ms(r['cpu_s'])}"
            )
        wp = w["warm_profiled"]
        lines.append(
            f"      process RSS {w['rss_mb']:.0f} MB (peak {w['hwm_mb']:.0f} MB); "
            f"document cache {w['documents_cache']}"
        )
        lines.append(
            f"      cProfile of one more warm reconcile (profiled: {_ms(wp['reconcile_s'])}, "
            f"re-plan {_ms(wp['replan_s'])}); raw stats: {w['profile_file']}"
        )
        lines.append("      top 15 by cumulative time:")
        lines.extend("        " + ln for ln in w["profile"]["cumulative"].splitlines())
        lines.append("      top 15 by own time:")
        lines.extend("        " + ln for ln in w["profile"]["tottime"].splitlines())
        lines.append("")
    s = out.get("soak")
    if s:
        lines.append(
            f"3. soak, N = {s['n']:,} — {s['reconciles']} webhook reconciles "
            f"({s['runs_logged']} runs logged, {s['coalesced_webhooks']} webhooks coalesced, "
            f"{len(s['failures'])} failed); applied HEAD at end: {s['applied_head_at_end']}"
        )
        lines.append(ROW.format("measure", "value", "target", "verdict"))
        lines.append(
            ROW.format(
                f"RSS growth, reconcile {s['warmup']} → {s['reconciles']}",
                f"{s['rss_growth_mb']:+.1f} MB ({s['rss_warm_mb']:.1f} → {s['rss_end_mb']:.1f})",
                f"≤ {TARGET_RSS_GROWTH_MB:g} MB",
                _verdict(s["rss_growth_mb"], TARGET_RSS_GROWTH_MB),
            )
        )
        lines.append(
            ROW.format(
                "child processes at end (git)",
                f"{len(s['children_end'])} ({len(s['git_children_end'])})",
                "0",
                _verdict(len(s["git_children_end"]), 0)
                + (f"  {s['children_end']}" if s["children_end"] else ""),
            )
        )
        lines.append(
            ROW.format(
                "open fds / threads (warm-up → end)",
                f"{s['fds_warm']} → {s['fds_end']} / {s['threads_warm']} → {s['threads_end']}",
                "no growth",
                _verdict(s["fds_end"] - s["fds_warm"], 0) + f"  {s['fd_kinds_end']}",
            )
        )
        lines.append(
            ROW.format(
                "idle CPU over 10 s",
                f"{s['idle_cpu_pct']:.2f} % ({s['idle_cpu_s'] * 1000:.0f} ms)",
                f"≤ {TARGET_IDLE_CPU_PCT:g} %",
                _verdict(s["idle_cpu_pct"], TARGET_IDLE_CPU_PCT),
            )
        )
        lines.append(
            ROW.format(
                "webhook → final, median / p90",
                f"{_ms(s['webhook_to_final_median_s'])} / {_ms(s['webhook_to_final_p90_s'])}",
                "",
                f"first {s['warmup']}: {_ms(s['first_median_s'])}, last {s['warmup']}: "
                f"{_ms(s['last_median_s'])} (operations kept {s['operations_kept']})",
            )
        )
        cd = s["commit_durations_s"]
        if cd:
            k = max(1, len(cd) // 10)
            lines.append(
                ROW.format(
                    "  reconciles with a commit, first / last",
                    f"{_ms(statistics.median(cd[:k]))} / {_ms(statistics.median(cd[-k:]))}",
                    "",
                    f"median of {k} each (webhook → final, a one-file change applied)",
                )
            )
        if s["late_commit_latency_s"]:
            t = TARGET_LATENCY.get(s["n"])
            late = s["late_commit_median_s"]
            lines.append(
                ROW.format(
                    f"commit → applied, {s['operations_kept']} ops in log",
                    _ms(late),
                    f"≤ {t:g} s" if t else "",
                    (f"{late / t:.2f}×  {_verdict(late, t)}  " if t else "")
                    + f"(median of {len(s['late_commit_latency_s'])} commits after the soak)",
                )
            )
        lines.append(
            "      trajectory: "
            + "; ".join(
                f"#{t['reconcile']} {_ms(t['block_median_s'])} {t['rss_mb']:.1f} MB {t['fds']} fds"
                + (f" kids {t['children']}" if t["children"] else "")
                for t in s["trajectory"]
            )
        )
        if s["failures"]:
            lines.append(f"      failures: {s['failures'][:5]}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        mode, rest = argv[1], argv[2:]
        if mode == "seed":
            res = child_seed(Path(rest[0]), Path(rest[1]))
        else:
            res = child_warm(
                Path(rest[0]),
                Path(rest[1]),
                int(rest[2]),
                int(rest[3]),
                int(rest[4]),
                Path(rest[5]),
            )
        print(json.dumps(res))
        return 0
    parser = argparse.ArgumentParser(description="fleetward daemon benchmarks (targets: bench/README.md)")
    parser.add_argument("--sizes", help="comma-separated N for the latency (default 1000,100000)")
    parser.add_argument("--commits", type=int, help="one-file commits per size (default 20)")
    parser.add_argument("--warm-n", type=int, help="N of the warm re-plan (default: largest size)")
    parser.add_argument(
        "--warm-repeats", type=int, default=3, help="warm samples, unprofiled (default 3)"
    )
    parser.add_argument("--soak", type=int, help="webhook reconciles of the soak (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", default="latency,warm,soak", help="which parts to run (default all)"
    )
    parser.add_argument("--quick", action="store_true", help="N=1,000, 5 commits, 100 soak runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--workdir", type=Path, help="keep generated repositories here")
    parser.add_argument(
        "--policies",
        action="store_true",
        help="latency and warm: commit two SyncPolicies (bench-window: even fleets, an "
        "always-open WINDOW; bench-auto: tier production/staging, auto, maxStopFraction 0.5) "
        "before the first run",
    )
    parser.add_argument(
        "--policy-cron",
        default=DEFAULT_POLICY_CRON,
        help=f"cron of bench-window's 1h window (default {DEFAULT_POLICY_CRON!r}: always open)",
    )
    args = parser.parse_args(argv)
    sizes_text = args.sizes or ("1000" if args.quick else "1000,100000")
    sizes = [int(s.replace("_", "")) for s in sizes_text.split(",") if s.strip()]
    commits = args.commits or (5 if args.quick else 20)
    soak = args.soak or (100 if args.quick else 1000)
    warm_n = args.warm_n or max(sizes)
    parts = {p.strip() for p in args.only.split(",")}
    policy_cron = args.policy_cron if args.policies else None

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetward-bench-daemon-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    _log(
        f"bench_daemon: {info['cpu_count']} CPUs, Python {info['python']}, workdir {workdir}, "
        f"fleetward source {info['src']['sha256']}"
        + (f", SyncPolicies (cron {policy_cron!r})" if policy_cron else "")
    )
    out: dict[str, Any] = {}
    try:
        if "latency" in parts:
            out["latency"] = [
                bench_latency(n, args.seed, workdir, commits, policy_cron) for n in sizes
            ]
        if "warm" in parts:
            out["warm"] = bench_warm(warm_n, args.seed, workdir, args.warm_repeats, policy_cron)
        if "soak" in parts:
            out["soak"] = bench_soak(args.seed, workdir, soak, late_commits=min(commits, 10))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    info["src_after"] = src_fingerprint()
    if info["src_after"]["sha256"] != info["src"]["sha256"]:
        _log(
            "WARNING: fleetward's source changed during the run "
            f"({info['src']['sha256']} → {info['src_after']['sha256']}, newest file "
            f"{info['src_after']['newest']}): parts may have run different code"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "targets": {
                        "latency_median_s": TARGET_LATENCY,
                        "warm_ratio": TARGET_WARM_RATIO,
                        "rss_growth_mb": TARGET_RSS_GROWTH_MB,
                        "idle_cpu_pct": TARGET_IDLE_CPU_PCT,
                        "git_children": 0,
                    },
                    "results": out,
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(render(info, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
