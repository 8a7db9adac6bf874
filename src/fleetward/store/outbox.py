"""The notification outbox of a state directory: `outbox.json`, replaced atomically.

It lives beside `state.json`, not in it: delivering a notification must not
rewrite (or be fenced by) the object store, and a daemon sending to a dead
receiver must not grow the file every apply rewrites. Only the daemon writes
it (under its daemon lock), so a mutex between its threads is the only lock;
each write is `write_atomic` (temp file, fsync, rename), so a crash leaves the
old outbox or the new one, and an event is never half-recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetward.errors import StoreError, os_error
from fleetward.store.base import OUTBOX_LIMIT, OutboxEntry, outbox_added, outbox_selected
from fleetward.store.directory import make_state_dir
from fleetward.store.files import sweep_own, write_atomic

OUTBOX_FILE = "outbox.json"
NOTIFY_STATE_FILE = "notify.json"  # what the notifier last told, beside its outbox
_FORMAT = 1


class OutboxFile:
    """The outbox in `state_dir/outbox.json`, read once and kept in memory after."""

    def __init__(self, state_dir: Path | str, limit: int = OUTBOX_LIMIT) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / OUTBOX_FILE
        self.limit = limit
        self._mutex = threading.Lock()  # the run's thread adds while senders remove
        self._entries: list[OutboxEntry] | None = None

    def add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        with self._mutex:
            kept, dropped = outbox_added(self._read(), entries, self.limit)
            self._write(kept)
            return dropped

    def pending(self, target: str | None = None, limit: int | None = None) -> list[OutboxEntry]:
        with self._mutex:
            return outbox_selected(self._read(), target, limit)

    def remove(self, entry_ids: Collection[str]) -> None:
        with self._mutex:
            current = self._read()
            kept = [entry for entry in current if entry.entry_id not in entry_ids]
            if len(kept) != len(current):
                self._write(kept)

    def replace(self, entries: Sequence[OutboxEntry]) -> None:
        """Keep exactly `entries` (a restored store's outbox), in one atomic write."""
        with self._mutex:
            self._write(list(entries))

    # -- under the mutex -----------------------------------------------------------------

    def _read(self) -> list[OutboxEntry]:
        if self._entries is not None:
            return self._entries
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._entries = []
            return self._entries
        except OSError as exc:
            raise os_error(
                exc,
                StoreError,
                f"Cannot read the notification outbox {self.path}",
                "Check the file's permissions, or pass another --state-dir.",
                self.path,
            ) from exc
        try:
            doc = json.loads(raw)
            self._entries = [OutboxEntry.from_dict(e) for e in doc["entries"]]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StoreError.one(
                f"The notification outbox {self.path} is corrupt",
                f"It cannot be read as a list of notifications ({exc!r}).",
                f"Move {self.path} away: the notifications it held are lost, object state "
                "is not affected.",
                location=str(self.path),
            ) from exc
        return self._entries

    def _write(self, entries: list[OutboxEntry]) -> None:
        doc: dict[str, Any] = {"format": _FORMAT, "entries": [e.to_dict() for e in entries]}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        try:
            make_state_dir(self.state_dir)
            sweep_own(self.state_dir, OUTBOX_FILE)
            write_atomic(self.path, text.encode(), sync_dir=True)
        except OSError as exc:
            self._entries = None  # what is on disk is unknown: read it again next time
            raise os_error(
                exc,
                StoreError,
                f"Cannot write the notification outbox in {self.state_dir}",
                f"Make {self.state_dir} writable by this user, or pass another --state-dir.",
                self.state_dir,
            ) from exc
        self._entries = entries


def read_notify_state(state_dir: Path) -> dict[str, Any] | None:
    """The notifier's document kept in `state_dir`, or None if there is none."""
    path = Path(state_dir) / NOTIFY_STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(
            exc,
            StoreError,
            f"Cannot read the notification state {path}",
            "Check the file's permissions, or pass another --state-dir.",
            path,
        ) from exc
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise TypeError(f"a {type(doc).__name__}, not a mapping")
    except (ValueError, TypeError) as exc:
        raise StoreError.one(
            f"The notification state {path} is corrupt",
            f"It cannot be read as what the notifier last told ({exc!r}).",
            f"Move {path} away: a failure already told may be told again once, object "
            "state is not affected.",
            location=str(path),
        ) from exc
    return doc


def write_notify_state(state_dir: Path, doc: Mapping[str, Any]) -> None:
    """Keep `doc` in `state_dir`, replacing the last one atomically."""
    state_dir = Path(state_dir)
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    try:
        make_state_dir(state_dir)
        sweep_own(state_dir, NOTIFY_STATE_FILE)
        write_atomic(state_dir / NOTIFY_STATE_FILE, text.encode(), sync_dir=True)
    except OSError as exc:
        raise os_error(
            exc,
            StoreError,
            f"Cannot write the notification state in {state_dir}",
            f"Make {state_dir} writable by this user, or pass another --state-dir.",
            state_dir,
        ) from exc
