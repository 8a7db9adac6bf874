"""The Source interface: one revision of a manifest tree, as files with blob ids.

A `Snapshot` lists the YAML files under the manifest path and reads their
bytes; the loader never knows whether they came from Git or a directory.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from fleetward.errors import Problem, SourceError
from fleetward.model import BlobId, Revision

YAML_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".csv",)  # data files a manifest may name (StreamSet spec.csv)
MAX_FILE_BYTES = 6 * 1024 * 1024  # the bulk-task API's limit (DESIGN §2)
MAX_SYMLINK_HOPS = 8


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: str  # POSIX path relative to the repository (or directory) root
    blob_id: BlobId
    size: int


class Snapshot(Protocol):
    """One revision of a source; closed when the reconcile is done with it."""

    revision: Revision
    files: tuple[ManifestFile, ...]
    # Problems found while listing (e.g. a symlink out of the repository); the
    # loader reports them with the revision's other errors.
    problems: tuple[Problem, ...]

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        """Yield the bytes of each file, in the order given."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Snapshot: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def read_after_close(path: str) -> SourceError:
    """The error for reading `path` from a snapshot that was already closed.

    A closed snapshot starts no git process again (nothing would ever close it):
    whoever still needs a file's bytes after the close must keep them before it.
    """
    return SourceError.one(
        f"{path!r} was read after its source was closed",
        "fleetward closes a revision's source once the revision is loaded, and this file "
        "was not kept for reading later.",
        "Report this as a fleetward bug; run the command again to read the revision afresh.",
        location=path,
    )


class SnapshotBase:
    """Context-manager plumbing shared by the snapshot implementations."""

    problems: tuple[Problem, ...] = ()

    def close(self) -> None:
        """Release what the snapshot holds (processes, buffers)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def git_blob_id(content: bytes) -> BlobId:
    """The id `git hash-object` gives these bytes."""
    header = b"blob %d\0" % len(content)
    return BlobId(hashlib.sha1(header + content, usedforsecurity=False).hexdigest())


def is_manifest_name(path: str) -> bool:
    return path.endswith(YAML_SUFFIXES)


def is_listed_name(path: str) -> bool:
    """Files a snapshot lists: manifests, and the data files manifests may read (a
    StreamSet's CSV). The loader parses only manifests; data files are read on demand."""
    return path.endswith(YAML_SUFFIXES) or path.endswith(DATA_SUFFIXES)


def resolve_link(link_path: str, target: str) -> str | None:
    """The repository-relative path a symlink points at, or None if it leaves the repository."""
    if posixpath.isabs(target):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def normalise_manifest_path(path: str) -> str:
    """--path as a clean POSIX path relative to the source ('.' for the source itself).

    An absolute path, or one that climbs out of the source with '..', is refused:
    manifests are read only from inside the source.
    """
    if posixpath.isabs(path):
        raise SourceError.one(
            f"Manifest path {path!r} is absolute",
            "--path is read relative to --source, so it cannot name a place elsewhere "
            "on the machine.",
            "Give the manifest directory relative to the source, e.g. --path manifests; "
            "point --source at the repository that holds it.",
            location=path,
        )
    clean = posixpath.normpath(path) if path else "."
    if clean == ".." or clean.startswith("../"):
        raise SourceError.one(
            f"Manifest path {path!r} leaves the source",
            f"It resolves to {clean!r}, which is outside the --source directory; "
            "fleetward reads manifests only from inside the source.",
            "Point --source at the repository that holds the manifests and give --path "
            "relative to it.",
            location=path,
        )
    return clean


def not_a_manifest_file(path: str, location: str) -> SourceError:
    """--path names one file, and it is not a .yaml/.yml file."""
    return SourceError.one(
        f"Manifest path {path!r} is not a YAML file",
        "--path names a single file, and manifests are .yaml or .yml files; "
        "any other file would silently contribute nothing.",
        "Give the manifest directory (e.g. --path manifests) or one .yaml/.yml file.",
        location=location,
    )


# The `why` of the SourceError for a revision the source does not have (a commit a
# force-push or a garbage collection removed): a rollback names it as such.
UNKNOWN_REVISION = "unknown-revision"


def unknown_revision(exc: SourceError) -> bool:
    """Whether `exc` says the revision asked for does not exist in the source."""
    return any(p.parameters.get("why") == UNKNOWN_REVISION for p in exc.problems)


class Source(Protocol):
    """Where revisions come from: each `open` resolves the tracked revision and opens it.

    The CLI's and daemon's are their source options (a remote URL, a Git repository
    at a ref, a plain directory); tests use `MemorySource`."""

    def open(self) -> Snapshot:
        """The tracked revision as it is now, opened (a remote is fetched first)."""
        ...

    def at(self, revision: str) -> Source:
        """This source reading commit `revision` instead of the tracked ref: what a
        rollback and a pinned run read. Its `open` raises a SourceError for which
        `unknown_revision` holds when the source does not have that commit."""
        ...
