"""Layers point one way: the pure middle imports no I/O library; public surfaces are declared."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

PURE = [
    "fleetward.model",
    "fleetward.kinds",
    "fleetward.desire",
    "fleetward.planning",
    "fleetward.progress",
    "fleetward.rendering",
]
IO_LIBRARIES = [
    "git",
    "tinydb",
    "rich",
    "click",
    "prometheus_client",
    "ruamel",
    "watchfiles",
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
    ["fleetward", "fleetward.kinds", "fleetward.rendering", "fleetward.source", "fleetward.store"],
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
