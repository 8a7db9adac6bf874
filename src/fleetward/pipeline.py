"""The pipeline up to a plan: source → load → desire → plan, as one call per stage.

The CLI (and later the daemon) composes these; each stage's errors propagate
as `FleetwardError`s for the edge to render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetward.desire import DesiredState, Expansions, desire
from fleetward.errors import FleetwardError, ManifestError
from fleetward.isolation import Isolated, Previous, Scope, isolate, isolating
from fleetward.kinds import Document
from fleetward.loading import DocumentCache, Locator, Manifests, load, load_file
from fleetward.model import (
    HeldDocument,
    Plan,
    Revision,
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


def git_cache(state_dir: str | Path) -> str:
    """Where remote sources are cloned for the store in `state_dir`."""
    return str(Path(state_dir) / "cache" / "git")


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
    """
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
    held: tuple[HeldDocument, ...] = (),
) -> Plan:
    with gc_paused():
        return plan(desired, stored, now or now_iso(), options, progress, held=held)


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


@dataclass(frozen=True, slots=True)
class Isolation:
    """Failure isolation for one run: on for every document (`everywhere`), or only for
    those an `isolateFailures` SyncPolicy selects; what it plans against and with."""

    everywhere: bool
    read_store: Callable[[], StoreSnapshot]
    plan_options: PlanOptions
    now: str
    sources: SourceOptions


def resolve_snapshot(
    snapshot: Snapshot,
    locator: Locator,
    isolation: Isolation | None = None,
    cache: DocumentCache | None = None,
    expansions: Expansions | None = None,
    load_checkpoint: Callable[[], None] | None = None,
    desire_checkpoint: Callable[[], None] | None = None,
    progress: Progress = SILENT,
) -> DesiredState | Isolated:
    """An open revision turned into its desired state, or raise every error in it.

    With `isolation` (and a revision it applies to: on everywhere, or some valid
    SyncPolicy asks for it), invalid documents are held back instead, and the
    result is the plan isolation made. Otherwise this is `load` then `desire`,
    with the same errors in the same order.
    """
    try:
        manifests = load(
            snapshot, cache, load_checkpoint, progress=progress, tolerate=isolation is not None
        )
        return desire_or_isolate(
            manifests, locator, isolation, expansions, desire_checkpoint, progress
        )
    except ManifestError as exc:
        exc.revision = snapshot.revision
        raise


def desire_or_isolate(
    manifests: Manifests,
    locator: Locator,
    isolation: Isolation | None = None,
    expansions: Expansions | None = None,
    checkpoint: Callable[[], None] | None = None,
    progress: Progress = SILENT,
) -> DesiredState | Isolated:
    """The second half of `resolve_snapshot`, for callers that time load and desire apart:
    `manifests` loaded tolerantly exactly when `isolation` is given."""
    documents = tuple(manifests.documents())
    if isolation is None or not isolating(isolation.everywhere, documents):
        if manifests.failures:
            raise ManifestError(*manifests.problems)
        return desire(manifests.revision, documents, locator, expansions, checkpoint, progress)
    return _isolated(manifests, documents, locator, isolation, expansions, progress)


def _isolated(
    manifests: Manifests,
    documents: tuple[tuple[str, Document], ...],
    locator: Locator,
    isolation: Isolation,
    expansions: Expansions | None,
    progress: Progress,
) -> Isolated:
    stored = isolation.read_store()
    unreadable = sorted({f.path for f in manifests.failures if f.address is None and f.path})
    previous = read_previous(
        isolation.sources, manifests.revision, stored.meta.last_applied_revision, unreadable
    )

    def run_desire(good: tuple[tuple[str, Document], ...]) -> DesiredState:
        return desire(manifests.revision, good, locator, expansions, progress=progress)

    def run_plan(desired: DesiredState, held: tuple[HeldDocument, ...]) -> Plan:
        return plan(desired, stored, isolation.now, isolation.plan_options, progress, held=held)

    return isolate(
        documents,
        manifests.failures,
        stored,
        run_desire,
        run_plan,
        locator,
        Scope(isolation.everywhere),
        previous,
    )


def read_previous(
    sources: SourceOptions, revision: Revision, applied: str | None, paths: list[str]
) -> Previous:
    """The documents each of `paths` declared at revision `applied`, read from the source
    (Git only: a plain directory keeps no past). Whatever cannot be read there is left
    out: isolation then assumes, and says so."""
    if not paths or applied is None or revision.kind != "git" or applied == revision.id:
        return Previous(applied)
    found: dict[str, tuple[str, ...]] = {}
    try:
        with open_source(dataclasses.replace(sources, ref=applied)) as old:
            wanted = [f for f in old.files if f.path in paths]
            for f, content in old.read(wanted):
                addresses = [_address(item) for item in load_file(content)]
                found[f.path] = tuple(a for a in addresses if a is not None)
    except FleetwardError:
        return Previous(applied)
    return Previous(applied, found)


def _address(item: object) -> str | None:
    if isinstance(item, Document):
        return item.address
    return getattr(item, "address", None)


def resolve_isolated(
    options: SourceOptions, isolation: Isolation, progress: Progress = SILENT
) -> DesiredState | Isolated:
    """`resolve` with failure isolation: the plan it made, or (when the revision has no
    isolation to apply) the desired state, as `resolve` returns it."""
    with gc_paused(), open_source(options) as snapshot:
        return resolve_snapshot(snapshot, Locator(snapshot), isolation, progress=progress)
