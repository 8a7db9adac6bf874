"""Opening a source: a remote Git URL, the Git repository at a ref, or a plain directory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from fleetward.errors import CorruptObject, Problem, SourceError, UsageError
from fleetward.source.base import (
    ManifestFile,
    Snapshot,
    SnapshotBase,
    is_manifest_name,
    normalise_manifest_path,
    read_after_close,
)
from fleetward.source.git import GitSnapshot, open_git, uncommitted_changes
from fleetward.source.plain import DirectorySnapshot
from fleetward.source.remote import DEFAULT_GIT_TIMEOUT, RemoteMirror
from fleetward.source.signatures import SignaturePolicy, not_verifiable
from fleetward.source.urls import is_remote, redact_url, validate_remote_url

logger = logging.getLogger(__name__)
T = TypeVar("T")
_STILL_DAMAGED = (
    "fleetward cloned its mirror again in this run, and the object is unreadable in the "
    "new clone too: the disk under the state directory may be failing"
)


def open_snapshot(
    source: str,
    ref: str = "HEAD",
    path: str = "manifests",
    no_git: bool = False,
    *,
    cache_root: Path | None = None,
    git_timeout: float = DEFAULT_GIT_TIMEOUT,
    signatures: SignaturePolicy | None = None,
) -> Snapshot:
    """Open one revision of `source`: a remote URL, its Git repository at `ref`, or the directory.

    A remote URL is fetched into a mirror under `cache_root` (the caller passes
    `<state-dir>/cache/git`) with `git_timeout` seconds per git command; `ref`
    HEAD then means the remote's default branch. With `signatures`, the commit must
    be signed by a key it trusts (`UnverifiedRevision` otherwise), and a plain
    directory is refused.
    """
    if is_remote(source):
        return _open_remote(source, ref, path, no_git, cache_root, git_timeout, signatures)
    root = Path(source)
    if not root.exists():
        raise SourceError.one(
            f"Source {source!r} does not exist",
            f"There is no directory at {root.absolute()}.",
            "Pass --source with the path of your manifest repository (default: the current directory).",
            location=source,
        )
    if not root.is_dir():
        raise SourceError.one(
            f"Source {source!r} is not a directory",
            "--source names a Git repository or a plain directory of manifests.",
            "Pass the repository's directory; use --path to pick the manifest folder inside it.",
            location=source,
        )
    path = normalise_manifest_path(path)
    if not no_git:
        snapshot = open_git(root, ref, path, signatures=signatures)
        if snapshot is not None:
            return snapshot
    if signatures is not None:
        raise not_verifiable(
            "--no-git reads the directory as it is on disk"
            if no_git
            else f"{source!r} is not inside a Git repository"
        )
    if ref != "HEAD":
        raise SourceError.one(
            f"--ref {ref!r} given, but {source!r} is not read as a Git repository",
            "--no-git was given or the directory is not inside a Git repository, "
            "so there are no refs: the directory is read as it is on disk.",
            "Drop --ref, or point --source at a Git repository.",
            location=source,
        )
    return DirectorySnapshot(root, path)


def uncommitted_note(source: str, ref: str, path: str, no_git: bool) -> str | None:
    """One line for a person at a terminal when files under `path` have uncommitted
    changes: fleetward ignores them by design (it reads a commit), and says so."""
    if no_git or is_remote(source):
        return None
    try:
        path = normalise_manifest_path(path)
    except SourceError:
        return None  # reported as an error when the source is opened
    count = uncommitted_changes(Path(source), path)
    if not count:
        return None
    changes = "1 uncommitted change" if count == 1 else f"{count} uncommitted changes"
    under = "the source" if path == "." else f"{path}/" if not is_manifest_name(path) else path
    return (
        f"note: {changes} under {under} {'is' if count == 1 else 'are'} ignored (fleetward "
        f"reads committed {ref}); use --no-git to read the work tree"
    )


def _open_remote(
    url: str,
    ref: str,
    path: str,
    no_git: bool,
    cache_root: Path | None,
    git_timeout: float,
    signatures: SignaturePolicy | None,
) -> Snapshot:
    """Sync the mirror of `url` to `ref`, then read the mirror at the commit it resolved to."""
    validate_remote_url(url)  # before anything else, so a hostile URL is refused as such
    shown = redact_url(url)
    if no_git:
        raise UsageError.one(
            "--no-git cannot read a remote source",
            f"{shown} is a Git URL; --no-git reads a local directory as it is on disk.",
            "Drop --no-git, or point --source at a local directory.",
            location=shown,
        )
    if cache_root is None:
        raise UsageError.one(
            "This command cannot read a remote source",
            f"{shown} is cloned into the state directory's cache, and this command has no "
            "state directory.",
            "Use a command that takes --state-dir (plan, apply, daemon), or clone the "
            "repository and pass its directory as --source.",
            location=shown,
        )
    path = normalise_manifest_path(path)
    mirror = RemoteMirror(url, cache_root, timeout=git_timeout)
    sha = mirror.sync(ref)
    return MirrorSnapshot(mirror, ref, sha, path, signatures)


class MirrorSnapshot(SnapshotBase):
    """A remote's mirror read at the commit it was synced to, repaired if found damaged.

    The mirror is fleetward's own copy, so a damaged object in it (a truncated
    file after a crash, a bad disk block) is fleetward's to fix: the mirror is
    cloned afresh, once, and the read goes on from the new clone at the same
    commit (same commit, same files and blob ids). If that does not help, the
    error says what was tried.
    """

    def __init__(
        self,
        mirror: RemoteMirror,
        ref: str,
        sha: str,
        path: str,
        signatures: SignaturePolicy | None = None,
    ) -> None:
        self._mirror = mirror
        self._signatures = signatures  # checked each time the mirror is opened
        self._ref = ref
        self._sha = sha
        self._path = path
        self._recloned = False
        self._closed = False
        self._inner: GitSnapshot | None = None
        inner = self._repairing(self._open)
        self.revision = inner.revision
        self.files = inner.files
        self.problems = inner.problems

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        """Yield each file's bytes. The first damaged one clones the mirror again and is
        read from the new clone; files still unreadable then are reported together, once
        the readable ones were yielded (as `GitSnapshot.read` does)."""
        damaged: list[Problem] = []
        for f in files:
            try:
                content = self._read_one(f)
            except CorruptObject as exc:
                if self._recloned:
                    damaged.extend(exc.problems)
                    continue
                self._reclone(exc)
                self._repairing(self._open)  # once: every later read uses the new clone
                try:
                    content = self._read_one(f)
                except CorruptObject as again:
                    damaged.extend(again.problems)
                    continue
            yield f, content
        if damaged:
            raise self._in_mirror(CorruptObject(*damaged), _STILL_DAMAGED) from None

    def close(self) -> None:
        """Close the mirror's snapshot for good: a later read is an error, never a new
        `Repo` or git process that nothing would close."""
        self._closed = True
        self._drop_inner()

    def _drop_inner(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None

    def _open(self) -> GitSnapshot:
        self._drop_inner()
        snapshot = open_git(
            self._mirror.path,
            self._sha,
            self._path,
            display_ref=self._ref,
            signatures=self._signatures,
        )
        if snapshot is None:  # the mirror was removed between sync and open
            shown = self._mirror.shown_url
            raise SourceError.one(
                f"The mirror of {shown} disappeared",
                f"{self._mirror.path} was synced, then was no longer a Git repository when read.",
                "Retry; check that nothing else cleans the state directory's cache.",
                location=shown,
            )
        self._inner = snapshot
        return snapshot

    def _read_one(self, f: ManifestFile) -> bytes:
        if self._closed:
            raise read_after_close(f.path)
        # None only after a failed reclone: the old mirror is still in place.
        inner = self._inner if self._inner is not None else self._open()
        return next(iter(inner.read([f])))[1]

    def _repairing(self, action: Callable[[], T]) -> T:
        """`action`, run again on a fresh clone of the mirror if it met a damaged object."""
        try:
            return action()
        except CorruptObject as damaged:
            if self._recloned:
                raise self._in_mirror(damaged, _STILL_DAMAGED) from None
            self._reclone(damaged)
            return self._repairing(action)

    def _reclone(self, damaged: CorruptObject) -> None:
        """Clone the mirror afresh because of `damaged` (once per snapshot); raises the
        damage as a mirror's, with why, if the clone fails."""
        self._recloned = True
        first = damaged.problems[0]
        sha = first.parameters.get("object")
        logger.warning(
            "The mirror of %s holds a damaged object (%s); cloning it again",
            self._mirror.shown_url,
            f"{first.location}, object {sha}" if sha else first.location,
        )
        self._drop_inner()
        try:
            self._mirror.reclone(self._ref, self._sha)
        except SourceError as failed:
            said = failed.problems[0]
            raise self._in_mirror(
                damaged,
                f"fleetward tried to clone its mirror again, and that failed ({said.error}: "
                f"{said.reason}); it tries again on the next run",
            ) from None

    def _in_mirror(self, damaged: CorruptObject, what_was_done: str) -> CorruptObject:
        """`damaged`'s problems as a mirror's: what fleetward did, and what is left to do."""
        shown = self._mirror.shown_url
        return CorruptObject(
            *(
                Problem(
                    f"{p.error} in the mirror of {shown}",
                    f"{p.reason} {what_was_done}.",
                    "fleetward clones the mirror again whenever it finds an object in it "
                    f"damaged. Check that {shown} answers (git ls-remote) and that the disk "
                    f"under {self._mirror.path.parent} is sound (git fsck in {self._mirror.path}).",
                    p.location,
                    p.parameters,
                )
                for p in damaged.problems
            )
        )
