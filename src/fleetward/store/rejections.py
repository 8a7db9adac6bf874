"""The rejected plans: per SyncPolicy, the digest of the plan an operator ended.

`RejectionStore` is what operations control needs; `RejectionFile` keeps them
in `<state-dir>/rejections.json`. Kept apart from the operation log, which is
bounded and may be damaged: a rejection must outlive the eviction of its
operation, and an unreadable record must hold the policies' parts, not
release them (`read` answers None, and control then holds every policy).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from fleetward.errors import StoreError, os_error
from fleetward.operations import Operation
from fleetward.store.directory import make_state_dir
from fleetward.store.files import write_atomic

logger = logging.getLogger(__name__)

REJECTIONS_FILE = "rejections.json"


class RejectionStore(Protocol):
    """Where rejections live (a file here; a table in a server-backed store)."""

    def read(self) -> dict[str, dict[str, Any]] | None:
        """Policy → {digest, operationId, state, at}; None if they cannot be read."""
        ...

    def add(self, policy: str, digest: str, op: Operation) -> None:
        """Record that `op`, carrying `digest` of `policy`, was ended by an operator.
        StoreError if the record cannot be read (writing would forget the others)."""
        ...

    def keep(self, policies: Iterable[str]) -> None:
        """Drop the rejections of policies that have nothing left to change."""
        ...

    def lift(self, policy: str) -> None:
        """A person approved a later plan of the policy, and it applied."""
        ...


class RejectionFile:
    """`<state-dir>/rejections.json`, replaced atomically on every change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / REJECTIONS_FILE

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            logger.error("cannot read %s: %s; every policy's changes are held", self.path, exc)
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not an object of objects")
            return data
        except ValueError as exc:
            logger.error(
                "%s is damaged (%s); every policy's changes are held until it is fixed or "
                "removed (removing it forgets the rejected plans)",
                self.path,
                exc,
            )
            return None

    def add(self, policy: str, digest: str, op: Operation) -> None:
        found = self.read()
        if found is None:
            # Writing now would drop the other rejections the file holds.
            raise StoreError.one(
                f"Cannot record the rejection: {self.path} is damaged",
                "The file lists the plans operators rejected; rewriting it now would "
                "forget them. While it is damaged, every policy's changes are held.",
                f"Fix or remove {self.path} (removing it forgets the rejected plans), "
                "then retry.",
                location=str(self.path),
            )
        found[policy] = {
            "digest": digest,
            "operationId": op.operation_id,
            "state": op.state.name,
            "at": op.updated_at,
        }
        self._write(found)

    def keep(self, policies: Iterable[str]) -> None:
        wanted = set(policies)
        found = self.read()
        if not found:
            return
        kept = {p: e for p, e in found.items() if p in wanted}
        if kept != found:
            self._write(kept)

    def lift(self, policy: str) -> None:
        found = self.read()
        if found and policy in found:
            self._write({p: e for p, e in found.items() if p != policy})

    def replace(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep exactly `data` (a store copied in, `Store.restore`)."""
        if not data and not self.path.exists():
            return
        self._write({policy: dict(entry) for policy, entry in data.items()})

    def _write(self, data: Mapping[str, Any]) -> None:
        try:
            make_state_dir(self.path.parent)
            write_atomic(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise os_error(
                exc,
                StoreError,
                f"Cannot write {self.path}",
                "Make the state directory writable.",
                self.path,
            ) from exc


__all__ = ["REJECTIONS_FILE", "RejectionFile", "RejectionStore"]
