"""Parsed and validated manifest files by blob id: in memory, over an optional disk cache.

A daemon keeps one `DocumentCache` for its whole life; the CLI opens one per
run over the shared `DiskCache` (`open_document_cache`), so an unchanged file
is parsed once, whichever process meets it first. An entry is keyed by the
file's blob id (its content) and filed under a *fingerprint* of the code that
made it (fleetward's source, the Python and library versions): it can only
ever be read back by the code that would produce the same result cold.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import logging
import marshal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core
from ruamel.yaml import __version__ as ruamel_version

import fleetward
from fleetward.disk_cache import DEFAULT_MAX_BYTES, DiskCache
from fleetward.kinds import REGISTRY, Document
from fleetward.manifest_syntax import Located
from fleetward.model import BlobId, DesiredObject, ObjectKey, Origin

logger = logging.getLogger(__name__)

# A file's valid documents and the problems of its others (a strict load applies none of
# a file with problems; failure isolation applies its valid documents).
FileResult = tuple[Document | Located, ...]

# A document's expansion is kept on disk from this many objects up (a Fleet of 1,000
# assets); below, expanding again costs less than reading an entry.
EXPANSION_MIN_OBJECTS = 16

# Library classes a cached value may hold besides fleetward's own (YAML dates).
_STDLIB_VALUES = {("datetime", name) for name in ("date", "datetime", "time", "timedelta")}


class DocumentCache:
    """Parsed and validated results by blob id; a daemon keeps one for its whole life."""

    def __init__(self, disk: DiskCache | None = None) -> None:
        self.disk = disk
        self._results: dict[BlobId, FileResult] = {}
        # Data files (a StreamSet's CSV) parsed by a kind: (kind, blob id) → parsed value.
        self._data: dict[tuple[str, BlobId], Any] = {}
        # Documents joined with their data file: (manifest blob, document index, data blob).
        self._joined: dict[tuple[BlobId, int, BlobId], Document] = {}
        # Raw content of files a Locator keeps for plan-stage error reports (TaskBatches).
        self._content: dict[BlobId, bytes] = {}
        # id(document) → (the document, what its content is named by on disk: its file's
        # blob id and its index, and the data file's blob id for a joined one).
        self._origin: dict[int, tuple[Document, str]] = {}
        self.hits = 0  # files found here or on disk
        self.misses = 0  # files parsed (`put`)
        self.disk_hits = 0

    def get(self, blob_id: BlobId) -> FileResult | None:
        result = self._results.get(blob_id)
        if result is None and self.disk is not None:
            result = _file_result(self.disk.get(f"f-{blob_id}"))
            if result is not None:
                self.disk_hits += 1
                self._results[blob_id] = result
        if result is not None:
            self.hits += 1
            self._name(blob_id, result)
        return result

    def _name(self, blob_id: BlobId, result: FileResult) -> None:
        for item in result:
            if isinstance(item, Document):
                self._origin[id(item)] = (item, f"{blob_id}-{item.index}")

    def peek(self, blob_id: BlobId) -> FileResult:
        """A result just put, without counting a hit."""
        return self._results[blob_id]

    def put(self, blob_id: BlobId, result: FileResult) -> None:
        self.misses += 1
        self._results[blob_id] = result
        self._name(blob_id, result)
        if self.disk is not None:
            self.disk.put(f"f-{blob_id}", result)

    def retain(self, blob_ids: Iterable[BlobId]) -> None:
        """Forget every blob not in `blob_ids` (files that left the tree); the disk keeps
        them until pruned (another process may still read that revision)."""
        keep = set(blob_ids)
        for blob_id in [b for b in self._results if b not in keep]:
            del self._results[blob_id]
        for data_key in [k for k in self._data if k[1] not in keep]:
            del self._data[data_key]
        for joined in [k for k in self._joined if k[0] not in keep or k[2] not in keep]:
            del self._joined[joined]
        for blob_id in [b for b in self._content if b not in keep]:
            del self._content[blob_id]
        named = {id(d) for r in self._results.values() for d in r}
        named.update(id(d) for d in self._joined.values())
        for doc_id in [d for d in self._origin if d not in named]:
            del self._origin[doc_id]

    def content(self, blob_id: BlobId) -> bytes | None:
        """The raw content of a file kept for a Locator, if it is kept."""
        return self._content.get(blob_id)

    def keep_content(self, blob_id: BlobId, content: bytes) -> None:
        self._content[blob_id] = content

    def data(self, kind: str, blob_id: BlobId, parse: Callable[[], Any]) -> Any:
        """A data file parsed by `kind`, parsed at most once per blob."""
        key = (kind, blob_id)
        if key in self._data:
            return self._data[key]
        disk_key = f"d-{kind}-{blob_id}"
        found = self.disk.get(disk_key) if self.disk is not None else None
        if found is None:
            found = parse()
            if self.disk is not None:
                self.disk.put(disk_key, found)
        self._data[key] = found
        return found

    def joined(self, key: tuple[BlobId, int, BlobId], join: Callable[[], Document]) -> Document:
        """A document joined with its data file: the same object while neither changes,
        so later stages memoise its expansion by identity."""
        found = self._joined.get(key)
        if found is None:
            found = self._joined[key] = join()
            self._origin[id(found)] = (found, "-".join(map(str, key)))
        return found

    # -- expansions (a document's desired objects) --------------------------------

    def _expansion_key(self, path: str, doc: Document) -> str | None:
        """The disk key of `doc`'s expansion at `path`; None for a document this cache did
        not hand out (its content has no name) or without a disk."""
        named = self._origin.get(id(doc))
        if self.disk is None or named is None or named[0] is not doc:
            return None
        where = hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return f"x-{hashlib.blake2b(named[1].encode(), digest_size=16).hexdigest()}-{where}"

    def expansion(self, path: str, doc: Document) -> tuple[DesiredObject, ...] | None:
        """The objects `doc` (in the file at `path`) expanded to, as a process running the
        same code expanded them before; None if not kept."""
        key = self._expansion_key(path, doc)
        if key is None or self.disk is None:
            return None
        found = self.disk.get(key)
        if not isinstance(found, bytes):
            return None
        try:
            return _objects(path, marshal.loads(found))
        except Exception as exc:  # noqa: BLE001 - a bad entry is a miss, whatever it raises
            logger.debug("document cache: expansion %s not used: %r", key, exc)
            return None

    def keep_expansion(self, path: str, doc: Document, objects: tuple[DesiredObject, ...]) -> None:
        """Keep `doc`'s expansion on disk, when it is worth a read and marshal holds its
        values exactly (plain dicts, lists, strings, numbers — not a YAML date)."""
        if len(objects) < EXPANSION_MIN_OBJECTS:
            return
        key = self._expansion_key(path, doc)
        if key is None or self.disk is None:
            return
        try:
            rows = marshal.dumps([_row(obj, path) for obj in objects])
        except ValueError:
            return
        self.disk.put(key, rows)

    def settle(self) -> None:
        """After a load: keep the disk cache within its bound if this process wrote to it."""
        if self.disk is not None and self.disk.stats.writes:
            self.disk.prune()


def open_document_cache(
    directory: str | Path | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> DocumentCache:
    """A cache over the disk cache in `directory` (None: in memory only, as `--no-cache`).

    A directory that cannot be used safely (another user's, writable by others) is
    not used: the run is cold, with a warning, never failed by its cache.
    """
    if directory is None:
        return DocumentCache()
    disk = DiskCache.open(Path(directory), fingerprint(), _allowed, max_bytes)
    return DocumentCache(disk)


@functools.cache
def fingerprint() -> bytes:
    """What a cached result depends on besides the file: fleetward's code (every source
    file, so a changed schema, check or reader is a new fingerprint even at the same
    version number), the kinds registered, and the versions of Python and the parsers."""
    digest = hashlib.blake2b(digest_size=32)
    for part in (
        b"fleetward-documents/1",
        fleetward.__version__,
        sys.version,
        pydantic.VERSION,
        pydantic_core.__version__,
        ruamel_version,
        ",".join(
            f"{k}={type(p).__module__}.{type(p).__qualname__}" for k, p in sorted(REGISTRY.items())
        ),
    ):
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    root = Path(fleetward.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\1unreadable")
    return digest.digest()


def _allowed(module: str, name: str, cls: type) -> bool:
    """Classes a cache entry may hold: fleetward's value classes (dataclasses, pydantic
    models, enums) and YAML's date types — nothing whose construction does I/O."""
    if (module, name) in _STDLIB_VALUES:
        return True
    if not module.startswith("fleetward."):
        return False
    return (
        dataclasses.is_dataclass(cls)
        or issubclass(cls, pydantic.BaseModel)
        or issubclass(cls, enum.Enum)
    )


