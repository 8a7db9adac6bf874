"""A directory of pickled values, one file per key, that never fails its reader.

The persistent layer under the loader's `DocumentCache`: the CLI and the daemon
share it, so a CLI run after a one-file commit parses one file. Every entry is
written by fleetward into a directory only its user can write, and read back
only if all of these hold, else it is a miss (the cold path), never an error:

* the file is a regular file owned by this user, of a bounded size;
* its header has our magic, the reader's *fingerprint* (fleetward's code and
  its libraries: an entry written by another version is foreign), its own key,
  and the length and BLAKE2b digest of the payload (a truncated or damaged
  file fails here, before a byte of it is unpickled);
* the payload unpickles with globals from an allow-list of modules only.

Writers write a temporary file in the entry's directory and `os.replace` it:
concurrent CLI runs and a daemon see an old entry, a new one, or none — never
part of one — with no lock. Nothing is fsynced: a crash may leave a damaged
entry, which the digest rejects. The directory is bounded (`max_bytes`) and
pruned by least-recent use (files are touched when read, at most hourly).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import re
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MAGIC = b"FWCACHE1"
_DIGEST_SIZE = 32
# magic, fingerprint, key length, payload length, payload digest; then the key, the payload.
_HEADER = struct.Struct(f">8s{_DIGEST_SIZE}sHQ{_DIGEST_SIZE}s")
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024 * 1024  # a manifest file is at most 5 MiB; its entry far less
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_TOUCH_AFTER = 3600.0  # seconds: how stale an entry's mtime may get before a read renews it
_STALE_TEMP = 3600.0  # seconds: a temporary file this old belongs to a writer that died
_PRUNE_TO = 0.8  # of max_bytes, so a full cache is not pruned on every write


@dataclass
class DiskStats:
    """What one process did with the cache (tests count these, never time)."""

    hits: int = 0
    misses: int = 0  # no entry
    rejected: int = 0  # an entry that failed a check: foreign, damaged, not ours
    writes: int = 0
    pruned: int = 0


class DiskCache:
    """Values by key under `root/<fingerprint>/`; see the module docstring for the checks."""

    def __init__(
        self,
        root: Path,
        fingerprint: bytes,
        allowed: Allowed,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if len(fingerprint) != _DIGEST_SIZE:
            raise ValueError(f"a fingerprint is {_DIGEST_SIZE} bytes")
        self.root = root
        self.fingerprint = fingerprint
        self.directory = root / fingerprint.hex()[:16]
        self.max_bytes = max_bytes
        self.stats = DiskStats()
        self._allowed = allowed
        self._uid = os.geteuid()

    @classmethod
    def open(
        cls,
        root: Path,
        fingerprint: bytes,
        allowed: Allowed,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> DiskCache | None:
        """The cache under `root`, made if missing; None (with a warning) if it cannot be
        used safely: a directory another user owns or others may write is never read."""
        cache = cls(root, fingerprint, allowed, max_bytes)
        try:
            for directory in (root, cache.directory):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                cache._check_private(directory)
        except (OSError, _NotPrivate) as exc:
            logger.warning("document cache %s not used: %s", root, exc)
            return None
        return cache

    def _check_private(self, directory: Path) -> None:
        info = os.stat(directory, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise _NotPrivate(f"{directory} is not a directory")
        if info.st_uid != self._uid:
            raise _NotPrivate(f"{directory} belongs to another user (uid {info.st_uid})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _NotPrivate(f"{directory} is writable by other users")

    # -- entries ---------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.directory / key[-2:] / key

    def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None: missing, foreign, damaged or not ours."""
        path = self._path(key)
        try:
            payload = self._read_checked(path, key)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, _Rejected) as exc:
            self._reject(path, exc)
            return None
        try:
            value = _Unpickler(io.BytesIO(payload), self._allowed).load()
        except Exception as exc:  # noqa: BLE001 - a bad entry is a miss, whatever it raises
            self._reject(path, exc)
            return None
        self.stats.hits += 1
        return value

    def _read_checked(self, path: Path, key: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != self._uid:
                raise _Rejected("not a regular file of ours")
            if info.st_size > MAX_ENTRY_BYTES:
                raise _Rejected(f"{info.st_size} bytes")
            data = fh.read()
        if time.time() - info.st_mtime > _TOUCH_AFTER:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: last to be pruned
        return _verified_payload(data, self.fingerprint, key)

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key` (atomically replacing any entry); failures are logged
        and forgotten: the cache only ever saves work."""
        path = self._path(key)
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable value is simply not cached
            logger.debug("document cache: %s not stored: %s", key, exc)
            return
        encoded = key.encode("ascii")
        header = _HEADER.pack(
            MAGIC,
            self.fingerprint,
            len(encoded),
            len(payload),
            hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest(),
        )
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            temp = path.parent / f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(header)
                    fh.write(encoded)
                    fh.write(payload)
                os.replace(temp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
        except OSError as exc:
            logger.warning("document cache: could not write %s: %s", path, exc)
            return
        self.stats.writes += 1

    def _reject(self, path: Path, why: object) -> None:
        self.stats.rejected += 1
        logger.debug("document cache: ignored %s (%s)", path, why)

    # -- size ------------------------------------------------------------------------

    def prune(self) -> None:
        """Keep the whole root (every fingerprint's entries) under `max_bytes`: remove the
        least recently used entries, and temporary files their writers left behind."""
        now = time.time()
        entries: list[tuple[float, int, str]] = []
        total = 0
        for path, info in _walk_files(self.root):
            if path.rpartition(os.sep)[2].endswith(".tmp"):
                if now - info.st_mtime > _STALE_TEMP:
                    self._remove(path)
                continue
            entries.append((info.st_mtime, info.st_size, path))
            total += info.st_size
        if total <= self.max_bytes:
            return
        entries.sort()
        for _, size, path in entries:
            if total <= self.max_bytes * _PRUNE_TO:
                break
            if self._remove(path):
                total -= size

    def _remove(self, path: str) -> bool:
        try:
            os.unlink(path)
        except OSError:
            return False
        self.stats.pruned += 1
        return True


def _walk_files(root: Path) -> Iterable[tuple[str, os.stat_result]]:
    """(path, stat) of every regular file under `root`, links not followed."""
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            yield entry.path, entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
        except OSError:
            continue


def _verified_payload(data: bytes, fingerprint: bytes, key: str) -> bytes:
    if len(data) < _HEADER.size:
        raise _Rejected("shorter than a header")
    magic, found, key_length, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _Rejected("not a cache entry")
    if found != fingerprint:
        raise _Rejected("written by another version")
    start = _HEADER.size + key_length
    if data[_HEADER.size : start] != key.encode("ascii"):
        raise _Rejected("another key's entry")
    payload = data[start:]
    if len(payload) != length:
        raise _Rejected(f"{len(payload)} bytes of payload, header says {length}")
    if hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() != digest:
        raise _Rejected("payload digest differs")
    return payload


# Whether an entry may name this class (module, name, the class itself).
Allowed = Callable[[str, str, type], bool]


class _Unpickler(pickle.Unpickler):
    """Resolves only classes the cache's owner allows: even an entry that passed every
    check cannot name `os.system` or any other function (defence in depth behind the
    digest and the directory's ownership)."""

    def __init__(self, file: io.BytesIO, allowed: Allowed) -> None:
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        # Only modules already imported: an entry never makes this process import one.
        loaded = sys.modules.get(module)
        found = getattr(loaded, name, None) if loaded is not None and "." not in name else None
        if isinstance(found, type) and self._allowed(module, name, found):
            return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a cache entry")


class _Rejected(Exception):
    """An entry that fails a check."""


class _NotPrivate(Exception):
    """A cache directory that others could write into."""
