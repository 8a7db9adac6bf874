"""Input built to hurt: deep nesting, recursive aliases, odd keys, many duplicates, markup.

Deep nesting runs `python -m fleetward`: it used to kill the process (SIGSEGV), which
in-process would take the test run with it. The rest runs the CLI in-process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support import run_cli

from fleetward.cli import cli
from fleetward.errors import StoreError
from fleetward.store import TinyDBStore

FLEET = (
    "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {{name: {name}}}\nspec:\n  assets:\n{assets}"
)


def _validate(root: Path, process: bool = False) -> subprocess.CompletedProcess[str]:
    """`validate` of a plain directory, in-process or as `python -m fleetward`."""
    args = ["validate", "--no-git", "--source", str(root)]
    if not process:
        return run_cli(args)
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )


def _write(root: Path, name: str, text: str) -> None:
    (root / "manifests").mkdir(exist_ok=True)
    (root / "manifests" / name).write_text(text)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 50_000 + "]" * 50_000, "1:67"),
        ("a:\n  " + "- " * 30_000 + "x", "2:129"),
        ("a: " + "{b: " * 5_000 + "1" + "}" * 5_000, "1:256"),
        ("a:\n" + "? " * 28_000 + "x\n", "2:3"),
    ],
    ids=["flow-sequences", "block-sequences", "flow-mappings", "complex-keys"],
)
def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path, text: str, where: str) -> None:
    """ruamel's C composer recurses in C: these used to kill the process with SIGSEGV.

    The error points at the collection one level too deep (the document's mapping is
    level 1); a key that is itself a mapping is refused before any depth is reached.
    """
    _write(tmp_path, "deep.yaml", text)
    result = _validate(tmp_path, process=True)
    assert result.returncode == 1, result.stderr
    error = "Mapping key is not a string" if "?" in text else "YAML nested too deeply"
    assert f"Error: {error}" in result.stderr
    assert f"manifests/deep.yaml:{where}" in result.stderr


@pytest.mark.parametrize(
    "assets",
    [
        "    - externalAssetId: R-1\n      attributes: {x: &a [1, *a]}\n",
        "    - &s {externalAssetId: R-1, attributes: {x: *s}}\n",
    ],
    ids=["list-in-itself", "asset-in-itself"],
)
def test_recursive_alias_is_an_error(tmp_path: Path, assets: str) -> None:
    _write(tmp_path, "r.yaml", FLEET.format(name="r", assets=assets))
    result = _validate(tmp_path)
    assert result.returncode == 1
    assert "Error: Recursive YAML alias" in result.stderr
    assert "Internal error" not in result.stderr


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "nested"])
@pytest.mark.parametrize("key", ["1", "null", "true", "2024-01-01"])
def test_non_string_attribute_keys_are_refused(tmp_path: Path, key: str, nested: bool) -> None:
    """{1: x, "1": y} would silently merge; null would become "None"."""
    inner = f"{{{key}: x, other: y}}"
    attributes = f"{{deep: {inner}}}" if nested else inner
    assets = f"    - externalAssetId: K-1\n      attributes: {attributes}\n"
    _write(tmp_path, "k.yaml", FLEET.format(name="k", assets=assets))
    result = _validate(tmp_path)
    assert result.returncode == 1
    assert "Internal error" not in result.stderr
    assert "Error: Mapping key is not a string" in result.stderr
    assert f"YAML reads the key {key!r} as" in result.stderr
    column = 27 if nested else 20  # the key itself
    assert f"manifests/k.yaml:7:{column}" in result.stderr


def test_many_duplicates_compose_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file is composed once for locating errors, not once per error."""
    assets = "".join(f"    - externalAssetId: D-{i}\n      name: n{i}\n" for i in range(400))
    _write(tmp_path, "a.yaml", FLEET.format(name="a", assets=assets))
    _write(tmp_path, "b.yaml", FLEET.format(name="b", assets=assets))
    result = _validate(tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("Error: Duplicate externalAssetId") == 50, "50 shown on a terminal"
    assert "… and 350 more error(s)" in result.stderr

    # The same command in this process, counting the position-keeping parses.
    import fleetward.loading

    composed: list[int] = []
    compose_all = fleetward.loading.compose_all

    def counting_compose_all(text: str) -> Any:
        composed.append(len(text))
        return compose_all(text)

    monkeypatch.setattr(fleetward.loading, "compose_all", counting_compose_all)
    in_process = CliRunner(env={"NO_COLOR": "1", "FLEETWARD_STATE_DIR": None}).invoke(
        cli, ["validate", "--no-git", "--source", str(tmp_path)]
    )
    assert in_process.exit_code == 1, in_process.output
    assert "Duplicate externalAssetId" in in_process.stderr
    assert len(composed) == 2  # a.yaml and b.yaml, 400 errors located in each


def test_markup_in_ids_prints_as_written(tmp_path: Path) -> None:
    _write(tmp_path, "m.yaml", FLEET.format(name="m", assets="    - externalAssetId: B[red]x\n"))
    where = ["--no-git", "--source", str(tmp_path), "--state-dir", str(tmp_path / "s")]
    applied = run_cli(["apply", *where, "--auto-approve"])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    shown = run_cli(["state", "show", "--state-dir", str(tmp_path / "s")])
    assert shown.returncode == 0, shown.stderr
    assert "Asset/B[red]x" in shown.stdout


def test_empty_state_file_is_corrupt_not_empty(tmp_path: Path) -> None:
    """Reading it as an empty store would create everything again under a new lineage."""
    (tmp_path / "state.json").write_text("")
    with pytest.raises(StoreError) as info:
        TinyDBStore(tmp_path).read()
    assert "is empty" in info.value.problems[0].reason
