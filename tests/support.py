"""Helpers shared by the tests that run git and the CLI, as subprocesses or in-process."""

from __future__ import annotations

import os
import subprocess
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from click.testing import CliRunner


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus FLEETWARD_*/GIT_* settings, with a throw-away git identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETWARD_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "Fleet Tester",
            "GIT_AUTHOR_EMAIL": "tester@example.com",
            "GIT_COMMITTER_NAME": "Fleet Tester",
            "GIT_COMMITTER_EMAIL": "tester@example.com",
            "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(home),
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`fleetward ARGS` in this process (click's CliRunner), shaped as `subprocess.run`'s
    result, so a test that is not about the process boundary swaps one for the other.

    `env` is the whole environment the command sees, as a subprocess's would be:
    variables of this process that it lacks are removed for the call (CliRunner restores
    them after); `cwd` is the working directory for the call. An exception that escapes the CLI is what a process would print: a
    traceback on stderr and exit 1.
    """
    from fleetward.cli import cli

    overrides: dict[str, str | None] = {}
    if env is not None:
        overrides = {name: None for name in os.environ if name not in env}
        overrides.update(env)
    before = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(
            cli, list(args), input=input, env=overrides, prog_name="fleetward"
        )
    finally:
        os.chdir(before)
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(*result.exc_info)
        )
        code = 1
    return subprocess.CompletedProcess(["fleetward", *args], code, result.stdout, stderr)
