"""Failure isolation on the one converge path: `Engine.converge` and `Engine.read`/`plan`.

In-process, over the in-memory store and source (whose `open_at` opens an
earlier commit, as a Git source does): a broken file holds the documents it
declared at the last applied revision while the rest applies; the held
documents are named in the operation (message and `held` field); isolation
off fails the revision as before; a fix releases everything; and a plan made
by the read step is planned again, the same documents held, when the store
moved before the plan step. The reporters a daemon runs (health, metrics,
status files) show the held documents, and forget them once they are fixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetward.engine import Engine
from fleetward.isolation import Isolated
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.observe.status import StatusWriter
from fleetward.operations import Operation, OperationRecord, OperationState
from fleetward.planning import PlanOptions
from fleetward.reporting import Reporter, Reporters
from fleetward.runs import RunReport, RunSettings
from fleetward.source import MemorySource
from fleetward.store import MemoryStore

S = OperationState
NOW = "2026-01-01T00:00:00Z"


def fleet(name: str, *assets: tuple[str, str]) -> str:
    """A Fleet of (externalAssetId, model) assets."""
    lines = "".join(
        f"    - externalAssetId: {ident}\n      attributes: {{model: {model}}}\n"
        for ident, model in assets
    )
    return (
        f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\n"
        f"spec:\n  assets:\n{lines}"
    )


class World:
    """A source, a store and the engine over them; `isolate`: --isolate-failures."""

    def __init__(self, isolate: bool, reporter: Reporter | None = None) -> None:
        self.source = MemorySource()
        self.store = MemoryStore()
        self.engine = Engine(self.store, reporter or Reporter())
        self.settings = RunSettings(
            self.source, Path("memory"), PlanOptions(), isolate_failures=isolate
        )

    def commit(self, **files: str) -> str:
        return self.source.commit({f"manifests/{n}.yaml": t for n, t in files.items()}).id

    def run(self) -> RunReport:
        return self.engine.converge(Operation.new("test", NOW), self.settings, where="memory:")

    def models(self) -> dict[str, Any]:
        return {
            str(k): o.spec["attributes"]["model"]
            for k, o in self.store.read().objects.items()
            if k.startswith("Asset/")
        }


NORTH = fleet("north", ("N-1", "a"), ("N-2", "a"))
BROKEN = "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: north\nspec: [\n"


def _applied(world: World) -> str:
    first = world.commit(north=NORTH, south=fleet("south", ("S-1", "a")))
    assert world.run().succeeded
    return first


def test_a_broken_file_holds_what_it_declared_and_the_rest_applies() -> None:
    world = World(isolate=True)
    first = _applied(world)
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.models() == {"Asset/N-1": "a", "Asset/N-2": "a", "Asset/S-1": "b"}
    assert report.plan is not None
    [held] = report.plan.held
    assert held.address == "Fleet/north"
    # Read from the last applied commit through the source, not assumed.
    assert f"declared it at the last applied revision {first[:7]}" in held.because
    assert held.kept == ("Asset/N-1", "Asset/N-2")
    assert "held back: Fleet/north" in report.operation.message
    recorded = world.store.operations.get(report.operation.operation_id)
    assert recorded is not None
    [entry] = recorded.held
    assert entry["address"] == "Fleet/north" and entry["keptObjects"] == 2
    assert entry["errorCount"] == len(held.errors) >= 1
    assert entry["errors"][0]["location"].startswith("manifests/north.yaml:")
    # The log's record and the API's operation body are one shape (OperationRecord).
    assert recorded.to_dict()["held"][0]["address"] == "Fleet/north"
    assert "held" in OperationRecord.model_json_schema()["properties"]


def test_isolation_off_fails_the_revision_and_writes_nothing() -> None:
    world = World(isolate=False)
    _applied(world)
    serial = world.store.read().meta.serial
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    report = world.run()
    assert report.operation.state is S.FAILURE
    assert report.plan is None and report.operation.held == ()
    assert world.store.read().meta.serial == serial
    assert world.models()["Asset/S-1"] == "a"


def test_a_fix_commit_releases_every_held_document() -> None:
    world = World(isolate=True)
    _applied(world)
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    assert world.run().plan.held  # type: ignore[union-attr]
    world.commit(
        north=fleet("north", ("N-1", "c"), ("N-2", "a")), south=fleet("south", ("S-1", "b"))
    )
    report = world.run()
    assert report.succeeded and report.plan is not None
    assert report.plan.held == () and report.operation.held == ()
    assert "held back" not in report.operation.message
    assert world.models() == {"Asset/N-1": "c", "Asset/N-2": "a", "Asset/S-1": "b"}


def test_a_new_file_that_cannot_be_read_is_held_by_its_path_not_dropped() -> None:
    # It declared nothing at the last applied revision and no applied document is
    # missing: nothing accounts for it, so the file itself is held, with its errors.
    world = World(isolate=True)
    _applied(world)
    world.commit(north=NORTH, south=fleet("south", ("S-1", "b")), east=BROKEN)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.models()["Asset/S-1"] == "b"
    assert report.plan is not None
    [held] = report.plan.held
    assert (held.address, held.location, held.kept) == ("manifests/east.yaml", None, ())
    assert "no document of it was applied before" in held.because
    assert held.errors and all(
        (e.location or "").startswith("manifests/east.yaml:") for e in held.errors
    )
    assert "held back: manifests/east.yaml" in report.operation.message


def test_on_a_first_revision_a_file_that_cannot_be_read_is_held_and_the_rest_created() -> None:
    world = World(isolate=True)
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "a")))
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.models() == {"Asset/S-1": "a"}
    assert report.plan is not None
    assert [h.address for h in report.plan.held] == ["manifests/north.yaml"]


POLICY = (
    "apiVersion: fleetward/v1\nkind: SyncPolicy\nmetadata: {name: north-isolated}\n"
    "spec:\n  selector: {names: [north]}\n  isolateFailures: true\n"
)


def test_a_new_unreadable_file_fails_the_revision_when_only_a_policy_isolates() -> None:
    # Which documents the file declares is unknown, so no policy can be said to select
    # them: all-or-nothing rules it, as it rules every document no policy isolates.
    world = World(isolate=False)
    world.commit(north=NORTH, south=fleet("south", ("S-1", "a")), policy=POLICY)
    assert world.run().succeeded
    serial = world.store.read().meta.serial
    world.commit(north=NORTH, south=fleet("south", ("S-1", "b")), policy=POLICY, east=BROKEN)
    report = world.run()
    assert report.operation.state is S.FAILURE
    assert world.store.read().meta.serial == serial
    assert any(
        (e.get("location") or "").startswith("manifests/east.yaml:")
        for e in report.operation.errors
    ), report.operation.errors


def test_a_file_still_broken_after_an_isolated_apply_holds_by_assumption() -> None:
    # The revision last applied is the one that broke the file: what the file declared
    # cannot be read there, so the applied owners missing from the revision are held.
    world = World(isolate=True)
    _applied(world)
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    assert world.run().succeeded
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "c")))
    report = world.run()
    assert report.succeeded and report.plan is not None
    [held] = report.plan.held
    assert held.address == "Fleet/north"
    assert held.because.startswith("assumed to be declared in manifests/north.yaml")
    assert held.kept == ("Asset/N-1", "Asset/N-2")
    assert world.models() == {"Asset/N-1": "a", "Asset/N-2": "a", "Asset/S-1": "c"}


def test_a_store_written_after_the_read_is_planned_again_with_the_same_documents_held() -> None:
    world = World(isolate=True)
    _applied(world)
    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    isolation = world.engine.isolation(world.source, True, PlanOptions(), NOW)
    resolved = world.engine.read(world.source, isolation=isolation)
    assert isinstance(resolved, Isolated)
    assert [c.address for c in resolved.plan.changes] == ["Asset/S-1"]
    assert world.run().succeeded  # another writer applies the same revision meanwhile
    moved = world.store.read()
    made = world.engine.plan(resolved, moved, PlanOptions(), NOW)
    assert made.changes == ()  # planned against the store as it is now
    assert [h.address for h in made.held] == ["Fleet/north"]
    assert made.held[0].kept == ("Asset/N-1", "Asset/N-2")


def _metric(metrics: Metrics, name: str) -> float:
    for line in metrics.exposition().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def test_health_metrics_and_status_files_name_the_held_documents(tmp_path: Path) -> None:
    health = Health(ready_max_age=3600)
    metrics = Metrics(health)
    status = StatusWriter(tmp_path, {"url": "memory"}, health)
    world = World(isolate=True, reporter=Reporters([health, metrics, status]))
    _applied(world)
    assert health.readiness()[0] and _metric(metrics, "fleetward_held_documents") == 0

    world.commit(north=BROKEN, south=fleet("south", ("S-1", "b")))
    assert world.run().succeeded
    ready, body = health.readiness()
    assert not ready
    [reason] = body["reasons"]
    assert "holds back 1 document(s)" in reason and "Fleet/north" in reason
    assert _metric(metrics, "fleetward_held_documents") == 1
    summary = json.loads((tmp_path / "status" / "summary.json").read_bytes())
    assert summary["inSync"] is False and summary["ready"] is False
    [held] = summary["heldDocuments"]
    assert held["address"] == "Fleet/north" and held["keptObjects"] == 2
    assert held["location"] == "manifests/north.yaml" and held["errorCount"] >= 1
    assert summary["lastOperation"]["message"].endswith("held back: Fleet/north")
    for ident in ("N-1", "N-2"):
        kept = json.loads(
            (tmp_path / "status" / "objects" / "Asset" / f"{ident}.json").read_bytes()
        )
        assert kept["owner"] == "Fleet/north" and kept["action"] is None
        stalled = {c["type"]: c for c in kept["conditions"]}["Stalled"]
        assert stalled["status"] == "True" and stalled["reason"] == "ManifestErrors"
        assert "manifests/north.yaml" in stalled["message"]
    assert not (tmp_path / "status" / "objects" / "Asset" / "S-1.json").exists()

    world.commit(north=NORTH, south=fleet("south", ("S-1", "b")))
    assert world.run().succeeded
    assert health.readiness()[0] and _metric(metrics, "fleetward_held_documents") == 0
    summary = json.loads((tmp_path / "status" / "summary.json").read_bytes())
    assert summary["heldDocuments"] == [] and summary["inSync"] is True
    assert not list((tmp_path / "status" / "objects").glob("*/*.json"))
