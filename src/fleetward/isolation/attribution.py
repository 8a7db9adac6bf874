"""Which document a problem, a location or a stored object belongs to. Pure.

Isolation holds documents, but loader and planner problems name places: a
`file:line:column`, a document address, an object key. `Index` maps those back to
the revision's documents (and the store's owners), so a problem held against a
document is held against the right one, even when a file declares several.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from fleetward.desire import DesiredState
from fleetward.errors import Problem
from fleetward.kinds import Document
from fleetward.model import Failure, ObjectKey, Origin, StoreSnapshot

Documents = tuple[tuple[str, Document], ...]
Locate = Callable[[Origin], str]


class Index:
    """Where documents are and what the store says they own, for attributing problems."""

    def __init__(self, documents: Documents, stored: StoreSnapshot, locate: Locate) -> None:
        self.documents = documents
        self.stored = stored.objects
        self.locate = locate
        self.by_address: dict[str, list[tuple[str, Document]]] = defaultdict(list)
        self.by_path: dict[str, list[Document]] = defaultdict(list)
        for path, doc in documents:
            self.by_address[doc.address].append((path, doc))
            self.by_path[path].append(doc)
        self._starts: dict[str, list[tuple[int, str]]] = {}
        self._owned: dict[str, set[ObjectKey]] | None = None

    def where(self, path: str, doc: Document) -> str:
        """`file:line` of a document."""
        located = self.locate(Origin(path, doc.index, ()))
        return line_of(located) or path

    def at(self, location: str | None) -> str | None:
        """The document a `file:line:column` falls in."""
        if not location:
            return None
        if location in self.by_address:
            return location
        path, _, rest = location.partition(":")
        docs = self.by_path.get(path)
        if not docs:
            return None
        if len(docs) == 1:
            return docs[0].address
        line = _int(rest.split(":", 1)[0])
        if line is None:
            return None
        starts = self._starts.get(path)
        if starts is None:
            starts = self._starts[path] = sorted((self._start(path, d), d.address) for d in docs)
        found = None
        for start, address in starts:
            if start <= line:
                found = address
        return found

    def _start(self, path: str, doc: Document) -> int:
        """The line a document starts on (0 when unknown)."""
        line = line_of(self.locate(Origin(path, doc.index, ())))
        return _int(line.rsplit(":", 1)[-1] if line else None) or 0

    def owned(self, owner: str) -> set[ObjectKey]:
        """The stored objects `owner` owns."""
        if self._owned is None:
            self._owned = defaultdict(set)
            for key, obj in self.stored.items():
                self._owned[obj.owner].add(key)
        return self._owned.get(owner, set())

    def owner_of(self, key: str) -> str | None:
        obj = self.stored.get(ObjectKey(key))
        return obj.owner if obj is not None else None


def named(problem: Problem, index: Index, desired: DesiredState | None) -> list[str]:
    """The documents a cross-document or plan-stage problem is about: its location, the
    "first" location it cites, and the document or object its `address` names."""
    found: list[str] = []
    candidates = [problem.location, problem.parameters.get("first")]
    address = problem.parameters.get("address")
    if isinstance(address, str):
        if address in index.by_address:
            found.append(address)
        elif desired is not None and ObjectKey(address) in desired.objects:
            found.append(desired.objects[ObjectKey(address)].owner)
    for location in candidates:
        if not isinstance(location, str):
            continue
        if desired is not None and ObjectKey(location) in desired.objects:
            found.append(desired.objects[ObjectKey(location)].owner)
            continue
        at = index.at(location)
        if at is not None:
            found.append(at)
    return list(dict.fromkeys(found))


def document_line(failure: Failure) -> str | None:
    """`file:line` of a failure's document: its problem's line when the problem is in the
    manifest itself, else (a problem in the data file it reads) the manifest's path."""
    line = line_of(failure.problem.location)
    if line is not None and failure.path is not None and line.startswith(failure.path + ":"):
        return line
    return failure.path or line


def line_of(location: str | None) -> str | None:
    """`file:line` of a `file:line:column` (None for anything else)."""
    if not location:
        return None
    parts = location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return f"{parts[0]}:{parts[1]}"
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
