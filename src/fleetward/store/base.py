"""The Store interface every state store keeps, and the parts of its contract they share.

Planning code sees only `StoreSnapshot` values and applying code only this
interface, so the embedded TinyDB store, the in-memory double and a
server-backed store are interchangeable. tests/test_store_contract.py runs the
same tests against each of them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from fleetward.errors import StoreConflict, StoreError
from fleetward.model import ObjectKey, ObjectState, StoredObject, StoreMeta, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.store.rejections import RejectionStore
from fleetward.store.suspension import Suspension

HISTORY_LIMIT = 100  # applies kept in the history, oldest dropped first
# Notifications waiting for delivery, all targets together: past it the oldest are
# dropped (a receiver dead for days must not grow the store without bound).
OUTBOX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Everything one apply writes, checked against the serial it was planned from."""

    expected_lineage: str | None
    expected_serial: int
    # The store's last applied revision after the write (a targeted apply keeps the one
    # the last whole apply wrote, None before any).
    revision: str | None
    upserts: Sequence[StoredObject]
    deletes: Sequence[ObjectKey]
    history_entry: Mapping[str, Any]
    # Labels of the revision's documents (None: keep what the store has, e.g. a saved plan).
    owner_labels: Mapping[str, Mapping[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """Runtime status people set (`tasks set-status`): the whole new status of each
    object, checked against the serial it was read at like a `ChangeSet`."""

    expected_lineage: str | None
    expected_serial: int
    statuses: Mapping[ObjectKey, Mapping[str, Any]]
    updated_at: str
    history_entry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification waiting to be delivered to one target.

    `entry_id` is unique in the outbox (the event's id and the target's name);
    `event` is the notification's versioned JSON body, kept as JSON."""

    entry_id: str
    target: str
    event: Mapping[str, Any]
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "target": self.target,
            "event": self.event,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> OutboxEntry:
        return cls(str(doc["id"]), str(doc["target"]), dict(doc["event"]), str(doc["createdAt"]))


@dataclass(frozen=True, slots=True)
class Pin:
    """The revision a rollback pinned the store to (`fleetward rollback`).

    While a pin is kept the daemon reconciles `revision` (drift included) instead of
    the tracked ref's head, until `fleetward resume` lifts it. `serial` is the
    history entry rolled back to, `rolled_back_from` the revision applied before the
    rollback, `operation_id` the rollback's operation.
    """

    revision: str
    serial: int
    by: str
    at: str
    operation_id: str
    rolled_back_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "serial": self.serial,
            "by": self.by,
            "at": self.at,
            "operationId": self.operation_id,
            "rolledBackFrom": self.rolled_back_from,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Pin:
        """ValueError (or KeyError, TypeError) when `doc` is not a pin."""
        revision, serial = doc["revision"], doc["serial"]
        if not isinstance(revision, str) or not revision or isinstance(serial, bool):
            raise ValueError("revision must be a non-empty string")
        if not isinstance(serial, int):
            raise ValueError("serial must be an integer")
        before = doc.get("rolledBackFrom")
        return cls(
            revision,
            serial,
            str(doc["by"]),
            str(doc["at"]),
            str(doc["operationId"]),
            str(before) if before is not None else None,
        )


@dataclass(frozen=True, slots=True)
class StoreDump:
    """Everything a store holds, as of one serial: what `fleetward store copy` moves.

    `objects` in the store's order; `history` oldest first, each entry with its
    serial; `operations` oldest first; `rejections` as `RejectionStore.read`
    gives them; `outbox` oldest first.
    """

    meta: StoreMeta
    objects: Sequence[StoredObject]
    history: Sequence[Mapping[str, Any]]
    operations: Sequence[Operation]
    rejections: Mapping[str, Mapping[str, Any]]
    outbox: Sequence[OutboxEntry] = ()

    @property
    def empty(self) -> bool:
        """Nothing was ever written to the store (no apply, operation, rejection or outbox
        entry)."""
        return (
            self.meta.lineage is None
            and not self.objects
            and not self.history
            and not self.operations
            and not self.rejections
            and not self.outbox
        )


class OperationStore(Protocol):
    """The operation log: Operations, oldest first, at most `limit` of them.

    Recording an operation whose id is kept replaces it in place; past the
    limit the oldest operations in a final state are evicted (ones still waiting
    or running never are). Operations are values: what a caller holds is never
    changed by a later record. A log that cannot be read or written raises
    StoreError.
    """

    limit: int

    def all(self) -> list[Operation]:
        """Every kept operation, oldest first."""
        ...

    def get(self, operation_id: str) -> Operation | None: ...

    def query(
        self,
        *,
        state: OperationState | None = None,
        ordering: str = "-created_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[Operation], int]:
        """A page of the operations in `state` (all: None) by `ordering` (one of
        ORDERINGS, `-` reverses; ValueError otherwise), and how many match."""
        ...

    def record(self, *operations: Operation) -> None:
        """Insert or replace operations by id, in one write; evict past the limit."""
        ...

    def fail_unfinished(self, now: str, message: str) -> list[Operation]:
        """Move every operation a stopped process left running to FAILURE (SCHEDULED ones
        outlive restarts and stay); the operations ended."""
        ...


class Store(Protocol):
    """A state store: objects, meta (lineage, serial), history, a lock, the operation log,
    the rejected plans.

    The contract each implementation keeps:

    - `read` and `meta` never create anything; an empty store reads as lineage
      None, serial 0, no objects.
    - Every write (`apply`, `set_status`) is atomic — all of it or none — and
      fenced: it names the lineage and serial it was planned from and is refused
      with `StoreConflict`, writing nothing, if the store has moved since. Each
      write adds one to the serial and appends a history entry; the first one
      fixes the lineage (a new UUID) for the store's life.
    - Writers hold `lock` from the read they plan from through the write: the
      fence refuses a plan made before another write, the lock keeps two
      writes from checking the same serial at once.
    - Specs and statuses handed in or read out are read-only to the caller:
      the TinyDB store shares them with its cache (a daemon's warm snapshot),
      while the in-memory store copies them in and out.
    - Damaged or unreachable storage is a `StoreError` saying how to recover.
    - The notification outbox (`outbox_add`, `outbox_pending`, `outbox_remove`)
      is kept beside the objects but apart from them: it survives restarts, is
      written without the writer `lock` (its own writes are atomic and safe
      across threads), never moves the serial and never touches the history.
      Entries come back in the order they were added; each target keeps at most
      OUTBOX_LIMIT of them, and what is dropped is counted per target.
    - What the notifier last told (`notify_state`, `set_notify_state`) is one JSON
      document kept with the outbox and like it: written without the lock,
      atomically, never moving the serial; a restarted daemon reads it so it does
      not tell a failure again. It is the daemon's, not the state's: not in a dump.
    - The rollback pin (`pin`, `set_pin`) is one small record kept beside the
      objects like the outbox: written atomically, never moving the serial nor
      touching the history, and read back as it was set (None: not pinned).
      Writers set it under `lock`, so a daemon run that planned another revision
      sees it before its write. A server-backed store keeps it in one row.
    - The suspension (`suspension`, `set_suspension`: `fleetward suspend`) is kept
      the same way, but set without `lock` (an operator's switch must not wait
      for an apply in progress; the daemon reads it again just before its write).
      The state directory keeps it in `suspend.json`, as it always has.
    """

    @property
    def location(self) -> str:
        """Where the store is, as errors and messages name it (a URL without its password)."""
        ...

    @property
    def operations(self) -> OperationStore:
        """The operation log kept beside the objects."""
        ...

    @property
    def rejections(self) -> RejectionStore:
        """The plans operators rejected, per SyncPolicy."""
        ...

    def exists(self) -> bool:
        """Whether the store's place exists yet (TinyDB: the state directory). Only a
        write or `lock` makes it: read commands refuse a missing one as a likely typo,
        and an apply does not lock one before it is confirmed."""
        ...

    def read(self) -> StoreSnapshot:
        """Every object and the meta, as of one serial."""
        ...

    def meta(self) -> StoreMeta:
        """Lineage, serial, last applied revision and owner labels, without the objects."""
        ...

    def apply(self, change_set: ChangeSet) -> StoreMeta:
        """Delete then upsert the change set's objects in one atomic, fenced write.

        The new meta: the same lineage (a new one on the first write), serial + 1,
        `last_applied_revision` the change set's revision, owner labels merged by
        `merged_owner_labels`. The history entry is kept with the new serial, and
        the history bounded to HISTORY_LIMIT entries. The caller holds `lock`.
        """
        ...

    def set_status(self, change: StatusChange) -> StoreMeta:
        """Replace the status and updatedAt of existing objects, fenced like `apply`.

        Status is not spec: spec, spec hash, generation, owner, state and applied
        revision stay, and so does the store's last applied revision, so the next
        plan shows no change. The serial moves and the history gains the entry. An
        object not in the store is a StoreError. The caller holds `lock`.
        """
        ...

    def history(self) -> list[dict[str, Any]]:
        """The last HISTORY_LIMIT writes' entries, oldest first, each with its `serial`."""
        ...

    def lock(self, timeout: float) -> AbstractContextManager[None]:
        """Hold the store's one writer lock; wait up to `timeout` seconds for another
        holder, then raise LockTimeout naming it. Not re-entrant."""
        ...

    def pin(self) -> Pin | None:
        """The rollback pin in force, or None. StoreError if it cannot be read."""
        ...

    def set_pin(self, pin: Pin | None) -> None:
        """Keep `pin` (None: lift it), atomically; the caller holds `lock`."""
        ...

    def suspension(self) -> Suspension | None:
        """The suspension in force (`fleetward suspend`), or None. StoreError if it
        cannot be read."""
        ...

    def set_suspension(self, suspension: Suspension | None) -> None:
        """Keep `suspension` (None: resume), atomically; without the lock. Setting one
        needs the store's place: a state directory that does not exist is a UsageError
        (a likely typo), never made here."""
        ...

    def dump(self) -> StoreDump:
        """Everything the store holds, as of one serial (the caller holds `lock`)."""
        ...

    def restore(self, dump: StoreDump) -> None:
        """Replace everything the store holds with `dump`: lineage, serial, history,
        objects, operations, rejections and the outbox as they were. The caller holds
        `lock`; whether the store may be overwritten is the caller's decision."""
        ...

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        """Append `entries`, in order, in one atomic write (an id already kept is not
        added again); past OUTBOX_LIMIT entries of one target drop that target's oldest.
        How many were dropped, per target (empty: none)."""
        ...

    def outbox_pending(
        self, target: str | None = None, limit: int | None = None
    ) -> list[OutboxEntry]:
        """The entries waiting (for `target` only, unless None), oldest first, at most
        `limit` of them."""
        ...

    def outbox_remove(self, entry_ids: Collection[str]) -> None:
        """Forget delivered (or given up) entries in one atomic write; unknown ids are
        ignored."""
        ...

    def notify_state(self) -> dict[str, Any] | None:
        """What the notifier last told (its JSON document), or None if it never kept one.
        StoreError if it cannot be read."""
        ...

    def set_notify_state(self, doc: Mapping[str, Any]) -> None:
        """Keep the notifier's JSON document `doc` in place of the last, atomically."""
        ...


def outbox_added(
    kept: Sequence[OutboxEntry], entries: Sequence[OutboxEntry], limit: int = OUTBOX_LIMIT
) -> tuple[list[OutboxEntry], dict[str, int]]:
    """`kept` with `entries` appended (ids already kept skipped), each target bounded to
    its newest `limit`; and how many were dropped per target. The bound is per target so
    a receiver that is down cannot push a healthy target's events out. Every store's
    `outbox_add` keeps these rules."""
    ids = {entry.entry_id for entry in kept}
    merged = list(kept)
    for entry in entries:
        if entry.entry_id not in ids:
            ids.add(entry.entry_id)
            merged.append(entry)
    counts: dict[str, int] = {}
    for entry in merged:
        counts[entry.target] = counts.get(entry.target, 0) + 1
    over = {target: n - limit for target, n in counts.items() if n > limit}
    if not over:
        return merged, {}
    left = dict(over)
    out: list[OutboxEntry] = []
    for entry in merged:  # oldest first: a target's first `over` entries go
        if left.get(entry.target, 0) > 0:
            left[entry.target] -= 1
            continue
        out.append(entry)
    return out, over


def outbox_selected(
    kept: Iterable[OutboxEntry], target: str | None, limit: int | None
) -> list[OutboxEntry]:
    """The entries of `target` (all: None), oldest first, at most `limit`."""
    out: list[OutboxEntry] = []
    for entry in kept:
        if limit is not None and len(out) >= limit:
            break
        if target is None or entry.target == target:
            out.append(entry)
    return out


def check_fence(meta: StoreMeta, lineage: str | None, serial: int, where: str) -> None:
    """StoreConflict unless the store is still at `lineage` (None: any) and `serial`."""
    if lineage is not None and meta.lineage != lineage:
        raise StoreConflict.one(
            "The store changed under the apply",
            f"Expected lineage {lineage}, found {meta.lineage}.",
            "Plan again.",
            location=where,
        )
    if meta.serial != serial:
        raise StoreConflict.one(
            "The store changed under the apply",
            f"Expected serial {serial}, found {meta.serial}.",
            "Plan again.",
            location=where,
        )


def status_change_set(snapshot: StoreSnapshot, change: StatusChange, where: str) -> ChangeSet:
    """The apply that writes `change` over `snapshot`: the objects with only their status
    and updatedAt replaced, the last applied revision and owner labels kept."""
    check_fence(snapshot.meta, change.expected_lineage, change.expected_serial, where)
    upserts = []
    for key, status in change.statuses.items():
        obj = snapshot.objects.get(key)
        if obj is None:
            raise StoreError.one(
                f"Cannot set the status of {key}: it is not in the store",
                "Only an object an apply created has a status to set.",
                "Apply the manifests that declare it first.",
                location=key,
            )
        upserts.append(dataclasses.replace(obj, status=status, updated_at=change.updated_at))
    return ChangeSet(
        expected_lineage=change.expected_lineage,
        expected_serial=change.expected_serial,
        revision=snapshot.meta.last_applied_revision or "",
        upserts=upserts,
        deletes=[],
        history_entry=change.history_entry,
    )


def applied_meta(
    meta: StoreMeta, change_set: ChangeSet, owners: Iterable[tuple[str | None, str]]
) -> StoreMeta:
    """The store's meta after `change_set` is written: a lineage from the first apply
    on, the next serial, the revision, and the owners' labels (`owners`: every kept
    object's owner and state, after the write)."""
    return StoreMeta(
        lineage=meta.lineage or str(uuid.uuid4()),
        serial=meta.serial + 1,
        last_applied_revision=change_set.revision,
        owner_labels=merged_owner_labels(meta.owner_labels, change_set.owner_labels, owners),
    )


def merged_owner_labels(
    old: Mapping[str, Mapping[str, str]],
    revision: Mapping[str, Mapping[str, str]] | None,
    objects: Iterable[tuple[str | None, str]],
) -> dict[str, Mapping[str, str]]:
    """The revision's documents' labels, plus those of documents gone from Git that
    still own an active object (their removal is still to be governed).

    `objects` yields (owner, state) of every object after the write; it is only
    iterated when some owner is gone, so a store may pass a lazy generator.
    """
    if revision is None:
        return dict(old)
    gone = {owner: labels for owner, labels in old.items() if owner not in revision}
    if gone:
        active = ObjectState.ACTIVE.value
        owning = {owner for owner, state in objects if owner in gone and state == active}
        gone = {owner: labels for owner, labels in gone.items() if owner in owning}
    return {**gone, **revision}
