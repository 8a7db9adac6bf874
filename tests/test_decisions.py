"""Operations control's pure decisions, case by case: inputs in, the decision out.

`decide` (what holds each part), `settlement` (which operation carries it after a
run), `hold_overruns` and `next_wake` are functions of frozen values and a clock
reading: every case here is a row of a table, with no repository, store or thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from fleetward.daemon.carriers import settlement
from fleetward.daemon.wakeups import next_wake
from fleetward.decisions import Decision, decide, hold_overruns
from fleetward.kinds.sync_policy import SyncPolicySpec
from fleetward.model import Action, Change, ObjectState, ObjectView, Plan, Revision, object_key
from fleetward.operations import Operation, OperationState
from fleetward.policy import Policy, changes_digest, parse_device_query

S = OperationState
UTC = dt.UTC
NOON = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # the nightly window is closed
IN_WINDOW = dt.datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
WINDOW_OPENS = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
WINDOW_CLOSES = dt.datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
NIGHTLY = {"type": "WINDOW", "cron": "0 2 * * *", "duration": "2h", "timezone": "UTC"}
T0 = "2026-11-22T12:00:00Z"
REVISION = Revision("c" * 40, "git", "main")


def change(ident: str, policy: str | None, cls: str = "heavy") -> Change:
    view = ObjectView(
        ObjectState.ACTIVE, "Fleet/north", {"labels": {"class": cls}, "attributes": {}}
    )
    return Change(
        object_key("Asset", ident), "Asset", Action.CREATE, "new", "Fleet/north", None, view,
        policy=policy,
    )  # fmt: skip


# Two governed changes (policy "p") and one ungoverned (the daemon's default).
CHANGES = (change("TRK-1", "p"), change("TRK-2", "p", "light"), change("TRK-3", None))
PLAN = Plan(None, 0, REVISION, T0, CHANGES)
P_DIGEST = changes_digest(CHANGES[:2])

SPECS: dict[str, dict[str, Any]] = {
    "auto": {},
    "manual": {"approval": "manual"},
    "nightly": {"schedule": NIGHTLY},
    "nightly-manual": {"schedule": NIGHTLY, "approval": "manual"},
    "suspended": {"suspend": True},
}


def policies(kind: str) -> dict[str, Policy]:
    return {"p": Policy("p", SyncPolicySpec.model_validate({"selector": {}, **SPECS[kind]}))}


def carrier(digest: str = P_DIGEST, approved: bool = False, **fields: Any) -> Operation:
    op = Operation.new("policy", T0).through((S.RESOLVING, S.RESOLVED), T0).move(S.SCHEDULED, T0)
    approval = {"required": True, "approved_by": "alice" if approved else None}
    return replace(op, policy="p", plan_digest=digest, approval=approval, **fields)


# -- decide ----------------------------------------------------------------------------------------

ALL = {"Asset/TRK-1", "Asset/TRK-2", "Asset/TRK-3"}
DEFAULT_ONLY = {"Asset/TRK-3"}

DECIDE_CASES: list[tuple[str, str, dt.datetime, dict[str, Any], tuple[str, ...], set[str]]] = [
    # id, policy kind, now, decide's keywords → what holds p's part, the due changes
    ("auto at once", "auto", NOON, {}, (), ALL),
    ("window closed", "nightly", NOON, {}, ("window",), DEFAULT_ONLY),
    ("window open", "nightly", IN_WINDOW, {}, (), ALL),
    ("manual, nobody approved", "manual", NOON, {}, ("approval",), DEFAULT_ONLY),
    (
        "manual, these changes approved",
        "manual",
        NOON,
        {"live": {"p": carrier(approved=True)}},
        (),
        ALL,
    ),
    (
        "manual, other changes approved",
        "manual",
        NOON,
        {"live": {"p": carrier("0" * 32, approved=True)}},
        ("approval",),
        DEFAULT_ONLY,
    ),
    ("policy suspended", "suspended", NOON, {}, ("suspended",), DEFAULT_ONLY),
    ("daemon suspended", "auto", NOON, {"suspended": True}, ("suspended",), set()),
    (
        "this plan rejected",
        "auto",
        NOON,
        {"rejected": {"p": P_DIGEST}},
        ("rejected",),
        DEFAULT_ONLY,
    ),
    (
        "an earlier plan rejected: a person must look",
        "auto",
        NOON,
        {"rejected": {"p": "0" * 32}},
        ("approval",),
        DEFAULT_ONLY,
    ),
    ("rejections unreadable", "auto", NOON, {"rejected": None}, ("rejected",), DEFAULT_ONLY),
    ("guard blocks", "auto", NOON, {"blocked": frozenset({"p"})}, ("blocked",), DEFAULT_ONLY),
    (
        "guard blocks a manual plan",
        "manual",
        NOON,
        {"blocked": frozenset({"p"})},
        ("approval", "blocked"),
        DEFAULT_ONLY,
    ),
    (
        "approval overrides the guard",
        "manual",
        NOON,
        {"blocked": frozenset({"p"}), "live": {"p": carrier(approved=True)}},
        (),
        ALL,
    ),
    (
        "window closed and manual",
        "nightly-manual",
        NOON,
        {},
        ("window", "approval"),
        DEFAULT_ONLY,
    ),
    (
        "window and suspension",
        "nightly",
        NOON,
        {"suspended": True},
        ("suspended", "window"),
        set(),
    ),
]


@pytest.mark.parametrize(
    ("kind", "now", "keywords", "waiting", "due"),
    [case[1:] for case in DECIDE_CASES],
    ids=[case[0] for case in DECIDE_CASES],
)
def test_decide(
    kind: str,
    now: dt.datetime,
    keywords: dict[str, Any],
    waiting: tuple[str, ...],
    due: set[str],
) -> None:
    decision = decide(PLAN, policies(kind), now, **keywords)
    parts = {p.policy: p for p in decision.parts}
    assert parts["p"].waiting_for == waiting
    assert parts["p"].digest == P_DIGEST
    assert {c.address for c in decision.due} == due
    assert decision.held_count() == len(CHANGES) - len(due)
    live = keywords.get("live", {})
    assert parts["p"].operation_id == (live["p"].operation_id if "p" in live else None)


@pytest.mark.parametrize(
    ("query", "due", "out_of_scope"),
    [
        ({"names": ["TRK-1"]}, {"Asset/TRK-1"}, 2),
        ({"matchLabels": {"class": "heavy"}}, {"Asset/TRK-1", "Asset/TRK-3"}, 1),
        ({"kinds": ["Workflow"]}, set(), 3),
        ({}, ALL, 0),
    ],
)
def test_decide_limits_the_due_changes_to_the_query(
    query: dict[str, Any], due: set[str], out_of_scope: int
) -> None:
    decision = decide(PLAN, policies("auto"), NOON, query=parse_device_query(query))
    assert {c.address for c in decision.due} == due
    assert decision.out_of_scope == out_of_scope
    assert not decision.held  # a query leaves changes alone; it holds nothing


# -- hold_overruns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("write_ends", "overrun", "due"),
    [
        (IN_WINDOW + dt.timedelta(minutes=5), [], ALL),
        (WINDOW_CLOSES - dt.timedelta(seconds=1), [], ALL),
        (WINDOW_CLOSES, ["p"], DEFAULT_ONLY),
        (WINDOW_CLOSES + dt.timedelta(days=1), ["p"], DEFAULT_ONLY),
    ],
)
def test_hold_overruns(write_ends: dt.datetime, overrun: list[str], due: set[str]) -> None:
    found = policies("nightly")
    opened = decide(PLAN, found, IN_WINDOW)
    decision, held = hold_overruns(opened, found, write_ends)
    assert held == overrun
    assert {c.address for c in decision.due} == due
    if overrun:
        part = next(p for p in decision.parts if p.policy == "p")
        assert part.waiting_for == ("window",)
        assert part.window is not None and part.window.opens_at is not None
        assert part.window.opens_at > write_ends  # the next window, not the one overrun
    else:
        assert decision == opened


# -- settlement: which operation carries each part -------------------------------------------------

RUN = Operation.new("poll", T0)


def fresh(trigger: str, now: str) -> Operation:
    return replace(Operation.new(trigger, now), operation_id="new")


def held_decision(waiting: tuple[str, ...], window: bool = False) -> Decision:
    """p's part held for `waiting` (the default part due)."""
    decision = decide(PLAN, policies("nightly" if window else "auto"), NOON)
    parts = tuple(
        replace(p, waiting_for=waiting) if p.policy == "p" else p for p in decision.parts
    )
    due = tuple(c for c in CHANGES if c.policy is None or not waiting)
    return Decision(parts, due, 0)


