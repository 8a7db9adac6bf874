"""Store locations: what `--store` and `--state-dir` name, and the one place a store is made.

A path is the embedded TinyDB store; `memory:` the in-memory double; a
`postgresql://` (or `postgres://`) URL the PostgreSQL store. Any other URL is
refused by its scheme rather than taken for a directory called `mysql:`.
"""

from __future__ import annotations

import re
from pathlib import Path

from fleetward.errors import UsageError
from fleetward.store.base import Store
from fleetward.store.memory import MemoryStore
from fleetward.store.tinydb import TinyDBStore

MEMORY = "memory:"
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(location: str | Path) -> Store:
    """The store at `location`: a path is a TinyDB state directory; `memory:` a new, empty
    in-memory store; `postgresql://…` a PostgreSQL store; another URL a UsageError naming
    its scheme.

    Opening does no I/O: a missing directory is made by the first write, a database's
    schema by the first write or lock.
    """
    if isinstance(location, Path):
        return TinyDBStore(location)
    if location == MEMORY:
        return MemoryStore()
    url = _URL.match(location)
    if url is None:
        return TinyDBStore(location)
    scheme = url["scheme"]
    if scheme.lower() in POSTGRES_SCHEMES:
        # Imported here: the driver loads only for the commands that use it.
        from fleetward.store.postgres import PostgresStore

        return PostgresStore(location)
    # Only the scheme is echoed: the rest of a URL may carry a password.
    raise UsageError.one(
        f"A {scheme}:// store is not supported by this version",
        f"{scheme}:// names a server-backed store; this version of fleetward keeps its store "
        "in a state directory (TinyDB) or in PostgreSQL (postgresql://).",
        "Pass --store postgresql://USER@HOST/DATABASE, or a directory, e.g. --state-dir "
        ".fleetward.",
        location=f"{scheme}://",
    )


def open_configured(store: str | None, state_dir: str | Path) -> Store:
    """The store the settings name: `--store` when given, else TinyDB in `--state-dir`.

    A URL given as --state-dir is refused, not opened: the state directory also
    holds status files and caches, which a URL cannot.
    """
    if store:
        return open_store(store)
    return open_store(state_directory(state_dir))


def state_directory(state_dir: str | Path) -> Path:
    """`--state-dir` as a directory; a URL there is a UsageError pointing to --store."""
    if isinstance(state_dir, str):
        url = _URL.match(state_dir)
        if url is not None:
            scheme = url["scheme"]
            raise UsageError.one(
                f"--state-dir takes a directory, not a {scheme}:// URL",
                "The state directory holds status files and caches on this host; a store on a "
                "server is named by --store.",
                "Pass the URL as --store (or FLEETWARD_STORE), and --state-dir a directory.",
                location=f"{scheme}://",
            )
    return Path(state_dir)
