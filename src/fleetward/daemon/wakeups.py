"""Wake-ups: when the daemon must act on a SCHEDULED operation without a trigger.

A held part's window opens, an operator's window operation comes due or ends,
or an approved operation is left over by a restart. `next_wake` is pure; the
runner schedules it, and `Wakeups.wake` acts when it comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from fleetward.daemon.admission import Admission
from fleetward.daemon.ports import ControlContext
from fleetward.operations import Operation, OperationState
from fleetward.timestamps import parse_iso

S = OperationState


def next_wake(
    ops: Iterable[Operation],
    now: datetime,
    pending: Callable[[str], bool],
    pending_run: bool,
) -> datetime | None:
    """When a held operation's window opens, an operator's window ends, or (now) an
    operator's operation is due but neither queued nor running (after a restart).

    `pending(id)`: the operation is queued or running; `pending_run`: some run is."""
    times: list[datetime] = []
    for op in ops:
        if op.state is not S.SCHEDULED or "approval" in op.waiting_for:
            continue  # approval first: approving wakes it
        window = op.window or {}
        opens = instant(window.get("opens_at"))
        closes = instant(window.get("closes_at"))
        if op.policy is not None:
            if opens is not None and opens > now:
                times.append(opens)
            elif (
                op.waiting_for == ("window",)
                and opens is not None
                and closes is not None
                and closes > now
            ):
                # Held for its window while the window is open (a write held as an
                # overrun into the window that followed): a run now, not at the poll.
                times.append(now if not pending_run else closes)
            continue
        if opens is not None and opens > now:
            times.append(opens)
        elif pending(op.operation_id):
            if closes is not None and closes > now:
                times.append(closes)  # to end it if it never gets to run
            # Past its end while queued: the worker ends it (TIMEOUT) when it takes it.
        else:
            times.append(now)  # due (or past its end) and not queued: wake now
    return min(times) if times else None


def instant(raw: Any) -> datetime | None:
    """An ISO instant of an operation's window, or None."""
    return parse_iso(str(raw)) if raw else None


class Wakeups:
    """Computes the next wake-up, and acts at one."""

    def __init__(self, ctx: ControlContext, admission: Admission) -> None:
        self.ctx = ctx
        self.admission = admission

    def next_wake(self) -> datetime | None:
        return next_wake(
            self.ctx.log.all(),
            self.ctx.clock(),
            self.admission.pending,
            self.admission.pending_run(),
        )

    def wake(self) -> None:
        """Queue operators' operations that are due (their window opened, or they were
        approved or left over by a restart), end the ones whose window closed, and ask
        for a run where a policy's window opened."""
        now = self.ctx.clock()
        want_run = False
        for op in self.ctx.log.all():
            if op.state is not S.SCHEDULED or "approval" in op.waiting_for:
                continue
            opens = instant((op.window or {}).get("opens_at"))
            if opens is not None and opens > now:
                continue
            if op.policy is not None:
                want_run = want_run or opens is not None
            elif (
                not self.admission.pending(op.operation_id)
                and self.admission.admissible(op) is not None
            ):
                self.ctx.queue.push(op)
        if want_run:
            self.ctx.queue.request("window")
        self.ctx.on_change()


__all__ = ["Wakeups", "instant", "next_wake"]
