"""What starts a run: the poll timer, a local repository's refs changing, webhooks, requests.

Every trigger only *asks* for a run (`Coalescer.request`); the worker takes
them one at a time. However many triggers arrive while a run is in flight,
at most one more run is queued, and it carries every reason that asked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from watchfiles import Change, watch

from fleetward.operations import Operation, OperationState
from fleetward.source.base import is_manifest_name
from fleetward.timestamps import now, now_iso

logger = logging.getLogger("fleetward.daemon")


_SEEN_KEPT = 10_000  # ids remembered: ten times the operation log's default bound


class Coalescer:
    """One run in flight (the worker's), at most one queued.

    The queued run is an Operation created by the first request; later
    requests join it (its trigger lists every reason), so every caller can be
    told which operation will carry its request.
    """

    def __init__(self, on_queued: Callable[[Operation, str], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._queued: Operation | None = None
        # Operations that must run as themselves (an operator's request with a query,
        # arguments or a window): never merged, run in order before the coalesced one.
        self._explicit: deque[Operation] = deque()
        self._closed = False
        self._on_queued = on_queued  # called under the lock, e.g. to record the operation
        self.dropped: list[Operation] = []  # explicit operations a close left unrun
        # Ids of operations this queue ever held (the newest _SEEN_KEPT): an operation
        # another replica recorded is adopted once, never run twice by this one.
        self._seen: deque[str] = deque(maxlen=_SEEN_KEPT)
        self._seen_ids: set[str] = set()

    def request(self, reason: str) -> Operation | None:
        """Ask for a run; the operation that will carry it (None once closed)."""
        with self._cond:
            if self._closed:
                return None
            op = self._queued
            if op is None:
                op = Operation.new(reason, now_iso())
            elif reason not in op.trigger.split(","):
                op = replace(op, trigger=f"{op.trigger},{reason}")
            self._queued = op
            self._saw(op.operation_id)
            if self._on_queued is not None:
                self._on_queued(op, reason)
            self._cond.notify_all()
            return op

    @property
    def queued(self) -> Operation | None:
        with self._cond:
            return self._queued

    def push(self, op: Operation) -> bool:
        """Queue an operation to run as itself; False once closed."""
        with self._cond:
            if self._closed:
                return False
            if all(o.operation_id != op.operation_id for o in self._explicit):
                self._explicit.append(op)
            self._saw(op.operation_id)
            self._cond.notify_all()
            return True

    def adopt(self, op: Operation) -> bool:
        """Queue an operation another replica recorded, unless this queue ever held it
        (queued, taken or run): whether it was queued now."""
        with self._cond:
            if self._closed or op.operation_id in self._seen_ids:
                return False
            self._explicit.append(op)
            self._saw(op.operation_id)
            self._cond.notify_all()
            return True

    def drain(self) -> list[Operation]:
        """Empty the queue and forget what it held (a standby taking the lead: the
        operation log, not this queue, says what is left to run)."""
        with self._cond:
            ops = list(self._explicit) + ([self._queued] if self._queued is not None else [])
            self._explicit.clear()
            self._queued = None
            self._seen.clear()
            self._seen_ids.clear()
            return ops

    def _saw(self, operation_id: str) -> None:
        if operation_id in self._seen_ids:
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_ids.discard(self._seen[0])
        self._seen.append(operation_id)
        self._seen_ids.add(operation_id)

    def remove(self, operation_id: str) -> Operation | None:
        """Take a queued operation out before it runs (an operator cancelled it)."""
        with self._cond:
            if self._queued is not None and self._queued.operation_id == operation_id:
                op, self._queued = self._queued, None
                return op
            for op in self._explicit:
                if op.operation_id == operation_id:
                    self._explicit.remove(op)
                    return op
            return None

    def find_any(self) -> bool:
        """Whether any run is queued."""
        with self._cond:
            return self._queued is not None or bool(self._explicit)

    def find(self, operation_id: str) -> Operation | None:
        with self._cond:
            if self._queued is not None and self._queued.operation_id == operation_id:
                return self._queued
            return next((o for o in self._explicit if o.operation_id == operation_id), None)

    def take(self, timeout: float | None = None) -> Operation | None:
        """Wait for a queued run and take it; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._queued is not None or bool(self._explicit) or self._closed, timeout
            )
            if self._closed:
                return None
            if self._explicit:
                return self._explicit.popleft()
            op, self._queued = self._queued, None
            return op

    def close(self) -> Operation | None:
        """Refuse further requests; the run that was queued and will now never start
        (explicit operations left unrun are in `dropped`)."""
        with self._cond:
            self._closed = True
            op, self._queued = self._queued, None
            self.dropped = list(self._explicit)
            self._explicit.clear()
            self._cond.notify_all()
            return op

    def unrun(self, recorded: tuple[str, ...]) -> list[Operation]:
        """Close, and the operations callers were told about (their trigger names one of
        `recorded`) that will now never run; a SCHEDULED one (a window, an approval) is
        not among them: it waits for the next daemon."""
        never_ran = self.close()
        return [
            op
            for op in [never_ran, *self.dropped]
            if op is not None
            and any(t in op.trigger for t in recorded)
            and op.state is not OperationState.SCHEDULED
        ]


