"""The pipeline up to a plan: source → load → desire → plan, as one call per stage.

The CLI (and later the daemon) composes these; each stage's errors propagate
as `FleetwardError`s for the edge to render.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetward.desire import DesiredState, desire
from fleetward.errors import ManifestError
from fleetward.loading import DocumentCache, Locator, load
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
    # Signed commits only: the revision's commit must be signed by a key these list.
    verify_signatures: bool = False
    allowed_signers: str | None = None
    gpg_keyring: str | None = None


def git_cache(state_dir: str | Path) -> str:
    """Where remote sources are cloned for the store in `state_dir`."""
    return str(Path(state_dir) / "cache" / "git")


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
