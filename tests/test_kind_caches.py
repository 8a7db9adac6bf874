"""No hidden state in the pure middle: what kinds remember is a value the caller owns.

Each test runs twice in one process with different inputs (or different caches) through
the public API, and shows the second run cannot see what the first one left behind:
the rule-matching memo, the per-plan frozen-asset and ownership answers, the conflicts
`rules preview` keeps, the raw spec TaskBatch errors name, the template-schema checkers.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleetward.errors import ManifestError
from fleetward.kinds import REGISTRY, KindCaches
from fleetward.kinds.asset_rule import RuleMemo
from fleetward.kinds.asset_rule import outputs as rule_outputs
from fleetward.kinds.template_schema import TemplateCheckers
from fleetward.pipeline import SourceOptions, as_stored, resolve
from fleetward.planning import plan

CASES = Path(__file__).parent / "cases"
NOW = "2026-01-01T00:00:00Z"

STREAMS = """apiVersion: fleetward/v1
kind: StreamSet
metadata: {name: s}
spec:
  streams:
%s
"""


def _rule(name: str, literal: str, state: str = "Started", asset_name: str = "") -> str:
    named = f', name: "{asset_name}"' if asset_name else ""
    return (
        f"apiVersion: fleetward/v1\nkind: AssetRule\nmetadata: {{name: {name}}}\n"
        f"spec:\n  state: {state}\n  expressions:\n    - field: Id\n"
        "      specifications: [{type: Group, name: a, characterLength: 1}, "
        f"{{type: Literal, value: {literal}}}]\n  outputs:\n    - field: Asset\n"
        f'      value: {{id: "A-{{a}}"{named}, streamReferences: [{{id: "{literal}", '
        'streamId: "{streamId}"}]}\n'
    )


def _write(root: Path, files: Mapping[str, str]) -> SourceOptions:
    manifests = root / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)
    manifests.mkdir(parents=True)
    for name, text in files.items():
        (manifests / name).write_text(text)
    return SourceOptions(source=str(root), path="manifests", no_git=True)


def _streams(*ids: str) -> str:
    return STREAMS % "\n".join(f"    - {{id: {i}}}" for i in ids)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the streams the rule matcher evaluates from now on."""
    seen: list[str] = []
    real = rule_outputs.evaluate

    def counting(compiled: rule_outputs.CompiledRule, stream: Mapping[str, Any]) -> Any:
        seen.append(stream["id"])
        return real(compiled, stream)

    monkeypatch.setattr(rule_outputs, "evaluate", counting)
    return seen


# -- the rule-matching memo ----------------------------------------------------------------


def test_a_run_does_not_reuse_the_matches_another_runs_caches_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = KindCaches(), KindCaches()
    options = _write(tmp_path, {"s.yaml": _streams("xP", "yP"), "r.yaml": _rule("r", "P")})
    resolve(options, caches=first)
    seen = _counting(monkeypatch)
    # Other streams, other caches: every stream is matched, none taken from run 1.
    options = _write(tmp_path, {"s.yaml": _streams("xP", "zP"), "r.yaml": _rule("r", "P")})
    desired = resolve(options, caches=second)
    assert sorted(seen) == ["xP", "zP"]
    assert sorted(k for k in desired.objects if k.startswith("Asset/")) == [
        "Asset/A-x",
        "Asset/A-z",
    ]
    # Run 1's memo is still its own: it never saw zP.
    assert "zP" not in {s for r in first.entry(RuleMemo).results.values() for s in r}


def test_without_caches_nothing_is_remembered_between_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = _write(tmp_path, {"s.yaml": _streams("xP", "yP"), "r.yaml": _rule("r", "P")})
    resolve(options)
    seen = _counting(monkeypatch)
    resolve(options)  # the same revision again, no caches: matched again from scratch
    assert sorted(seen) == ["xP", "yP"]


# -- conflicts are data --------------------------------------------------------------------


