"""`plan` and `apply` with `--isolate-failures`: in-process CLI, real git repositories.

Three fleets in two files: north.yaml declares Fleet/north and Fleet/north-trailers,
south.yaml Fleet/south. The first revision is applied; the next one breaks
north.yaml's YAML and changes south. Isolation reads what north.yaml declared at
the store's last applied revision from Git, holds both its documents there, and
plans south's change.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from daemon_support import GitRepo, Workspace, ws_fixture  # noqa: F401  (pytest fixture)
from support import run_cli

NORTH = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {name: north}
spec:
  assets:
    - externalAssetId: TRK-1
      type: truck
      attributes: {model: FH16}
    - externalAssetId: TRK-2
      type: truck
---
apiVersion: fleetward/v1
kind: Fleet
metadata: {name: north-trailers}
spec:
  assets:
    - externalAssetId: TRL-1
      type: trailer
"""
# Line 8, an unclosed flow sequence: the file cannot be parsed at all.
NORTH_BROKEN = NORTH.replace("attributes: {model: FH16}", "attributes: {model: [FH16}")
SOUTH = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {name: south}
spec:
  assets:
    - externalAssetId: VAN-1
      type: van
      attributes: {model: Transit}
"""
SOUTH_CHANGED = SOUTH.replace("Transit", "Transit Custom")
NORTH_OBJECTS = ["Asset/TRK-1", "Asset/TRK-2", "Asset/TRL-1"]


class Repo:
    """The repository, its state directory, and the CLI run against both."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.git = GitRepo(ws.path("repo"), ws.env)
        self.state = ws.path("state")
        self.broken = ""  # the breaking commit, once made
        self.first = self.git.commit(
            "three fleets", {"manifests/north.yaml": NORTH, "manifests/south.yaml": SOUTH}
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*args, "--source", str(self.git.root), "--state-dir", str(self.state)]
        return run_cli(argv, env={**self.ws.env, **(env or {})})

    def objects(self) -> dict[str, dict[str, Any]]:
        shown = run_cli(["state", "show", "--json", "--state-dir", str(self.state)], self.ws.env)
        assert shown.returncode == 0, shown.stderr
        return {o["key"]: o for o in json.loads(shown.stdout)["objects"]}

    def store_bytes(self) -> bytes:
        return (self.state / "state.json").read_bytes()


@pytest.fixture(name="repo")
def repo_fixture(ws: Workspace) -> Repo:
    """The first revision applied; the breaking commit on top of it."""
    repo = Repo(ws)
    applied = repo.run("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    repo.broken = repo.git.commit(
        "break north.yaml, change south",
        {"manifests/north.yaml": NORTH_BROKEN, "manifests/south.yaml": SOUTH_CHANGED},
    )
    return repo


def test_a_file_broken_at_head_holds_what_it_declared_at_the_last_applied_revision(
    repo: Repo,
) -> None:
    before = repo.store_bytes()
    done = repo.run("plan", "--isolate-failures")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "~ Asset/VAN-1  update (spec changed)" in text
    assert "Held back (2 documents, kept at their last applied version):" in text
    read_from_git = (
        "manifests/north.yaml cannot be read, and declared it at the last applied revision "
        f"{repo.first[:7]}"
    )
    assert f"! Fleet/north  manifests/north.yaml: {read_from_git}; keeps 2 objects" in text
    assert f"! Fleet/north-trailers  manifests/north.yaml: {read_from_git}; keeps 1 object" in text
    assert text.count("Invalid YAML at manifests/north.yaml:8:") == 2
    for key in NORTH_OBJECTS:
        assert f"= {key}" in text
    # The held section comes before the summary, which counts the held documents.
    assert text.index("Held back") < text.index("Plan: 0 to create, 1 to update")
    assert "Plan: 0 to create, 1 to update, 0 to stop, 0 to delete. 2 documents held back." in text
    assert repo.store_bytes() == before  # plan writes nothing

    as_json = json.loads(repo.run("plan", "--isolate-failures", "--json").stdout)
    assert [(h["address"], h["kept"]) for h in as_json["held"]] == [
        ("Fleet/north", ["Asset/TRK-1", "Asset/TRK-2"]),
        ("Fleet/north-trailers", ["Asset/TRL-1"]),
    ]
    assert [c["address"] for c in as_json["changes"]] == ["Asset/VAN-1"]


def test_without_isolation_the_broken_file_fails_the_whole_revision(repo: Repo) -> None:
    done = repo.run("plan")
    assert done.returncode == 1
    assert "Error: Invalid YAML" in done.stderr
    assert "--> manifests/north.yaml:8:" in done.stderr
    assert "Held back" not in done.stdout