class Backoff:
    """Exponential delay after consecutive failures: base, 2·base, 4·base … capped."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def failed(self) -> float:
        """Record a failure; the delay before the retry (with ±10 % jitter)."""
        self.failures += 1
        delay: float = self.base * 2 ** min(self.failures - 1, 32)
        return min(self.cap, delay * random.uniform(0.9, 1.1))

    def succeeded(self) -> None:
        self.failures = 0


class Poller:
    """The poll interval, with jitter, on an APScheduler background scheduler."""

    JOB_ID = "poll"

    def __init__(self, request: Callable[[str], object], interval: float) -> None:
        self._request = request
        self._scheduler = BackgroundScheduler(
            daemon=True,
            # A job only files a request (microseconds), but a busy process can
            # still start it late: never skip a poll for that (LIBRARIES.md).
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._scheduler.add_job(
            self._tick, self._trigger(interval), id=self.JOB_ID, replace_existing=True
        )

    @staticmethod
    def _trigger(interval: float) -> IntervalTrigger:
        # Jitter spreads many daemons polling one Git server; never more than a tenth.
        return IntervalTrigger(seconds=interval, jitter=max(0.0, interval * 0.1))

    def _tick(self) -> None:
        self._request("poll")

    def start(self) -> None:
        self._scheduler.start()

    def reschedule(self, interval: float) -> None:
        self._scheduler.reschedule_job(self.JOB_ID, trigger=self._trigger(interval))

    def schedule_once(self, delay: float, reason: str) -> None:
        """A one-off request after `delay` seconds (a retry after a failure)."""
        self._scheduler.add_job(
            self._request,
            "date",
            run_date=now() + dt.timedelta(seconds=delay),
            args=[reason],
            id="retry",
            replace_existing=True,
        )

    def schedule_at(self, when: dt.datetime, call: Callable[[], object], job_id: str) -> None:
        """Call `call` once at `when` (replacing an earlier job of the same id)."""
        self._scheduler.add_job(call, "date", run_date=when, id=job_id, replace_existing=True)

    def cancel(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):  # it ran (or was never there)
            self._scheduler.remove_job(job_id)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def git_dirs(source: Path) -> list[Path] | None:
    """The directories whose changes mean a ref moved: the git dir and the common dir."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir", "--git-common-dir"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    git_dir = Path(out[0])
    common = Path(out[1]) if len(out) > 1 and out[1] else git_dir
    if not common.is_absolute():
        common = (source / common).resolve()
    return sorted({git_dir, common})


def ref_filter(git_dirs: Iterable[Path]) -> Callable[[Change, str], bool]:
    """A watch filter passing changes of refs, packed-refs and HEAD inside `git_dirs`;
    not objects, logs, index or lock files. Paths are judged relative to the git
    dir, so a repository under a directory named `logs` or `refs` is watched right."""
    roots = [str(d) for d in git_dirs]

    def wanted(change: Change, path: str) -> bool:
        for root in roots:
            if path.startswith(root + os.sep):
                parts = Path(os.path.relpath(path, root)).parts
                break
        else:
            return False
        name = parts[-1]
        if name.endswith(".lock") or parts[0] in ("objects", "logs"):
            return False
        return parts[0] == "refs" or (
            len(parts) == 1 and name in ("packed-refs", "HEAD", "FETCH_HEAD", "ORIG_HEAD")
        )

    return wanted


class Watcher:
    """watchfiles on a local repository's git dir (or a plain directory), in a thread.

    Events are hints (LIBRARIES.md): each one asks for a run, which re-reads
    the ref; the poll stays on to catch anything the watch misses.
    """

    def __init__(
        self,
        paths: Iterable[Path],
        request: Callable[[str], object],
        refs_only: bool,
    ) -> None:
        self.paths = [p for p in paths if p.exists()]
        self._request = request
        self._filter = ref_filter(self.paths) if refs_only else _plain_filter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleetward-watch", daemon=True)

    def start(self) -> None:
        if self.paths:
            self._thread.start()

    def _run(self) -> None:
        try:
            for _changes in watch(
                *self.paths,
                watch_filter=self._filter,
                stop_event=self._stop,
                # Quiet time before a batch: a commit's ref update arrives in one.
                step=50,
                rust_timeout=1000,
                yield_on_timeout=False,
                raise_interrupt=False,
            ):
                self._request("watch")
        except Exception:  # a watch that dies must not take the daemon down
            logger.warning("file watching stopped; polling continues", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


def _plain_filter(change: Change, path: str) -> bool:
    name = Path(path).name
    return is_manifest_name(name) and not name.startswith(".")
