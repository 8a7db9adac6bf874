"""What `--help` promises: only what the command has.

validate and rules preview have no state directory: a remote --source is
cloned into a temporary directory, and their help says so, not <state-dir>.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fleetward.cli import cli

STATELESS = [["validate"], ["rules", "preview"]]
STATEFUL = [["plan"], ["apply"], ["workflows", "show"]]


def help_of(command: list[str]) -> str:
    done = CliRunner(env={"COLUMNS": "100"}).invoke(cli, [*command, "--help"])
    assert done.exit_code == 0, done.output
    return " ".join(done.output.split())  # click wraps lines; read them as one


@pytest.mark.parametrize("command", STATELESS, ids=" ".join)
def test_commands_without_a_state_directory_do_not_mention_one(command: list[str]) -> None:
    text = help_of(command).lower().replace("state- dir", "state-dir")
    for mention in ("state-dir", "state dir", "state store", "fleetward_state"):
        assert mention not in text, f"{' '.join(command)} --help mentions {mention!r}"
    assert "cloned into a temporary directory" in text


@pytest.mark.parametrize("command", STATEFUL, ids=" ".join)
def test_commands_with_a_state_directory_clone_into_it(command: list[str]) -> None:
    text = help_of(command)
    assert "cloned into <state-dir>/cache" in text.replace("state- dir", "state-dir")
    assert "--state-dir" in text


def test_no_color_is_a_global_option() -> None:
    assert "--no-color" in help_of([])
