"""What a run's writes answer to: the `Governor` the converge path asks, and its verdict.

The engine asks its governor at each checkpoint whether the run may go on,
and once the plan is made what of it is due now. The daemon's governor is its
operations control; the CLI's is the person at the terminal; this base lets
everything through except a plan a guard blocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fleetward.applying import refuse_blocked
from fleetward.decisions import Decision
from fleetward.errors import FleetwardError
from fleetward.model import Plan
from fleetward.operations import Operation
from fleetward.policy import Policy
from fleetward.store.suspension import Suspension
from fleetward.timestamps import now_iso

__all__ = ["Declined", "Governor", "Verdict"]

logger = logging.getLogger("fleetward.engine")


class Declined(Exception):
    """The person asked did not confirm the apply: the run ends CANCELLED, nothing written."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code  # what the command exits with (130: Ctrl-C at the prompt)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a governor decided of a plan: the parts due and held, and why it holds them all."""

    decision: Decision
    suspension: Suspension | None = None  # `fleetward suspend` holds every part


class Governor:
    """What a run's writes answer to. This base: nothing holds them and nothing stops the
    run, and a plan a guard blocks is refused whole; the daemon and the CLI override it."""

    def now(self) -> str:
        """The time stamped on the run's records and its plan."""
        return now_iso()

    def begin(self, op: Operation) -> None:
        """The run of `op` starts."""

    def deadline(self) -> str | None:
        """Past this instant the run ends TIMEOUT at a checkpoint (None: never)."""
        return None

    def checkpoint(self, op: Operation, where: str) -> None:
        """A safe point to stop the run, before any write: whatever this raises ends it."""

    def planned(self, plan: Plan) -> None:
        """The plan is made, before any verdict on it (the CLI shows it here)."""

    def guarded(self) -> contextlib.AbstractContextManager[object]:
        """Held from the decision through the write and settling its operations."""
        return contextlib.nullcontext()

    def decide(
        self,
        op: Operation,
        plan: Plan,
        policies: Mapping[str, Policy],
        blocked: frozenset[str],
    ) -> Verdict:
        """Which changes are due now and which are held (`blocked`: the policies whose
        own guard blocks their changes)."""
        refuse_blocked(plan)
        return Verdict(Decision(parts=(), due=plan.changes, out_of_scope=0))

    def last_look(
        self, op: Operation, decision: Decision, policies: Mapping[str, Policy]
    ) -> tuple[Decision, list[str]]:
        """The decision as it stands at the write, and the policies whose window would
        close before it ends (their parts now held)."""
        return decision, []

    def settle(
        self,
        op: Operation,
        plan: Plan,
        decision: Decision,
        serial: int | None,
        write_seconds: float = 0.0,
    ) -> None:
        """Record what became of the held parts (`serial`: the write's; None: none)."""

    def carried(self, decision: Decision) -> Decision:
        """The decision with the operation now carrying each held part, for the report."""
        return decision

    def unrecorded(self, op: Operation, error: FleetwardError) -> None:
        """The operation log refused the run's record: the run goes on regardless."""
        logger.error(
            "cannot record operation %s: %s",
            op.operation_id,
            error.problems[0].error if error.problems else error,
        )

    def end(self) -> None:
        """The run is over, however it ended."""
