"""The in-memory store: the double of the Store interface, held to the same contract tests.

Everything is kept as JSON text, as a store on disk or on a server keeps it:
what goes in is copied, what comes out is a fresh value, so a caller that
mutates a spec it passed or got back changes nothing stored (the aliasing
TinyDB allows, LIBRARIES.md). One mutex makes every call atomic across threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fleetward.errors import LockTimeout
from fleetward.model import ObjectKey, StoredObject, StoreMeta, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.store.base import (
    HISTORY_LIMIT,
    OUTBOX_LIMIT,
    ChangeSet,
    OutboxEntry,
    Pin,
    StatusChange,
    StoreDump,
    applied_meta,
    check_fence,
    outbox_added,
    outbox_selected,
    status_change_set,
)
from fleetward.store.operations import OPERATIONS_LIMIT, PagedLog, bounded
from fleetward.store.suspension import Suspension

LOCATION = "memory:"


@dataclass(frozen=True, slots=True)
class _Kept:
    """One object as stored: its JSON, and the two fields the owner labels need."""

    owner: str
    state: str
    text: str


@dataclass(frozen=True, slots=True)
class _KeptOperation:
    final: bool
    text: str


class MemoryOperationLog(PagedLog):
    """An operation log in memory (an `OperationStore`), with the file log's rules."""

    def __init__(self, limit: int = OPERATIONS_LIMIT) -> None:
        self.limit = limit
        self._mutex = threading.Lock()
        self._kept: dict[str, _KeptOperation] = {}  # by id, oldest first

    def all(self) -> list[Operation]:
        with self._mutex:
            kept = list(self._kept.values())
        return [_operation(k.text) for k in kept]

    def get(self, operation_id: str) -> Operation | None:
        with self._mutex:
            found = self._kept.get(operation_id)
        return None if found is None else _operation(found.text)

    def record(self, *operations: Operation) -> None:
        kept = {op.operation_id: _kept_operation(op) for op in operations}
        # A dict keeps the place of a key assigned again: a record replaces in place.
        self._update(lambda current: {**current, **kept})

    def replace(self, operations: Iterable[Operation]) -> None:
        """Keep exactly `operations`, oldest first (`Store.restore`)."""
        kept = {op.operation_id: _kept_operation(op) for op in operations}
        self._update(lambda _: kept)

    def fail_unfinished(self, now: str, message: str) -> list[Operation]:
        ended: list[Operation] = []

        def update(current: dict[str, _KeptOperation]) -> dict[str, _KeptOperation]:
            out = dict(current)
            for op_id, entry in current.items():
                op = _operation(entry.text)
                if entry.final or op.state is OperationState.SCHEDULED:
                    continue
                op = op.move(OperationState.FAILURE, now, message)
                ended.append(op)
                out[op_id] = _kept_operation(op)
            return out

        self._update(update)
        return ended

    def _update(
        self, change: Callable[[dict[str, _KeptOperation]], dict[str, _KeptOperation]]
    ) -> None:
        with self._mutex:
            items = bounded(list(change(self._kept).items()), self.limit, lambda i: i[1].final)
            self._kept = dict(items)


