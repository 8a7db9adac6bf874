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
        # Object tokens → positions; owner documents' tokens → owners → positions: an
        # owner's labels are indexed once, not once per object it owns.
        postings: dict[str, list[int]] = {}
        owners: dict[str, list[int]] = {}
        counts: dict[tuple[str, str], int] = {}
        label_tokens: dict[tuple[tuple[str, object], ...], tuple[str, ...]] = {}
        objects = snapshot.objects
        for position, key in enumerate(self.keys):
            obj = objects[key]
            counted = (obj.kind, obj.state.value)
            counts[counted] = counts.get(counted, 0) + 1
            owned = owners.get(obj.owner)
            if owned is None:
                owners[obj.owner] = [position]
            else:
                owned.append(position)
            tokens = _key_tokens(key)
            labels = obj.spec.get("labels") if isinstance(obj.spec, Mapping) else None
            if isinstance(labels, Mapping) and labels:
                items = tuple(labels.items())
                found_tokens = label_tokens.get(items)
                if found_tokens is None:
                    found_tokens = label_tokens[items] = tuple(_label_tokens(labels))
                tokens += found_tokens
            for token in tokens:
                found = postings.get(token)
                if found is None:
                    postings[token] = [position]
                elif found[-1] != position:  # positions ascend: a repeat is the last one
                    found.append(position)
        owner_postings: dict[str, list[str]] = {}
        owner_labels = snapshot.meta.owner_labels
        for owner in owners:
            for token in {*_owner_tokens(owner, owner_labels.get(owner, {}))}:
                owner_postings.setdefault(token, []).append(owner)
        self.tokens = sorted(postings.keys() | owner_postings.keys())
        self.counts = counts
        self._postings = postings
        self._owners = owners
        self._owner_postings = owner_postings
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
        terms = _terms(query)
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
        # Every token starting with `term` sorts between it and `term` + the last code point.
        start, end = bisect_left(tokens, term), bisect_left(tokens, term + "\U0010ffff")
        lists: list[list[int]] = []
        for token in tokens[start:end]:
            if token in self._postings:
                lists.append(self._postings[token])
            for owner in self._owner_postings.get(token, ()):
                lists.append(self._owners[owner])
        if not lists:
            return []
        if len(lists) == 1:
            return lists[0]
        merged: set[int] = set()
        for positions in lists:
            merged.update(positions)
        return sorted(merged)


def _terms(query: str) -> tuple[str, ...]:
    """The query's terms, lowercased: its words, and an address or `key=value` kept whole.

    A term that starts another one is dropped: whatever matches `asset/trk-1` has a
    token starting with `asset` too, and a short prefix matches half the index."""
    found = set(_WORDS.sub(" ", query.lower()).split()) | _exact(query)
    return tuple(sorted(t for t in found if not any(o != t and o.startswith(t) for o in found)))


def _exact(query: str) -> set[str]:
    """Terms kept whole: an address or `key=value` as typed (their punctuation matters)."""
    return {part.lower() for part in query.split() if "/" in part or "=" in part}


def _key_tokens(key: str) -> tuple[str, ...]:
    """The address, its id, and the id's words (TRK-1001: trk, 1001)."""
    lowered = key.lower()
    ident = lowered.partition("/")[2]
    words = _WORDS.split(ident)
    if len(words) == 1:
        return (lowered, ident)
    return (lowered, ident, *(word for word in words if word))


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
    """The index of the newest snapshot, built once.

    While the daemon builds the index of a run's snapshot (`build`, on a thread
    of its own), pages keep being served from the previous one: at 100,000
    objects a build takes seconds, a page must take milliseconds. Only with no
    index at all does a page wait for one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one build at a time
        self._index: ObjectIndex | None = None
        self._building: StoreSnapshot | None = None

    def get(self, snapshot: StoreSnapshot) -> ObjectIndex:
        index = self._index
        if index is not None and (index.snapshot is snapshot or self._building is snapshot):
            return index
        return self.build(snapshot)

    def build(self, snapshot: StoreSnapshot) -> ObjectIndex:
        with self._lock:
            index = self._index
            if index is not None and index.snapshot is snapshot:
                return index
            self._building = snapshot
            try:
                index = self._index = ObjectIndex(snapshot)
            finally:
                self._building = None
            return index


__all__ = ["PAGE_SIZE", "IndexCache", "ObjectIndex", "Page"]
