"""The store's exclusive lock: one writer at a time, and the waiter learns who holds it."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fleetward.errors import FleetwardError, LockTimeout, StoreError, os_error

_POLL_SECONDS = 0.1


@contextmanager
def exclusive_lock(
    path: Path, timeout: float, busy: Callable[[str], FleetwardError] | None = None
) -> Iterator[None]:
    """Hold an flock on `path` (which records our PID) or fail naming the holder.

    `busy(holder_pid)` makes the error raised when the wait runs out; by default
    it says the state store is locked.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise os_error(
            exc,
            StoreError,
            f"Cannot open the lock file {path}",
            f"Make the state directory {path.parent} writable by this user, or pass --state-dir.",
            path,
        ) from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(path)
                    if busy is not None:
                        raise busy(holder) from None
                    raise LockTimeout.one(
                        f"The state store is locked by another process (PID {holder})",
                        f"{path} has been held for longer than --lock-timeout ({timeout:g}s); "
                        "only one process may write the store at a time.",
                        f"Wait for PID {holder} to finish (a daemon holds the lock while it runs), "
                        "or raise --lock-timeout.",
                        location=str(path),
                        pid=holder,
                    ) from None
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"
