"""Status files under `<state>/status/`: what the daemon did, readable without fleetward.

- `summary.json`: revision seen and applied, the last operation, readiness,
  counts per kind and state, drift, errors. Written last in a run, so a
  reader that sees a new revision here sees that run's other files too; and
  written even when the others cannot be (a full disk), naming them in
  `statusFileErrors`. A daemon that stops cleanly records it here last.
- `plan.txt`, `plan.json`: the last plan computed (kept when a run fails before
  planning, e.g. on manifest errors).
- `objects/<Kind>/<id>.json`: one per object whose last reconcile failed or
  found drift, or that failure isolation keeps at its last applied version
  (`Stalled`, with its document's errors), with Kubernetes-style conditions;
  removed once it is fine.

Every file is replaced atomically (temp file in the same directory, fsync,
rename), so a reader never sees half a file. `StatusWriter` is a `Reporter`:
the engine hands it every finished run, the daemon its stop.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from fleetward import __version__
from fleetward.decisions import held_summary
from fleetward.errors import FleetwardError, os_reason
from fleetward.kinds.asset_rule import execution_progress
from fleetward.model import Plan
from fleetward.observe.conditions import held_conditions, object_conditions
from fleetward.observe.health import Health
from fleetward.operations import Operation, OperationState, held_record
from fleetward.rendering import plan_to_stream, render_plan
from fleetward.rendering import write_json as stream_json
from fleetward.reporting import Reporter
from fleetward.runs import RunReport
from fleetward.store.files import write_atomic, write_atomic_stream
from fleetward.timestamps import from_epoch, now_iso, parse_iso, to_iso
from fleetward.tuning import gc_paused

logger = logging.getLogger(__name__)

SUMMARY_FORMAT = 1
MAX_OBJECT_FILES = 1000  # per run; a blocked 100k-object plan must not write 100k files
_PLAN_TEXT_LINES = 1000
_MAX_FILE_ERRORS = 20


class StatusWriter(Reporter):
    """The status files of one state directory.

    As a reporter it needs the daemon's `health` (readiness and counts in
    summary.json) and `daemon`, what summary.json says of the process; `write`
    takes them from its caller instead.
    """

    def __init__(
        self,
        state_dir: Path,
        source: Mapping[str, Any],
        health: Health | None = None,
        daemon: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self.dir = state_dir / "status"
        self.source = dict(source)  # url (credentials masked), ref, path
        self.health = health
        self.daemon = daemon
        self._lock = threading.Lock()  # a run's files, or the stop record: one at a time
        self._stopped = False
        # Sections other reporters keep in summary.json between runs (`amend`).
        self._sections: dict[str, Any] = {}
        self._abandoned: Operation | None = None

    def run_finished(self, report: RunReport) -> None:
        if self.health is None:
            raise TypeError("a StatusWriter reports runs only with the daemon's Health")
        try:
            self.write(report, self.health, self.daemon())
        except (OSError, ValueError, FleetwardError) as exc:
            logger.error("cannot write status files: %s", exc)

    def run_abandoned(self, operation: Operation) -> None:
        self._abandoned = operation  # summary.json names it when the daemon stops

    def daemon_stopped(self, cause: str) -> None:
        self.stopped(now_iso(), cause, self._abandoned)

    def write(self, report: RunReport, health: Health, daemon: Mapping[str, Any]) -> None:
        """Write a run's files, summary.json last.

        A file that cannot be written (a full disk, EFBIG) does not stop the
        others, and summary.json names it: `fleetward status` must learn of a
        failed run even when its 100 kB plan did not fit. Raises OSError only
        when summary.json itself cannot be written.
        """
        with self._lock:
            if self._stopped:
                return  # the daemon recorded its stop: an abandoned run adds nothing
            self.dir.mkdir(parents=True, exist_ok=True)
            failed: list[str] = []
            if report.plan is not None:
                _write_plan(self.dir, "plan", report.plan, failed)
            written = self._objects(report, failed)
            _attempt(failed, self.dir / "pending", lambda: self._pending(report, failed))
            write_json(
                self.dir / "summary.json",
                {**summary(report, health, daemon, self.source, written, failed), **self._sections},
            )

    def amend(self, key: str, value: Any) -> None:
        """Set top-level `key` of summary.json to `value`, now and in every later write.

        For what changes between runs (a notification's delivery): the run's own
        sections are kept as the last run wrote them. Before the first run, or
        after the stop, the value is only remembered."""
        with self._lock:
            self._sections[key] = value
            path = self.dir / "summary.json"
            if self._stopped or not path.exists():
                return
            try:
                current = json.loads(path.read_bytes())
                if isinstance(current, dict):
                    write_json(path, {**current, key: value})
            except (OSError, ValueError) as exc:
                logger.error("cannot update %s in %s: %s", key, path, exc)

    def replica(self, role: Mapping[str, Any]) -> None:
        """Record this daemon's role among replicas (`replica`: role, since, name,
        problem) in summary.json now, and in every later write, with the readiness
        it has now: a standby makes no runs, so only this tells `fleetward status`
        what it is. A standby that never led writes a summary of no run."""
        with self._lock:
            self._sections["replica"] = dict(role)
            if self._stopped:
                return
            path = self.dir / "summary.json"
            try:
                current = json.loads(path.read_bytes())
            except FileNotFoundError:
                current = None
            except (OSError, ValueError) as exc:
                logger.error("cannot record the replica's role in %s: %s", path, exc)
                return
            if not isinstance(current, dict):
                current = {
                    "formatVersion": SUMMARY_FORMAT,
                    "daemon": {"version": __version__, **self.daemon()},
                    "source": dict(self.source),
                    "lastOperation": None,
                }
            current.update(self._sections, updatedAt=now_iso())
            if self.health is not None:
                current["ready"], current["readiness"] = self.health.readiness()
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                write_json(path, current)
            except OSError as exc:
                logger.error("cannot record the replica's role in %s: %s", path, exc)

    def stopped(self, at: str, cause: str, abandoned: Operation | None = None) -> None:
        """Record in summary.json that the daemon stopped cleanly, at `at`, on `cause`.

        `fleetward status` then says the daemon is not running at once, not after
        the readiness bound. `abandoned` is a run the stop ended that could not
        write its own files. Nothing is written after this."""
        with self._lock:
            self._stopped = True
            path = self.dir / "summary.json"
            try:
                current = json.loads(path.read_bytes())
            except FileNotFoundError:
                return  # no run has written anything: there is nothing to amend
            except (OSError, ValueError) as exc:
                logger.error("cannot record the stop in %s: %s", path, exc)
                return
            if not isinstance(current, dict):
                return
            found = current.get("daemon")
            daemon: dict[str, Any] = found if isinstance(found, dict) else {}
            current["daemon"] = {**daemon, "stoppedAt": at, "stopSignal": cause}
            readiness = current.get("readiness")
            current["ready"] = False
            current["readiness"] = {
                **(readiness if isinstance(readiness, dict) else {}),
                "reasons": [f"the daemon stopped at {at} ({cause})"],
            }
            last = current.get("lastOperation")
            if abandoned is not None and isinstance(last, dict):
                current["lastOperation"] = {
                    **last,
                    "id": abandoned.operation_id,
                    "state": abandoned.state.name,
                    "stateCode": int(abandoned.state),
                    "trigger": abandoned.trigger,
                    "revision": abandoned.revision,
                    "startedAt": abandoned.started_at,
                    "finishedAt": abandoned.finished_at,
                    "planSummary": None,
                    "message": abandoned.message,
                }
                current["inSync"] = False
            try:
                write_json(path, current)
            except OSError as exc:
                logger.error("cannot record the stop in %s: %s", path, exc)

    def _pending(self, report: RunReport, failed: list[str]) -> None:
        """`pending/<operation id>.json|.txt`: the plan each held operation carries, for
        review before approving it; removed once the operation ends."""
        if report.decision is None:
            return  # no plan this run: what is pending is unknown, keep the files
        root = self.dir / "pending"
        wanted: dict[str, Plan] = {}
        plan = report.plan
        assert plan is not None
        for part in report.decision.held:
            if part.operation_id is not None:
                wanted[part.operation_id] = replace(plan, changes=part.changes)
        if root.is_dir():
            for old in root.iterdir():
                if old.name.split(".", 1)[0] not in wanted:
                    old.unlink(missing_ok=True)
        for op_id, part_plan in wanted.items():
            root.mkdir(parents=True, exist_ok=True)
            _write_plan(root, op_id, part_plan, failed)

    def _objects(self, report: RunReport, failed: list[str]) -> int:
        """Write the object files of this run, remove the others; how many were written.

        The first file that cannot be written ends the writing (the next would
        fail alike), and is added to `failed`."""
        wanted: dict[Path, dict[str, Any]] = {}
        revision = report.revision.id if report.revision else None

        def want(address: str, owner: str | None, action: str | None, reason: str) -> bool:
            if len(wanted) >= MAX_OBJECT_FILES:
                return False
            kind, ident = address.split("/", 1)
            path = self.dir / "objects" / kind / (urllib.parse.quote(ident, safe="") + ".json")
            wanted[path] = {
                "address": address,
                "kind": kind,
                "id": ident,
                "owner": owner,
                "action": action,
                "reason": reason,
                "observedRevision": revision,
                "operationId": report.operation.operation_id,
                "conditions": conditions,
            }
            return True

        for change, conditions in object_conditions(report):
            if not want(change.address, change.owner, change.action.value, change.reason):
                break
        for held, address, conditions in held_conditions(report):
            if not want(address, held.address, None, held.because):
                break
        root = self.dir / "objects"
        # A run that made no plan (fetch or manifest errors) knows nothing new about
        # any object: the files of the last plan stay until a plan says otherwise.
        if root.is_dir() and report.plan is not None:
            for old in root.glob("*/*.json"):
                if old not in wanted:
                    old.unlink(missing_ok=True)
        written = 0
        for path, body in wanted.items():
            if not _attempt(failed, path, functools.partial(_write_object, path, body)):
                break
            written += 1
        return written


def _write_object(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, body, indent=2)


def _write_plan(directory: Path, stem: str, plan: Plan, failed: list[str]) -> None:
    """`<stem>.txt` as `fleetward plan` prints it, `<stem>.json` as Plan JSON; a file
    that cannot be written is added to `failed`."""
    text = "\n".join(line for _, line in render_plan(plan, _PLAN_TEXT_LINES))
    txt = directory / f"{stem}.txt"
    _attempt(failed, txt, lambda: write_atomic(txt, (text + "\n").encode()))
    # Streamed, one change at a time, each through the C encoder (an indented dump runs
    # the pure-Python one: a 100,000-change plan took 7 s that way), so the file is
    # never one string of a hundred megabytes (`rendering.write_json`).
    with gc_paused():
        doc = directory / f"{stem}.json"
        _attempt(failed, doc, lambda: write_atomic_stream(doc, functools.partial(_plan_json, plan)))


def _plan_json(plan: Plan, fh: BinaryIO) -> None:
    stream_json(plan_to_stream(plan), lambda text: fh.write(text.encode()), indent=1)


def _attempt(failed: list[str], path: Path, write: Callable[[], object]) -> bool:
    """Run `write`; on OSError (or ValueError: a value JSON cannot hold) log it, add
    `path: why` to `failed` and return False."""
    try:
        write()
    except (OSError, ValueError) as exc:
        why = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        logger.error("cannot write the status file %s: %s", path, why)
        failed.append(f"{path}: {why}")
        return False
    return True


def summary(
    report: RunReport,
    health: Health,
    daemon: Mapping[str, Any],
    source: Mapping[str, Any],
    object_files: int,
    file_errors: Sequence[str] = (),
) -> dict[str, Any]:
    op = report.operation
    store = report.store
    ready, readiness = health.readiness()
    counts = health.counts
    objects: dict[str, dict[str, int]] = {}
    for (kind, state), n in sorted(counts.objects.items()):
        objects.setdefault(kind, {})[state] = n
    held = held_summary(report.decision) if report.decision is not None else []
    held_documents = report.plan.held if report.plan is not None else ()
    suspension = report.suspension
    return {
        "formatVersion": SUMMARY_FORMAT,
        "updatedAt": op.updated_at,
        "daemon": {"version": __version__, **daemon},
        "source": {
            **source,
            "revisionSeen": report.revision.id if report.revision else None,
            "fetchOk": not report.fetch_failed,
        },
        "applied": {
            "revision": store.meta.last_applied_revision if store else None,
            "serial": store.meta.serial if store else None,
            "lineage": store.meta.lineage if store else None,
        },
        "inSync": bool(
            store
            and report.revision
            and op.state is OperationState.SUCCESS
            and store.meta.last_applied_revision == report.revision.id
            and not held
            and not held_documents
            and not (report.decision is not None and report.decision.out_of_scope)
        ),
        # Changes planned but not applied, per policy: what each waits for, and the
        # operation that carries it (its plan: pending/<operationId>.txt|json).
        "held": held,
        # Documents failure isolation held back at their last applied version: where,
        # why, their first errors, how many stored objects each keeps (plan.json lists them).
        "heldDocuments": [held_record(h) for h in held_documents],
        "suspended": (
            {"by": suspension.by, "at": suspension.at, "reason": suspension.reason}
            if suspension is not None
            else None
        ),
        # The rollback pin the run obeyed: the revision it reconciles instead of the head.
        "pinned": report.pin.to_dict() if report.pin is not None else None,
        "policies": {
            name: policy.describe(parse_iso(op.updated_at))
            for name, policy in sorted(report.policies.items())
        },
        "lastOperation": {
            "id": op.operation_id,
            "state": op.state.name,
            "stateCode": int(op.state),
            "trigger": op.trigger,
            "revision": op.revision,
            "startedAt": op.started_at,
            "finishedAt": op.finished_at,
            "durationSeconds": round(report.duration, 3),
            "planSummary": dict(op.plan_summary) if op.plan_summary is not None else None,
            "message": op.message,
        },
        "lastSuccessAt": to_iso(from_epoch(health.last_success_at)),
        "ready": ready,
        "readiness": readiness,
        "objects": objects,
        "drift": counts.drift,
        # Per AssetRule, the seed's ExecutionProgress (State, ErrorInfo.ErrorCount, …).
        "assetRules": execution_progress(store.objects.values()) if store else {},
        "objectStatusFiles": object_files,
        # Status files of this run that could not be written (e.g. a full disk).
        "statusFileErrors": list(file_errors[:_MAX_FILE_ERRORS]),
        "manifestErrors": health.manifest_errors,
        "errorCount": len(report.problems),
        "errors": [p.to_dict() for p in report.problems[:100]],
    }


def write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """`value` as JSON at `path`, atomically. ValueError, with nothing written, for a
    non-finite number: Python would write NaN/Infinity, which no JSON reader takes."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str, allow_nan=False)
    write_atomic(path, (text + "\n").encode())
