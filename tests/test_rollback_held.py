"""A rollback the daemon's governor holds: pinned at once, its changes carried and released
as the rollback (not as a run of the head), and a rollback with nothing left to write pinned.

The daemon's control runs in-process over a real repository and state directory
(the world of test_control)."""

from __future__ import annotations

import dataclasses

import pytest
from test_control import MANUAL_POLICY, World, north, world_fixture  # noqa: F401  (fixture)

from fleetward.errors import Unavailable, UsageError
from fleetward.http.refusals import refusal_status
from fleetward.operations import OperationState
from fleetward.store import TinyDBStore

S = OperationState


@pytest.fixture(name="daemon_world")
def daemon_world_fixture(world: World) -> World:
    """The world's reconciler reading the pinned revision, as the daemon's does."""
    settings = world.reconciler.settings
    world.reconciler.settings = dataclasses.replace(settings, follow_pin=True)
    return world


def _apply_approved(world: World) -> None:
    """A run that holds the manual policy's part, its approval, and the run writing it."""
    world.run()
    world.control.approve(world.only_scheduled("prod-manual").operation_id, "alice")
    assert world.run_queued().operation.state is S.SUCCESS


def _queue_rollback(world: World, to: str) -> str:
    store = TinyDBStore(world.state)
    return world.control.rollback(to, "ops", store).operation_id


def test_a_held_rollback_pins_and_approving_it_runs_the_rollback(daemon_world: World) -> None:
    world = daemon_world
    v1 = world.commit(north(), MANUAL_POLICY)
    _apply_approved(world)
    world.commit(north("V2"), MANUAL_POLICY)
    _apply_approved(world)
    assert world.model("Asset/TRK-1") == "V2"

    rollback_id = _queue_rollback(world, v1)
    held = world.run_queued()
    assert held.operation.operation_id == rollback_id
    assert held.operation.state is S.CANCELLED, held.operation.message
    assert held.operation.message.startswith("held: the store is pinned to")
    pin = TinyDBStore(world.state).pin()
    assert pin is not None and pin.revision == v1 and pin.by == "ops"
    assert world.model("Asset/TRK-1") == "V2"  # nothing written yet
    carrier = world.only_scheduled("prod-manual")
    assert carrier.arguments["rollbackTo"] == v1 and carrier.arguments["rollbackBy"] == "ops"

    # The daemon's next poll reads the pinned revision: the carrier stays as it was.
    world.run()
    assert world.only_scheduled("prod-manual").operation_id == carrier.operation_id

    world.control.approve(carrier.operation_id, "alice")
    assert world.queue.queued is None  # no run of the head: the carrier runs as itself
    assert world.queue.find(carrier.operation_id) is not None
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH16"
    assert world.op(carrier.operation_id).state is S.SUCCESS
    pin = TinyDBStore(world.state).pin()
    assert pin is not None and pin.revision == v1


def test_a_queued_rollback_the_store_already_reached_still_pins(daemon_world: World) -> None:
    world = daemon_world
    v1 = world.commit(north())
    world.run()
    world.commit(north("V2"))
    world.run()
    first = _queue_rollback(world, v1)
    second = _queue_rollback(world, v1)
    assert world.run_queued().operation.operation_id == first
    TinyDBStore(world.state).set_pin(None)  # fleetward resume, before the second runs
    report = world.run_queued()
    assert report.operation.operation_id == second
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert report.operation.message.endswith("pinned there")
    pin = TinyDBStore(world.state).pin()
    assert pin is not None and pin.revision == v1 and pin.operation_id == second


def test_a_rollback_against_an_unreadable_store_is_503_not_an_internal_error(
    daemon_world: World,
) -> None:
    world = daemon_world
    v1 = world.commit(north())
    world.run()
    world.commit(north("V2"))
    world.run()
    (world.state / "state.json").write_text("{not json")
    with pytest.raises(Unavailable) as err:
        world.control.rollback(v1, "ops", TinyDBStore(world.state))
    assert refusal_status(err.value) == 503
    assert world.queue.find_any() is False


def test_a_rollback_the_history_cannot_serve_is_refused_as_the_request(
    daemon_world: World,
) -> None:
    world = daemon_world
    world.commit(north())
    world.run()
    with pytest.raises(UsageError) as err:
        world.control.rollback("99", "ops", TinyDBStore(world.state))
    assert "No apply at serial 99" in err.value.problems[0].error
