"""Failure isolation in the daemon, end to end: a real repository, a real daemon process.

One commit breaks a file and changes another fleet: under isolation the change
is applied and the broken document is held at its last applied version, named in
status/summary.json, the operation, /metrics and /readyz; the fix commit releases
it and the daemon is in sync and ready again. The daemon polls every hour: every
revision here is applied by the watch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    DaemonProcess,
    Daemons,
    GitRepo,
    Workspace,
    daemons_fixture,
    sample,
    ws_fixture,
)

EQUIPMENT = "manifests/fleets/field-equipment.yaml"
# GEN-01's attributes; the broken version opens a flow sequence it never closes.
GEN_LINE = "attributes: {powerKw: 250, fuel: diesel}"
GEN_BROKEN = "attributes: {powerKw: 250, fuel: [diesel}"
EQUIPMENT_ASSETS = ["Asset/GEN-01", "Asset/TANK-01", "Asset/TANK-02", "Asset/TANK-03"]
TIMEOUT = 60.0


def _stored(ws: Workspace, state: Path) -> dict[str, dict[str, Any]]:
    shown = ws.fleetward("state", "show", "--json", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    return {o["key"]: o for o in json.loads(shown.stdout)["objects"]}


def _start(how: str, ws: Workspace, daemons: Daemons, repo: GitRepo, state: Path) -> DaemonProcess:
    """A daemon with isolation switched on by the flag, or by its config file's key."""
    if how == "flag":
        return daemons.start(repo.root, state, "--isolate-failures", interval="1h")
    config = ws.path("fleetward.yaml")
    config.write_text("isolate-failures: true\n")
    return daemons.start(repo.root, state, "--config", str(config), interval="1h")


@pytest.mark.parametrize("how", ["flag", "config"])
def test_a_broken_file_is_held_while_the_rest_of_the_commit_applies_until_fixed(
    how: str, ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = _start(how, ws, daemons, repo, state)
    daemon.wait_applied(first, timeout=TIMEOUT)
    before = _stored(ws, state)

    # One commit: field-equipment.yaml cannot be parsed, and TRK-1001 (north-yard) changes.
    repo.replace(EQUIPMENT, GEN_LINE, GEN_BROKEN)
    repo.replace(NORTH, "model: FH16, year: 2022", "model: FH16 Aero, year: 2022")
    broken = repo.commit("break field-equipment, TRK-1001 is an FH16 Aero")

    summary = daemon.wait_applied(broken, timeout=TIMEOUT)
    after = _stored(ws, state)
    assert after["Asset/TRK-1001"]["spec"]["attributes"]["model"] == "FH16 Aero"
    assert after["Asset/TRK-1001"]["appliedRevision"] == broken
    for key in EQUIPMENT_ASSETS:  # held: as the last applied revision left them
        assert after[key] == before[key], key
        assert after[key]["appliedRevision"] == first

    [held] = summary["heldDocuments"]
    assert held["address"] == "Fleet/field-equipment"
    assert held["keptObjects"] == len(EQUIPMENT_ASSETS)
    assert f"declared it at the last applied revision {first[:7]}" in held["because"]
    assert held["errors"][0]["error"] == "Invalid YAML"
    assert held["errors"][0]["location"].startswith(f"{EQUIPMENT}:")
    assert summary["lastOperation"]["planSummary"]["update"] == 1
    assert summary["inSync"] is False  # the store does not hold all of the revision
    assert summary["ready"] is False
    assert summary["manifestErrors"] == 0  # the revision was applied, not refused

    # The operation succeeded, naming what it held back.
    op = daemon.operation(summary["lastOperation"]["id"])
    assert op["state"] == "SUCCESS"
    assert "held back: Fleet/field-equipment" in op["message"]
    assert [h["address"] for h in op["held"]] == ["Fleet/field-equipment"]

    # The kept objects are Stalled, with the document's error.
    stalled = json.loads((state / "status" / "objects" / "Asset" / "GEN-01.json").read_text())
    assert stalled["owner"] == "Fleet/field-equipment"
    conditions = {c["type"]: c for c in stalled["conditions"]}
    assert (conditions["Stalled"]["status"], conditions["Stalled"]["reason"]) == (
        "True",
        "ManifestErrors",
    )
    assert "Invalid YAML" in conditions["Stalled"]["message"]
    assert "Held back" in (state / "status" / "plan.txt").read_text()

    assert sample(daemon.metrics(), "fleetward_held_documents") == 1
    ready = daemon.get("/readyz")
    assert ready.status == 503
    [reason] = [r for r in ready.json()["reasons"] if "failure isolation" in r]
    assert "Fleet/field-equipment" in reason

    # The fix releases it: everything converges, the daemon is ready again.
    repo.replace(EQUIPMENT, GEN_BROKEN, GEN_LINE)
    fixed = repo.commit("fix field-equipment")
    summary = daemon.wait_applied(fixed, timeout=TIMEOUT)
    assert summary["heldDocuments"] == []
    assert summary["inSync"] is True
    assert summary["ready"] is True
    assert daemon.get("/readyz").status == 200
    assert sample(daemon.metrics(), "fleetward_held_documents") == 0
    assert not (state / "status" / "objects" / "Asset" / "GEN-01.json").exists()
    op = daemon.operation(summary["lastOperation"]["id"])
    assert op["state"] == "SUCCESS"
    assert op.get("held", []) == []
