"""What operations control needs from outside: the operation log, the run queue, the clock.

Small interfaces, so control's modules depend on behaviour, not on the files of
`store.operations.OperationLog` and `store.rejections`, or on `triggers.Coalescer`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetward.model import StoreMeta
from fleetward.operations import Operation
from fleetward.store import RejectionStore
from fleetward.timestamps import Clock, to_iso
from fleetward.timestamps import now as utc_now


class HttpFront(Protocol):
    """The daemon's HTTP API while it serves: its address, and how to stop it."""

    @property
    def url(self) -> str: ...

    def stop(self, timeout: float) -> None: ...


class OperationStore(Protocol):
    """The operation log as control uses it (store.operations.OperationLog)."""

    limit: int

    def all(self) -> list[Operation]: ...

    def get(self, operation_id: str) -> Operation | None: ...

    def record(self, *operations: Operation) -> None: ...


class StoreHistory(Protocol):
    """What a rollback is resolved against: the store's history and where it is now
    (`Store.history`, `Store.meta`)."""

    def history(self) -> list[dict[str, Any]]: ...

    def meta(self) -> StoreMeta: ...


class RunQueue(Protocol):
    """The worker's queue (daemon.triggers.Coalescer)."""

    def request(self, reason: str) -> Operation | None: ...

    def push(self, op: Operation) -> bool: ...

    def remove(self, operation_id: str) -> Operation | None: ...

    def find(self, operation_id: str) -> Operation | None: ...

    def find_any(self) -> bool: ...


@dataclass
class ControlContext:
    """What the parts of operations control share: the log, the queue, the rejections,
    the clock, the hook that reschedules wake-ups, and the mutex that orders them.

    `mutex` orders the HTTP threads and the worker: the worker holds it from its
    last checkpoint through the write and the settling of held operations, so an
    operator's cancel or approval lands wholly before a write or wholly after it.
    """

    log: OperationStore
    queue: RunQueue
    rejections: RejectionStore
    clock: Clock = utc_now
    # The held operations changed: reschedule wake-ups.
    on_change: Callable[[], None] = lambda: None
    mutex: threading.RLock = field(default_factory=threading.RLock)

    def now_iso(self) -> str:
        return to_iso(self.clock())


__all__ = ["Clock", "ControlContext", "OperationStore", "RunQueue", "utc_now"]
