"""Opening a source: the Git repository at a ref, or a plain directory."""

from __future__ import annotations

from pathlib import Path

from fleetward.errors import SourceError
from fleetward.source.base import Snapshot, normalise_manifest_path
from fleetward.source.git import open_git
from fleetward.source.plain import DirectorySnapshot


def open_snapshot(
    source: str, ref: str = "HEAD", path: str = "manifests", no_git: bool = False
) -> Snapshot:
    """Open one revision of `source`: its Git repository at `ref`, or the plain directory."""
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
