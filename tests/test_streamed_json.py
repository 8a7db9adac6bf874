"""Big JSON documents — `plan --json`, `plan --out`, the daemon's plan.json — are written
one change at a time: no change's dict is made before the one before it was written, and
the text is the plan's JSON all the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fleetward.rendering.json as plan_json
from fleetward.model import Action, Change, ObjectKey, ObjectState, ObjectView, Plan, Revision
from fleetward.observe import status
from fleetward.rendering import plan_to_dict, plan_to_stream, write_json

CHANGES = 1500  # over the length from which a list is written item by item


def big_plan() -> Plan:
    changes = tuple(
        Change(
            address=ObjectKey(f"Asset/A-{i}"),
            kind="Asset",
            action=Action.CREATE,
            reason="declared in Git",
            owner="Fleet/big",
            before=None,
            after=ObjectView(
                ObjectState.ACTIVE, "Fleet/big", {"externalAssetId": f"A-{i}", "n": i}
            ),
        )
        for i in range(CHANGES)
    )
    return Plan(
        lineage="l-1",
        serial=3,
        revision=Revision("a" * 40, "git", "main"),
        created_at="2026-12-03T00:00:00Z",
        changes=changes,
        desired_counts={"Asset": CHANGES},
    )


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ "made" each time a change's dict is made (while a plan is being written)."""
    seen: list[str] = []
    real = plan_json._change

    def counting(change: Change) -> Any:
        seen.append("made")
        return real(change)

    monkeypatch.setattr(plan_json, "_change", counting)
    return seen


def test_a_long_plan_is_written_change_by_change(events: list[str]) -> None:
    plan = big_plan()
    expected = plan_to_dict(plan)
    events.clear()
    chunks: list[str] = []

    def write(text: str) -> None:
        events.append("write")
        chunks.append(text)

    write_json(plan_to_stream(plan), write)
    made = [i for i, e in enumerate(events) if e == "made"]
    assert len(made) == CHANGES
    assert all(events[i + 1] == "write" for i in made), (
        "each change written before the next is made"
    )
    assert max(len(c) for c in chunks) < 1000, "no chunk holds more than one change"
    text = "".join(chunks)
    assert json.loads(text) == expected


def test_a_short_plan_is_one_indented_document() -> None:
    plan = big_plan()
    short = Plan(plan.lineage, plan.serial, plan.revision, plan.created_at, plan.changes[:3])
    chunks: list[str] = []
    write_json(plan_to_stream(short), chunks.append)
    assert json.loads("".join(chunks)) == plan_to_dict(short)
    assert '\n  "changes": [\n    {' in "".join(chunks)


def test_the_daemon_writes_plan_json_change_by_change(tmp_path: Path, events: list[str]) -> None:
    plan = big_plan()
    expected = plan_to_dict(plan)
    events.clear()
    failed: list[str] = []
    status._write_plan(tmp_path, "plan", plan, failed)
    assert failed == []
    assert events.count("made") == CHANGES
    assert json.loads((tmp_path / "plan.json").read_text()) == expected
