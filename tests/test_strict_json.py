"""The JSON fleetward writes is strict JSON: never `NaN`, `Infinity` or `-Infinity`.

Python's json module writes those for non-finite floats, and no JSON reader takes
them back (the PostgreSQL store's JSON columns refuse them too). The YAML reader
refuses non-finite numbers in manifests (test_yaml_input), so none should reach
an output; these tests inject one past it, as a future bug would, and require
an error instead of invalid JSON: `plan --json` and `plan --out` fail with
nothing written, and the daemon's status files name the file they could not
write while the others are still written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_bad_input import fleet
from test_control import World, north, world_fixture  # noqa: F401  (world_fixture: a fixture)

from fleetward.cli import cli
from fleetward.cli import reconcile as reconcile_module
from fleetward.observe import status as status_module
from fleetward.observe.status import write_json
from fleetward.rendering import plan_to_dict, plan_to_stream

NOT_JSON = "Out of range float values are not JSON compliant"


def _strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


def _with_nan(plan: Any) -> dict[str, Any]:
    """The plan's dict, plus a NaN: what a bug that let one through would print."""
    return {**plan_to_dict(plan), "bug": math.nan}


def _source(tmp_path: Path) -> list[str]:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "fleet.yaml").write_text(fleet("north"))
    return ["--no-git", "--source", str(tmp_path), "--state-dir", str(tmp_path / "state")]


def test_plan_json_with_a_non_finite_number_is_an_error_not_invalid_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_module, "plan_to_stream", _with_nan)
    result = CliRunner().invoke(cli, ["plan", "--json", *_source(tmp_path)])
    assert result.exit_code == 1, result.output
    [error] = _strict(result.stdout)["errors"]  # the error object, and nothing before it
    assert error["error"] == f"Internal error: ValueError: {NOT_JSON}: nan"


def test_plan_out_with_a_non_finite_number_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_module, "plan_to_stream", _with_nan)
    out = tmp_path / "out" / "plan.json"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["plan", "--out", str(out), *_source(tmp_path)])
    assert result.exit_code == 1, result.output
    assert NOT_JSON in result.stderr
    assert list(out.parent.iterdir()) == []  # neither the plan nor its temporary file


def test_write_json_refuses_a_non_finite_number_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=NOT_JSON):
            write_json(path, {"ratio": value})
        assert list(tmp_path.iterdir()) == []


def test_a_status_file_json_cannot_hold_is_named_and_the_others_are_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit(north())
    monkeypatch.setattr(status_module, "plan_to_stream", _with_nan)
    world.run()
    status = world.state / "status"
    summary = _strict((status / "summary.json").read_text())
    assert summary["statusFileErrors"] == [f"{status / 'plan.json'}: {NOT_JSON}: nan"]
    assert not (status / "plan.json").exists()
    assert (status / "plan.txt").exists()
    for path in status.rglob("*.json"):
        _strict(path.read_text())

    monkeypatch.setattr(status_module, "plan_to_stream", plan_to_stream)
    world.run()
    assert world.summary()["statusFileErrors"] == []
    assert "changes" in _strict((status / "plan.json").read_text())