Recorded = list[tuple[str, S, str]]  # operation id, state, a fragment of its message

SETTLE_CASES: list[tuple[str, Decision, dict[str, Operation], bool, Recorded, set[str]]] = [
    # id, decision, live carriers, written → recorded (id, state, message fragment), lifted
    ("written, no carrier", held_decision(()), {}, True, [], set()),
    (
        "written: its carrier succeeds",
        held_decision(()),
        {"p": carrier(operation_id="c1")},
        True,
        [("c1", S.SUCCESS, "applied by operation")],
        set(),
    ),
    (
        "written after an approval: the rejection is answered",
        held_decision(()),
        {"p": carrier(approved=True, operation_id="c1")},
        True,
        [("c1", S.SUCCESS, "applied by operation")],
        {"p"},
    ),
    (
        "written, but its carrier carried other changes",
        held_decision(()),
        {"p": carrier("0" * 32, operation_id="c1")},
        True,
        [("c1", S.CANCELLED, "superseded: revision ccccccc changed")],
        set(),
    ),
    (
        "held for a window: a new carrier",
        held_decision(("window",), window=True),
        {},
        False,
        [("new", S.SCHEDULED, "waiting for its window")],
        set(),
    ),
    (
        "held, carried already",
        held_decision(("approval",)),
        {"p": carrier(operation_id="c1", waiting_for=("approval",))},
        False,
        [],
        set(),
    ),
    (
        "held for something else now: refreshed",
        held_decision(("approval", "blocked")),
        {"p": carrier(operation_id="c1", waiting_for=("approval",))},
        False,
        [("c1", S.SCHEDULED, "blocked by its policy's maxStopFraction guard")],
        set(),
    ),
    (
        "a newer plan: superseded, and a new carrier",
        held_decision(("approval",)),
        {"p": carrier("0" * 32, operation_id="c1")},
        False,
        [
            ("c1", S.CANCELLED, "operation new carries the new plan"),
            ("new", S.SCHEDULED, "waiting for approval"),
        ],
        set(),
    ),
    (
        "rejected: nothing carries it",
        held_decision(("rejected",)),
        {"p": carrier("0" * 32, operation_id="c1")},
        False,
        [("c1", S.CANCELLED, "differ from the ones this operation carried")],
        set(),
    ),
    ("blocked only: nothing to approve", held_decision(("blocked",)), {}, False, [], set()),
    (
        "a carrier whose policy has nothing left to do",
        held_decision(()),
        {"gone": replace(carrier(operation_id="c2"), policy="gone")},
        True,
        [("c2", S.CANCELLED, "the store already matches what policy gone governs")],
        set(),
    ),
    (
        "the run's own operation is left to the run",
        held_decision(("approval",)),
        {"p": replace(RUN, policy="p", plan_digest=P_DIGEST)},
        False,
        [("new", S.SCHEDULED, "waiting for approval")],
        set(),
    ),
]


