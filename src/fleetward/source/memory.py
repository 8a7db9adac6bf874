"""A source held in memory: commits of files, each a revision — the double for engine tests.

It keeps the Source contract the Git sources keep: a revision is a commit id,
files are listed under the manifest path with Git blob ids, and a commit
replaces the whole tree, so a file left out of a commit is deleted by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping

from fleetward.errors import SourceError
from fleetward.model import Revision
from fleetward.source.base import (
    UNKNOWN_REVISION,
    ManifestFile,
    SnapshotBase,
    git_blob_id,
    is_listed_name,
    normalise_manifest_path,
    read_after_close,
)

__all__ = ["MemoryRevision", "MemorySnapshot", "MemorySource"]


class MemorySnapshot(SnapshotBase):
    """One commit's files under the manifest path, read from memory."""

    def __init__(self, revision: Revision, files: Mapping[str, bytes], path: str) -> None:
        self.revision = revision
        prefix = "" if path == "." else path.rstrip("/") + "/"
        self._content = {
            name: content
            for name, content in files.items()
            if (name.startswith(prefix) or name == path) and is_listed_name(name)
        }
        self.files = tuple(
            ManifestFile(name, git_blob_id(content), len(content))
            for name, content in sorted(self._content.items())
        )
        self._closed = False

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        for f in files:
            if self._closed:
                raise read_after_close(f.path)
            yield f, self._content[f.path]

    def close(self) -> None:
        self._closed = True


class MemorySource:
    """Commits of {path: content}, newest last; `open` serves the newest under `path`."""

    def __init__(self, path: str = "manifests", ref: str = "main") -> None:
        self.path = normalise_manifest_path(path)
        self.ref = ref
        self.commits: list[tuple[Revision, dict[str, bytes]]] = []
        self.opened = 0  # how many times a revision was opened (fetches)

    def commit(self, files: Mapping[str, str | bytes]) -> Revision:
        """Record a commit whose tree is exactly `files` (paths from the repository root)."""
        tree = {
            name: content.encode() if isinstance(content, str) else bytes(content)
            for name, content in files.items()
        }
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(self.commits[-1][0].id.encode() if self.commits else b"root")
        for name, content in sorted(tree.items()):
            digest.update(f"{name}\0{git_blob_id(content)}\n".encode())
        revision = Revision(digest.hexdigest(), "git", self.ref)
        self.commits.append((revision, tree))
        return revision

    def open(self) -> MemorySnapshot:
        if not self.commits:
            raise SourceError.one(
                f"The in-memory source has no commit on {self.ref}",
                "A revision is read from the newest commit, and none was made.",
                "Commit files first (MemorySource.commit).",
                location=self.ref,
            )
        self.opened += 1
        revision, tree = self.commits[-1]
        return MemorySnapshot(revision, tree, self.path)

    def open_at(self, revision: str) -> MemorySnapshot | None:
        """An earlier commit by its id, as a Git source opens one; None if there is none."""
        for made, tree in self.commits:
            if made.id == revision:
                return MemorySnapshot(made, tree, self.path)
        return None

    def at(self, revision: str) -> MemoryRevision:
        return MemoryRevision(self, revision)


class MemoryRevision:
    """One commit of a `MemorySource`, named by its id: the source a rollback reads."""

    def __init__(self, source: MemorySource, revision: str) -> None:
        self.source = source
        self.revision = revision

    def open(self) -> MemorySnapshot:
        for revision, tree in self.source.commits:
            if revision.id == self.revision:
                self.source.opened += 1
                return MemorySnapshot(revision, tree, self.source.path)
        raise SourceError.one(
            f"Ref {self.revision!r} does not exist in the in-memory source",
            "It names none of the source's commits.",
            "Name a commit MemorySource.commit returned.",
            location=self.revision,
            why=UNKNOWN_REVISION,
        )

    def at(self, revision: str) -> MemoryRevision:
        return MemoryRevision(self.source, revision)
