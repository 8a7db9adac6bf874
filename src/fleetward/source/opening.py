"""Opening a source: a remote Git URL, the Git repository at a ref, or a plain directory."""

from __future__ import annotations

from pathlib import Path

from fleetward.errors import SourceError, UsageError
from fleetward.source.base import Snapshot, normalise_manifest_path
from fleetward.source.git import open_git
from fleetward.source.plain import DirectorySnapshot
from fleetward.source.remote import DEFAULT_GIT_TIMEOUT, RemoteMirror
from fleetward.source.urls import is_remote, redact_url, validate_remote_url


def open_snapshot(
    source: str,
    ref: str = "HEAD",
    path: str = "manifests",
    no_git: bool = False,
    *,
    cache_root: Path | None = None,
    git_timeout: float = DEFAULT_GIT_TIMEOUT,
) -> Snapshot:
    """Open one revision of `source`: a remote URL, its Git repository at `ref`, or the directory.

    A remote URL is fetched into a mirror under `cache_root` (the caller passes
    `<state-dir>/cache/git`) with `git_timeout` seconds per git command; `ref`
    HEAD then means the remote's default branch.
    """
    if is_remote(source):
        return _open_remote(source, ref, path, no_git, cache_root, git_timeout)
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
        snapshot = open_git(root, ref, path)
        if snapshot is not None:
            return snapshot
    if ref != "HEAD":
        raise SourceError.one(
            f"--ref {ref!r} given, but {source!r} is not read as a Git repository",
            "--no-git was given or the directory is not inside a Git repository, "
            "so there are no refs: the directory is read as it is on disk.",
            "Drop --ref, or point --source at a Git repository.",
            location=source,
        )
    return DirectorySnapshot(root, path)


def _open_remote(
    url: str, ref: str, path: str, no_git: bool, cache_root: Path | None, git_timeout: float
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
    snapshot = open_git(mirror.path, sha, path, display_ref=ref)
    if snapshot is None:  # the mirror was removed between sync and open
        raise SourceError.one(
            f"The mirror of {shown} disappeared",
            f"{mirror.path} was synced, then was no longer a Git repository when read.",
            "Retry; check that nothing else cleans the state directory's cache.",
            location=shown,
        )
    return snapshot
