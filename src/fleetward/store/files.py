"""Files of the state directory: atomic replacement, and a file's identity for caches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def tmp_prefix(path: Path) -> str:
    """How `write_atomic` names the temp files of `path`: sweep these, and only these."""
    return f".{path.name}.tmp-"


def write_atomic(
    path: Path,
    data: bytes | Callable[[], bytes],
    *,
    backup: Path | None = None,
    sync_dir: bool = False,
) -> FileId:
    """Replace `path` with `data`; a reader sees the old file or the new one, never a mix.

    The temp file is `.<name>.tmp-*` beside it (so each file's leftovers can be
    swept on their own) and is made 0644: status readers may be other users.
    `data` may be a callable that makes the bytes once the temp file exists (the
    store encodes 100,000 objects there, as it always has). With `backup`, the
    replaced file is kept there (a hard link costs nothing); with `sync_dir`, the
    directory is fsynced so the rename itself is durable. Returns the new file's
    identity (a rename keeps all three parts).
    """
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data() if callable(data) else data)
            fh.flush()
            os.fsync(fh.fileno())
            written = identity(os.fstat(fh.fileno()))
        if backup is not None and path.exists():
            backup_tmp = path.parent / f"{tmp_prefix(path)}backup"
            backup_tmp.unlink(missing_ok=True)
            os.link(path, backup_tmp)
            os.replace(backup_tmp, backup)
        os.replace(tmp, path)
        if sync_dir:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return written
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# (inode, mtime ns, size): a file as one process read or wrote it. Every atomic
# write makes a new inode and a hand edit moves the mtime, so a cache keyed by it
# is never used for another file.
FileId = tuple[int, int, int]


def identity(st: os.stat_result) -> FileId:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def file_id(path: Path) -> FileId | None:
    """The identity of the file now at `path`; None if there is none."""
    try:
        return identity(os.stat(path))
    except OSError:
        return None
