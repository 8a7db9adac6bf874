"""The pipeline up to a plan: source → load → desire → plan, as one call per stage.

The CLI (and later the daemon) composes these; each stage's errors propagate
as `FleetwardError`s for the edge to render.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from fleetward.desire import DesiredState, desire
from fleetward.document_cache import DocumentCache, open_document_cache
from fleetward.errors import ManifestError
from fleetward.loading import Locator, load
from fleetward.model import (
    Plan,
    StoredObject,
    StoreMeta,
    StoreSnapshot,
)
from fleetward.planning import PlanOptions, plan
from fleetward.progress import SILENT, Progress
from fleetward.source import Snapshot, open_snapshot
from fleetward.source.remote import DEFAULT_GIT_TIMEOUT
from fleetward.timestamps import now_iso
from fleetward.tuning import gc_paused


@dataclass(frozen=True, slots=True)
class SourceOptions:
    source: str = "."
    ref: str = "HEAD"
    path: str = "manifests"
    no_git: bool = False
    # Where a remote source (--source URL) is cloned: <state dir>/cache/git.
    cache_root: str | None = None
    git_timeout: float = DEFAULT_GIT_TIMEOUT
    # The parsed-manifest cache (`document_cache`): its directory, or none at all.
    cache_dir: str | None = None
    no_cache: bool = False


def git_cache(state_dir: str | Path) -> str:
    """Where remote sources are cloned for the store in `state_dir`."""
    return str(Path(state_dir) / "cache" / "git")


def documents_cache(state_dir: str | Path) -> str:
    """Where parsed manifests are cached by default, for the store in `state_dir`."""
    return str(Path(state_dir) / "cache" / "documents")


def with_state_caches(options: SourceOptions, state_dir: str | Path) -> SourceOptions:
    """`options` for a command with a state directory: a remote is cloned, and parsed
    manifests are cached (unless --cache-dir says where, or --no-cache), beside the store.

    A state directory that does not exist yet gets no cache: reading (`plan`) never
    makes one; the first apply does, and the runs after it are warm.
    """
    cache_dir = options.cache_dir
    if cache_dir is None and Path(state_dir).is_dir():
        cache_dir = documents_cache(state_dir)
    return dataclasses.replace(options, cache_root=git_cache(state_dir), cache_dir=cache_dir)


def open_documents(options: SourceOptions) -> DocumentCache:
    """The document cache `options` ask for: over their cache directory, or in memory."""
    return open_document_cache(None if options.no_cache else options.cache_dir)


def open_source(options: SourceOptions) -> Snapshot:
    """The revision `options` name, opened (fetched first for a remote)."""
    return open_snapshot(
        options.source,
        options.ref,
        options.path,
        options.no_git,
        cache_root=Path(options.cache_root) if options.cache_root else None,
        git_timeout=options.git_timeout,
    )


def resolve(
    options: SourceOptions, cache: DocumentCache | None = None, progress: Progress = SILENT
) -> DesiredState:
    """Read one revision and turn it into the desired state, or raise every error in it.

    `progress` hears of the files read and the documents validated (the CLI's bar).
    Without a `cache`, the one `options` name is opened (`open_documents`).
    """
    cache = cache if cache is not None else open_documents(options)
    with gc_paused(), open_source(options) as snapshot:
        try:
            manifests = load(snapshot, cache, progress=progress)
            return desire(
                manifests.revision, manifests.documents(), Locator(snapshot), progress=progress
            )
        except ManifestError as exc:
            exc.revision = snapshot.revision
            raise


def make_plan(
    desired: DesiredState,
    stored: StoreSnapshot,
    options: PlanOptions,
    now: str | None = None,
    progress: Progress = SILENT,
) -> Plan:
    with gc_paused():
        return plan(desired, stored, now or now_iso(), options, progress)


def as_stored(desired: DesiredState) -> StoreSnapshot:
    """The store as it would be right after applying `desired` to an empty one.

    `plan --base REF` diffs against this instead of a real store: the change a
    pull request makes, reviewed without any state.
    """
    revision = desired.revision.id
    # Stored as a first apply stores them — with the status kinds derive (a workflow's
    # version, a rule's progress) — so the review shows only what the change does.
    empty = StoreSnapshot(StoreMeta(lineage=None, serial=0, last_applied_revision=None), {})
    with gc_paused():
        first = plan(desired, empty, "", PlanOptions(allow_empty=True, allow_mass_stop=True))
    objects = {
        change.address: StoredObject.first(change.address, change.kind, change.after, revision, "")
        for change in first.changes
        if change.after is not None
    }
    return StoreSnapshot(StoreMeta(lineage=None, serial=0, last_applied_revision=revision), objects)
