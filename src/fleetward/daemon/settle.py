"""Settling held parts after a run: read what carries them, record what `carriers` decides.

The thin persistence side of operations control: it reads the live carriers
and the rejections through the ports, and writes the settlement back. A damaged
log or rejections file is logged, never fatal: the log is a record of the work,
not the work, and an unreadable rejections file holds every policy's part.
"""

from __future__ import annotations

import logging

from fleetward.daemon.carriers import settlement
from fleetward.daemon.ports import ControlContext, OperationStore
from fleetward.decisions import Decision
from fleetward.errors import FleetwardError
from fleetward.model import Plan
from fleetward.operations import Operation
from fleetward.store import RejectionStore

logger = logging.getLogger(__name__)


def kept_operations(log: OperationStore) -> list[Operation]:
    """The operation log, or nothing if it cannot be read: a damaged log must not stop
    reconciling (approvals it held are lost with it, so those parts stay held)."""
    try:
        return log.all()
    except FleetwardError as exc:
        logger.error("cannot read the operation log: %s", exc)
        return []


def live_by_policy(log: OperationStore) -> dict[str, Operation]:
    """The operation carrying each policy's held part (the newest, if several)."""
    out: dict[str, Operation] = {}
    for op in kept_operations(log):
        if op.policy is not None and not op.state.final:
            out[op.policy] = op
    return out


def rejected(rejections: RejectionStore) -> dict[str, str] | None:
    """Per policy, the digest of its plan an operator rejected; None if unknown (the
    record is unreadable: every policy's part is then held, never applied by mistake)."""
    found = rejections.read()
    if found is None:
        return None
    return {policy: str(entry.get("digest")) for policy, entry in found.items()}


def settle(
    ctx: ControlContext,
    run: Operation,
    plan: Plan,
    decision: Decision,
    written: bool,
    serial: int | None,
) -> list[Operation]:
    """After a run: end, keep or create the operations carrying held parts.

    The caller holds the control mutex. Returns every operation recorded."""
    now = ctx.now_iso()
    settled = settlement(
        run, plan, decision, live_by_policy(ctx.log), written=written, serial=serial, now=now
    )
    # A rejection lasts until a later plan of the policy is approved, or the policy
    # has nothing left to change.
    try:
        ctx.rejections.keep(settled.planned)
    except FleetwardError as exc:
        logger.error("cannot update the rejected plans: %s", exc)
    for policy_name in sorted(settled.lifted):
        try:
            ctx.rejections.lift(policy_name)
        except FleetwardError as exc:
            logger.error("cannot update the rejected plans: %s", exc)
    if not settled.recorded:
        return []
    try:
        ctx.log.record(*settled.recorded)
    except FleetwardError as exc:
        # Like the run's own record: the log is a record of the work, not the work.
        logger.error("cannot record held operations: %s", exc)
        return []
    ctx.on_change()
    return list(settled.recorded)


__all__ = ["kept_operations", "live_by_policy", "rejected", "settle"]
