"""`.ci/run` runs the README's test command, in a virtual environment it makes for the run.

A CI that installs into whatever Python the machine already has can pass on a package an
earlier install left there, while a new machine resolves the test extra afresh and fails:
CI must see what a new user sees. The script is run for real here, with `python3` standing
in for the interpreter (its `-m venv` makes an environment whose `pip` and `python` log what
they are asked and exit with a chosen status), so nothing is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"

# `python3 -m venv DIR` makes DIR/bin/{activate,pip,lint-imports,python}; each appends its
# working directory, VIRTUAL_ENV and arguments to $CI_LOG; python exits with $PYTEST_STATUS,
# lint-imports with $LINT_STATUS (0 when unset).
FAKE_PYTHON3 = r"""#!/bin/sh
[ "$1 $2" = "-m venv" ] || { echo "unexpected python3 call: $*" >&2; exit 99; }
mkdir -p "$3/bin"
printf 'VIRTUAL_ENV=%s; export VIRTUAL_ENV; PATH="%s/bin:$PATH"; export PATH\n' "$3" "$3" \
    > "$3/bin/activate"
for tool in pip lint-imports python; do
    status=0; [ "$tool" = python ] && status='${PYTEST_STATUS}'
    [ "$tool" = lint-imports ] && status='${LINT_STATUS:-0}'
    printf '#!/bin/sh\necho "%s|$(pwd)|$VIRTUAL_ENV|$*" >> "$CI_LOG"\nexit %s\n' "$tool" "$status" \
        > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
done
"""


def readme_test_command() -> list[str]:
    """The lines of the README's "Install and run the tests" block."""
    text = README.read_text(encoding="utf-8")
    section = text.split("Install and run the tests", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README: no ```sh block after 'Install and run the tests'"
    return block.group(1).strip().splitlines()


def executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_ci(
    tmp_path: Path, pytest_status: int, lint_status: int = 0
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`.ci/run` from a copy of the checkout, on a PATH whose `python3` is the stand-in (and
    whose `dot`, `promtool`, `gpg`, `ssh-keygen` and `pg_ctl` exist, so nothing is installed
    with apt-get)."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(CI_RUN, checkout / ".ci" / "run")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    executable(stubs / "python3", FAKE_PYTHON3)
    for tool in ("dot", "promtool", "gpg", "ssh-keygen", "pg_ctl"):
        executable(stubs / tool, "#!/bin/sh\nexit 0\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    log = tmp_path / "ci.log"
    env = {
        "PATH": f"{stubs}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "TMPDIR": str(temp),
        "CI": "true",
        "CI_LOG": str(log),
        "PYTEST_STATUS": str(pytest_status),
        "LINT_STATUS": str(lint_status),
    }
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, ".ci/run"],
        check=False,
        cwd=checkout,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, log


def test_the_readme_makes_a_virtual_environment_before_the_test_command() -> None:
    venv, command = readme_test_command()
    assert venv == "python3 -m venv .venv && . .venv/bin/activate"
    assert command == "pip install -e '.[test]' && lint-imports && python -m pytest"


def test_ci_runs_exactly_the_readme_command_as_its_last_line() -> None:
    _, command = readme_test_command()
    lines = [line for line in CI_RUN.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[-1] == command  # the last line, so its status is the script's


@pytest.mark.parametrize("status", [0, 1, 5])
def test_ci_installs_and_tests_in_a_new_virtual_environment_and_exits_with_pytests_status(
    tmp_path: Path, status: int
) -> None:
    done, log = run_ci(tmp_path, status)
    assert done.returncode == status, done.stderr
    calls = [line.split("|") for line in log.read_text(encoding="utf-8").splitlines()]
    checkout = str(tmp_path / "checkout")
    assert [(tool, cwd, args) for tool, cwd, _, args in calls] == [
        ("pip", checkout, "install -e .[test]"),
        ("lint-imports", checkout, ""),
        ("python", checkout, "-m pytest"),
    ]
    venvs = {venv for _, _, venv, _ in calls}
    assert len(venvs) == 1 and Path(next(iter(venvs))).parent == tmp_path / "tmp"
    # and the environment goes with the run
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_broken_layer_contract_fails_ci_before_the_tests_run(tmp_path: Path) -> None:
    done, log = run_ci(tmp_path, pytest_status=0, lint_status=1)
    assert done.returncode == 1, done.stderr
    tools = [line.split("|")[0] for line in log.read_text(encoding="utf-8").splitlines()]
    assert tools == ["pip", "lint-imports"]
