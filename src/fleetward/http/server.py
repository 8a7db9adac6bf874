"""Serving the API: uvicorn in a thread of its own, on a socket bound before it starts.

Binding first (`daemon.process.bind_listener`) turns a taken port into a clear
error before uvicorn runs; the daemon stops the server through `stop` when it
shuts down.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from fleetward.daemon.process import bind_listener
from fleetward.errors import UsageError

START_TIMEOUT = 10.0  # seconds uvicorn may take to start serving


@dataclass
class Listening:
    """A running server: where it listens, and how to stop it."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float) -> None:
        """Ask uvicorn to exit and wait up to `timeout` seconds for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)


def serve(app: Starlette, address: tuple[str, int], listen: str) -> Listening:
    """Serve `app` on `address` (host, port; port 0 picks one) until `stop`.

    `listen` is the address as the user gave it (--listen), for the error if
    uvicorn does not start."""
    host, port = address
    sock = bind_listener(host, port)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fleetward-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise UsageError.one(
            f"The HTTP server did not start on {listen}",
            "uvicorn failed to start; its log above says why.",
            "Check --listen, or report the log.",
        )
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return Listening(server, thread, f"http://{shown}:{bound_port}")


__all__ = ["Listening", "serve"]
