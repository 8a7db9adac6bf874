"""The embedded store: TinyDB in one state directory, one atomic file write per apply.

`TinyDBStore` reads and writes `state.json` through `state_file` (TinyDB with an
in-memory transaction and an atomic storage), remembers the file it last read or
wrote, and keeps the operation log, the rejections, the rollback pin and the
notification outbox in their own files beside it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from fleetward.errors import StoreError
from fleetward.model import ObjectKey, StoredObject, StoreMeta, StoreSnapshot
from fleetward.store.base import (
    HISTORY_LIMIT,
    ChangeSet,
    OutboxEntry,
    Pin,
    StatusChange,
    StoreDump,
    applied_meta,
    check_fence,
    status_change_set,
)
from fleetward.store.directory import make_state_dir, refuse_if_tracked
from fleetward.store.files import FileId, file_id, sweep_own
from fleetward.store.lock import exclusive_lock
from fleetward.store.operations import OperationLog
from fleetward.store.outbox import OutboxFile, read_notify_state, write_notify_state
from fleetward.store.pin import read_pin, write_pin
from fleetward.store.rejections import RejectionFile
from fleetward.store.snapshot_file import Decoded, SnapshotFile
from fleetward.store.state_file import (
    STATE_FILE,
    AtomicJSONStorage,
    EncodedDocs,
    Transaction,
    corrupt,
    meta_doc,
    read_meta,
    unwritable,
)
from fleetward.store.suspension import (
    Suspension,
    clear_suspension,
    read_suspension,
    write_suspension,
)

logger = logging.getLogger(__name__)

LOCK_FILE = "state.lock"


@dataclass(slots=True)
class _Cached:
    """The state file as last read or written by this instance."""

    file_id: FileId
    # None while the copy came from a snapshot entry and no write needed the tables yet.
    tables: dict[str, dict[str, Any]] | None
    snapshot: StoreSnapshot | None = None
    ids: dict[str, str] | None = None  # object key → doc id in the objects table
    edges: bytes | None = None  # the file's `edges_digest`, when known
    decoded: Decoded | None = None  # the snapshot entry it came from
    saved: bool = False  # a snapshot entry of this file exists (was loaded or written)

    def table_data(self) -> dict[str, dict[str, Any]]:
        """The file's tables; made from the snapshot entry the first time they are needed."""
        if self.tables is None:
            assert self.decoded is not None  # one of the two is always set
            self.tables = {**self.decoded.tables, "objects": self.decoded.objects_table()}
        return self.tables


