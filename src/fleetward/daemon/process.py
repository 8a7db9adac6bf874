"""The daemon process's plumbing: its listening socket, its wake-up pipe, its lock.

One daemon per state directory (`daemon_lock`), a socket bound before uvicorn
takes it (`bind_listener`), and a self-pipe that signals and threads wake the
main loop through (`Waker`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType

from fleetward.errors import FleetwardError, StoreError, UsageError, os_error
from fleetward.store.lock import exclusive_lock

DAEMON_LOCK = "daemon.lock"


class Waker:
    """Wakes the main loop: a self-pipe that signals (set_wakeup_fd) and threads write to."""

    def __init__(self) -> None:
        self._read, self.fd = os.pipe()
        for fd in (self._read, self.fd):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already awake: the pipe is full
            os.write(self.fd, b"\0")

    def wait(self, timeout: float) -> None:
        select.select([self._read], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass


def bind_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = (
            "Another process is using the port: stop it, or pass --listen with another "
            "port (port 0 picks a free one)."
            if exc.errno == errno.EADDRINUSE
            else "Pass --listen with an address of this machine, e.g. 127.0.0.1:9477."
        )
        where = f"{host}:{port}"
        raise os_error(exc, UsageError, f"Cannot listen on {where}", hint, where) from None
    sock.set_inheritable(False)
    return sock


def daemon_lock(state_dir: Path) -> AbstractContextManager[None]:
    """One daemon per state directory, for its whole life; the second fails naming the first."""

    def busy(holder: str) -> FleetwardError:
        return StoreError.one(
            f"Another fleetward daemon (PID {holder}) is running on {state_dir}",
            "Only one daemon may reconcile a state directory; a second would fight the "
            "first over every write.",
            f"Stop PID {holder} first, or give this daemon its own --state-dir.",
            location=str(state_dir / DAEMON_LOCK),
            pid=holder,
        )

    return exclusive_lock(state_dir / DAEMON_LOCK, 0.0, busy)


__all__ = ["DAEMON_LOCK", "Waker", "bind_listener", "daemon_lock"]


def install_signals(stop: Callable[[int], None], reload: Callable[[], None], wake_fd: int) -> None:
    """SIGTERM and SIGINT call `stop(signum)`, SIGHUP `reload()`; each also writes to
    `wake_fd`, which interrupts the main loop's select. The callbacks only set flags (and
    events whose locks the main thread never waits on): a handler runs between any two
    bytecodes of the main thread."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop(signum)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    signal.set_wakeup_fd(wake_fd, warn_on_full_buffer=False)
