"""Layers point one way: the pure middle imports no I/O library; public surfaces are declared.

The layers themselves are import-linter contracts (pyproject.toml, [tool.importlinter]):
`lint-imports` must keep them on this tree and break them on a tree that crosses one.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PURE = [
    "fleetward.model",
    "fleetward.errors",
    "fleetward.kinds",
    "fleetward.desire",
    "fleetward.planning",
    "fleetward.progress",
    "fleetward.rendering",
    "fleetward.policy",
    "fleetward.decisions",
    "fleetward.operations",
]
IO_LIBRARIES = [
    "git",
    "tinydb",
    "rich",
    "click",
    "prometheus_client",
    "ruamel",
    "watchfiles",
    "starlette",
    "uvicorn",
    "httpx",
    # APScheduler's triggers are pure date arithmetic (SyncPolicy windows use CronTrigger);
    # only the parts that run threads or touch storage are I/O.
    "apscheduler.schedulers",
    "apscheduler.executors",
    "apscheduler.jobstores",
]


def test_pure_middle_imports_no_io_library() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PURE)
        + f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the pure middle pulls in: {out.stdout.strip()}"


def test_engine_never_imports_the_cli() -> None:
    # Nor rich: the engine reports progress to what the CLI hands it, and draws nothing.
    code = (
        "import sys\nimport fleetward.pipeline, fleetward.applying, fleetward.store\n"
        "print(','.join(m for m in sys.modules if m.startswith(('fleetward.cli', 'rich'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "package",
    [
        "fleetward",
        "fleetward.kinds",
        "fleetward.kinds.asset_rule",
        "fleetward.kinds.sync_policy",
        "fleetward.kinds.tasks",
        "fleetward.kinds.workflow",
        "fleetward.policy",
        "fleetward.rendering",
        "fleetward.source",
        "fleetward.store",
    ],
)
def test_all_is_complete(package: str) -> None:
    module = importlib.import_module(package)
    declared = set(module.__all__)
    assert all(hasattr(module, name) for name in declared)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public <= declared, f"public but not in __all__: {sorted(public - declared)}"


# -- the import-linter contracts ---------------------------------------------------------------


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the `fleetward` under `root`/src, with `root`'s pyproject.toml."""
    beside = Path(sys.executable).with_name("lint-imports")
    command = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert command, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    # This tree's src first: an installed fleetward (another checkout) must not be analysed.
    path = os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [command, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


# (module, the import added to it, the contract that breaks, what lint-imports names)
CROSSINGS = [
    (
        "planning.py",
        "import fleetward.daemon",
        "Layers point one way",
        "fleetward.planning is not allowed to import fleetward.daemon",
    ),
    (
        "applying.py",
        "from fleetward.daemon import control",
        "Layers point one way",
        "fleetward.applying is not allowed to import fleetward.daemon",
    ),
    (
        "daemon/runner.py",
        "from fleetward.http import app",
        "Layers point one way",
        "fleetward.daemon is not allowed to import fleetward.http",
    ),
    (
        "observe/health.py",
        "from fleetward.daemon import reconciler",
        "Layers point one way",
        "fleetward.observe is not allowed to import fleetward.daemon",
    ),
    (
        "rendering/text.py",
        "import starlette",
        "The pure middle imports no I/O library",
        "fleetward.rendering.text -> starlette",
    ),
    (
        "kinds/fleet.py",
        "from fleetward.kinds import tasks",
        "Kinds meet only through the registry",
        "fleetward.kinds.fleet is not allowed to import fleetward.kinds.tasks",
    ),
    (
        "kinds/problems.py",
        "from fleetward.kinds import base",
        "Inside kinds",
        "fleetward.kinds.problems is not allowed to import fleetward.kinds.base",
    ),
]


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"), CROSSINGS, ids=[c[0] for c in CROSSINGS]
)
def test_an_import_across_a_contract_breaks_it(
    tmp_path: Path, module: str, line: str, contract: str, named: str
) -> None:
    shutil.copytree(ROOT / "src" / "fleetward", tmp_path / "src" / "fleetward")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "fleetward" / module
    text = target.read_text(encoding="utf-8")
    # After the module's future import, so the added line is a plain top-level import.
    future = "from __future__ import annotations\n"
    assert future in text
    target.write_text(text.replace(future, f"{future}{line}\n", 1), encoding="utf-8")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    # The summary's "<contract name> BROKEN", perhaps followed by "(1 ignored import)".
    verdicts = [
        row
        for row in done.stdout.splitlines()
        if row.startswith(contract) and (" KEPT" in row or " BROKEN" in row)
    ]
    assert len(verdicts) == 1 and " BROKEN" in verdicts[0], done.stdout
    assert named in done.stdout, done.stdout
