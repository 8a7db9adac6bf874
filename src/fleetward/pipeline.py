"""The stages up to a plan: source → load → desire → plan, each composed once.

`resolve` is the one composition of fetch, load and desire: the converge path
(`engine`) runs it with its caches, its watch and a clock per stage; `validate`,
`plan --base`, `rules preview` and the workflow commands run it bare. Each
stage's errors propagate as `FleetwardError`s for the edge to render.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetward.desire import DesiredState, Expansions, desire
from fleetward.errors import ManifestError, UnverifiedRevision
from fleetward.kinds import KindCaches
from fleetward.document_cache import DocumentCache, open_document_cache
from fleetward.loading import Locator, load
from fleetward.model import (
    Plan,
    Revision,
    StoredObject,
    StoreMeta,
    StoreSnapshot,
)
from fleetward.planning import PlanOptions, plan
from fleetward.progress import SILENT, Watch
from fleetward.source import Snapshot, Source, open_snapshot
from fleetward.source.remote import DEFAULT_GIT_TIMEOUT
from fleetward.source.signatures import SignaturePolicy, signature_policy
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
    # Signed commits only: the revision's commit must be signed by a key these list.
    verify_signatures: bool = False
    allowed_signers: str | None = None
    gpg_keyring: str | None = None

    def open(self) -> Snapshot:
        """The revision these options name, opened (a `Source`)."""
        return open_source(self)

    def at(self, revision: str) -> SourceOptions:
        """These options reading commit `revision` (a `Source`)."""
        return dataclasses.replace(self, ref=revision)


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


def signatures_of(options: SourceOptions) -> SignaturePolicy | None:
    """The keys `options` trust (None: signatures are not verified); `UsageError` if the
    signature options cannot work together or their files cannot be read."""
    return signature_policy(
        options.verify_signatures,
        options.allowed_signers,
        options.gpg_keyring,
        no_git=options.no_git,
    )


def open_source(options: SourceOptions) -> Snapshot:
    """The revision `options` name, opened (fetched first for a remote) and, with
    --verify-signatures, refused unless its commit is signed by a trusted key."""
    return open_snapshot(
        options.source,
        options.ref,
        options.path,
        options.no_git,
        cache_root=Path(options.cache_root) if options.cache_root else None,
        git_timeout=options.git_timeout,
        signatures=signatures_of(options),
    )


# Times one stage ("fetch", "load", "desire") of a resolve; the engine's marks where a
# run is and checkpoints as each stage ends.
Stage = Callable[[str], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def _untimed(stage: str) -> Iterator[None]:
    yield


def resolve(
    options: Source,
    cache: DocumentCache | None = None,
    watch: Watch = SILENT,
    *,
    expansions: Expansions | None = None,
    stage: Stage | None = None,
    fetched: Callable[[Revision], None] | None = None,
    caches: KindCaches | None = None,
    keep_conflicts: bool = False,
) -> DesiredState:
    """Read one revision and turn it into the desired state, or raise every error in it.

    `watch` hears of the files read and the documents validated (the CLI's bar)
    and may stop the work between them (the daemon's checkpoints). `cache` and
    `expansions` carry parsed files and expanded documents from one call to the
    next (a daemon's; the cache keeps only this revision's files). `fetched` is
    told the revision as soon as the source resolved it, inside the fetch stage:
    what it raises ends the run before anything is parsed (a revision refused for its
    signature is told too, before the refusal is raised). `caches` and
    `keep_conflicts` are `desire`'s: the kinds' caches the caller owns, and whether
    conflicting generated objects are returned instead of raised.
    Without a `cache`, the one the options name is opened (`open_documents`).
    """
    if cache is None and isinstance(options, SourceOptions):
        cache = open_documents(options)
    stage = stage if stage is not None else _untimed
    with gc_paused():
        with stage("fetch"):
            try:
                snapshot = options.open()
            except UnverifiedRevision as refused:
                # A refusal is a verdict on the commit: `fetched` hears of it as of any
                # revision read (the daemon stops there if it already refused it).
                if fetched is not None and refused.revision is not None:
                    fetched(refused.revision)
                raise
            if fetched is not None:
                try:
                    fetched(snapshot.revision)
                except BaseException:
                    snapshot.close()
                    raise
        with snapshot:
            try:
                with stage("load"):
                    try:
                        manifests = load(snapshot, cache, watch)
                    finally:
                        if cache is not None:
                            cache.retain(f.blob_id for f in snapshot.files)
                with stage("desire"):
                    return desire(
                        manifests.revision,
                        manifests.documents(),
                        Locator(snapshot, cache),
                        expansions,
                        watch,
                        caches=caches,
                        keep_conflicts=keep_conflicts,
                    )
            except ManifestError as exc:
                exc.revision = snapshot.revision
                raise


def make_plan(
    desired: DesiredState,
    stored: StoreSnapshot,
    options: PlanOptions,
    now: str | None = None,
    watch: Watch = SILENT,
) -> Plan:
    with gc_paused():
        return plan(desired, stored, now or now_iso(), options, watch)


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
