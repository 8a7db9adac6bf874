"""The store a command plans and applies against, read warm across commands.

A command is one process: without help, each one decodes the whole state file
again. The TinyDB store can leave its decoded copy beside the state file
(`fleetward.store.snapshot_file`); `plan` and `apply` use it unless `--no-cache`
asks for every read to be cold.
"""

from __future__ import annotations

from fleetward.pipeline import SourceOptions
from fleetward.store import Store, TinyDBStore


def open_command_store(store: Store, sources: SourceOptions) -> Store:
    """`store` (the one --store or --state-dir names), reading and leaving the TinyDB
    snapshot entry unless `sources` say `--no-cache`."""
    if isinstance(store, TinyDBStore) and not sources.no_cache:
        store.keep_snapshots()
    return store


def leave_snapshot(store: Store) -> None:
    """After a write: the snapshot entry of the new state file, for the next command."""
    if isinstance(store, TinyDBStore):
        store.save_snapshot()