class MemoryRejections:
    """Rejected plans in memory (a `RejectionStore`), kept as JSON text like the rest."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._text = "{}"

    def read(self) -> dict[str, dict[str, Any]]:
        """Never None: nothing in memory is unreadable."""
        with self._mutex:
            found: dict[str, dict[str, Any]] = json.loads(self._text)
        return found

    def add(self, policy: str, digest: str, op: Operation) -> None:
        entry = {
            "digest": digest,
            "operationId": op.operation_id,
            "state": op.state.name,
            "at": op.updated_at,
        }
        self._change(lambda found: {**found, policy: entry})

    def keep(self, policies: Iterable[str]) -> None:
        wanted = set(policies)
        self._change(lambda found: {p: e for p, e in found.items() if p in wanted})

    def lift(self, policy: str) -> None:
        self._change(lambda found: {p: e for p, e in found.items() if p != policy})

    def replace(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        self._change(lambda _: {p: dict(e) for p, e in data.items()})

    def _change(
        self, change: Callable[[dict[str, Any]], Mapping[str, Any]]
    ) -> None:
        with self._mutex:
            self._text = _dumps(change(json.loads(self._text)))


class MemoryStore:
    """A `Store` held in this process: nothing survives it, everything else is the same."""

    location = LOCATION

    def __init__(self, operations_limit: int = OPERATIONS_LIMIT) -> None:
        self.operations = MemoryOperationLog(operations_limit)
        self.rejections = MemoryRejections()
        self._mutex = threading.Lock()  # every read and write: each call is atomic
        self._writer = threading.Lock()  # `lock`: one writer at a time
        self._holder: str | None = None  # the thread holding `_writer`, for the waiter
        self._meta = StoreMeta(lineage=None, serial=0, last_applied_revision=None)
        self._objects: dict[ObjectKey, _Kept] = {}
        self._history: list[str] = []
        self._outbox: list[OutboxEntry] = []  # values made from JSON text, never shared
        self.outbox_limit = OUTBOX_LIMIT
        self._pin: Pin | None = None  # frozen, of plain values: shared safely
        self._suspension: Suspension | None = None  # frozen too
        self._notify_state: str | None = None  # JSON text: never shared

    def exists(self) -> bool:
        return True  # made by opening it

    def read(self) -> StoreSnapshot:
        with self._mutex:
            return self._snapshot()

    def meta(self) -> StoreMeta:
        with self._mutex:
            return _copy_meta(self._meta)

    def history(self) -> list[dict[str, Any]]:
        with self._mutex:
            kept = list(self._history)
        return [json.loads(text) for text in kept]

    def apply(self, change_set: ChangeSet) -> StoreMeta:
        with self._mutex:
            return self._apply(change_set)

    def set_status(self, change: StatusChange) -> StoreMeta:
        with self._mutex:
            return self._apply(status_change_set(self._snapshot(), change, LOCATION))

    def dump(self) -> StoreDump:
        with self._mutex:
            snapshot, history = self._snapshot(), list(self._history)
            outbox = [_copy_entry(entry) for entry in self._outbox]
        rejections = self.rejections.read()
        return StoreDump(
            snapshot.meta,
            list(snapshot.objects.values()),
            [json.loads(text) for text in history],
            self.operations.all(),
            rejections,
            outbox,
        )

    def restore(self, dump: StoreDump) -> None:
        self.operations.replace(dump.operations)
        self.rejections.replace(dump.rejections)
        objects = {
            obj.key: _Kept(obj.owner, obj.state.value, _dumps(obj.to_doc()))
            for obj in dump.objects
        }
        history = [_dumps(dict(entry)) for entry in dump.history][-HISTORY_LIMIT:]
        outbox = [_copy_entry(entry) for entry in dump.outbox]
        with self._mutex:
            self._objects, self._history = objects, history
            self._outbox = outbox
            self._meta = _copy_meta(dump.meta)

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        me = threading.current_thread().name
        if not self._writer.acquire(timeout=max(timeout, 0.0)):
            holder = self._holder or "unknown"
            raise LockTimeout.one(
                f"The in-memory store is locked by another writer (thread {holder})",
                f"Its lock has been held for longer than the lock timeout ({timeout:g}s); "
                "only one writer may write the store at a time.",
                f"Wait for thread {holder} to finish, or raise the lock timeout.",
                location=LOCATION,
                holder=holder,
            )
        self._holder = me
        try:
            yield
        finally:
            self._holder = None
            self._writer.release()

    def pin(self) -> Pin | None:
        with self._mutex:
            return self._pin

    def set_pin(self, pin: Pin | None) -> None:
        with self._mutex:
            self._pin = pin

    def suspension(self) -> Suspension | None:
        with self._mutex:
            return self._suspension

    def set_suspension(self, suspension: Suspension | None) -> None:
        with self._mutex:
            self._suspension = suspension

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        copies = [_copy_entry(entry) for entry in entries]
        with self._mutex:
            self._outbox, dropped = outbox_added(self._outbox, copies, self.outbox_limit)
            return dropped

    def outbox_pending(
        self, target: str | None = None, limit: int | None = None
    ) -> list[OutboxEntry]:
        with self._mutex:
            kept = outbox_selected(self._outbox, target, limit)
        return [_copy_entry(entry) for entry in kept]

    def outbox_remove(self, entry_ids: Collection[str]) -> None:
        with self._mutex:
            self._outbox = [e for e in self._outbox if e.entry_id not in entry_ids]

    def notify_state(self) -> dict[str, Any] | None:
        with self._mutex:
            text = self._notify_state
        return dict(json.loads(text)) if text is not None else None

    def set_notify_state(self, doc: Mapping[str, Any]) -> None:
        text = json.dumps(doc)
        with self._mutex:
            self._notify_state = text

    # -- under the mutex -------------------------------------------------------------

    def _snapshot(self) -> StoreSnapshot:
        objects = {key: _stored(kept) for key, kept in self._objects.items()}
        return StoreSnapshot(_copy_meta(self._meta), objects)

    def _apply(self, change_set: ChangeSet) -> StoreMeta:
        """Build the whole new state, then swap it in: a failure midway changes nothing."""
        meta = self._meta
        check_fence(meta, change_set.expected_lineage, change_set.expected_serial, LOCATION)
        objects = dict(self._objects)
        for key in change_set.deletes:
            objects.pop(key, None)
        for obj in change_set.upserts:
            objects[obj.key] = _Kept(obj.owner, obj.state.value, _dumps(obj.to_doc()))
        new_meta = applied_meta(
            meta, change_set, ((k.owner, k.state) for k in objects.values())
        )
        entry = _dumps({**change_set.history_entry, "serial": new_meta.serial})
        history = [*self._history, entry][-HISTORY_LIMIT:]
        self._objects, self._history = objects, history
        self._meta = _copy_meta(new_meta)
        return _copy_meta(new_meta)


def _copy_meta(meta: StoreMeta) -> StoreMeta:
    labels: Mapping[str, Mapping[str, str]] = {
        owner: dict(labels) for owner, labels in meta.owner_labels.items()
    }
    return StoreMeta(meta.lineage, meta.serial, meta.last_applied_revision, labels)


def _copy_entry(entry: OutboxEntry) -> OutboxEntry:
    """An entry through JSON, as a store on disk keeps it: no caller shares its event."""
    return OutboxEntry.from_dict(json.loads(_dumps(entry.to_dict())))


def _stored(kept: _Kept) -> StoredObject:
    return StoredObject.from_doc(json.loads(kept.text))


def _kept_operation(op: Operation) -> _KeptOperation:
    return _KeptOperation(op.state.final, _dumps(op.to_dict()))


def _operation(text: str) -> Operation:
    return Operation.from_dict(json.loads(text))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
