"""Files of the state directory: atomic replacement, and a file's identity for caches."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`; a reader sees the old file or the new one, never a mix.

    The temp file is `.<name>.tmp-*` beside it (so each file's leftovers can be
    swept on their own) and is made 0644: status readers may be other users.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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
