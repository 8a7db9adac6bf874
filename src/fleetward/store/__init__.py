"""State stores: the interface, and the embedded TinyDB store."""

from fleetward.store.base import HISTORY_LIMIT, ChangeSet, Store
from fleetward.store.tinydb import BACKUP_FILE, STATE_FILE, TinyDBStore

__all__ = ["BACKUP_FILE", "HISTORY_LIMIT", "STATE_FILE", "ChangeSet", "Store", "TinyDBStore"]
