"""A small manifest repository in three revisions, for the rollback and --target tests.

v1: Fleet/yard with TRK-1 (FH16) and TRK-2; a depot Field, a TaskType and
Task/T-1 on TRK-1. v2: TRK-1 becomes an FH12, TRK-2 leaves the fleet (stopped),
TRK-3 joins. v3: TRK-1 becomes an FH20, T-1's description changes, and a new
task T-2 on a new asset TRK-4 (so a targeted T-2 needs TRK-4).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from daemon_support import GitRepo

from fleetward.cli import cli

REFERENCE = """\
apiVersion: fleetward/v1
kind: Field
metadata: {name: depot}
spec: {xid: depot, name: Depot}
---
apiVersion: fleetward/v1
kind: TaskType
metadata: {name: check}
spec: {xid: check, name: Check}
"""

FLEET = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {{name: yard}}
spec:
  assets:
{assets}"""

TASKS = """\
apiVersion: fleetward/v1
kind: TaskBatch
metadata: {{name: checks}}
spec:
  tasks:
{tasks}"""


def _asset(ident: str, model: str) -> str:
    return (
        f"    - externalAssetId: {ident}\n      type: truck\n      attributes: {{model: {model}}}\n"
    )


def _task(xid: str, asset: str, description: str) -> str:
    return (
        f"    - xid: {xid}\n      field: {{xid: depot}}\n      asset: {{xid: {asset}, type: truck}}\n"
        f"      taskType: {{xid: check}}\n      description: {description}\n"
    )


VERSIONS: dict[str, tuple[Sequence[tuple[str, str]], Sequence[tuple[str, str, str]]]] = {
    "v1": ([("TRK-1", "FH16"), ("TRK-2", "FH16")], [("T-1", "TRK-1", "First check")]),
    "v2": ([("TRK-1", "FH12"), ("TRK-3", "FH16")], [("T-1", "TRK-1", "First check")]),
    "v3": (
        [("TRK-1", "FH20"), ("TRK-3", "FH16"), ("TRK-4", "FH16")],
        [("T-1", "TRK-1", "Second check"), ("T-2", "TRK-4", "New truck check")],
    ),
}


def commit_version(repo: GitRepo, version: str) -> str:
    """Commit the manifests of `version`; its commit SHA."""
    assets, tasks = VERSIONS[version]
    return repo.commit(
        version,
        {
            "manifests/reference.yaml": REFERENCE,
            "manifests/fleet.yaml": FLEET.format(assets="".join(_asset(*a) for a in assets)),
            "manifests/tasks.yaml": TASKS.format(tasks="".join(_task(*t) for t in tasks)),
        },
    )


def run(repo: GitRepo, state: Path, *args: str, input: str | None = None) -> Result:
    """`fleetward ARGS` in-process, against `repo` and `state` where the command takes them."""
    argv = list(args)
    takes_source = args[0] in ("plan", "apply", "rollback", "resume")
    if takes_source:
        argv += ["--source", str(repo.root)]
    argv += ["--state-dir", str(state)]
    return CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)


def objects(state: Path) -> dict[str, dict[str, Any]]:
    """The stored objects by address, as `state show --json` prints them."""
    result = CliRunner().invoke(cli, ["state", "show", "--json", "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    return {o["key"]: o for o in json.loads(result.output)["objects"]}


def desired_view(state: Path) -> dict[str, tuple[str, Any]]:
    """Each stored object's (state, spec): what a revision's desired state decides."""
    return {key: (o["state"], o["spec"]) for key, o in objects(state).items()}