def test_a_document_with_errors_is_held_at_its_file_and_line(repo: Repo) -> None:
    # A readable file with an unknown field: its document, not its file, is at fault.
    repo.git.commit(
        "fix north.yaml, misspell a field of south",
        {
            "manifests/north.yaml": NORTH,
            "manifests/south.yaml": SOUTH_CHANGED.replace("type: van", "tpye: van"),
        },
    )
    done = repo.run("plan", "--isolate-failures")
    assert done.returncode == 0, done.stderr
    # Located at its error's file:line, the error itself at file:line:column.
    assert "! Fleet/south  manifests/south.yaml:7: its manifest has errors; keeps 1 object" in (
        done.stdout
    )
    assert 'Unknown field "tpye" at manifests/south.yaml:7:' in done.stdout
    assert "No changes to apply" in done.stdout  # north.yaml is back as it was applied


def test_detailed_exitcode_is_2_while_documents_are_held_and_apply_exits_0(repo: Repo) -> None:
    assert repo.run("plan", "--isolate-failures", "--detailed-exitcode").returncode == 2
    before = repo.objects()

    applied = repo.run("apply", "--isolate-failures", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete! Objects: 0 created, 1 updated" in applied.stdout
    after = repo.objects()
    assert after["Asset/VAN-1"]["spec"]["attributes"] == {"model": "Transit Custom"}
    for key in NORTH_OBJECTS:
        assert after[key] == before[key], key

    listed = run_cli(["operations", "list", "--json", "--state-dir", str(repo.state)], repo.ws.env)
    [last] = [
        op
        for op in json.loads(listed.stdout)["content"]["results"]
        if op["revision"] == repo.broken
    ]
    assert last["state"] == "SUCCESS"
    assert "held back: Fleet/north, Fleet/north-trailers" in last["message"]
    assert [h["address"] for h in last["held"]] == ["Fleet/north", "Fleet/north-trailers"]

    # Nothing left to change, documents still held: 2 with --detailed-exitcode, else 0.
    held_only = repo.run("plan", "--isolate-failures", "--detailed-exitcode")
    assert held_only.returncode == 2
    assert "No changes to apply" in held_only.stdout
    assert "2 documents held back." in held_only.stdout
    assert repo.run("plan", "--isolate-failures").returncode == 0

    # The fix releases them: in sync, 0.
    repo.git.commit("fix north.yaml", {"manifests/north.yaml": NORTH})
    fixed = repo.run("plan", "--isolate-failures", "--detailed-exitcode")
    assert fixed.returncode == 0, fixed.stdout
    assert "Held back" not in fixed.stdout


def test_isolate_failures_with_base_is_a_usage_error(repo: Repo) -> None:
    done = repo.run("plan", "--isolate-failures", "--base", repo.first)
    assert done.returncode == 1
    assert "Error: --isolate-failures cannot be combined with --base" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_environment_variable_turns_isolation_on(repo: Repo) -> None:
    done = repo.run("plan", "--detailed-exitcode", env={"FLEETWARD_ISOLATE_FAILURES": "1"})
    assert done.returncode == 2, done.stderr
    assert "2 documents held back." in done.stdout
    # With --base the variable does not apply (no store to hold documents at): the
    # broken revision fails as without isolation, and that is not a usage error.
    based = repo.run("plan", "--base", repo.first, env={"FLEETWARD_ISOLATE_FAILURES": "1"})
    assert based.returncode == 1
    assert "Error: Invalid YAML" in based.stderr
    assert "cannot be combined" not in based.stderr


def test_a_remote_source_reads_the_last_applied_revision_from_its_mirror(ws: Workspace) -> None:
    # --source is a URL: the past is read from the clone beside the store, not fetched.
    work = GitRepo(ws.path("work"), ws.env)
    first = work.commit(
        "three fleets", {"manifests/north.yaml": NORTH, "manifests/south.yaml": SOUTH}
    )
    remote = ws.remote(work)
    state = ws.path("state")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--source", remote.url, "--state-dir", str(state)], ws.env)

    assert run("apply", "--auto-approve").returncode == 0
    work.commit(
        "break north.yaml, change south",
        {"manifests/north.yaml": NORTH_BROKEN, "manifests/south.yaml": SOUTH_CHANGED},
    )
    work.git("push", "-q", "origin", "main")

    done = run("plan", "--isolate-failures")
    assert done.returncode == 0, done.stderr
    assert (
        "! Fleet/north  manifests/north.yaml: manifests/north.yaml cannot be read, and "
        f"declared it at the last applied revision {first[:7]}; keeps 2 objects"
    ) in done.stdout
    assert "! Fleet/north-trailers  manifests/north.yaml:" in done.stdout
    assert "~ Asset/VAN-1  update (spec changed)" in done.stdout


def test_a_new_file_that_cannot_be_read_is_named_not_ignored(repo: Repo) -> None:
    repo.git.commit(
        "fix north.yaml, add a broken east.yaml",
        {"manifests/north.yaml": NORTH, "manifests/east.yaml": NORTH_BROKEN},
    )
    done = repo.run("plan", "--isolate-failures", "--detailed-exitcode")
    assert done.returncode == 2, done.stdout
    assert (
        "! manifests/east.yaml: the file cannot be read, and no document of it was applied "
        "before; nothing applied yet: its objects are not created"
    ) in done.stdout
    assert "Invalid YAML at manifests/east.yaml:8:" in done.stdout
