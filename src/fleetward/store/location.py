"""Store locations: what `--state-dir` names, and `open_store`, the one place a store is made.

A path is the embedded TinyDB store; `memory:` the in-memory double; a URL a
server-backed store, which this version refuses by name rather than taking it
for a directory called `postgresql:`.
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


def open_store(location: str | Path) -> Store:
    """The store at `location`: a path is a TinyDB state directory; `memory:` a new, empty
    in-memory store; a URL (`scheme://…`) a UsageError naming its scheme.

    Opening does no I/O: a missing directory is made by the first write.
    """
    if isinstance(location, Path):
        return TinyDBStore(location)
    if location == MEMORY:
        return MemoryStore()
    url = _URL.match(location)
    if url is not None:
        scheme = url["scheme"]
        # Only the scheme is echoed: the rest of a URL may carry a password.
        raise UsageError.one(
            f"A {scheme}:// store is not supported by this version",
            f"{scheme}:// names a server-backed store; this version of fleetward keeps its "
            "store in a state directory (TinyDB).",
            "Pass a directory, e.g. --state-dir .fleetward.",
            location=f"{scheme}://",
        )
    return TinyDBStore(location)
