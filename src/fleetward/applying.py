"""Apply: a Plan → one atomic store write, with a history entry.

A plan carries the lineage and serial of the store it was made against;
applying it to any other store state is refused before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetward.errors import GuardBlocked, PlanError, Problem, StalePlanError
from fleetward.model import (
    Action,
    Change,
    GuardVerdict,
    ObjectKey,
    Plan,
    StoredObject,
    StoreMeta,
    StoreSnapshot,
)
from fleetward.progress import SILENT, Phase, Watch, counted
from fleetward.store import ChangeSet, Store
from fleetward.tuning import gc_paused


@dataclass(frozen=True, slots=True)
class ApplyResult:
    meta: StoreMeta
    counts: dict[str, int]
    operation_id: str
    wrote: bool


def check_current(plan: Plan, meta: StoreMeta, where: str) -> None:
    """Refuse a plan made against another store, or before the store last moved."""
    if plan.lineage is not None and meta.lineage != plan.lineage:
        raise StalePlanError.one(
            "Saved plan is for a different state store",
            f"The plan was made against the store with lineage {plan.lineage}; the store at "
            f"{where} has lineage {meta.lineage or '(none: it is empty)'}.",
            "Run fleetward plan again against this state directory, or pass the --state-dir "
            "the plan was made for.",
            location=where,
            planLineage=plan.lineage,
            storeLineage=meta.lineage,
        )
    if meta.serial != plan.serial:
        raise StalePlanError.one(
            "Saved plan is stale: the store changed since it was made",
            f"The plan was made at serial {plan.serial}; the store is now at serial {meta.serial} "
            f"(last applied revision {meta.last_applied_revision}). Applying it could undo that change.",
            "Make and review a new plan: fleetward plan --out plan.json, then fleetward apply plan.json.",
            location=where,
            planSerial=plan.serial,
            storeSerial=meta.serial,
        )


def refuse_blocked(plan: Plan) -> None:
    if plan.errors:
        raise PlanError(*plan.errors)
    blocked = [g for g in plan.guards if g.verdict is GuardVerdict.BLOCKED]
    if blocked:
        raise GuardBlocked(
            *(
                Problem(
                    f"Plan blocked by the {g.name} guard",
                    g.message,
                    f"Check the source, ref and path. If the change is intended, run again with {g.override}.",
                    location=str(plan.revision),
                    parameters={"guard": g.name},
                )
                for g in blocked
            )
        )


def apply_plan(
    plan: Plan,
    store: Store,
    now: str,
    where: str,
    watch: Watch = SILENT,
    snapshot: StoreSnapshot | None = None,
    operation_id: str | None = None,
    owner_labels: Mapping[str, Mapping[str, str]] | None = None,
    history_note: Mapping[str, Any] | None = None,
) -> ApplyResult:
    """Apply every change of `plan` in one write; the caller holds the store lock.

    `watch` hears of the changes as they are turned into the write (Phase.APPLYING);
    `snapshot` is the store as read under that lock, if the caller has it already;
    `owner_labels` the labels of the revision's documents (`owner_labels_of`);
    `history_note` more fields for the history entry (a rollback's `rollbackTo`).
    A targeted plan's entry says so (`targeted`), and one with no changes writes
    nothing: the revision it names is not what the store now equals. For the same
    reason a targeted write leaves the store's last applied revision where the last
    whole apply put it: only a whole plan makes the store equal its revision.
    """
    with gc_paused():
        return _apply(
            plan, store, now, where, watch, snapshot, operation_id, owner_labels, history_note
        )


def _apply(
    plan: Plan,
    store: Store,
    now: str,
    where: str,
    watch: Watch,
    snapshot: StoreSnapshot | None,
    operation_id: str | None,
    owner_labels: Mapping[str, Mapping[str, str]] | None = None,
    history_note: Mapping[str, Any] | None = None,
) -> ApplyResult:
    snapshot = snapshot if snapshot is not None else store.read()
    check_current(plan, snapshot.meta, where)
    refuse_blocked(plan)
    _check_presence(plan, snapshot, where)
    operation_id = operation_id or str(uuid.uuid4())
    counts = plan.summary()
    unchanged = plan.targeted or snapshot.meta.last_applied_revision == plan.revision.id
    if not plan.changes and unchanged:
        return ApplyResult(snapshot.meta, counts, operation_id, wrote=False)
    upserts: list[StoredObject] = []
    deletes: list[ObjectKey] = []
    revision = plan.revision.id
    watch.start(Phase.APPLYING, len(plan.changes))
    for change in counted(plan.changes, watch):
        if change.action is Action.DELETE:
            deletes.append(change.address)
        else:
            upserts.append(_stored(change, snapshot, revision, now))
    meta = store.apply(
        ChangeSet(
            expected_lineage=plan.lineage,
            expected_serial=plan.serial,
            revision=snapshot.meta.last_applied_revision if plan.targeted else revision,
            upserts=upserts,
            deletes=deletes,
            history_entry={
                "revision": revision,
                "operationId": operation_id,
                "time": now,
                "counts": counts,
                **({"targeted": list(plan.targeted)} if plan.targeted else {}),
                **(history_note or {}),
            },
            owner_labels=owner_labels,
        )
    )
    return ApplyResult(meta, counts, operation_id, wrote=True)


def _check_presence(plan: Plan, snapshot: StoreSnapshot, where: str) -> None:
    """Creates must find nothing, other changes their object (a hand-edited plan may not)."""
    wrong = [
        c.address
        for c in plan.changes
        if (c.address in snapshot.objects) == (c.action is Action.CREATE)
    ]
    if wrong:
        raise StalePlanError.one(
            "Saved plan does not match the store",
            f"{len(wrong)} change(s) create an object that exists or change one that does not: "
            f"{', '.join(wrong[:10])}. fleetward never makes such a plan; the file was edited.",
            "Make and review a new plan: fleetward plan --out plan.json.",
            location=where,
            addresses=wrong,
        )


def _stored(change: Change, snapshot: StoreSnapshot, revision: str, now: str) -> StoredObject:
    after = change.after
    assert after is not None  # only DELETE has no after
    have = snapshot.objects.get(change.address)
    if have is None:
        return StoredObject.first(change.address, change.kind, after, revision, now)
    new_hash = after.spec_hash
    spec_moved = new_hash != have.spec_hash or have.drifted
    return StoredObject(
        key=have.key,
        kind=have.kind,
        spec=after.spec,
        # Status belongs to people and the system: only what the kind derives moves.
        status={**have.status, **after.status} if after.status else have.status,
        owner=after.owner,
        state=after.state,
        spec_hash=new_hash,
        generation=have.generation + (1 if spec_moved else 0),
        applied_revision=revision,
        created_at=have.created_at,
        updated_at=now,
        # Creates and updates store the spec with its own hash; a stop keeps the old pair.
        _drift=have.drifted if change.action is Action.STOP else False,
    )
