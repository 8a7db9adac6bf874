"""Golden plans: each folder under tests/cases/ is one planning scenario.

A case folder holds
  manifests/           the revision (read as a plain directory)
  state.json           optional: the starting store, objects in StoredObject.to_doc() shape
  options.json         optional: PlanOptions overrides, e.g. {"allow_empty": true}, and
                       "isolate": "everywhere" (--isolate-failures) or "policies" (only
                       what an isolateFailures SyncPolicy selects)
  expected-plan.json   plan_to_dict(plan) without createdAt, revision, revisionKind and ref
or, instead of expected-plan.json,
  expected-errors.json the problems `resolve` must raise as a ManifestError, in order: a list
                       of {"error", "location"} (plus any other Problem.to_dict() key, e.g.
                       "resolution", to compare that too)

Planning is pure, so the store snapshot is built directly from state.json (no TinyDB).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetward.errors import ManifestError
from fleetward.isolation import Isolated
from fleetward.model import ObjectKey, StoredObject, StoreMeta, StoreSnapshot, spec_hash
from fleetward.pipeline import Isolation, SourceOptions, resolve, resolve_isolating
from fleetward.planning import PlanOptions, plan
from fleetward.rendering import plan_from_dict, plan_to_dict

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p for p in CASES_DIR.iterdir() if (p / "expected-plan.json").is_file())
ERROR_CASES = sorted(p for p in CASES_DIR.iterdir() if (p / "expected-errors.json").is_file())
NOW = "2024-05-01T10:00:00Z"
# Fields that depend on how the revision was read, not on planning.
VOLATILE = ("createdAt", "revision", "revisionKind", "ref")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_snapshot(case: Path) -> StoreSnapshot:
    state_file = case / "state.json"
    if not state_file.exists():
        return StoreSnapshot(StoreMeta(lineage=None, serial=0, last_applied_revision=None), {})
    raw = _read_json(state_file)
    objects: dict[ObjectKey, StoredObject] = {}
    for doc in raw["objects"]:
        obj = StoredObject.from_doc(doc)
        assert obj.key not in objects, f"{case.name}: duplicate stored key {obj.key}"
        objects[obj.key] = obj
    meta = StoreMeta(
        lineage=raw.get("lineage"),
        serial=int(raw.get("serial", 0)),
        last_applied_revision=raw.get("lastAppliedRevision"),
    )
    return StoreSnapshot(meta, objects)


def _raw_options(case: Path) -> dict[str, Any]:
    options_file = case / "options.json"
    return dict(_read_json(options_file)) if options_file.exists() else {}


def load_options(case: Path) -> PlanOptions:
    raw = _raw_options(case)
    raw.pop("isolate", None)
    return PlanOptions(**raw)


def case_isolation(case: Path) -> str | None:
    """How a case isolates failures: "everywhere", "policies", or None (all-or-nothing)."""
    value = _raw_options(case).get("isolate")
    assert value in (None, "everywhere", "policies"), f"{case.name}: isolate {value!r}"
    return value


def case_sources(case: Path) -> SourceOptions:
    return SourceOptions(source=str(case), path="manifests", no_git=True)


def plan_case(case: Path) -> dict[str, Any]:
    isolate = case_isolation(case)
    if isolate is not None:
        snapshot = load_snapshot(case)
        isolation = Isolation(isolate == "everywhere", lambda: snapshot, load_options(case), NOW)
        resolved = resolve_isolating(case_sources(case), isolation)
        if isinstance(resolved, Isolated):
            return plan_to_dict(resolved.plan)
        return plan_to_dict(plan(resolved, snapshot, NOW, load_options(case)))
    desired = resolve(case_sources(case))
    result = plan(desired, load_snapshot(case), NOW, load_options(case))
    return plan_to_dict(result)


def strip_volatile(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in VOLATILE}


def test_cases_are_present() -> None:
    # An emptied or moved cases/ folder must not pass silently as "0 cases".
    assert len(CASES) >= 14
    assert len(ERROR_CASES) >= 10
    assert not set(CASES) & set(ERROR_CASES), "a case expects a plan and errors at once"
    for case in CASES + ERROR_CASES:
        assert (case / "manifests").is_dir(), f"{case.name} has no manifests/"
    stray = [p.name for p in CASES_DIR.iterdir() if p.is_dir() and p not in CASES + ERROR_CASES]
    assert stray == [], f"case folders without expected-plan.json or expected-errors.json: {stray}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_plan(case: Path) -> None:
    expected = _read_json(case / "expected-plan.json")
    actual = strip_volatile(plan_case(case))
    # Compare the change lists one by one first: a failure then names the address.
    assert [c["address"] for c in actual["changes"]] == [c["address"] for c in expected["changes"]]
    for got, want in zip(actual["changes"], expected["changes"]):
        assert got == want, f"change {want['address']} differs"
    assert actual == expected


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda p: p.name)
def test_golden_errors(case: Path) -> None:
    """The revision does not resolve: every expected problem, in order, at its file:line:column."""
    expected = _read_json(case / "expected-errors.json")
    assert expected and all({"error", "location"} <= set(e) for e in expected)
    with pytest.raises(ManifestError) as raised:
        resolve_case(case)
    actual = [p.to_dict() for p in raised.value.problems]
    got = [{k: problem.get(k) for k in want} for problem, want in zip(actual, expected)]
    assert got == expected[: len(got)]
    assert len(actual) == len(expected), [(p["location"], p["error"]) for p in actual]


def resolve_case(case: Path) -> None:
    """Read a case's revision as plan_case does; raises its ManifestError."""
    isolate = case_isolation(case)
    if isolate is None:
        resolve(case_sources(case))
        return
    snapshot = load_snapshot(case)
    isolation = Isolation(isolate == "everywhere", lambda: snapshot, load_options(case), NOW)
    resolve_isolating(case_sources(case), isolation)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda p: p.name)
