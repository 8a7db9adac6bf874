"""The daemon's log lines: text for people, JSON (one object per line) for collectors.

Fields passed as `extra={"fields": {...}}` appear as `key=value` in text and
as keys in JSON, so one call site serves both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from fleetward.errors import FleetwardError
from fleetward.operations import OperationState
from fleetward.reporting import Reporter
from fleetward.timestamps import from_epoch, to_iso

if TYPE_CHECKING:
    from fleetward.runs import RunReport

logger = logging.getLogger("fleetward.daemon")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        when = to_iso(from_epoch(record.created))
        parts = [when, record.levelname.lower(), record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        body: dict[str, Any] = {
            "time": to_iso(from_epoch(record.created), "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Send every fleetward log line to stderr in `fmt` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's access log is one line per request (every scrape): off; its errors stay.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "1 change detected" per commit


def status_line(report: RunReport) -> str:
    """The daemon's one-line status for systemd (STATUS=…)."""
    op = report.operation
    rev = report.revision.short if report.revision else "?"
    return f"last run {op.state.name} at {rev}"


def log_run(report: RunReport) -> None:
    """The log line of a run, and one per problem (the first 20)."""
    op = report.operation
    summary = op.plan_summary or {}
    fields: dict[str, Any] = {
        "operation": op.operation_id,
        "trigger": op.trigger,
        "revision": report.revision.short if report.revision else None,
        "result": op.state.name,
        "create": summary.get("create", 0),
        "update": summary.get("update", 0),
        "stop": summary.get("stop", 0),
        "delete": summary.get("delete", 0),
        "errors": len(report.problems),
        "duration": f"{report.duration:.3f}s",
    }
    if report.applied is not None:
        fields["serial"] = report.applied.meta.serial
    level = logging.WARNING if op.state is OperationState.FAILURE else logging.INFO
    message = {
        OperationState.SUCCESS: "reconcile",
        OperationState.FAILURE: f"reconcile failed: {op.message}",
    }.get(op.state, f"reconcile {op.state.name.lower()}: {op.message}")
    logger.log(level, message, extra={"fields": fields})
    for p in report.problems[:20]:
        logger.warning(
            p.error,
            extra={"fields": {"location": p.location or "", "reason": p.reason}},
        )


class RunLog(Reporter):
    """The daemon's log as a reporter: a line per finished run, and a bug's traceback."""

    def run_finished(self, report: RunReport) -> None:
        failure = report.failure
        if isinstance(failure, Exception) and not isinstance(failure, FleetwardError):
            logger.error(
                "internal error in a reconcile",
                exc_info=(type(failure), failure, failure.__traceback__),
            )
        log_run(report)
