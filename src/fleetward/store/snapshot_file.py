"""A decoded copy of `state.json` for the next process: the TinyDB store's warm read.

Every CLI run starts cold, and reading the store is most of a warm `plan`:
`json.loads` of the whole file, then one `StoredObject` per document, then a
hash of every stored spec to find drift. A daemon keeps what it read
(`TinyDBStore._cached`); a command cannot, so the store leaves what it decoded
in `cache/state.snapshot` beside the state file, as `marshal` data (about 7×
faster to load than the JSON, with the drift memo of each object computed).

An entry is only ever used for the exact file it was made from: its header
records the state file's identity (inode, mtime, size — every apply makes a new
inode, a hand edit moves the mtime) and a digest of the file's first and last
64 KiB (the meta record and history are at the end), and both are compared
with the state file as it is opened now, before anything is decoded. The
payload has its own length and digest, and the header names the format, the
Python (`marshal`'s format is per version) and fleetward's version. A file that
fails any check, is not a regular file of this user's, or cannot be read is
ignored: the read is cold, never an error and never a different snapshot.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import marshal
import os
import stat
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import fleetward
from fleetward.model import ObjectKey, ObjectState, StoredObject, StoreMeta, StoreSnapshot
from fleetward.store.files import FileId, identity, sweep_leftovers, write_atomic

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "cache/state"  # under the state directory
SNAPSHOT_FILE = "state.snapshot"
_MAGIC = b"FWSNAP01"
_EDGE = 64 * 1024  # bytes of the state file digested at each end
_DIGEST = 32
# magic, fingerprint, inode, mtime ns, size, edges digest, payload length, payload digest
_HEADER = struct.Struct(f"<8s{_DIGEST}sQqQ{_DIGEST}sQ{_DIGEST}s")
_FIELDS = tuple(f.name for f in fields(StoredObject))
_STATES = {state.value: state for state in ObjectState}
_VALUES = tuple((state, state.value) for state in ObjectState)


def _state_value(state: ObjectState) -> str:
    """`state.value` without the enum's descriptor, a tenth of a snapshot's encoding."""
    for member, value in _VALUES:
        if state is member:
            return value
    raise ValueError(f"not an object state: {state!r}")


def _fingerprint() -> bytes:
    """What the payload's meaning depends on: this format, Python's `marshal`, fleetward's
    version and the fields of a stored object."""
    digest = hashlib.blake2b(digest_size=_DIGEST)
    for part in (_MAGIC.decode(), sys.version, str(marshal.version), fleetward.__version__):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(",".join(_FIELDS).encode())
    return digest.digest()


FINGERPRINT = _fingerprint()


def edges_digest(content: bytes) -> bytes:
    """The digest of a state file's first and last `_EDGE` bytes (and its length)."""
    digest = hashlib.blake2b(digest_size=_DIGEST)
    digest.update(len(content).to_bytes(8, "little"))
    digest.update(content[:_EDGE])
    digest.update(content[-_EDGE:])
    return digest.digest()