@pytest.mark.parametrize(
    ("decision", "live", "written", "expected", "lifted"),
    [case[1:] for case in SETTLE_CASES],
    ids=[case[0] for case in SETTLE_CASES],
)
def test_settlement(
    decision: Decision,
    live: dict[str, Operation],
    written: bool,
    expected: list[tuple[str, S, str]],
    lifted: set[str],
) -> None:
    settled = settlement(
        RUN, PLAN, decision, live, written=written, serial=7, now=T0, new_operation=fresh
    )
    got = [(op.operation_id, op.state, op.message) for op in settled.recorded]
    assert [(i, s) for i, s, _ in got] == [(i, s) for i, s, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(got, expected, strict=True):
        assert fragment in message
    assert settled.lifted == lifted
    assert settled.planned == {"p"}
    for op in settled.recorded:
        if op.state is S.SUCCESS:
            assert (op.serial, op.waiting_for) == (7, ())
        if op.operation_id == "new":
            held = next(p for p in decision.parts if p.policy == "p")
            assert (op.policy, op.plan_digest, op.waiting_for) == ("p", P_DIGEST, held.waiting_for)
            assert op.revision == REVISION.id


def test_a_query_run_that_wrote_part_of_a_carried_part_keeps_the_rest_approved() -> None:
    decision = decide(PLAN, policies("manual"), NOON, live={"p": carrier(approved=True)})
    only_trk1 = replace(decision, due=(CHANGES[0],))
    live = {"p": carrier(approved=True, operation_id="c1")}
    settled = settlement(RUN, PLAN, only_trk1, live, written=True, serial=7, now=T0)
    (kept,) = settled.recorded
    assert (kept.operation_id, kept.state) == ("c1", S.SCHEDULED)
    assert kept.plan_digest == changes_digest(CHANGES[1:2])
    assert kept.approval is not None and kept.approval["approved_by"] == "alice"
    assert "partly applied" in kept.message and "1 change(s) remain" in kept.message


# -- wake-ups --------------------------------------------------------------------------------------


def scheduled(
    policy: str | None, waiting: tuple[str, ...], opens: dt.datetime, closes: dt.datetime
) -> Operation:
    """A SCHEDULED operation: a policy's carrier, or (None) an operator's own."""
    op = Operation.new("api", T0).move(S.SCHEDULED, T0)
    window = {"opens_at": iso(opens), "closes_at": iso(closes)}
    return replace(op, operation_id="w", policy=policy, waiting_for=waiting, window=window)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


LATER = NOON + dt.timedelta(hours=1)
END = NOON + dt.timedelta(hours=2)
EARLIER = NOON - dt.timedelta(hours=1)

OPEN = (EARLIER, END)  # a window open at noon
LATER_ON = (LATER, END)  # a window that opens at one
W = ("window",)
WAKE_CASES: list[tuple[str, list[Operation], bool, bool, dt.datetime | None]] = [
    # id, operations, the operation is queued, a run is queued → when to wake
    ("nothing held", [], False, False, None),
    ("a policy's window opens later", [scheduled("p", W, *LATER_ON)], False, False, LATER),
    ("approval first", [scheduled("p", ("window", "approval"), *LATER_ON)], False, False, None),
    ("an overrun held, no run queued", [scheduled("p", W, *OPEN)], False, False, NOON),
    ("an overrun held, a run queued", [scheduled("p", W, *OPEN)], False, True, END),
    ("an operator's window opens later", [scheduled(None, W, *LATER_ON)], False, False, LATER),
    ("an operator's window is open, queued", [scheduled(None, W, *OPEN)], True, False, END),
    ("an operator's window, lost by a restart", [scheduled(None, W, *OPEN)], False, False, NOON),
    ("operator's window ended, queued", [scheduled(None, W, EARLIER, EARLIER)], True, False, None),
    (
        "the earliest wins",
        [scheduled("p", W, END, END + dt.timedelta(hours=1)), scheduled(None, W, *LATER_ON)],
        False,
        False,
        LATER,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ops", "queued", "run_queued", "expected"),
    [case[1:] for case in WAKE_CASES],
    ids=[case[0] for case in WAKE_CASES],
)
def test_next_wake(
    ops: list[Operation], queued: bool, run_queued: bool, expected: dt.datetime | None
) -> None:
    assert next_wake(ops, NOON, lambda _id: queued, run_queued) == expected
