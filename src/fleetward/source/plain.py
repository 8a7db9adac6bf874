"""A plain directory read as a source (development only).

Blob ids are computed like `git hash-object`; the revision is a digest of
every (path, blob id) pair, so an unchanged tree keeps its revision.

Only regular files are manifests: a `.yaml` name on a FIFO, socket or device
is reported (never opened for a blocking read), as is a broken or looping
symlink or a file that cannot be read. Each such problem is located at the
file and reported with the revision's other errors.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from fleetward.errors import Problem, SourceError, os_problem
from fleetward.model import BlobId, Revision
from fleetward.source.base import (
    MAX_FILE_BYTES,
    ManifestFile,
    SnapshotBase,
    git_blob_id,
    is_listed_name,
    is_manifest_name,
    not_a_manifest_file,
    read_after_close,
)

_CHUNK = 1 << 20


class DirectorySnapshot(SnapshotBase):
    def __init__(self, root: Path, manifest_path: str) -> None:
        self._root = root.resolve()
        lexical = self._root / manifest_path if manifest_path else self._root
        base = _real(lexical)
        if base is None or not base.exists():
            raise SourceError.one(
                f"Manifest path {manifest_path!r} does not exist in {root}",
                f"There is no file or directory at {lexical}.",
                "Check --path (default 'manifests') and --source.",
                location=str(lexical),
            )
        if not base.is_relative_to(self._root):
            raise SourceError.one(
                f"Manifest path {manifest_path!r} leads outside the source",
                f"It resolves to {base} (through a symlink), which is not inside {self._root}; "
                "fleetward reads manifests only from inside the source directory.",
                "Point --source at the directory that holds the manifests, or replace the "
                "symlink with the directory itself.",
                location=manifest_path,
            )
        if not base.is_dir() and not is_manifest_name(posixpath.basename(manifest_path)):
            raise not_a_manifest_file(manifest_path, manifest_path)
        self._content: dict[str, bytes] = {}
        self._closed = False
        problems: list[Problem] = []
        files: list[ManifestFile] = []
        for path in self._walk(base, problems):
            rel = path.relative_to(self._root).as_posix()
            manifest = self._read_file(path, rel, problems)
            if manifest is not None:
                files.append(manifest)
        # Reported by load() together with every other error of the revision.
        self.problems = tuple(problems)
        files.sort(key=lambda f: f.path)
        self.files = tuple(files)
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.path}\0{f.blob_id}\n".encode())
        self.revision = Revision(id=f"sha256:{digest.hexdigest()}", kind="dir")

    def _read_file(self, path: Path, rel: str, problems: list[Problem]) -> ManifestFile | None:
        """The manifest at `path`, or None with a problem appended."""
        link = path.is_symlink()
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            problems.append(
                _file_problem(
                    rel,
                    f"Symlink {rel!r} points at nothing",
                    f"It points at {_link_text(path)!r}, and no such file exists.",
                    "Remove the symlink, or point it at a manifest file inside the directory.",
                )
                if link
                else _file_problem(
                    rel,
                    f"Manifest file {rel!r} disappeared while it was read",
                    "It was removed or renamed while fleetward listed the directory.",
                    "Run the command again once the directory has stopped changing.",
                )
            )
            return None
        except RuntimeError:  # Python < 3.13 reports a symlink loop so
            problems.append(_loop_problem(rel))
            return None
        except OSError as exc:
            problems.append(
                _loop_problem(rel) if exc.errno == errno.ELOOP else _unreadable(rel, exc, link)
            )
            return None
        if not real.is_relative_to(self._root):
            problems.append(_outside_problem(rel, real))
            return None
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells
            # what was opened, so a file swapped after the check is caught too.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            problems.append(_unreadable(rel, exc, link))
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                problems.append(
                    _file_problem(
                        rel,
                        f"Manifest file {rel!r} is not a regular file",
                        f"It is {_describe_mode(info.st_mode)}; only regular files are "
                        "manifests, and reading anything else could block or never end.",
                        "Remove it, or rename it so its name does not end in .yaml or .yml.",
                    )
                )
                return None
            if info.st_size > MAX_FILE_BYTES:
                # Too large to load anyway: the loader reports it by size alone.
                blob_id, size = _stream_blob_id(fd)
                return ManifestFile(rel, blob_id, size)
            content = _read_all(fd)
        except OSError as exc:
            problems.append(_unreadable(rel, exc, link))
            return None
        finally:
            os.close(fd)
        self._content[rel] = content
        return ManifestFile(rel, git_blob_id(content), len(content))

    def _walk(self, base: Path, problems: list[Problem]) -> Iterator[Path]:
        if not base.is_dir():
            yield base
            return
        seen: set[Path] = set()
        stack = [base]
        while stack:
            directory = stack.pop()
            real = _real(directory)
            if real is None or real in seen:
                continue  # a directory symlink loop
            seen.add(real)
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                rel = directory.relative_to(self._root).as_posix()
                problems.append(_unreadable(rel, exc, directory.is_symlink(), "Directory"))
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.name == ".git":
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:  # a symlink loop, or no permission: reported as the file's
                    yield path
                    continue
                if is_dir:
                    target = _real(path)
                    if entry.is_symlink() and (
                        target is None or not target.is_relative_to(self._root)
                    ):
                        rel = path.relative_to(self._root).as_posix()
                        problems.append(
                            Problem(
                                f"Symlink {rel!r} points outside the repository",
                                f"It resolves to {target}.",
                                "Replace the symlink with the directory itself.",
                                location=rel,
                            )
                        )
                        continue
                    stack.append(path)
                elif is_listed_name(entry.name):
                    yield path

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        for f in files:
            if self._closed:  # its bytes were dropped with the close
                raise read_after_close(f.path)
            yield f, self._content[f.path]

    def close(self) -> None:
        self._closed = True
        self._content.clear()


def _real(path: Path) -> Path | None:
    """`path` with every symlink resolved, or None if that fails (a loop, no permission)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def _stream_blob_id(fd: int) -> tuple[BlobId, int]:
    """The blob id and size of a file too large to keep in memory (read twice, in chunks)."""
    size = 0
    while chunk := os.read(fd, _CHUNK):
        size += len(chunk)
    os.lseek(fd, 0, os.SEEK_SET)
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return BlobId(digest.hexdigest()), size


def _describe_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _file_problem(rel: str, error: str, reason: str, resolution: str) -> Problem:
    return Problem(error, reason, resolution, location=rel)


def _link_text(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _loop_problem(rel: str) -> Problem:
    return Problem(
        f"Symlink {rel!r} is part of a symlink loop",
        "Following it leads back to itself, so it names no file.",
        "Replace the symlink with the file itself, or point it at a manifest file.",
        location=rel,
    )


def _unreadable(rel: str, exc: OSError, link: bool, noun: str = "Manifest file") -> Problem:
    if noun == "Manifest file" and link:
        noun = "Symlink"
    return os_problem(
        exc,
        f"{noun} {rel!r} cannot be read",
        "Make it readable by the user running fleetward, or remove it from the source.",
        rel,
    )


def _outside_problem(rel: str, real: Path) -> Problem:
    return Problem(
        f"Symlink {rel!r} points outside the repository",
        f"It resolves to {real}. fleetward reads only files inside the source "
        "directory, so a manifest cannot pull in content from elsewhere.",
        "Replace the symlink with the file itself, or point it inside the directory.",
        location=rel,
    )
