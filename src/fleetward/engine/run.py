"""One run in progress: what it found so far, where it is, and the watch its stages call."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fleetward.applying import ApplyResult
from fleetward.decisions import Decision, describe_held
from fleetward.engine.governor import Governor
from fleetward.errors import FleetwardError, Problem
from fleetward.model import Guard, GuardVerdict, Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.policy import Policy
from fleetward.progress import Phase, Watch
from fleetward.runs import AfterFetch
from fleetward.store import Pin
from fleetward.store.suspension import Suspension

# Where a run is while a stage runs, and the checkpoint once it is done (None: none).
STAGES: Mapping[str, tuple[str, str | None]] = {
    "fetch": ("while fetching the source", "after fetching the source"),
    "load": ("while loading the manifests", "after loading the manifests"),
    "desire": ("while expanding the manifests", "after expanding the manifests"),
    "plan": ("while planning", None),
    "apply": ("before the write", None),
}


@dataclass(eq=False)
class Run(Watch):
    """One run in progress: its operation and all it found, and the watch its stages call."""

    op: Operation
    governor: Governor
    outer: Watch
    after_fetch: AfterFetch | None
    existed: bool
    started: float = field(default_factory=time.monotonic)
    revision: Revision | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    store: StoreSnapshot | None = None
    problems: tuple[Problem, ...] = ()
    manifest_errors: int = 0
    fetch_failed: bool = False
    decision: Decision | None = None
    policies: dict[str, Policy] = field(default_factory=dict)
    suspension: Suspension | None = None
    pin: Pin | None = None  # the rollback pin the run obeyed (or set)
    where: str = "before fetching the source"  # the stage the run is in, for `abandon`
    failure: BaseException | None = None
    unchanged: bool = False
    documents: dict[str, str] = field(default_factory=dict)  # document address → file
    announced: bool = False
    # The operation as the stopping daemon ended it (`Engine.abandon`): that record stands,
    # and the run reports nothing more.
    abandoned: Operation | None = None
    phases: dict[str, float] = field(default_factory=dict)

    def start(self, phase: Phase, total: int) -> None:
        self.outer.start(phase, total)

    def advance(self, n: int = 1) -> None:
        self.outer.advance(n)

    def checkpoint(self) -> None:
        self.outer.checkpoint()
        self.governor.checkpoint(self.op, self.where)


def with_summary(op: Operation, made: Plan, serial: int) -> Operation:
    return replace(op, plan_summary=made.summary(), serial=serial).with_held(made.held)


def with_targets(op: Operation, made: Plan) -> Operation:
    """`op` with the targets its plan was limited to (`arguments.targets`): the one place
    they are recorded, for a run given `--target` and for a saved targeted plan alike."""
    if not made.targeted:
        return op
    return replace(op, arguments={**op.arguments, "targets": list(made.targeted)})


def failure_message(exc: FleetwardError) -> str:
    first = exc.problems[0].error if exc.problems else type(exc).__name__
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    return f"{first}{more}"


def plan_guards(made: Plan) -> tuple[Guard, ...]:
    return tuple(g for g in made.guards if g.policy is None)


def blocked_policies(made: Plan) -> frozenset[str]:
    return frozenset(
        g.policy for g in made.guards if g.policy is not None and g.verdict is GuardVerdict.BLOCKED
    )


_NAMED_HELD = 10  # documents an operation's message names; its `held` field has them all


def held_back(made: Plan) -> str:
    """The documents failure isolation held back, for the operation's message."""
    if not made.held:
        return ""
    named = ", ".join(h.address for h in made.held[:_NAMED_HELD])
    more = len(made.held) - _NAMED_HELD
    return f"; held back: {named}" + (f" and {more} more" if more > 0 else "")


def dry_run_message(made: Plan, decision: Decision) -> str:
    held = describe_held(decision)
    return (
        f"dry run at {made.revision.short}: {len(decision.due)} change(s) would be applied"
        + held_back(made)
        + (f"; {held}" if held else "")
        + (f"; {decision.out_of_scope} outside the query" if decision.out_of_scope else "")
    )


def nothing_message(made: Plan, decision: Decision, suspension: Suspension | None) -> str:
    if not made.changes and made.targeted:
        return f"no changes to the targeted objects at {made.revision.short}" + held_back(made)
    if not made.changes:
        return f"no changes; the store matches {made.revision.short}" + held_back(made)
    if suspension is not None:
        return (
            f"suspended by {suspension.by}: {len(made.changes)} change(s) planned, nothing applied"
        )
    held = describe_held(decision)
    scope = (
        f"{decision.out_of_scope} change(s) outside the operation's query"
        if decision.out_of_scope
        else ""
    )
    return "nothing to apply now; " + "; ".join(x for x in (held, scope) if x) + held_back(made)


def interrupted_message(run: Run) -> str:
    """What a Ctrl-C ended: where the run was, and whether the write may have happened."""
    if run.op.state is OperationState.PROCESSING:
        return (
            "interrupted (Ctrl-C) during the store write; the write may have happened (it is "
            "atomic: fleetward state history tells whether it did)"
        )
    return f"interrupted (Ctrl-C) {run.where}; nothing was written"
