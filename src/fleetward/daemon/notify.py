"""systemd's notify protocol: READY=1, WATCHDOG=1, STOPPING=1, STATUS=… to $NOTIFY_SOCKET.

The protocol is one datagram on a Unix socket (sd_notify(3)); the libraries
that wrap it are either unmaintained or need libsystemd to build, so these
few lines are ours. Without $NOTIFY_SOCKET (not under systemd) it does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger("fleetward.daemon")


def notify(*assignments: str) -> bool:
    """Send `KEY=value` lines to systemd; True if a notify socket took them."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
        return True
    except OSError as exc:
        logger.warning("cannot notify systemd at %s: %s", address, exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None if not asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
