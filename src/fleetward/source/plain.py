"""A plain directory read as a source (development only).

Blob ids are computed like `git hash-object`; the revision is a digest of
every (path, blob id) pair, so an unchanged tree keeps its revision.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from fleetward.errors import Problem, SourceError
from fleetward.model import BlobId, Revision
from fleetward.source.base import (
    MAX_FILE_BYTES,
    ManifestFile,
    SnapshotBase,
    git_blob_id,
    is_manifest_name,
)


class DirectorySnapshot(SnapshotBase):
    def __init__(self, root: Path, manifest_path: str) -> None:
        self._root = root.resolve()
        base = (self._root / manifest_path).resolve() if manifest_path else self._root
        if not base.exists():
            raise SourceError.one(
                f"Manifest path {manifest_path!r} does not exist in {root}",
                f"There is no file or directory at {base}.",
                "Check --path (default 'manifests') and --source.",
                location=str(base),
            )
        self._content: dict[str, bytes] = {}
        problems: list[Problem] = []
        files: list[ManifestFile] = []
        for path in self._walk(base, problems):
            rel = (
                path.relative_to(self._root).as_posix()
                if path.is_relative_to(self._root)
                else str(path)
            )
            real = path.resolve()
            if not real.is_relative_to(self._root):
                problems.append(
                    Problem(
                        f"Symlink {rel!r} points outside the repository",
                        f"It resolves to {real}. fleetward reads only files inside the source "
                        "directory, so a manifest cannot pull in content from elsewhere.",
                        "Replace the symlink with the file itself, or point it inside the directory.",
                        location=rel,
                    )
                )
                continue
            size = real.stat().st_size
            if size > MAX_FILE_BYTES:
                # Too large to load anyway: the loader reports it by size alone.
                files.append(ManifestFile(rel, _stream_blob_id(real, size), size))
                continue
            content = real.read_bytes()
            self._content[rel] = content
            files.append(ManifestFile(rel, git_blob_id(content), len(content)))
        # Reported by load() together with every other error of the revision.
        self.problems = tuple(problems)
        files.sort(key=lambda f: f.path)
        self.files = tuple(files)
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.path}\0{f.blob_id}\n".encode())
        self.revision = Revision(id=f"sha256:{digest.hexdigest()}", kind="dir")

    def _walk(self, base: Path, problems: list[Problem]) -> Iterator[Path]:
        if base.is_file():
            yield base
            return
        seen: set[Path] = set()
        stack = [base]
        while stack:
            directory = stack.pop()
            real = directory.resolve()
            if real in seen:
                continue  # a directory symlink loop
            seen.add(real)
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                path = Path(entry.path)
                if entry.name == ".git":
                    continue
                if entry.is_dir(follow_symlinks=True):
                    if entry.is_symlink() and not path.resolve().is_relative_to(self._root):
                        rel = path.relative_to(self._root).as_posix()
                        problems.append(
                            Problem(
                                f"Symlink {rel!r} points outside the repository",
                                f"It resolves to {path.resolve()}.",
                                "Replace the symlink with the directory itself.",
                                location=rel,
                            )
                        )
                        continue
                    stack.append(path)
                elif is_manifest_name(entry.name):
                    yield path

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        for f in files:
            yield f, self._content[f.path]

    def close(self) -> None:
        self._content.clear()


def _stream_blob_id(path: Path, size: int) -> BlobId:
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return BlobId(digest.hexdigest())
