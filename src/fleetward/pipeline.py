"""The stages up to a plan: source → load → desire → plan, each composed once.

`resolve` is the one composition of fetch, load and desire: the converge path
(`engine`) runs it with its caches, its watch and a clock per stage; `validate`,
`plan --base`, `rules preview` and the workflow commands run it bare. Each
stage's errors propagate as `FleetwardError`s for the edge to render.
`resolve_isolating` is the same composition with failure isolation: the
engine's read step, for `plan`, `apply` and the daemon alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from fleetward.desire import DesiredState, Expansions, KeptExpansions, desire
from fleetward.document_cache import DocumentCache, open_document_cache
from fleetward.errors import FleetwardError, ManifestError, UnverifiedRevision
from fleetward.isolation import Isolated, Previous, Scope, isolate, isolating
from fleetward.kinds import Document, KindCaches
from fleetward.loading import Locator, Manifests, load, load_file
from fleetward.model import (
    HeldDocument,
    Plan,
    Revision,
    StoredObject,
    StoreMeta,
    StoreSnapshot,
)
from fleetward.planning import PlanOptions, plan
from fleetward.progress import SILENT, Watch
from fleetward.source import Snapshot, Source, is_remote, open_snapshot
from fleetward.source.base import normalise_manifest_path
from fleetward.source.git import open_git
from fleetward.source.remote import DEFAULT_GIT_TIMEOUT, RemoteMirror
from fleetward.source.signatures import SignaturePolicy, signature_policy
from fleetward.timestamps import now_iso
from fleetward.tuning import gc_paused

T = TypeVar("T")


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

    def open_at(self, revision: str) -> Snapshot | None:
        """An earlier revision (a commit id) of this source, opened without fetching or
        moving any ref: a local repository, or a remote's mirror, read at that commit.
        None when the source keeps no past (a plain directory)."""
        if self.no_git:
            return None
        if is_remote(self.source):
            if self.cache_root is None:
                return None
            root = RemoteMirror(self.source, Path(self.cache_root), self.git_timeout).path
        else:
            root = Path(self.source)
        return open_git(root, revision, normalise_manifest_path(self.path))

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
    Without a `cache`, the one the options name is opened (`open_documents`); it also
    keeps large documents' expansions across runs.
    """
    if cache is None and isinstance(options, SourceOptions):
        cache = open_documents(options)

    def expand(manifests: Manifests, locator: Locator) -> DesiredState:
        return desire(
            manifests.revision,
            manifests.documents(),
            locator,
            expansions,
            watch,
            caches=caches,
            keep_conflicts=keep_conflicts,
            kept=cache,
        )

    return _resolve(options, cache, watch, stage, fetched, expand, tolerate=False)


@runtime_checkable
class KeepsPast(Protocol):
    """A source that can open an earlier revision by its id (Git sources, and the
    in-memory one); failure isolation reads what an unreadable file declared there."""

    def open_at(self, revision: str) -> Snapshot | None: ...


def past_of(source: Source) -> Callable[[str], Snapshot | None] | None:
    """How to open earlier revisions of `source`; None when it keeps no past."""
    return source.open_at if isinstance(source, KeepsPast) else None


@dataclass(frozen=True, slots=True)
class Isolation:
    """Failure isolation for one read: on for every document (`everywhere`), or only for
    those an `isolateFailures` SyncPolicy selects; the store it plans against, how,
    and how to open the revision last applied to it (None: the source keeps no past)."""

    everywhere: bool
    read_store: Callable[[], StoreSnapshot]
    plan_options: PlanOptions = field(default_factory=PlanOptions)
    now: str = ""
    open_at: Callable[[str], Snapshot | None] | None = None


def resolve_isolating(
    options: Source,
    isolation: Isolation,
    cache: DocumentCache | None = None,
    watch: Watch = SILENT,
    *,
    expansions: Expansions | None = None,
    stage: Stage | None = None,
    fetched: Callable[[Revision], None] | None = None,
    caches: KindCaches | None = None,
) -> DesiredState | Isolated:
    """`resolve` with failure isolation, while the revision is open (desire locates
    errors in its files): the plan isolation made against the store, when it applies
    to this revision (on everywhere, or some SyncPolicy asks for it); otherwise the
    desired state, or the same errors in the same order, as `resolve` gives them."""
    if cache is None and isinstance(options, SourceOptions):
        cache = open_documents(options)

    def expand(manifests: Manifests, locator: Locator) -> DesiredState | Isolated:
        return desire_or_isolate(manifests, locator, isolation, expansions, watch, caches, cache)

    return _resolve(options, cache, watch, stage, fetched, expand, tolerate=True)


def _resolve(
    options: Source,
    cache: DocumentCache | None,
    watch: Watch,
    stage: Stage | None,
    fetched: Callable[[Revision], None] | None,
    expand: Callable[[Manifests, Locator], T],
    tolerate: bool,
) -> T:
    """Fetch, load (tolerantly: every problem attributed, for isolation), then `expand`."""
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
                        manifests = load(snapshot, cache, watch, tolerate=tolerate)
                    finally:
                        if cache is not None:
                            cache.retain(f.blob_id for f in snapshot.files)
                with stage("desire"):
                    return expand(manifests, Locator(snapshot, cache))
            except ManifestError as exc:
                exc.revision = snapshot.revision
                raise


def desire_or_isolate(
    manifests: Manifests,
    locator: Locator,
    isolation: Isolation,
    expansions: Expansions | None = None,
    watch: Watch = SILENT,
    caches: KindCaches | None = None,
    kept: KeptExpansions | None = None,
) -> DesiredState | Isolated:
    """The desire stage of a tolerant load: isolation's plan when it applies to this
    revision, else `desire` (raising a strict load's errors first, as `resolve` does)."""
    documents = tuple(manifests.documents())
    if not isolating(isolation.everywhere, documents):
        if manifests.failures:
            raise ManifestError(*manifests.problems)
        return desire(
            manifests.revision, documents, locator, expansions, watch, caches=caches, kept=kept
        )
    stored = isolation.read_store()
    unreadable = sorted({f.path for f in manifests.failures if f.address is None and f.path})
    previous = read_previous(
        isolation.open_at, manifests.revision, stored.meta.last_applied_revision, unreadable
    )

    def run_desire(good: tuple[tuple[str, Document], ...]) -> DesiredState:
        return desire(
            manifests.revision, good, locator, expansions, watch, caches=caches, kept=kept
        )

    def run_plan(desired: DesiredState, held: tuple[HeldDocument, ...]) -> Plan:
        return plan(desired, stored, isolation.now, isolation.plan_options, watch, held=held)

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
    open_at: Callable[[str], Snapshot | None] | None,
    revision: Revision,
    applied: str | None,
    paths: list[str],
) -> Previous:
    """The documents each of `paths` declared at revision `applied`, read from the source
    (Git only: a plain directory keeps no past). Whatever cannot be read there is left
    out: isolation then assumes, and says so."""
    if not paths or applied is None or open_at is None or applied == revision.id:
        return Previous(applied)
    found: dict[str, tuple[str, ...]] = {}
    try:
        old = open_at(applied)
        if old is None:
            return Previous(applied)
        with old:
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


def make_plan(
    desired: DesiredState,
    stored: StoreSnapshot,
    options: PlanOptions,
    now: str | None = None,
    watch: Watch = SILENT,
    held: tuple[HeldDocument, ...] = (),
) -> Plan:
    with gc_paused():
        return plan(desired, stored, now or now_iso(), options, watch, held=held)


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
