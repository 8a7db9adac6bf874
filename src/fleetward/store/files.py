"""Files of the state directory: atomic replacement, its leftovers, a file's identity.

Every file fleetward writes under the state directory goes through
`write_atomic`, whose temp file `.<name>.tmp-<pid>-<random>` names the process
writing it. `sweep_leftovers` is the one place that removes the temp files of
writes a kill interrupted, in every directory fleetward writes to.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

# A temp file whose writer may be alive is left alone until it is this old (its
# PID was reused, or it comes from before temp files named their writer).
STALE_AFTER = 3600.0
# Directories under the state directory whose temp files are not write_atomic's:
# remote mirrors are cloned and swept by fleetward.source.remote.
_NOT_OURS = frozenset({"cache"})
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?:(?P<pid>[0-9]+)-)?")


def tmp_prefix(path: Path) -> str:
    """How `write_atomic` names the temp files of `path`: sweep these, and only these."""
    return f".{path.name}.tmp-"


def sweep_leftovers(root: Path, locked: Collection[str] = ()) -> list[Path]:
    """Remove the temp files of interrupted writes under `root`; the ones removed.

    A temp file is a leftover when the process its name records is gone (or
    it is older than STALE_AFTER): a concurrent writer's temp file, such as a
    CLI `apply` beside a running daemon, is never taken from under it.
    `locked` names files in `root` whose every writer holds a lock the caller
    holds now: their temp files are leftovers whoever wrote them.
    """
    removed: list[Path] = []
    now = time.time()
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        if here == root:
            subdirs[:] = [d for d in subdirs if d not in _NOT_OURS]
        for name in names:
            found = _TEMP_NAME.match(name)
            if found is None:
                continue
            path = here / name
            owned = here == root and found["name"] in locked
            if owned or _abandoned(path, found["pid"], now):
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue  # another sweep got there first
                except OSError as exc:
                    logger.warning("cannot remove the leftover temp file %s: %s", path, exc)
                    continue
                removed.append(path)
    return removed


def sweep_own(root: Path, name: str) -> list[Path]:
    """Remove the temp files of `root / name`, whose every writer holds the lock the
    caller holds now: what a write does, instead of walking the whole state directory
    (that walk is the daemon's, once, at start)."""
    removed = []
    for path in root.glob(f"{glob.escape(tmp_prefix(root / name))}*"):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot remove the leftover temp file %s: %s", path, exc)
            continue
        removed.append(path)
    return removed


def _abandoned(path: Path, pid: str | None, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER:
        return True
    return pid is not None and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (EPERM: it does, another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def write_atomic(
    path: Path,
    data: bytes | Callable[[], bytes],
    *,
    backup: Path | None = None,
    sync_dir: bool = False,
) -> FileId:
    """Replace `path` with `data`; a reader sees the old file or the new one, never a mix.

    The temp file is `.<name>.tmp-<pid>-*` beside it (so `sweep_leftovers` can
    tell a dead writer's from a live one's) and is made 0644: status readers may
    be other users.
    `data` may be a callable that makes the bytes once the temp file exists (the
    store encodes 100,000 objects there, as it always has). With `backup`, the
    replaced file is kept there (a hard link costs nothing); with `sync_dir`, the
    directory is fsynced so the rename itself is durable. Returns the new file's
    identity (a rename keeps all three parts).
    """

    def fill(fh: BinaryIO) -> None:
        fh.write(data() if callable(data) else data)

    return write_atomic_stream(path, fill, backup=backup, sync_dir=sync_dir)


def write_atomic_stream(
    path: Path,
    fill: Callable[[BinaryIO], object],
    *,
    backup: Path | None = None,
    sync_dir: bool = False,
) -> FileId:
    """`write_atomic` of what `fill` writes to the open temp file: a large document is
    written piece by piece, never held as one string."""
    mine = f"{tmp_prefix(path)}{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=mine, dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
            written = identity(os.fstat(fh.fileno()))
        if backup is not None and path.exists():
            backup_tmp = path.parent / f"{mine}backup"
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