class TinyDBStore:
    """The store in `state_dir` (a `Store`), with its operation log and rejections beside it.

    An instance remembers the file it last read or wrote, keyed by the file's
    inode, mtime and size: a long-lived instance (the daemon's) neither parses
    `state.json` again nor rebuilds its objects while no one else changed it.
    Every write replaces the file (a new inode), and a hand edit moves its
    mtime, so a stale copy is never used.

    The first use of an instance refuses a directory whose files Git tracks
    (`refuse_if_tracked`): once per instance, so once per command and once per
    daemon, never per reconcile.
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STATE_FILE
        self._cached: _Cached | None = None
        self._encoded: EncodedDocs = {}
        self._checked = False
        # The decoded copy of state.json left for the next process (`keep_snapshots`).
        self.snapshots: SnapshotFile | None = None
        self.operations = OperationLog(self.state_dir)
        self.rejections = RejectionFile(self.state_dir)
        self._outbox = OutboxFile(self.state_dir)

    @property
    def location(self) -> str:
        return str(self.state_dir)

    def exists(self) -> bool:
        return self.state_dir.is_dir()

    def keep_snapshots(self) -> None:
        """Read the state file through its snapshot entry (`snapshot_file`), and leave one
        for the next process after a cold read or a write (`save_snapshot`).

        For one-shot processes (the CLI): a daemon keeps its copy in memory, and writing
        the entry after every apply would only cost it time.
        """
        self.snapshots = SnapshotFile(self.path)

    def save_snapshot(self) -> None:
        """Leave the snapshot entry of the state file as last read or written here, if
        there is none yet: the next command reads the store warm."""
        cached = self._cached
        if self.snapshots is None or cached is None or cached.saved:
            return
        if cached.snapshot is None or cached.edges is None or cached.ids is None:
            return
        tables = cached.table_data()
        rest = {name: table for name, table in tables.items() if name != "objects"}
        self.snapshots.save(
            cached.file_id, cached.edges, Decoded(rest, cached.ids, cached.snapshot)
        )
        cached.saved = True

    def _check_once(self) -> None:
        if not self._checked:
            refuse_if_tracked(self.state_dir)
            self._checked = True

    # -- reading ---------------------------------------------------------------

    def _valid_cache(self) -> _Cached | None:
        self._check_once()
        cached = self._cached
        if cached is not None and cached.file_id == file_id(self.path):
            return cached
        self._cached = None
        return None

    @contextmanager
    def _open(self, cached: _Cached | None = None) -> Iterator[tuple[TinyDB, Transaction]]:
        data = None
        if cached is not None:
            # TinyDB edits the tables it reads in place: hand it copies of the small
            # ones; objects are only ever replaced whole (`put_table`).
            tables = cached.table_data()
            data = {name: dict(table) for name, table in tables.items() if name != "objects"}
            data["objects"] = tables.get("objects", {})
        storage = functools.partial(AtomicJSONStorage, encoded=self._encoded)
        middleware = Transaction(storage, data)  # type: ignore[arg-type]  # a Storage factory
        db = TinyDB(str(self.path), storage=middleware)
        try:
            yield db, middleware
        finally:
            db.close()

    def _remember(self, transaction: Transaction) -> _Cached | None:
        """Keep the transaction's tables as the content of the file it read or wrote."""
        tables, file_id = transaction.data, transaction.file_id
        if tables is None or file_id is None:
            self._cached = None
            return None
        self._cached = _Cached(file_id, tables, edges=transaction.edges)
        return self._cached

    def _load_snapshot(self) -> _Cached | None:
        """The state file's content from its snapshot entry, if there is a valid one."""
        if self.snapshots is None:
            return None
        found = self.snapshots.load()
        if found is None:
            return None
        file_id, decoded = found
        self._cached = _Cached(
            file_id,
            None,
            snapshot=decoded.snapshot,
            ids=decoded.ids,
            decoded=decoded,
            saved=True,
        )
        return self._cached

    def meta(self) -> StoreMeta:
        with self._open(self._valid_cache()) as (db, _):
            return read_meta(db, self.path)

    def read(self) -> StoreSnapshot:
        cached = self._valid_cache() or self._load_snapshot()
        if cached is not None and cached.snapshot is not None:
            return cached.snapshot
        with self._open(cached) as (db, transaction):
            meta = read_meta(db, self.path)
            objects: dict[ObjectKey, StoredObject] = {}
            for doc in db.table("objects", cache_size=0).all():
                try:
                    obj = StoredObject.from_doc(doc)
                except (KeyError, ValueError, TypeError) as exc:
                    raise corrupt(
                        self.path, f"object document {doc.doc_id} is malformed ({exc!r})"
                    ) from exc
                objects[obj.key] = obj
            snapshot = StoreSnapshot(meta, objects)
            remembered = self._remember(transaction) if cached is None else cached
            if remembered is not None:
                remembered.snapshot = snapshot
                if remembered.ids is None:
                    remembered.ids = {
                        o["key"]: i for i, o in transaction.table_data("objects").items()
                    }
        self.save_snapshot()
        return snapshot

    def history(self) -> list[dict[str, Any]]:
        with self._open(self._valid_cache()) as (db, _):
            return [dict(d) for d in db.table("history", cache_size=0).all()]

    # -- writing ---------------------------------------------------------------

    def lock(self, timeout: float) -> AbstractContextManager[None]:
        self._check_once()
        self._make_dir()  # no sweep here: another process may be writing until we hold the lock
        return exclusive_lock(self.state_dir / LOCK_FILE, timeout)

    def apply(self, change_set: ChangeSet) -> StoreMeta:
        """One atomic write of every change; the caller holds the lock."""
        self._check_once()
        self._ensure_dir()
        before = self._valid_cache()
        self._cached = None  # whatever happens below, the old copy is no longer the file
        with self._open(before) as (db, transaction):
            meta = read_meta(db, self.path)
            check_fence(
                meta, change_set.expected_lineage, change_set.expected_serial, str(self.path)
            )
            # Objects go in at the storage level, in TinyDB's layout: every
            # document keeps its doc id, new ones get the next free ids.
            table = transaction.table_data("objects")
            known_ids = before.ids if before is not None else None
            ids = (
                dict(known_ids)
                if known_ids is not None
                else {doc["key"]: doc_id for doc_id, doc in table.items()}
            )
            was_empty = not table and meta.lineage is None
            for key in change_set.deletes:
                if key in ids:
                    del table[ids.pop(key)]
            next_id = max((int(i) for i in table), default=0) + 1
            for obj in change_set.upserts:
                doc_id = ids.get(obj.key)
                if doc_id is None:
                    doc_id, next_id = str(next_id), next_id + 1
                    ids[obj.key] = doc_id
                table[doc_id] = obj.to_doc()
            transaction.put_table("objects", table)
            new_meta = applied_meta(
                meta,
                change_set,
                ((d.get("owner"), d.get("state", "active")) for d in table.values()),
            )
            meta_table = db.table("meta", cache_size=0)
            meta_table.truncate()
            meta_table.insert(meta_doc(new_meta))
            history = db.table("history", cache_size=0)
            history.insert({**change_set.history_entry, "serial": new_meta.serial})
            old = sorted(d.doc_id for d in history.all())
            if len(old) > HISTORY_LIMIT:
                history.remove(doc_ids=old[: len(old) - HISTORY_LIMIT])
            try:
                transaction.commit()
            except OSError as exc:
                raise unwritable(self.state_dir, exc) from exc
            after = self._remember(transaction)
            if after is not None:
                after.ids = ids
                previous = before.snapshot if before is not None else None
                if previous is not None or was_empty:
                    objects = dict(previous.objects) if previous is not None else {}
                    for key in change_set.deletes:
                        objects.pop(key, None)
                    for obj in change_set.upserts:
                        objects[obj.key] = obj
                    after.snapshot = StoreSnapshot(new_meta, objects)
            return new_meta

    def set_status(self, change: StatusChange) -> StoreMeta:
        """The objects' new status in one atomic write; the caller holds the lock."""
        return self.apply(status_change_set(self.read(), change, str(self.path)))

    # -- the rollback pin (pin.json, apart from state.json) ----------------------------

    def pin(self) -> Pin | None:
        return read_pin(self.state_dir)

    def set_pin(self, pin: Pin | None) -> None:
        self._check_once()
        if pin is not None:
            self._make_dir()
        write_pin(self.state_dir, pin)

    # -- the suspension (suspend.json, apart from state.json, as it always was) ----------

    def suspension(self) -> Suspension | None:
        return read_suspension(self.state_dir)

    def set_suspension(self, suspension: Suspension | None) -> None:
        if suspension is None:
            clear_suspension(self.state_dir)  # a corrupt file goes too: resuming always works
        else:
            write_suspension(self.state_dir, suspension)

    def dump(self) -> StoreDump:
        """The state file, the operation log, the rejections and the outbox; the caller
        holds the lock."""
        snapshot = self.read()
        rejections = self.rejections.read()
        if rejections is None:
            raise StoreError.one(
                f"Cannot read the rejections of {self.state_dir}",
                f"{self.rejections.path} is damaged or unreadable (the log says why).",
                f"Fix or remove {self.rejections.path} (removing it forgets the rejected "
                "plans), then retry.",
                location=str(self.rejections.path),
            )
        return StoreDump(
            snapshot.meta,
            list(snapshot.objects.values()),
            self.history(),
            self.operations.all(),
            rejections,
            self._outbox.pending(),
        )

    def restore(self, dump: StoreDump) -> None:
        """Write the log, rejections and outbox, then the state file last (each
        atomically): until the state file is replaced, the store reads as what it was."""
        self._check_once()
        self._ensure_dir()
        self.operations.replace(dump.operations)
        self.rejections.replace(dump.rejections)
        self._outbox.replace(dump.outbox)
        tables: dict[str, dict[str, Any]] = {
            "objects": {str(i): obj.to_doc() for i, obj in enumerate(dump.objects, 1)},
            "meta": {"1": meta_doc(dump.meta)} if dump.meta.lineage is not None else {},
            "history": {str(i): dict(entry) for i, entry in enumerate(dump.history, 1)},
        }
        self._cached = None
        try:
            AtomicJSONStorage(str(self.path)).write(tables)
        except OSError as exc:
            raise unwritable(self.state_dir, exc) from exc

    # -- the notification outbox (outbox.json, apart from state.json) -----------------

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        self._check_once()
        return self._outbox.add(entries)

    def outbox_pending(
        self, target: str | None = None, limit: int | None = None
    ) -> list[OutboxEntry]:
        return self._outbox.pending(target, limit)

    def outbox_remove(self, entry_ids: Collection[str]) -> None:
        self._outbox.remove(entry_ids)

    def notify_state(self) -> dict[str, Any] | None:
        return read_notify_state(self.state_dir)

    def set_notify_state(self, doc: Mapping[str, Any]) -> None:
        self._check_once()
        write_notify_state(self.state_dir, doc)

    def _make_dir(self) -> None:
        try:
            make_state_dir(self.state_dir)
        except OSError as exc:
            raise unwritable(self.state_dir, exc) from exc

    def _ensure_dir(self) -> None:
        """Make the directory and sweep temp files of writes a crash interrupted.

        Under the lock (`apply`), every temp file of state.json is a leftover (the
        other directories' are the daemon's to sweep, at start)."""
        self._make_dir()
        sweep_own(self.state_dir, STATE_FILE)
