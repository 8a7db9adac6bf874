"""The state directory and Git: made with a `.gitignore` of `*`, refused while Git tracks it.

The default `./.fleetward` sits inside the manifests' work tree. Committed by a
`git add -A`, a later checkout rewinds the store to an older serial and loses
every apply and status change since; so the directory ignores itself, as
virtual environments and caches do, and a store whose files Git tracks is
refused before it is read or written.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from fleetward.errors import StoreError

logger = logging.getLogger(__name__)

GITIGNORE = ".gitignore"
_IGNORE_ALL = "# Written by fleetward: the state store is not for Git.\n*\n"
_GIT_TIMEOUT = 30.0  # seconds; `ls-files` of one directory takes milliseconds
_SHOWN = 3  # tracked files named in the error


def make_state_dir(directory: Path) -> None:
    """Create `directory` (and its parents) with a `.gitignore` of `*` in it.

    The `.gitignore` is written when missing, never over one a person edited,
    so a directory made by an older version gets one at its next write too.
    Raises OSError like `mkdir`; a `.gitignore` that cannot be written is only
    logged (the write that needs the directory reports an unwritable one).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / GITIGNORE
    if ignore.exists():
        return
    try:
        fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # another process wrote it first
    except OSError as exc:
        logger.warning("Cannot write %s: %s", ignore, exc.strerror or exc)
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(_IGNORE_ALL)


def refuse_if_tracked(directory: Path) -> None:
    """StoreError if Git tracks files of the state directory `directory`.

    Cheap by design, so it can run whenever a store is opened: nothing when the
    directory does not exist or no `.git` is above it, else one `git ls-files`.
    A git that is missing or fails (no work tree, dubious ownership) is no
    verdict: the check is a safety net, never a reason a store cannot open.
    """
    if not directory.is_dir() or _work_tree_of(directory) is None:
        return
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "ls-files", "-z", "--cached", "--full-name", "--", "."],
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("Cannot ask git whether %s is tracked: %s", directory, exc)
        return
    if done.returncode != 0:
        logger.debug("git ls-files in %s failed: %s", directory, done.stderr[:500])
        return
    names = [n for n in done.stdout.decode("utf-8", "replace").split("\0") if n]
    # The .gitignore alone does no harm: a checkout cannot rewind the store with it.
    tracked = [n for n in names if Path(n).name != GITIGNORE]
    if not tracked:
        return
    # The store's own files (state.json) first, before the caches under it.
    tracked.sort(key=lambda name: name.count("/"))
    shown = ", ".join(tracked[:_SHOWN])
    if len(tracked) > _SHOWN:
        shown += f" and {len(tracked) - _SHOWN} more"
    raise StoreError.one(
        f"The state directory {directory} is tracked by Git",
        f"Git tracks {len(tracked)} file(s) in it ({shown}). A checkout, reset or pull "
        "would rewind the store to an older serial and silently lose every apply and task "
        "status change since.",
        f"Stop tracking them and keep the files: git rm -r --cached {directory}, and "
        f"commit (fleetward keeps a {GITIGNORE} of `*` in the directory so they stay out), "
        "or pass a --state-dir outside the work tree.",
        location=str(directory),
    )


def _work_tree_of(directory: Path) -> Path | None:
    """The nearest directory at or above `directory` holding `.git` (a dir or a file)."""
    here = directory.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


__all__ = ["GITIGNORE", "make_state_dir", "refuse_if_tracked"]
