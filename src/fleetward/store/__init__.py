"""State stores: the Store interface, the embedded TinyDB store, the in-memory double,
and `open_store`, which makes the one a location names."""

from fleetward.store.base import (
    HISTORY_LIMIT,
    OUTBOX_LIMIT,
    ChangeSet,
    OperationStore,
    OutboxEntry,
    Pin,
    StatusChange,
    Store,
)
from fleetward.store.location import MEMORY, open_store
from fleetward.store.memory import MemoryOperationLog, MemoryStore
from fleetward.store.operations import OperationLog
from fleetward.store.tinydb import BACKUP_FILE, STATE_FILE, TinyDBStore

__all__ = [
    "BACKUP_FILE",
    "HISTORY_LIMIT",
    "MEMORY",
    "OUTBOX_LIMIT",
    "STATE_FILE",
    "ChangeSet",
    "MemoryOperationLog",
    "MemoryStore",
    "OperationLog",
    "OperationStore",
    "OutboxEntry",
    "Pin",
    "StatusChange",
    "Store",
    "TinyDBStore",
    "open_store",
]
