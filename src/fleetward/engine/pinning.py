"""The rollback pin around a run's write: set with it, put back if it fails, and obeyed.

A rollback pins the store to the revision it returns to just before its write,
under the store's lock; a write that fails puts the pin it replaced back. A run
that follows the pin (the daemon's) stops if the pin changed while it read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from fleetward.engine.run import Run
from fleetward.errors import FleetwardError
from fleetward.model import StoreSnapshot
from fleetward.operations import OperationState
from fleetward.runs import Interrupted
from fleetward.store import Pin, Store

__all__ = ["pin_store", "refuse_moved_pin", "unpin_on_failure"]


def pin_store(store: Store, run: Run, rollback: Pin, stored: StoreSnapshot) -> Pin:
    """Pin `store` for `rollback` (the caller holds the store's lock); the pin set."""
    pin = replace(rollback, rolled_back_from=stored.meta.last_applied_revision)
    store.set_pin(pin)
    run.pin = pin
    return pin


@contextlib.contextmanager
def unpin_on_failure(
    store: Store, rollback: Pin | None, before: Pin | None, serial: int
) -> Iterator[None]:
    """Put back the pin a rollback's failed write replaced, unless the write happened
    all the same (the store's serial moved past `serial`: Ctrl-C after the commit)."""
    try:
        yield
    except BaseException:
        if rollback is not None and not _moved_past(store, serial):
            store.set_pin(before)
        raise


def refuse_moved_pin(read: Pin | None, now: Pin | None) -> None:
    """Stop a run whose revision was chosen under another pin than the one now kept (a
    rollback or resume landed while it read): its plan would undo that."""
    if (read.revision if read else None) != (now.revision if now else None):
        raise Interrupted(
            OperationState.CANCELLED,
            "the rollback pin changed while this run read its revision; nothing was written, "
            "and the next run reconciles what the store is pinned to now",
        )


def _moved_past(store: Store, serial: int) -> bool:
    """Whether the store's serial is past `serial` (unknown counts as moved: the pin
    then stays with the revision that may have been written)."""
    try:
        return store.meta().serial != serial
    except FleetwardError:
        return True
