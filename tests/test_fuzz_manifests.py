"""Hostile manifests never crash, hang or show an internal error (the fuzzer, tests/fuzzing.py).

The property test runs a bounded number of generated revisions (every kind, mutated
on the data and on the text) through load, desire and plan against an empty and a
non-empty store; bench/fuzz_long.py runs the same property for as long as it is given.
The plain tests below are what it found, minimised.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzing import (
    SEEDS,
    Generated,
    MemorySnapshot,
    check_revision,
    desired_state,
    revisions,
)
from hypothesis import HealthCheck, example, given, settings

from fleetward.errors import FleetwardError, ManifestError
from fleetward.loading import load

# Counts, not time: about 150 revisions take some 20 s of CPU here.
MAX_EXAMPLES = 150

TASKS = "examples/seed-payloads/tasks"


def _with(seed: str, path: str, text: str) -> Generated:
    return Generated(seed, {**SEEDS[seed], path: text.encode()})


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same revisions on every run: CI does not go flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(revision=revisions())
@example(
    revision=_with("manifests", "manifests/bad.yaml", "apiVersion: fleetward/v1\nkind: .nan\n")
)
@example(
    revision=_with(
        "manifests",
        "manifests/bad.yaml",
        "apiVersion: fleetward/v1\nkind: {region: [2026-01-01T00:00:00Z]}\n",
    )
)
def test_no_revision_ends_in_an_internal_error(revision: Generated) -> None:
    check_revision(revision.files, revision.seed)


def test_the_seed_trees_are_valid() -> None:
    """The fuzzer starts from valid revisions: a mutation is what makes one bad."""
    assert {"manifests", TASKS} <= set(SEEDS)
    for name, files in SEEDS.items():
        assert check_revision(files, name) == "ok", name


@pytest.mark.parametrize("kind", ["2026-01-01", ".nan", "{a: 2026-01-01}"])
def test_problem_parameters_are_strict_json(kind: str) -> None:
    """A problem quoting the manifest's value (a date, .nan) must still serialise: the
    daemon writes every run's problems to its operation log (json.dumps raised TypeError
    there) and the HTTP API refuses NaN."""
    files = {"manifests/bad.yaml": f"apiVersion: fleetward/v1\nkind: {kind}\n".encode()}
    with pytest.raises(ManifestError) as info:
        load(MemorySnapshot(files))
    for problem in info.value.problems:
        json.dumps(problem.to_dict(), allow_nan=False)


def test_the_daemon_reports_a_date_where_a_kind_belongs(tmp_path: Path) -> None:
    """`daemon --once` over such a revision: a located manifest error, not an internal one."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "manifests" / "bad.yaml").write_text("apiVersion: fleetward/v1\nkind: 2026-01-01\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "a date as a kind"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            check=True,
        )
    done = subprocess.run(
        [sys.executable, "-m", "fleetward", "daemon", "--once", "--source", str(repo)]
        + ["--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "manifests/bad.yaml:2:7" in done.stderr, done.stderr
    log = (tmp_path / "state" / "operations.json").read_text()
    assert '"location":"manifests/bad.yaml:2:7"' in log.replace(" ", "")


def test_an_unquoted_date_outside_the_calendar() -> None:
    files = {
        "manifests/f.yaml": b"apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: 2026-02-30}\n"
    }
    with pytest.raises(FleetwardError):
        load(MemorySnapshot(files))


def test_a_binary_tag_in_asset_attributes() -> None:
    files = {
        "manifests/f.yaml": b"apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: f}\n"
        b"spec:\n  assets:\n    - externalAssetId: V-1\n"
        b"      attributes: {registration: !!binary aGVsbG8=}\n"
    }
    with pytest.raises(FleetwardError):
        desired_state(files)
