"""Uncommitted edits under --path are ignored by design, and validate/plan/apply say so.

One line on stderr, never in --json stdout; nothing when the tree is clean,
with --no-git (which reads the edits) or for edits outside --path.
"""

from __future__ import annotations

import json

import pytest
from daemon_support import (  # noqa: F401  (ws_fixture: a pytest fixture)
    NORTH,
    TRK_1001_LINE,
    Workspace,
    ws_fixture,
)

NOTE = (
    "note: 3 uncommitted changes under manifests/ are ignored (fleetward reads committed "
    "HEAD); use --no-git to read the work tree"
)


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_uncommitted_edits_under_the_path_are_named_in_one_line(
    ws: Workspace, command: str
) -> None:
    repo, _ = ws.repo()
    repo.replace(NORTH, TRK_1001_LINE, TRK_1001_LINE.replace("FH16", "FH16 Aero"))  # edited
    (repo.root / "manifests" / "draft.yaml").write_text("not: committed\n")  # untracked
    repo.git("rm", "-q", "manifests/fleets/field-equipment.yaml")  # staged deletion
    (repo.root / "README.txt").write_text("outside --path: not counted\n")
    args = ["--source", str(repo.root)]
    if command != "validate":
        args += ["--state-dir", str(ws.path("state"))]
    if command == "apply":
        args.append("--auto-approve")

    result = ws.fleetward(command, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines().count(NOTE) == 1, result.stderr
    assert "note:" not in result.stdout

    with_json = ws.fleetward(command, "--json", *args)
    assert with_json.returncode == 0, with_json.stderr
    json.loads(with_json.stdout)  # stdout is JSON only
    assert NOTE in with_json.stderr


def test_no_note_for_a_clean_tree_or_with_no_git(ws: Workspace) -> None:
    repo, _ = ws.repo()
    (repo.root / "elsewhere.yaml").write_text("outside: manifests\n")
    clean = ws.fleetward("validate", "--source", str(repo.root))
    assert clean.returncode == 0, clean.stderr
    assert "uncommitted" not in clean.stderr

    (repo.root / "manifests" / "draft.yaml").write_text(
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: draft}\nspec: {assets: []}\n"
    )
    plain = ws.fleetward("validate", "--source", str(repo.root), "--no-git")
    assert plain.returncode == 0, plain.stderr
    assert "uncommitted" not in plain.stderr

    one = ws.fleetward("validate", "--source", str(repo.root), "--ref", "main")
    assert one.returncode == 0, one.stderr
    assert (
        "note: 1 uncommitted change under manifests/ is ignored (fleetward reads committed "
        "main); use --no-git to read the work tree"
    ) in one.stderr
