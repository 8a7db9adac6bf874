"""The rollback pin of a state directory: `pin.json`, replaced atomically.

Beside `state.json`, not in it, for the reasons the outbox is: lifting a pin
(`fleetward resume`) must not rewrite the objects or move the serial. The
writers (`rollback`, `resume`) hold the store's lock; readers take the file as
it is, and a damaged file is a StoreError that says how to recover.
"""

from __future__ import annotations

import json
from pathlib import Path

from fleetward.errors import StoreError, os_error
from fleetward.store.base import Pin
from fleetward.store.files import write_atomic

PIN_FILE = "pin.json"


def read_pin(state_dir: Path) -> Pin | None:
    """The pin kept in `state_dir`, or None when there is none."""
    path = Path(state_dir) / PIN_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, StoreError, f"Cannot read the rollback pin {path}", _FIX, path) from exc
    try:
        doc = json.loads(raw)
        return Pin.from_dict(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError.one(
            f"The rollback pin {path} is corrupt",
            f"It cannot be read as a pin ({exc!r}).",
            _FIX,
            location=str(path),
        ) from exc


def write_pin(state_dir: Path, pin: Pin | None) -> None:
    """Keep `pin` in `state_dir` (None: remove the file); the caller holds the lock."""
    path = Path(state_dir) / PIN_FILE
    try:
        if pin is None:
            path.unlink(missing_ok=True)
            return
        text = json.dumps(pin.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(path, text.encode(), sync_dir=True)
    except OSError as exc:
        raise os_error(
            exc,
            StoreError,
            f"Cannot write the rollback pin {path}",
            "Run as the user the daemon runs as, or fix the directory's permissions.",
            path,
        ) from exc


_FIX = (
    "Lift the pin with fleetward resume (then roll back again if wanted), or restore the "
    "file's permissions."
)