def _row(obj: DesiredObject, path: str) -> tuple[Any, ...]:
    """`obj` as marshal data: every mapping must be a plain dict (marshal refuses others,
    and a subclass must not come back as a dict)."""
    if obj.origin.path != path:
        raise ValueError("an object declared in another file")
    mappings = (obj.spec, obj.labels, obj.initial_status, obj.derived_status)
    if any(m is not None and type(m) is not dict for m in mappings):
        raise ValueError("not a plain dict")
    return (
        obj.key,
        obj.kind,
        obj.spec,
        obj.spec_hash,
        obj.owner,
        obj.origin.document,
        obj.origin.yaml_path,
        obj.labels,
        obj.expect,
        obj.initial_status,
        obj.note,
        obj.derived_status,
    )


def _objects(path: str, rows: Any) -> tuple[DesiredObject, ...]:
    return tuple(
        DesiredObject(
            key=ObjectKey(key),
            kind=kind,
            spec=spec,
            spec_hash=spec_hash,
            owner=owner,
            origin=Origin(path, document, yaml_path),
            labels=labels,
            expect=expect,
            initial_status=initial_status,
            note=note,
            derived_status=derived_status,
        )
        for (
            key,
            kind,
            spec,
            spec_hash,
            owner,
            document,
            yaml_path,
            labels,
            expect,
            initial_status,
            note,
            derived_status,
        ) in rows
    )


def _file_result(value: Any) -> FileResult | None:
    """`value` if it has the shape of a file's result (a tuple of documents and located
    problems), else None: an entry that unpickled to anything else is a miss."""
    if not isinstance(value, tuple):
        return None
    if all(isinstance(item, Document | Located) for item in value):
        return value
    return None
