"""Results the pages compute once per frozen owner (a plan, a report, a decision).

The daemon's memory holds values that do not change once made: a run's report, its
plan, its decision. What a page derives from one (rendered plan lines, held views,
the index of changes) is kept beside it for as long as the daemon still shows it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

T = TypeVar("T")
_MEMO_KEPT = 64  # results at most, of live owners


class Memo:
    """Results computed once per (frozen) owner and name: a plan of 100,000 changes is
    rendered and indexed once, not per request.

    Only results of owners the daemon still shows are kept (`live`: the reports and
    plans the live view holds): each new result drops those of owners it let go,
    so an old plan is not held in memory by what was rendered of it.
    """

    def __init__(self, live: Callable[[], Iterable[object]]) -> None:
        self._live = live
        self._kept: OrderedDict[tuple[int, str], tuple[object, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: object, name: str, compute: Callable[[], T]) -> T:
        """`compute()`, once per `owner` and `name` while `owner` is live."""
        key = (id(owner), name)
        with self._lock:
            found = self._kept.get(key)
            if found is not None and found[0] is owner:
                self._kept.move_to_end(key)
                return cast(T, found[1])
        value = compute()
        live = {id(o) for o in self._live()}
        with self._lock:
            self._kept[key] = (owner, value)
            for stale in [k for k, (o, _) in self._kept.items() if id(o) not in live]:
                del self._kept[stale]
            while len(self._kept) > _MEMO_KEPT:
                self._kept.popitem(last=False)
        return value

    def owners(self) -> list[object]:
        """The owners whose results are kept, oldest first."""
        with self._lock:
            return [owner for owner, _ in self._kept.values()]
