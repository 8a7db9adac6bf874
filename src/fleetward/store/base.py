"""The Store interface: read a snapshot, apply a change set atomically, read history.

Planning code sees only `StoreSnapshot` values, so a server-backed store can
replace the embedded TinyDB one without touching it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from fleetward.model import ObjectKey, StoredObject, StoreMeta, StoreSnapshot

HISTORY_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Everything one apply writes, checked against the serial it was planned from."""

    expected_lineage: str | None
    expected_serial: int
    revision: str
    upserts: Sequence[StoredObject]
    deletes: Sequence[ObjectKey]
    history_entry: Mapping[str, Any]
    # Labels of the revision's documents (None: keep what the store has, e.g. a saved plan).
    owner_labels: Mapping[str, Mapping[str, str]] | None = None


class Store(Protocol):
    def read(self) -> StoreSnapshot: ...

    def meta(self) -> StoreMeta: ...

    def apply(self, change_set: ChangeSet) -> StoreMeta:
        """Write every change at once, or nothing; bump the serial."""
        ...

    def history(self) -> list[dict[str, Any]]: ...

    def lock(self, timeout: float) -> AbstractContextManager[None]: ...
