"""State stores: the Store interface, the embedded TinyDB store, the in-memory double,
the PostgreSQL store (loaded only when a URL names it), and `open_store`, which makes
the one a location names."""

from fleetward.store.base import (
    HISTORY_LIMIT,
    OUTBOX_LIMIT,
    ChangeSet,
    OperationStore,
    OutboxEntry,
    Pin,
    StatusChange,
    Store,
    StoreDump,
)
from fleetward.store.location import MEMORY, open_configured, open_store, state_directory
from fleetward.store.memory import MemoryOperationLog, MemoryRejections, MemoryStore
from fleetward.store.operations import OperationLog
from fleetward.store.rejections import RejectionFile, RejectionStore
from fleetward.store.state_file import BACKUP_FILE, STATE_FILE
from fleetward.store.tinydb import TinyDBStore

__all__ = [
    "BACKUP_FILE",
    "HISTORY_LIMIT",
    "MEMORY",
    "OUTBOX_LIMIT",
    "STATE_FILE",
    "ChangeSet",
    "MemoryOperationLog",
    "MemoryRejections",
    "MemoryStore",
    "OperationLog",
    "OperationStore",
    "OutboxEntry",
    "Pin",
    "RejectionFile",
    "RejectionStore",
    "StatusChange",
    "Store",
    "StoreDump",
    "TinyDBStore",
    "open_configured",
    "open_store",
    "state_directory",
]
