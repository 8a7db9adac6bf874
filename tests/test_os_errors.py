"""An OSError reaches the user as one of fleetward's errors, made in one place.

The reason names the operating system's words and errno; a failure whose fix is
the machine's (a full disk, a quota, a read-only file system, a size limit, a
symlink loop, a too-long name) says that fix, while the others keep the fix the
caller knows (the flag or file to point elsewhere).
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys

import pytest
from daemon_support import Workspace, ws_fixture  # noqa: F401  (ws_fixture: a pytest fixture)

from fleetward.errors import StoreError, UsageError, os_error, os_reason

CALLERS_FIX = "Make /srv/state writable by this user, or pass another --state-dir."


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOENT, CALLERS_FIX),
        (errno.EACCES, CALLERS_FIX),
        (errno.EPERM, CALLERS_FIX),
        (errno.EISDIR, CALLERS_FIX),
        (errno.ENOSPC, "Free space on the file system holding /srv/state"),
        (errno.EDQUOT, "disk quota"),
        (errno.EROFS, "/srv/state is on a read-only file system"),
        (errno.EFBIG, "ulimit -f"),
        (errno.ELOOP, "/srv/state goes through a symlink loop"),
        (errno.ENAMETOOLONG, "Use a shorter path."),
    ],
)
def test_each_errno_gets_the_os_words_and_a_fix(code: int, fix: str) -> None:
    exc = OSError(code, os.strerror(code), "/srv/state/.state.json.tmp-1-x")
    error = os_error(exc, StoreError, "Cannot write to /srv/state", CALLERS_FIX, "/srv/state")
    assert isinstance(error, StoreError)
    (problem,) = error.problems
    assert problem.error == "Cannot write to /srv/state"
    assert problem.reason == f"{os.strerror(code)} (errno {code})."  # a temp file: not named
    assert fix in problem.resolution
    assert problem.location == "/srv/state"


def test_a_path_other_than_the_one_named_is_told_and_a_consequence_follows() -> None:
    exc = PermissionError(errno.EACCES, "Permission denied", "/etc/fleetward/token")
    error = os_error(
        exc, UsageError, "Cannot start", "Fix it.", "/srv/state", "Nothing was changed."
    )
    assert error.problems[0].reason == (
        "Permission denied (errno 13) (/etc/fleetward/token). Nothing was changed."
    )
    assert os_reason(OSError("no errno")) == "no errno"


def test_a_plan_that_outgrows_the_file_size_limit_says_so(ws: Workspace) -> None:
    """--out under `ulimit -f`: the error names the errno and the limit, not permissions."""
    repo, _ = ws.repo()
    out = ws.path("plan.json")

    def tiny_files_only() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    done = subprocess.run(
        [sys.executable, "-m", "fleetward", "plan", "--source", str(repo.root),
         "--state-dir", str(ws.path("state")), "--out", str(out)],
        check=False, cwd=ws.root, env=ws.env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, preexec_fn=tiny_files_only,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"Cannot write the plan to {out}" in done.stderr
    assert "File too large (errno 27)" in done.stderr
    assert "ulimit -f" in done.stderr, done.stderr
    assert not out.exists()
