"""A throw-away PostgreSQL server for the tests: `initdb` into a temp dir, `pg_ctl start`.

The server listens on a free port of 127.0.0.1 (and on a unix socket in its
temp dir), trusts no one over TCP without the password, and runs with fsync
off: it is a test fixture, not a database. PostgreSQL refuses to run as
root, so under root the server runs as the unprivileged `postgres` user (or
`nobody`) through `setpriv`, in a directory that user owns.

One server per test process (`server()`, stopped at exit); each test that
needs a store gets a database of its own (`Server.new_database`). Where the
server binaries cannot be had, `server()` skips with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PASSWORD_BYTES = 12
_BINARIES = ("initdb", "pg_ctl")
_UNPRIVILEGED = ("postgres", "nobody")
_START_TIMEOUT = 120  # seconds; a loaded CI box is slow to initdb and start


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else the newest Debian install."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for directory in reversed(versions):
        if all((Path(directory) / name).exists() for name in _BINARIES):
            return Path(directory)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its superuser `postgres` logs in with `password` over TCP."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    as_user: list[str]  # the command prefix that runs as the server's user ([] if not root)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", password: str | None = None, **query: str) -> str:
        """A URL of `database` on this server (`password` to override the right one)."""
        secret = self.password if password is None else password
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://postgres:{secret}@127.0.0.1:{self.port}/{database}" + (
            f"?{params}" if params else ""
        )

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser session (autocommit) on `database`."""
        return psycopg.connect(self.url(database), autocommit=True)

    def new_database(self, prefix: str = "t") -> str:
        """A new empty database; its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self, durable: bool = False) -> None:
        """Start the server; `durable`: with fsync (benchmarks), else without (tests)."""
        log = self.root / "server.log"
        unsafe = (
            []
            if durable
            else [
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
                *unsafe,
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(_START_TIMEOUT),
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, binary: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, str(self.bin_dir / binary), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=_START_TIMEOUT + 30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{binary} failed ({done.returncode}): {done.stderr or done.stdout}")


def _unprivileged_prefix(root: Path) -> list[str]:
    """Under root: the `setpriv` prefix running as an unprivileged user owning `root`."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: PostgreSQL refuses to run as root")
    for name in _UNPRIVILEGED:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        os.chown(root, user.pw_uid, user.pw_gid)
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    pytest.skip("running as root with no unprivileged user (postgres, nobody) to run PostgreSQL")


@functools.cache
def server() -> Server:
    """This test process's server, started at the first call and stopped at exit."""
    return start_server()


def start_server(durable: bool = False) -> Server:
    """A new server (stopped at exit); pytest.skip where the binaries cannot be had."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH or in "
            "/usr/lib/postgresql/*/bin; install Debian's postgresql package"
        )
    root = Path(tempfile.mkdtemp(prefix="fleetward-pg-"))
    root.chmod(0o700)
    prefix = _unprivileged_prefix(root)
    password = secrets.token_hex(PASSWORD_BYTES)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if prefix:
        os.chown(pwfile, *(int(x.split("=")[1]) for x in prefix[1:3]))
    found = Server(bin_dir, root, _free_port(), password, prefix)
    found._run(
        "initdb",
        "-D",
        str(found.data_dir),
        "-U",
        "postgres",
        f"--pwfile={pwfile}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    )
    found.start(durable)
    atexit.register(found.stop)
    return found
