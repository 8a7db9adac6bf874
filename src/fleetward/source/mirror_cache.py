"""The cache directory that holds remote mirrors: one lock file per mirror, and removal of
what an interrupted clone left behind."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fleetward.errors import SourceError, os_error


def remove_path(path: Path) -> None:
    """Delete a directory tree or a file, best effort (a leftover is swept next time)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_leftovers(mirror: Path) -> None:
    """Remove the temporary clones and replaced mirrors of `mirror` (its lock is held)."""
    for pattern in (f"{mirror.name}.tmp-*", f"{mirror.name}.old-*"):
        for leftover in mirror.parent.glob(pattern):
            remove_path(leftover)


@contextmanager
def mirror_lock(mirror: Path, timeout: float, shown_url: str) -> Iterator[None]:
    """Hold `mirror`'s lock file (beside it) for the block, waiting up to `timeout` seconds
    for another process's sync to finish; `SourceError` if it does not."""
    lock = mirror.parent / f"{mirror.name}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise cache_failed(mirror.parent, exc) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SourceError.one(
                        f"The mirror of {shown_url} is busy",
                        f"Another fleetward process held {lock} for more than "
                        f"{timeout:g} s while syncing it.",
                        "Retry; if it persists, check for a hung fleetward or git process.",
                        location=shown_url,
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def cache_failed(cache_root: Path, exc: OSError) -> SourceError:
    """The error for a cache directory that cannot be created or written."""
    return os_error(
        exc,
        SourceError,
        f"The cache directory {cache_root} cannot be used",
        "Make the state directory writable by this user, or point --state-dir elsewhere.",
        cache_root,
    )
