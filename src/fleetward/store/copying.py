"""`fleetward store copy`: move everything a store holds into another, of any backend.

A team starts on the embedded TinyDB store and moves to PostgreSQL (or copies a
PostgreSQL store into a directory to debug it): lineage, serial, history,
objects, operations, rejections and undelivered notifications arrive as they were, so saved plans, the
operation log and `state history` carry on. Both stores are locked for the
whole copy: nothing lands in the source after its dump, nothing in the target
beside the copy.
"""

from __future__ import annotations

from fleetward.errors import UsageError
from fleetward.store.base import Store, StoreDump


def copy_store(source: Store, target: Store, *, force: bool, lock_timeout: float) -> StoreDump:
    """Copy `source` over `target`; what was copied.

    UsageError when they are one store, when the source holds nothing, or when the
    target holds something and `force` is not given (the target is then untouched).
    """
    if source.location == target.location:
        raise UsageError.one(
            f"--from and --to name the same store ({source.location})",
            "A store copied onto itself would be replaced by itself.",
            "Name another store as --to.",
            location=target.location,
        )
    if not source.exists():
        raise UsageError.one(
            f"No store at {source.location}",
            "There is nothing to copy: no apply has made a store there.",
            "Check --from: a state directory, or a postgresql:// URL of a database fleetward "
            "has written to.",
            location=source.location,
        )
    with source.lock(lock_timeout), target.lock(lock_timeout):
        dump = source.dump()
        if dump.empty:
            raise UsageError.one(
                f"The store at {source.location} is empty",
                "Nothing has been applied or recorded there, so there is nothing to copy.",
                "Check --from, or apply the manifests first.",
                location=source.location,
            )
        held = target.dump()
        if not held.empty and not force:
            raise UsageError.one(
                f"The store at {target.location} is not empty",
                f"It holds {len(held.objects)} object(s) at serial {held.meta.serial} (lineage "
                f"{held.meta.lineage or 'none'}) and {len(held.operations)} operation(s); the "
                "copy would replace all of it. Nothing was changed.",
                "Name an empty store as --to, or pass --force to replace what it holds.",
                location=target.location,
            )
        target.restore(dump)
    return dump
