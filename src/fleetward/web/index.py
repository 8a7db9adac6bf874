"""The objects of one store snapshot, indexed once so a page never scans them all.

Keys are sorted once; since an address is `Kind/id`, each kind is one range of
positions. Search terms are matched by prefix against a sorted list of tokens
(the address, the id and its words, the owner document, labels as `key=value`,
`key` and `value` — an object's own and its owner document's), each with the
ascending positions of the objects that carry it. A page is then a few
bisections and a slice: no request walks the 100,000 objects.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetward.model import ObjectKey, StoredObject, StoreSnapshot

PAGE_SIZE = 50
_WORDS = re.compile(r"[^\w]+")
_RESULTS_KEPT = 32  # searches remembered per snapshot (paging through one is then a slice)


@dataclass(frozen=True, slots=True)
class Page:
    objects: tuple[StoredObject, ...]
    total: int  # objects matching, over every page
    number: int  # 1-based
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        """1-based position of the page's first object (0: none)."""
        return (self.number - 1) * self.size + 1 if self.objects else 0

    @property
    def last(self) -> int:
        return self.first + len(self.objects) - 1 if self.objects else 0


class ObjectIndex:
    """Positions, kinds and search tokens of one snapshot's objects (read-only once built)."""

    def __init__(self, snapshot: StoreSnapshot) -> None:
        self.snapshot = snapshot
        self.keys: list[ObjectKey] = sorted(snapshot.objects)
        postings: dict[str, list[int]] = {}
        counts: dict[tuple[str, str], int] = {}
        owner_tokens: dict[str, tuple[str, ...]] = {}
        owner_labels = snapshot.meta.owner_labels
        for position, key in enumerate(self.keys):
            obj = snapshot.objects[key]
            counted = (obj.kind, obj.state.value)
            counts[counted] = counts.get(counted, 0) + 1
            owner = obj.owner
            if owner not in owner_tokens:
                owner_tokens[owner] = tuple(_owner_tokens(owner, owner_labels.get(owner, {})))
            labels = obj.spec.get("labels") if isinstance(obj.spec, Mapping) else None
            tokens = set(_key_tokens(key))
            tokens.update(owner_tokens[owner])
            if isinstance(labels, Mapping):
                tokens.update(_label_tokens(labels))
            for token in tokens:
                found = postings.get(token)
                if found is None:
                    postings[token] = [position]
                else:
                    found.append(position)
        self.tokens = sorted(postings)
        self.counts = counts
        self._postings = postings
        self._results: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def counts_table(self) -> list[tuple[str, int, int]]:
        """(kind, active, stopped) per kind held, in kind order."""
        kinds = sorted({kind for kind, _ in self.counts})
        return [
            (kind, self.counts.get((kind, "active"), 0), self.counts.get((kind, "stopped"), 0))
            for kind in kinds
        ]

    def kind_range(self, kind: str | None) -> tuple[int, int]:
        """The positions [start, end) of `kind`'s objects (None: every object)."""
        if not kind:
            return 0, len(self.keys)
        # '0' follows '/': every `Kind/…` key sorts between the two.
        return bisect_left(self.keys, f"{kind}/"), bisect_left(self.keys, f"{kind}0")

    def page(self, kind: str | None = None, query: str = "", number: int = 1) -> Page:
        """Page `number` (from 1) of the objects of `kind` matching every term of `query`."""
        start, end = self.kind_range(kind)
        number = max(1, number)
        terms = tuple(sorted(set(_WORDS.sub(" ", query.lower()).split()) | _exact(query)))
        if not terms:
            first = start + (number - 1) * PAGE_SIZE
            every = range(first, min(end, first + PAGE_SIZE))
            return Page(self._objects(every), end - start, number, PAGE_SIZE)
        matches = self._matching(terms)
        low, high = bisect_left(matches, start), bisect_left(matches, end)
        first = low + (number - 1) * PAGE_SIZE
        chosen = matches[first : min(high, first + PAGE_SIZE)]
        return Page(self._objects(chosen), high - low, number, PAGE_SIZE)

    def _objects(self, positions: Iterable[int]) -> tuple[StoredObject, ...]:
        objects = self.snapshot.objects
        return tuple(objects[self.keys[p]] for p in positions)

    def _matching(self, terms: tuple[str, ...]) -> list[int]:
        """Ascending positions of the objects with a token starting with each term."""
        with self._lock:
            found = self._results.get(terms)
            if found is not None:
                self._results.move_to_end(terms)
                return found
        lists = sorted((self._prefixed(term) for term in terms), key=len)
        result = lists[0]
        if len(lists) > 1:
            common = set(result)
            for other in lists[1:]:
                common.intersection_update(other)
            result = sorted(common)
        with self._lock:
            self._results[terms] = result
            while len(self._results) > _RESULTS_KEPT:
                self._results.popitem(last=False)
        return result

    def _prefixed(self, term: str) -> list[int]:
        tokens = self.tokens
        at = bisect_left(tokens, term)
        lists: list[list[int]] = []
        while at < len(tokens) and tokens[at].startswith(term):
            lists.append(self._postings[tokens[at]])
            at += 1
        if not lists:
            return []
        if len(lists) == 1:
            return lists[0]
        merged: set[int] = set()
        for positions in lists:
            merged.update(positions)
        return sorted(merged)


def _exact(query: str) -> set[str]:
    """Terms kept whole: an address or `key=value` as typed (their punctuation matters)."""
    return {part.lower() for part in query.split() if "/" in part or "=" in part}


def _key_tokens(key: str) -> Iterable[str]:
    lowered = key.lower()
    ident = lowered.partition("/")[2]
    yield lowered
    yield ident
    yield from (word for word in _WORDS.split(ident) if word)


def _owner_tokens(owner: str, labels: Mapping[str, str]) -> Iterable[str]:
    if owner:
        yield from _key_tokens(owner)
    yield from _label_tokens(labels)


def _label_tokens(labels: Mapping[str, object]) -> Iterable[str]:
    for name, value in labels.items():
        name_text, value_text = str(name).lower(), str(value).lower()
        yield name_text
        yield value_text
        yield f"{name_text}={value_text}"


class IndexCache:
    """The index of the newest snapshot asked for, built once (a second asker waits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: ObjectIndex | None = None

    def get(self, snapshot: StoreSnapshot) -> ObjectIndex:
        index = self._index
        if index is not None and index.snapshot is snapshot:
            return index
        with self._lock:
            index = self._index
            if index is None or index.snapshot is not snapshot:
                index = ObjectIndex(snapshot)
                self._index = index
            return index


__all__ = ["PAGE_SIZE", "IndexCache", "ObjectIndex", "Page"]