def test_isolation_off_reports_the_same_errors(case: Path) -> None:
    """With isolation off (and no SyncPolicy asking for it) a revision fails exactly as
    it always did: the same problems, in the same order, whatever path reads it."""
    if case_isolation(case) is not None:
        pytest.skip("the case isolates")
    with pytest.raises(ManifestError) as strict:
        resolve(case_sources(case))
    isolation = Isolation(False, lambda: load_snapshot(case), PlanOptions(), NOW)
    with pytest.raises(ManifestError) as tolerant:
        resolve_isolating(case_sources(case), isolation)
    assert [p.to_dict() for p in tolerant.value.problems] == [
        p.to_dict() for p in strict.value.problems
    ]
    assert [p.snippet for p in tolerant.value.problems] == [
        p.snippet for p in strict.value.problems
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_plan_is_deterministic_and_round_trips(case: Path) -> None:
    """Planning twice gives the same plan, and a saved plan reads back to the same value."""
    first = plan_case(case)
    second = plan_case(case)
    assert first == second
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)
    reread = plan_to_dict(plan_from_dict(json.loads(json.dumps(first)), "plan.json"))
    assert reread == first


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_case_state_hashes_are_consistent(case: Path) -> None:
    """Stored specHash values match their spec, except where a drift case edits it on purpose."""
    snapshot = load_snapshot(case)
    drifted = sorted(k for k, o in snapshot.objects.items() if spec_hash(o.spec) != o.spec_hash)
    if "drift" in case.name:
        assert drifted, f"{case.name} is a drift case but no stored object drifts"
    else:
        assert drifted == [], f"{case.name}: stored specHash does not match spec for {drifted}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_planning_does_not_mutate_the_snapshot(case: Path) -> None:
    snapshot = load_snapshot(case)
    before = json.dumps([o.to_doc() for o in snapshot.objects.values()], sort_keys=True)
    if case_isolation(case) is None:
        desired = resolve(case_sources(case))
        plan(desired, snapshot, NOW, load_options(case))
    else:
        plan_case(case)
    after = json.dumps([o.to_doc() for o in snapshot.objects.values()], sort_keys=True)
    assert after == before
