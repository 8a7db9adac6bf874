"""The operation log: Operations kept in the state directory, newest last, bounded.

Operations live in `operations.json` beside `state.json`, not in it: a run
that fails on bad input must leave the object store byte-for-byte as it was,
yet its Operation (with the errors) must still be recorded. The file is
written the same atomic way (temp file, fsync, rename) under its own lock, so
the daemon and a CLI `apply` can both record runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleetward.errors import StoreError
from fleetward.operations import Operation, OperationState
from fleetward.store.lock import exclusive_lock
from fleetward.store.tinydb import AtomicJSONStorage

OPERATIONS_FILE = "operations.json"
OPERATIONS_LOCK = "operations.lock"
OPERATIONS_LIMIT = 1000
_LOCK_TIMEOUT = 10.0
ORDERINGS = ("created_at", "state", "updated_at")


class OperationLog:
    def __init__(self, state_dir: Path | str, limit: int = OPERATIONS_LIMIT) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / OPERATIONS_FILE
        self.limit = limit
        self._storage = AtomicJSONStorage(str(self.path), backup=False)

    # -- reading ---------------------------------------------------------------------

    def all(self) -> list[Operation]:
        """Every kept operation, oldest first."""
        data = self._storage.read()
        table = (data or {}).get("operations", {})
        try:
            return [
                Operation.from_dict(doc)
                for _, doc in sorted(table.items(), key=lambda item: int(item[0]))
            ]
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError.one(
                f"The operation log {self.path} is corrupt",
                f"An operation record cannot be read ({exc!r}).",
                f"Move {self.path} away; fleetward starts a new log (object state is not affected).",
                location=str(self.path),
            ) from exc

    def get(self, operation_id: str) -> Operation | None:
        for op in self.all():
            if op.operation_id == operation_id:
                return op
        return None

    def query(
        self,
        *,
        state: OperationState | None = None,
        ordering: str = "-created_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[Operation], int]:
        """Operations filtered by state and ordered (a leading `-` reverses); and the total."""
        ops = [op for op in self.all() if state is None or op.state is state]
        reverse = ordering.startswith("-")
        field = ordering.removeprefix("-")
        if field not in ORDERINGS:
            raise ValueError(f"ordering must be one of {', '.join(ORDERINGS)} (with - to reverse)")
        keyed = {
            "created_at": lambda op: (op.created_at, op.updated_at),
            "updated_at": lambda op: (op.updated_at, op.created_at),
            "state": lambda op: (int(op.state), op.created_at),
        }[field]
        # Stable: records were appended in creation order, which breaks ties of equal seconds.
        ordered = sorted(ops, key=keyed, reverse=reverse) if field != "created_at" else ops
        if field == "created_at" and reverse:
            ordered = list(reversed(ops))
        total = len(ordered)
        end = None if limit is None else offset + limit
        return ordered[offset:end], total

    # -- writing ---------------------------------------------------------------------

    def record(self, *operations: Operation) -> None:
        """Insert or replace operations by id; drop the oldest past the limit."""
        self._update(lambda ops: _merge(ops, operations))

    def fail_unfinished(self, now: str, message: str) -> list[Operation]:
        """End every operation a stopped process left running; the ones ended."""
        ended: list[Operation] = []

        def update(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for doc in ops:
                op = Operation.from_dict(doc)
                if not op.state.final:
                    op = op.move(OperationState.FAILURE, now, message)
                    ended.append(op)
                out.append(op.to_dict())
            return out

        self._update(update)
        return ended

    def _update(self, change: Any) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(self.state_dir, exc) from exc
        with exclusive_lock(self.state_dir / OPERATIONS_LOCK, _LOCK_TIMEOUT):
            for leftover in self.state_dir.glob(self._storage.tmp_prefix + "*"):
                leftover.unlink(missing_ok=True)  # of a write a crash interrupted
            data = self._storage.read() or {}
            table = data.get("operations", {})
            docs = [doc for _, doc in sorted(table.items(), key=lambda item: int(item[0]))]
            docs = change(docs)[-self.limit :]
            try:
                self._storage.write({"operations": {str(i): d for i, d in enumerate(docs, 1)}})
            except OSError as exc:
                raise _unwritable(self.state_dir, exc) from exc


def _merge(docs: list[dict[str, Any]], operations: Iterable[Operation]) -> list[dict[str, Any]]:
    index = {doc.get("operation_id"): i for i, doc in enumerate(docs)}
    for op in operations:
        doc = op.to_dict()
        if op.operation_id in index:
            docs[index[op.operation_id]] = doc
        else:
            index[op.operation_id] = len(docs)
            docs.append(doc)
    return docs


def _unwritable(directory: Path, exc: OSError) -> StoreError:
    return StoreError.one(
        f"Cannot write the operation log in {directory}",
        f"{exc.strerror or exc} (errno {exc.errno}).",
        f"Make {directory} writable by this user, or pass another --state-dir.",
        location=str(directory),
    )
