"""What the pages read, handed in by the composition root, and what they may show of it.

`WebSources` gathers the daemon's memory (health, the live view, the operation log,
the store as the last run left it); `public_url` and `scrub` keep credentials in a
source URL off every page, but for a manifest's own values (`Verbatim`).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetward.model import StoreSnapshot
from fleetward.observe.health import Health
from fleetward.runs import RunReport
from fleetward.store import OperationStore, Store
from fleetward.web.commits import CommitReader
from fleetward.web.graph import GraphRenderer
from fleetward.web.index import IndexCache, ObjectIndex
from fleetward.web.live import LiveView
from fleetward.web.memo import Memo
from fleetward.web.views import changes_of, held_views, plan_lines

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@]*@")


class Verbatim(str):
    """Text shown as stored (a manifest's values): `scrub` leaves it alone."""

    __slots__ = ()


@dataclass
class WebSources:
    """What the pages read, handed in by the composition root."""

    health: Health
    operations: OperationStore
    store: Store
    live: LiveView
    # The source as pages show it: url (credentials removed), ref, path.
    source: Callable[[], Mapping[str, str]]
    commits: CommitReader
    graphs: GraphRenderer = field(default_factory=GraphRenderer)
    indexes: IndexCache = field(default_factory=IndexCache)
    memos: Memo = field(init=False)
    _history: tuple[int, list[dict[str, Any]]] | None = None
    _history_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.memos = Memo(self.live_owners)

    def live_owners(self) -> list[object]:
        """What the pages may still show: the reports the live view and health hold,
        and the plans kept for operations, with their decisions and held parts."""
        owners: list[object] = []
        for report in (self.live.last, self.live.read, self.live.planned, self.health.planned):
            if report is not None:
                owners += [report, report.plan, report.decision]
                owners += report.decision.held if report.decision is not None else ()
        for kept in self.live.kept_plans():
            owners += [kept.plan, kept.decision, kept.part]
        return [owner for owner in owners if owner is not None]

    def snapshot(self) -> StoreSnapshot:
        """The store as the last run left it; before any run, as the store reads now."""
        for report in (self.live.last, self.health.last):
            if report is not None and report.store is not None:
                return report.store
        return self.store.read()

    def index(self) -> ObjectIndex:
        return self.indexes.get(self.snapshot())

    def prepare(self, report: RunReport) -> None:
        """Build what the next page will need after `report` (run off the request path)."""
        if report.store is not None:
            self.indexes.build(report.store)
            self.commits.get(report.store.meta.last_applied_revision)
        self.commits.get(report.revision.id if report.revision else None)
        held_views(self.memos, report)
        kept = self.live.plan_of(report.operation.operation_id)
        if kept is not None:
            plan_lines(self.memos, kept.plan)
        if report.plan is not None:
            changes_of(self.memos, report)

    def history(self, serial: int) -> list[dict[str, Any]]:
        """The store's history as of `serial` (read once per serial, not per page)."""
        with self._history_lock:
            if self._history is not None and self._history[0] == serial:
                return self._history[1]
        entries = self.store.history()
        with self._history_lock:
            self._history = (serial, entries)
        return entries


def public_url(url: str) -> str:
    """A source URL fit to show: no user-info (user:token@), no query, no fragment."""
    text = _USERINFO.sub(r"\1", url)
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        text = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return text


def scrub(value: Any) -> Any:
    """What every template expression outputs: text with any URL's credentials removed,
    but for a manifest's values (`Verbatim`), which are shown as the store holds them."""
    if isinstance(value, str) and "://" in value and not isinstance(value, Verbatim):
        return _USERINFO.sub(r"\1", value)
    return value
