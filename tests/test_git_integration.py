"""End to end on real Git repositories: the installed CLI, run as a subprocess.

Each test builds a repository in tmp_path with the `git` binary, then runs
`python -m fleetward ...` against it with its own --state-dir. Nothing here
imports the engine: what is checked is what a user sees (exit codes, stdout
JSON, stderr messages, the bytes of the store file).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import isolated_env

BUNDLED_MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
NORTH = "Fleet/north-yard"
SOUTH = "Fleet/south-yard"


def _env(home: Path) -> dict[str, str]:
    return isolated_env(home)


# -- manifests -------------------------------------------------------------------------------------


def asset(ident: str, model: str = "FH16", kind: str = "truck", make: str = "Volvo") -> str:
    return (
        f"    - externalAssetId: {ident}\n"
        f"      name: {kind.title()} {ident}\n"
        f"      type: {kind}\n"
        f"      attributes: {{make: {make}, model: {model}}}\n"
        f"      labels: {{class: {kind}}}\n"
    )


def fleet(name: str, *assets: str, prune: str | None = None) -> str:
    head = f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n"
    if prune:
        head += f"  prune: {prune}\n"
    return head + "  assets:\n" + "".join(assets)


TRUCKS_V1 = {f"TRK-{n}": asset(f"TRK-{n}") for n in range(1, 6)}
VANS = [asset(f"VAN-{n}", model="eSprinter", kind="van", make="Mercedes") for n in range(1, 4)]

V1 = {
    "manifests/north-yard.yaml": fleet("north-yard", *TRUCKS_V1.values()),
    "manifests/south-yard.yaml": fleet("south-yard", *VANS),
}
# v2: TRK-1 edited, TRK-2 removed, TRK-3 moved from north-yard to south-yard.
V2 = {
    "manifests/north-yard.yaml": fleet(
        "north-yard", asset("TRK-1", model="FH16 Aero"), TRUCKS_V1["TRK-4"], TRUCKS_V1["TRK-5"]
    ),
    "manifests/south-yard.yaml": fleet("south-yard", *VANS, TRUCKS_V1["TRK-3"]),
}


# -- helpers ---------------------------------------------------------------------------------------


class GitRepo:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def commit(self, files: dict[str, str], message: str) -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


class Fleetward:
    """Runs the installed CLI against one repository and one state directory."""

    def __init__(self, repo: GitRepo, state_dir: Path) -> None:
        self.repo = repo
        self.state_dir = state_dir

    def run(
        self, *args: str, state_dir: Path | None = None, source: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "fleetward", *args]
        if args and args[0] in ("plan", "apply", "state"):
            argv += ["--state-dir", str(state_dir or self.state_dir)]
        if source:
            argv += ["--source", str(self.repo.root)]
        return subprocess.run(
            argv,
            cwd=self.repo.root.parent,
            env=self.repo.env,
            stdin=subprocess.DEVNULL,  # never a TTY
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, **kw)
        assert done.returncode == 0, (
            f"fleetward {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr
        return done

    def apply(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.ok("apply", "--auto-approve", *args, **kw)

    def plan_json(self, *args: str, **kw: Any) -> dict[str, Any]:
        return json.loads(self.ok("plan", "--json", *args, **kw).stdout)

    def state(self, state_dir: Path | None = None) -> dict[str, Any]:
        out = self.ok("state", "show", "--json", state_dir=state_dir, source=False).stdout
        return json.loads(out)

    def objects(self, state_dir: Path | None = None) -> dict[str, dict[str, Any]]:
        return {o["key"]: o for o in self.state(state_dir)["objects"]}

    def store_bytes(self, state_dir: Path | None = None) -> bytes:
        return ((state_dir or self.state_dir) / "state.json").read_bytes()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return _env(home)


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> GitRepo:
    return GitRepo(tmp_path / "repo", env)


@pytest.fixture
def fw(repo: GitRepo, tmp_path: Path) -> Fleetward:
    return Fleetward(repo, tmp_path / "state")


def changes_by_address(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in plan["changes"]}


# -- apply lifecycle -------------------------------------------------------------------------------


class TestApplyLifecycle:
    def test_first_apply_creates_every_asset(self, repo: GitRepo, fw: Fleetward) -> None:
        v1 = repo.commit(V1, "v1")
        done = fw.apply()
        assert "Plan: 8 to create, 0 to update, 0 to stop, 0 to delete." in done.stdout
        assert "Apply complete!" in done.stdout

        state = fw.state()
        assert state["serial"] == 1
        assert state["lastAppliedRevision"] == v1
        assert len(state["lineage"]) == 36  # a UUID, fixed at creation
        objects = {o["key"]: o for o in state["objects"]}
        assert sorted(objects) == [f"Asset/TRK-{n}" for n in range(1, 6)] + [
            f"Asset/VAN-{n}" for n in range(1, 4)
        ]
        for key, obj in objects.items():
            assert obj["state"] == "active"
            assert obj["generation"] == 1
            assert obj["appliedRevision"] == v1
            assert obj["owner"] == (NORTH if key.startswith("Asset/TRK") else SOUTH)
            assert obj["drifted"] is False
        assert objects["Asset/TRK-1"]["spec"] == {
            "externalAssetId": "TRK-1",
            "name": "Truck TRK-1",
            "type": "truck",
            "attributes": {"make": "Volvo", "model": "FH16"},
            "labels": {"class": "truck"},
        }

    def test_edit_remove_and_move_plan_then_apply(self, repo: GitRepo, fw: Fleetward) -> None:
        v1 = repo.commit(V1, "v1")
        fw.apply()
        lineage = fw.state()["lineage"]
        v2 = repo.commit(V2, "v2: edit TRK-1, retire TRK-2, move TRK-3 south")

        plan = fw.plan_json()
        assert plan["revision"] == v2
        assert plan["revisionKind"] == "git"
        assert (plan["lineage"], plan["serial"]) == (lineage, 1)
        assert [(c["address"], c["action"], c["reason"], c["owner"]) for c in plan["changes"]] == [
            ("Asset/TRK-1", "update", "spec changed", NORTH),
            ("Asset/TRK-2", "stop", "fleet member removed", NORTH),
            ("Asset/TRK-3", "update", f"moved from {NORTH}", SOUTH),
        ]
        changes = changes_by_address(plan)
        assert changes["Asset/TRK-1"]["diff"] == [
            {"path": "spec.attributes.model", "before": "FH16", "after": "FH16 Aero"}
        ]
        assert changes["Asset/TRK-2"]["diff"] == [
            {"path": "state", "before": "active", "after": "stopped"}
        ]
        assert changes["Asset/TRK-3"]["diff"] == [
            {"path": "owner", "before": NORTH, "after": SOUTH}
        ]
        assert plan["summary"] == {"create": 0, "update": 2, "stop": 1, "delete": 0}
        assert plan["guards"] == [] and plan["errors"] == []

        done = fw.apply()
        assert "Apply complete! Objects: 0 created, 2 updated, 1 stopped, 0 deleted." in done.stdout
        state = fw.state()
        assert (state["lineage"], state["serial"], state["lastAppliedRevision"]) == (lineage, 2, v2)
        objects = {o["key"]: o for o in state["objects"]}
        assert len(objects) == 8  # the stopped asset is kept
        # edited: spec replaced, generation bumped
        assert objects["Asset/TRK-1"]["spec"]["attributes"]["model"] == "FH16 Aero"
        assert objects["Asset/TRK-1"]["generation"] == 2
        assert objects["Asset/TRK-1"]["appliedRevision"] == v2
        # removed: stopped, spec and owner kept, generation unchanged
        assert objects["Asset/TRK-2"]["state"] == "stopped"
        assert objects["Asset/TRK-2"]["owner"] == NORTH
        assert objects["Asset/TRK-2"]["spec"]["attributes"]["model"] == "FH16"
        assert objects["Asset/TRK-2"]["generation"] == 1
        # moved: new owner, same spec, so the same generation
        assert objects["Asset/TRK-3"]["owner"] == SOUTH
        assert objects["Asset/TRK-3"]["state"] == "active"
        assert objects["Asset/TRK-3"]["generation"] == 1
        # untouched objects keep the revision they were applied at
        assert objects["Asset/TRK-4"]["appliedRevision"] == v1
        assert objects["Asset/TRK-4"]["createdAt"] == objects["Asset/TRK-4"]["updatedAt"]

        history = json.loads(fw.ok("state", "history", "--json", source=False).stdout)
        assert [(h["serial"], h["revision"]) for h in history] == [(1, v1), (2, v2)]
        assert history[1]["counts"] == {"create": 0, "update": 2, "stop": 1, "delete": 0}

    def test_removed_asset_that_returns_is_restarted(self, repo: GitRepo, fw: Fleetward) -> None:
        repo.commit(V1, "v1")
        fw.apply()
        repo.commit(V2, "v2")
        fw.apply()
        repo.commit(V1, "v3: back to v1")
        changes = changes_by_address(fw.plan_json())
        assert changes["Asset/TRK-2"]["action"] == "update"
        assert changes["Asset/TRK-2"]["reason"] == "restarted (was stopped)"
        assert changes["Asset/TRK-2"]["diff"] == [
            {"path": "state", "before": "stopped", "after": "active"}
        ]
        assert changes["Asset/TRK-3"]["reason"] == f"moved from {SOUTH}"
        assert sorted(changes) == ["Asset/TRK-1", "Asset/TRK-2", "Asset/TRK-3"]


# -- only committed content counts -----------------------------------------------------------------


class TestCommittedContentOnly:
    def test_uncommitted_and_staged_edits_do_not_show_in_the_plan(
        self, repo: GitRepo, fw: Fleetward
    ) -> None:
        v1 = repo.commit(V1, "v1")
        fw.apply()
        # an edit in the work tree, a staged edit, and an untracked new manifest
        repo.write({"manifests/north-yard.yaml": V2["manifests/north-yard.yaml"]})
        staged = fleet("south-yard", *VANS, asset("VAN-9", kind="van"))
        repo.write({"manifests/south-yard.yaml": staged})
        repo.git("add", "manifests/south-yard.yaml")
        repo.write({"manifests/east-yard.yaml": fleet("east-yard", asset("BUS-1", kind="bus"))})

        done = fw.run("plan", "--json", "--detailed-exitcode")
        assert done.returncode == 0, done.stderr
        plan = json.loads(done.stdout)
        assert plan["revision"] == v1
        assert plan["changes"] == []
        assert plan["desiredCounts"] == {"Asset": 8}


# -- --ref -----------------------------------------------------------------------------------------


class TestRefs:
    def test_branch_tag_and_sha(self, repo: GitRepo, fw: Fleetward) -> None:
        v1 = repo.commit(V1, "v1")
        repo.git("tag", "v1.0")
        repo.git("checkout", "-q", "-b", "next")
        v2 = repo.commit(V2, "v2")
        repo.git("checkout", "-q", "main")  # the work tree and HEAD are v1 again
        fw.apply("--ref", "v1.0")
        assert fw.state()["lastAppliedRevision"] == v1

        on_branch = fw.plan_json("--ref", "next")
        assert (on_branch["revision"], on_branch["ref"]) == (v2, "next")
        assert [c["address"] for c in on_branch["changes"]] == [
            "Asset/TRK-1",
            "Asset/TRK-2",
            "Asset/TRK-3",
        ]

        on_tag = fw.plan_json("--ref", "v1.0")
        assert (on_tag["revision"], on_tag["changes"]) == (v1, [])

        on_sha = fw.plan_json("--ref", v2)
        assert on_sha["revision"] == v2
        assert on_sha["changes"] == on_branch["changes"]

        fw.apply("--ref", v2[:10])
        state = fw.state()
        assert state["lastAppliedRevision"] == v2
        assert {o["key"]: o["state"] for o in state["objects"]}["Asset/TRK-2"] == "stopped"

    def test_unknown_ref_is_a_clear_error(self, repo: GitRepo, fw: Fleetward) -> None:
        repo.commit(V1, "v1")
        done = fw.run("plan", "--ref", "no-such-branch")
        assert done.returncode == 1
        assert "Ref 'no-such-branch' does not exist" in done.stderr
        assert "main" in done.stderr  # the known branches are listed as a hint
        assert "Traceback" not in done.stderr
        assert not (fw.state_dir / "state.json").exists()


# -- saved plans -----------------------------------------------------------------------------------


class TestSavedPlans:
    def test_saved_plan_is_applied_exactly(
        self, repo: GitRepo, fw: Fleetward, tmp_path: Path
    ) -> None:
        repo.commit(V1, "v1")
        fw.apply()
        v2 = repo.commit(V2, "v2")
        plan_file = tmp_path / "plan.json"
        done = fw.ok("plan", "--out", str(plan_file))
        assert f"Saved the plan to {plan_file}" in done.stdout
        saved = json.loads(plan_file.read_text())
        assert saved["revision"] == v2 and len(saved["changes"]) == 3
        # a later commit must not leak into the reviewed plan
        v3_north = V2["manifests/north-yard.yaml"] + asset("TRK-6")
        repo.commit({"manifests/north-yard.yaml": v3_north}, "v3")

        done = fw.ok("apply", str(plan_file), source=False)
        assert "Apply complete!" in done.stdout
        state = fw.state()
        assert (state["serial"], state["lastAppliedRevision"]) == (2, v2)
        objects = {o["key"]: o for o in state["objects"]}
        assert "Asset/TRK-6" not in objects
        assert objects["Asset/TRK-1"]["spec"]["attributes"]["model"] == "FH16 Aero"
        assert objects["Asset/TRK-2"]["state"] == "stopped"
        assert objects["Asset/TRK-3"]["owner"] == SOUTH

    def test_stale_plan_is_refused(self, repo: GitRepo, fw: Fleetward, tmp_path: Path) -> None:
        repo.commit(V1, "v1")
        fw.apply()
        repo.commit(V2, "v2")
        plan_file = tmp_path / "plan.json"
        fw.ok("plan", "--out", str(plan_file))
        fw.apply()  # the store moves on: serial 1 → 2
        before = fw.store_bytes()

        done = fw.run("apply", str(plan_file), source=False)
        assert done.returncode == 1
        assert "Saved plan is stale: the store changed since it was made" in done.stderr
        assert "made at serial 1; the store is now at serial 2" in done.stderr
        assert "different state store" not in done.stderr
        assert "Traceback" not in done.stderr
        assert fw.store_bytes() == before

    def test_plan_for_another_store_is_refused(
        self, repo: GitRepo, fw: Fleetward, tmp_path: Path
    ) -> None:
        repo.commit(V1, "v1")
        other = tmp_path / "other-state"
        fw.apply()
        fw.apply(state_dir=other)  # same serial (1), another lineage
        repo.commit(V2, "v2")
        plan_file = tmp_path / "plan.json"
        fw.ok("plan", "--out", str(plan_file))
        before = fw.store_bytes(other)

        done = fw.run("apply", str(plan_file), state_dir=other, source=False)
        assert done.returncode == 1
        assert "Saved plan is for a different state store" in done.stderr
        assert "stale" not in done.stderr
        assert "Traceback" not in done.stderr
        assert fw.store_bytes(other) == before
        assert fw.state(other)["serial"] == 1


# -- exit codes ------------------------------------------------------------------------------------


class TestDetailedExitcode:
    def test_two_with_changes_zero_without(self, repo: GitRepo, fw: Fleetward) -> None:
        v1 = repo.commit(V1, "v1")
        with_changes = fw.run("plan", "--detailed-exitcode")
        assert with_changes.returncode == 2, with_changes.stderr
        assert "Plan: 8 to create, 0 to update, 0 to stop, 0 to delete." in with_changes.stdout

        plain = fw.run("plan")  # without the flag, changes are still success
        assert plain.returncode == 0, plain.stderr

        fw.apply()
        no_changes = fw.run("plan", "--detailed-exitcode")
        assert no_changes.returncode == 0, no_changes.stderr
        assert f"No changes. State matches revision {v1[:7]}." in no_changes.stdout


# -- invalid revisions -----------------------------------------------------------------------------

BROKEN_NORTH = (
    "apiVersion: fleetward/v1\n"  # 1
    "kind: Fleet\n"  # 2
    "metadata:\n"  # 3
    "  name: north-yard\n"  # 4
    "spec:\n"  # 5
    "  assets:\n"  # 6
    "    - externalAssetId: TRK-1\n"  # 7
    "      name: Truck TRK-1\n"  # 8
    "      attributes: {make: Volvo, model: FH16}\n"  # 9
    "    - externalAssetId: TRK-2\n"  # 10
    "      name: Truck: TRK-2\n"  # 11: "mapping values are not allowed here", at the 2nd colon
)


class TestInvalidRevision:
    def test_yaml_error_leaves_the_store_untouched(self, repo: GitRepo, fw: Fleetward) -> None:
        v1 = repo.commit(V1, "v1")
        fw.apply()
        before = fw.store_bytes()
        repo.commit({"manifests/north-yard.yaml": BROKEN_NORTH}, "broken")

        for command in (["apply", "--auto-approve"], ["plan"], ["validate"]):
            done = fw.run(*command)
            assert done.returncode == 1, (command, done.stdout, done.stderr)
            assert "manifests/north-yard.yaml:11:18" in done.stderr, (command, done.stderr)
            assert "Traceback" not in done.stderr
            assert "Apply complete" not in done.stdout
        assert fw.store_bytes() == before
        assert fw.state()["lastAppliedRevision"] == v1

    def test_schema_error_names_file_line_column(self, repo: GitRepo, fw: Fleetward) -> None:
        repo.commit(V1, "v1")
        fw.apply()
        before = fw.store_bytes()
        typo = V1["manifests/south-yard.yaml"].replace("      type: van\n", "      tpye: van\n", 1)
        repo.commit({"manifests/south-yard.yaml": typo}, "typo")
        line = typo.splitlines().index("      tpye: van") + 1

        done = fw.run("apply", "--auto-approve")
        assert done.returncode == 1
        assert f"manifests/south-yard.yaml:{line}:7" in done.stderr
        assert "tpye" in done.stderr and "type" in done.stderr  # did you mean
        assert "Traceback" not in done.stderr
        assert fw.store_bytes() == before


# -- blocked plans ---------------------------------------------------------------------------------


class TestBlockedPlans:
    def test_prune_forbid_missing_asset_blocks_the_apply(
        self, repo: GitRepo, fw: Fleetward
    ) -> None:
        repo.commit(
            {
                "manifests/south-yard.yaml": fleet("south-yard", *VANS, prune="forbid"),
                "manifests/north-yard.yaml": V1["manifests/north-yard.yaml"],
            },
            "v1",
        )
        fw.apply()
        before = fw.store_bytes()
        dropped = fleet("south-yard", *VANS[:2], prune="forbid")
        repo.commit({"manifests/south-yard.yaml": dropped}, "drop VAN-3")

        done = fw.run("plan", "--json")
        assert done.returncode == 1
        plan = json.loads(done.stdout)
        assert [(c["address"], c["action"]) for c in plan["changes"]] == [("Asset/VAN-3", "stop")]
        assert [e["error"] for e in plan["errors"]] == ["Invalid batch fleet size"]
        assert plan["errors"][0]["location"] == SOUTH
        assert plan["errors"][0]["parameters"]["missingAssets"] == ["Asset/VAN-3"]

        done = fw.run("apply", "--auto-approve")
        assert done.returncode == 1
        assert "Invalid batch fleet size" in done.stderr
        assert "Asset/VAN-3" in done.stderr
        assert "Traceback" not in done.stderr
        assert fw.store_bytes() == before

    def test_mass_stop_is_blocked_unless_allowed(self, repo: GitRepo, fw: Fleetward) -> None:
        repo.commit(V1, "v1")
        fw.apply()
        before = fw.store_bytes()
        one_left = fleet("north-yard", TRUCKS_V1["TRK-1"])
        repo.commit({"manifests/north-yard.yaml": one_left}, "sell 4 trucks")

        # 4 stops are below the default floor of 10; a floor of 4 makes the 50 % count.
        done = fw.run("apply", "--auto-approve", "--min-stop-count", "4")
        assert done.returncode == 1
        assert "Plan blocked by the mass-stop guard" in done.stderr
        assert "4 of the 8 active Asset object(s) in the store (50%)" in done.stderr
        assert "once 4 or more are stopped or deleted" in done.stderr
        assert "--allow-mass-stop" in done.stderr
        assert fw.store_bytes() == before

        fw.apply("--allow-mass-stop", "--min-stop-count", "4")
        states = {o["key"]: o["state"] for o in fw.state()["objects"]}
        assert sorted(k for k, v in states.items() if v == "stopped") == [
            "Asset/TRK-2",
            "Asset/TRK-3",
            "Asset/TRK-4",
            "Asset/TRK-5",
        ]

    def test_a_small_removal_passes_the_mass_stop_floor(
        self, repo: GitRepo, fw: Fleetward
    ) -> None:
        """Stopping 4 of 8 (50 %) is fewer than 10 objects: no --allow-mass-stop needed;
        FLEETWARD_MIN_STOP_COUNT moves the floor like the flag."""
        repo.commit(V1, "v1")
        fw.apply()
        repo.commit({"manifests/north-yard.yaml": fleet("north-yard", TRUCKS_V1["TRK-1"])}, "sell")
        repo.env["FLEETWARD_MIN_STOP_COUNT"] = "3"
        held = fw.run("plan", "--json")
        assert held.returncode == 1, held.stderr
        assert [g["verdict"] for g in json.loads(held.stdout)["guards"]] == ["blocked"]
        del repo.env["FLEETWARD_MIN_STOP_COUNT"]

        plan = fw.plan_json()
        assert plan["guards"] == []
        assert plan["summary"]["stop"] == 4
        fw.apply()
        stopped = [k for k, o in fw.objects().items() if o["state"] == "stopped"]
        assert len(stopped) == 4


# -- confirmation ----------------------------------------------------------------------------------


class TestConfirmation:
    def test_apply_without_tty_or_auto_approve_refuses(self, repo: GitRepo, fw: Fleetward) -> None:
        repo.commit(V1, "v1")
        done = fw.run("apply")
        assert done.returncode == 1
        assert "Apply needs confirmation" in done.stderr
        assert "--auto-approve" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (fw.state_dir / "state.json").exists()

        fw.apply()
        before = fw.store_bytes()
        repo.commit(V2, "v2")
        done = fw.run("apply")
        assert done.returncode == 1
        assert "Apply needs confirmation" in done.stderr
        assert fw.store_bytes() == before
        assert fw.state()["serial"] == 1


# -- the bundled manifests -------------------------------------------------------------------------


class TestBundledManifests:
    def test_bundled_tree_validates_and_applies(self, repo: GitRepo, fw: Fleetward) -> None:
        shutil.copytree(BUNDLED_MANIFESTS, repo.root / "manifests")
        sha = repo.commit({}, "bundled manifests")

        report = json.loads(fw.ok("validate", "--json").stdout)
        assert report["valid"] is True
        assert report["revision"] == sha
        assert report["errors"] == []

        fw.apply()
        state = fw.state()
        assert state["lastAppliedRevision"] == sha
        assert len(state["objects"]) == report["objects"]
        assets = [o for o in state["objects"] if o["kind"] == "Asset"]
        assert len(assets) == 12 + 3  # the fleets' assets, and the tank rule's (CSV streams)
        assert all(o["state"] == "active" and o["generation"] == 1 for o in assets)
        owners = {o["owner"] for o in assets}
        assert owners == {
            "Fleet/north-yard",
            "Fleet/south-yard",
            "Fleet/field-equipment",
            "AssetRule/tanks",
        }
        tanks = {o["key"]: o["spec"] for o in assets if o["owner"] == "AssetRule/tanks"}
        assert sorted(tanks) == ["Asset/PHI-Tank03", "Asset/SL-Tank01", "Asset/SL-Tank02"]
        assert all(len(spec["streamReferences"]) == 2 for spec in tanks.values())
        tank = next(o for o in assets if o["key"] == "Asset/TANK-01")
        # a YAML date, stored as text
        assert tank["spec"]["attributes"]["commissioned"] == "2019-05-14"

        again = fw.run("plan", "--detailed-exitcode")
        assert again.returncode == 0, again.stderr
