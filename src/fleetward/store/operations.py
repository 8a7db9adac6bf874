"""The operation log: Operations kept in the state directory, newest last, bounded.

Operations live in `operations.json` beside `state.json`, not in it: a run
that fails on bad input must leave the object store byte-for-byte as it was,
yet its Operation (with the errors) must still be recorded. The file is
replaced atomically (temp file, fsync, rename) under its own lock, so the
daemon and a CLI `apply` can both record runs.

The file keeps TinyDB's layout (`{"operations": {"1": {...}, ...}}`). A
long-lived log (the daemon's) keeps what it last read or wrote, keyed by the
file's inode, mtime and size, with each operation's JSON text: a run records
its operation three times, and re-reading and re-encoding a thousand kept
operations each time cost more than the run (bench_daemon's soak).
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fleetward.errors import StoreError, os_error
from fleetward.operations import Operation, OperationState
from fleetward.store.directory import make_state_dir, refuse_if_tracked
from fleetward.store.files import FileId, file_id, sweep_own, write_atomic
from fleetward.store.lock import exclusive_lock

OPERATIONS_FILE = "operations.json"
OPERATIONS_LOCK = "operations.lock"
OPERATIONS_LIMIT = 1000
_LOCK_TIMEOUT = 10.0
ORDERINGS = ("created_at", "state", "updated_at")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Entry:
    op: Operation
    text: str  # its JSON, as written


class PagedLog(ABC):
    """`query` of an operation log that lists `all()` of itself.

    Every log is bounded (a thousand operations): paging in Python, by `select`,
    keeps the one ordering every store shares, ties and all, so the CLI and HTTP
    API page the same way whichever store keeps the log."""

    @abstractmethod
    def all(self) -> list[Operation]:
        """Every kept operation, oldest first."""

    def query(
        self,
        *,
        state: OperationState | None = None,
        ordering: str = "-created_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[Operation], int]:
        """Operations filtered by state and ordered (a leading `-` reverses); and the total."""
        return select(self.all(), state=state, ordering=ordering, limit=limit, offset=offset)


class OperationLog(PagedLog):
    """The operation log of the state directory `state_dir` (an `OperationStore`)."""

    def __init__(self, state_dir: Path | str, limit: int = OPERATIONS_LIMIT) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / OPERATIONS_FILE
        self.limit = limit
        self._cache: tuple[FileId, list[_Entry]] | None = None
        self._mutex = threading.Lock()  # the HTTP threads read while the worker writes
        self._checked = False  # whether Git tracks the directory: asked at the first write

    # -- reading ---------------------------------------------------------------------

    def all(self) -> list[Operation]:
        """Every kept operation, oldest first."""
        with self._mutex:
            return [entry.op for entry in self._entries()]

    def get(self, operation_id: str) -> Operation | None:
        for op in self.all():
            if op.operation_id == operation_id:
                return op
        return None

    # -- writing ---------------------------------------------------------------------

    def record(self, *operations: Operation) -> None:
        """Insert or replace operations by id; drop the oldest past the limit."""
        self._update(lambda entries: _merge(entries, operations))

    def replace(self, operations: Iterable[Operation]) -> None:
        """Keep exactly `operations` (oldest first): a store copied in (`Store.restore`)."""
        entries = [_entry(op) for op in operations]
        self._update(lambda _: entries)

    def fail_unfinished(self, now: str, message: str) -> list[Operation]:
        """End every operation a stopped process left running; the ones ended."""
        ended: list[Operation] = []

        def update(entries: list[_Entry]) -> list[_Entry]:
            out = []
            for entry in entries:
                # A SCHEDULED operation waits for a window or an approval, not for
                # this process: it outlives restarts.
                if entry.op.state.final or entry.op.state is OperationState.SCHEDULED:
                    out.append(entry)
                    continue
                op = entry.op.move(OperationState.FAILURE, now, message)
                ended.append(op)
                out.append(_entry(op))
            return out

        self._update(update)
        return ended

    def _update(self, change: Callable[[list[_Entry]], list[_Entry]]) -> None:
        if not self._checked:
            refuse_if_tracked(self.state_dir)
            self._checked = True
        try:
            make_state_dir(self.state_dir)
        except OSError as exc:
            raise _unwritable(self.state_dir, exc) from exc
        with self._mutex, exclusive_lock(self.state_dir / OPERATIONS_LOCK, _LOCK_TIMEOUT):
            sweep_own(self.state_dir, OPERATIONS_FILE)
            entries = bounded(change(list(self._entries())), self.limit, _final)
            body = ",".join(f'"{i}":{e.text}' for i, e in enumerate(entries, 1))
            try:
                written = write_atomic(self.path, ('{"operations":{' + body + "}}").encode())
            except OSError as exc:
                self._cache = None
                raise _unwritable(self.state_dir, exc) from exc
            self._cache = (written, entries)

    # -- the file --------------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        """The kept operations; the caller holds the mutex."""
        current = file_id(self.path)
        if current is None:
            self._cache = None
            return []
        if self._cache is not None and self._cache[0] == current:
            return self._cache[1]
        entries = self._read()
        self._cache = (current, entries)
        return entries

    def _read(self) -> list[_Entry]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise os_error(
                exc,
                StoreError,
                f"Cannot read the operation log {self.path}",
                "Check the file's permissions, or pass another --state-dir.",
                self.path,
            ) from exc
        try:
            table = json.loads(raw)["operations"]
            docs = [doc for _, doc in sorted(table.items(), key=lambda item: int(item[0]))]
            return [_Entry(Operation.from_dict(doc), _dumps(doc)) for doc in docs]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StoreError.one(
                f"The operation log {self.path} is corrupt",
                f"It cannot be read as a list of operations ({exc!r}).",
                f"Move {self.path} away; fleetward starts a new log (object state is not "
                "affected).",
                location=str(self.path),
            ) from exc


def select(
    ops: list[Operation],
    *,
    state: OperationState | None = None,
    ordering: str = "-created_at",
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[Operation], int]:
    """A page of `ops` (oldest first) in `state`, by `ordering`; and how many match.

    Every operation log answers `query` with this, so the CLI and HTTP API page
    the same way whichever store keeps the log."""
    ops = [op for op in ops if state is None or op.state is state]
    reverse = ordering.startswith("-")
    field = ordering.removeprefix("-")
    if field not in ORDERINGS:
        raise ValueError(f"ordering must be one of {', '.join(ORDERINGS)} (with - to reverse)")
    if field == "created_at":
        # Records are kept in creation order, which also breaks ties of equal seconds.
        ordered = list(reversed(ops)) if reverse else ops
    else:
        keyed: Callable[[Operation], tuple[Any, ...]] = {
            "updated_at": lambda op: (op.updated_at, op.created_at),
            "state": lambda op: (int(op.state), op.created_at),
        }[field]
        ordered = sorted(ops, key=keyed, reverse=reverse)
    end = None if limit is None else offset + limit
    return ordered[offset:end], len(ordered)


def bounded(entries: list[T], limit: int, final: Callable[[T], bool]) -> list[T]:
    """The newest `limit` entries (oldest first); operations still waiting or running
    (not `final`) are never dropped, so a log may hold more of those than `limit`."""
    excess = len(entries) - limit
    if excess <= 0:
        return entries
    out = []
    for entry in entries:
        if excess > 0 and final(entry):
            excess -= 1
            continue
        out.append(entry)
    return out


def _final(entry: _Entry) -> bool:
    return entry.op.state.final


def _entry(op: Operation) -> _Entry:
    return _Entry(op, _dumps(op.to_dict()))


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _merge(entries: list[_Entry], operations: Iterable[Operation]) -> list[_Entry]:
    index = {e.op.operation_id: i for i, e in enumerate(entries)}
    for op in operations:
        entry = _entry(op)
        if op.operation_id in index:
            entries[index[op.operation_id]] = entry
        else:
            index[op.operation_id] = len(entries)
            entries.append(entry)
    return entries


def _unwritable(directory: Path, exc: OSError) -> StoreError:
    return os_error(
        exc,
        StoreError,
        f"Cannot write the operation log in {directory}",
        f"Make {directory} writable by this user, or pass another --state-dir.",
        directory,
    )