def test_kept_conflicts_are_returned_and_do_not_switch_a_later_run() -> None:
    options = SourceOptions(
        source=str(CASES / "rules-err-conflicting-rules"), path="manifests", no_git=True
    )
    kept = resolve(options, keep_conflicts=True)
    assert kept.conflicts
    assert all(c.error.startswith("Conflicting rule outputs") for c in kept.conflicts)
    with pytest.raises(ManifestError, match="Conflicting rule outputs"):
        resolve(options)  # the same revision, the default: the conflicts fail it
    assert resolve(options, keep_conflicts=True).conflicts == kept.conflicts


# -- per-plan answers: frozen assets and the counts of a deleted rule's objects ------------


def test_each_plan_answers_removals_from_its_own_desired_state(tmp_path: Path) -> None:
    """Two rules merge Asset/A-x; with rule b Stopped the merged asset stays as stored. A
    plan of another desired state (b Started again, a stream gone) through the same
    caches must not take the first plan's answer."""
    files = {
        "s.yaml": _streams("xP", "xT"),
        "a.yaml": _rule("a", "P"),
        "b.yaml": _rule("b", "T"),
    }
    caches = KindCaches()
    store = as_stored(resolve(_write(tmp_path, files), caches=caches))
    files["b.yaml"] = _rule("b", "T", "Stopped")
    files["s.yaml"] = _streams("xT")
    stopped = plan(resolve(_write(tmp_path, files), caches=caches), store, NOW)
    assert [c.address for c in stopped.changes if c.address.startswith("Asset/")] == []
    files["b.yaml"] = _rule("b", "T", "Started")
    started = plan(resolve(_write(tmp_path, files), caches=caches), store, NOW)
    fresh = plan(resolve(_write(tmp_path, files)), store, NOW)
    assert [(c.address, c.action) for c in started.changes] == [
        (c.address, c.action) for c in fresh.changes
    ]
    assert any(c.address == "Asset/A-x" for c in started.changes)


def test_a_deleted_rules_counts_come_from_the_store_planned_against(tmp_path: Path) -> None:
    caches = KindCaches()
    two = {"s.yaml": _streams("xP", "yP"), "a.yaml": _rule("a", "P")}
    one = {"s.yaml": _streams("xP"), "a.yaml": _rule("a", "P")}
    big = as_stored(resolve(_write(tmp_path, two)))
    small = as_stored(resolve(_write(tmp_path, one)))
    gone = resolve(_write(tmp_path, {"s.yaml": _streams("xP")}), caches=caches)
    reasons = [
        {str(c.address): c.reason for c in plan(gone, store, NOW).changes}["AssetRule/a"]
        for store in (big, small)
    ]
    assert "(2 asset(s) stopped)" in reasons[0]
    assert "(1 asset(s) stopped)" in reasons[1]


# -- TaskBatch schema errors name the xid of the spec they are given ------------------------


def test_taskbatch_schema_errors_name_the_xid_of_the_raw_spec_passed_in() -> None:
    plugin = REGISTRY["TaskBatch"]
    raw_b = {"tasks": [{"xid": "B-1", "asset": {"xid": "TANK-01"}}]}
    raw_a = {"tasks": [{"xid": "A-1", "asset": {"xid": "TANK-01"}}]}
    with pytest.raises(ValidationError) as caught_b:
        plugin.spec_adapter.validate_python(raw_b)
    with pytest.raises(ValidationError):  # validated last: once the xid errors named
        plugin.spec_adapter.validate_python(raw_a)
    problems = plugin.schema_problems(caught_b.value, ("spec",), raw_b)
    assert problems
    assert {p.parameters.get("xid") for _, _, p in problems} == {"B-1"}


# -- the template-schema checkers ------------------------------------------------------------


def test_template_checkers_are_built_once_per_schema_in_the_callers_caches() -> None:
    options = SourceOptions(
        source=str(CASES / "tasks-create-all-checks-pass"), path="manifests", no_git=True
    )
    caches = KindCaches()
    empty = as_stored(resolve(options))
    first = plan(resolve(options, caches=caches), empty, NOW)
    built = caches.entry(TemplateCheckers).built
    assert built >= 1
    second = plan(resolve(options, caches=caches), empty, NOW)
    assert caches.entry(TemplateCheckers).built == built  # a second run builds none
    assert first.errors == second.errors
    other = KindCaches()
    plan(resolve(options, caches=other), empty, NOW)
    assert other.entry(TemplateCheckers).built == built  # its own, not run 1's