def _file_edges(fh: BinaryIO, size: int) -> bytes:
    """`edges_digest` of the open file `fh` of `size` bytes, reading only its two ends."""
    head = fh.read(_EDGE)
    if size <= 2 * _EDGE:
        return edges_digest(head + fh.read())
    fh.seek(size - _EDGE)
    tail = fh.read(_EDGE)
    digest = hashlib.blake2b(digest_size=_DIGEST)
    digest.update(size.to_bytes(8, "little"))
    digest.update(head)
    digest.update(tail)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a snapshot entry holds: the store's tables other than `objects` (meta,
    history — small), the doc id of each object, and the snapshot itself."""

    tables: dict[str, dict[str, Any]]
    ids: dict[str, str]
    snapshot: StoreSnapshot

    def objects_table(self) -> dict[str, Any]:
        """The `objects` table in TinyDB's layout, made from the snapshot: documents
        share their spec and status with the stored objects."""
        objects = self.snapshot.objects
        return {doc_id: _doc(objects[ObjectKey(key)]) for key, doc_id in self.ids.items()}


class SnapshotFile:
    """The snapshot entry of the state file `state_path` (in its directory's
    `SNAPSHOT_DIR`)."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.path = state_path.parent / SNAPSHOT_DIR / SNAPSHOT_FILE
        self.loads = 0  # entries used
        self.saves = 0  # entries written
        self.rejected = 0  # entries present but not used (stale, foreign, damaged)

    def load(self) -> tuple[FileId, Decoded] | None:
        """The state file's identity and its decoded content, if the entry is for exactly
        the file now at `state_path`; None otherwise (the caller reads the file)."""
        try:
            with self.state_path.open("rb") as state:
                info = os.fstat(state.fileno())
                file_id = identity(info)
                raw = self._read_entry()
                if raw is None:
                    return None
                header, payload = raw
                if header[2:5] != file_id:
                    self._reject("made from another state file")
                    return None
                if header[5] != _file_edges(state, info.st_size):
                    self._reject("the state file's content differs")
                    return None
        except OSError:
            return None
        # No cyclic collection while 100,000s of containers are made (see tuning.gc_paused).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            decoded = _decode(marshal.loads(payload))
        except Exception as exc:  # noqa: BLE001 - a bad entry is a miss, whatever it raises
            self._reject(f"undecodable ({exc!r})")
            return None
        finally:
            if was_enabled:
                gc.enable()
        self.loads += 1
        return file_id, decoded

    def _read_entry(self) -> tuple[tuple[Any, ...], memoryview] | None:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._reject(str(exc))
            return None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                self._reject("not a regular file of this user's")
                return None
            data = fh.read()
        if len(data) < _HEADER.size:
            self._reject("shorter than a header")
            return None
        header = _HEADER.unpack_from(data)
        if header[0] != _MAGIC or header[1] != FINGERPRINT:
            self._reject("another format, Python or fleetward version")
            return None
        payload = memoryview(data)[_HEADER.size :]  # not a copy: tens of MB at 100,000
        if len(payload) != header[6]:
            self._reject("truncated")
            return None
        if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != header[7]:
            self._reject("payload digest differs")
            return None
        return header, payload

    def _reject(self, why: str) -> None:
        self.rejected += 1
        logger.debug("state snapshot %s not used: %s", self.path, why)

    def save(self, file_id: FileId, edges: bytes, decoded: Decoded) -> None:
        """Write the entry for the state file `file_id` (whose `edges_digest` is
        `edges`); failures are logged and forgotten — the entry only ever saves work."""
        try:
            payload = marshal.dumps(_encode(decoded))
        except (ValueError, TypeError) as exc:  # a value marshal cannot hold: no entry
            logger.debug("state snapshot not written: %s", exc)
            self._remove()
            return
        header = _HEADER.pack(
            _MAGIC,
            FINGERPRINT,
            *file_id,
            edges,
            len(payload),
            hashlib.blake2b(payload, digest_size=_DIGEST).digest(),
        )
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The state directory's sweep leaves cache/ alone: a killed writer's temp
            # file is removed here, by the next writer (never a live one's).
            sweep_leftovers(self.path.parent)
            write_atomic(self.path, header + payload)
        except OSError as exc:
            logger.warning("could not write the state snapshot %s: %s", self.path, exc)
            return
        self.saves += 1

    def _remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _encode(decoded: Decoded) -> tuple[Any, ...]:
    meta = decoded.snapshot.meta
    rows = []
    for obj in decoded.snapshot.objects.values():
        drifted = obj.drifted  # computed once here, so no later reader hashes the spec
        rows.append(
            (
                obj.key,
                obj.kind,
                _plain(obj.spec),
                _plain(obj.status),
                obj.owner,
                _state_value(obj.state),
                obj.spec_hash,
                obj.generation,
                obj.applied_revision,
                obj.created_at,
                obj.updated_at,
                drifted,
            )
        )
    return (
        (meta.lineage, meta.serial, meta.last_applied_revision, _plain(meta.owner_labels)),
        decoded.tables,
        decoded.ids,
        rows,
    )


def _doc(obj: StoredObject) -> dict[str, Any]:
    """`obj.to_doc()`, with the state's value looked up fast (`_state_value`)."""
    return {
        "key": obj.key,
        "kind": obj.kind,
        "spec": obj.spec,
        "status": obj.status,
        "owner": obj.owner,
        "state": _state_value(obj.state),
        "specHash": obj.spec_hash,
        "generation": obj.generation,
        "appliedRevision": obj.applied_revision,
        "createdAt": obj.created_at,
        "updatedAt": obj.updated_at,
    }


def _plain(value: Mapping[str, Any]) -> Any:
    """`value` as marshal can hold it: a dict as is, another mapping as a dict."""
    return value if type(value) is dict else dict(value)


def _decode(data: tuple[Any, ...]) -> Decoded:
    (lineage, serial, revision, owner_labels), tables, ids, rows = data
    states = _STATES
    objects = {
        row[0]: StoredObject(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            states[row[5]],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
        )
        for row in rows
    }
    if not isinstance(tables, dict) or not isinstance(ids, dict) or len(ids) != len(objects):
        raise ValueError("malformed entry")
    meta = StoreMeta(lineage, serial, revision, owner_labels)
    return Decoded(tables, ids, StoreSnapshot(meta, objects))
