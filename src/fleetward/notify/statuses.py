"""What a commit status says per revision, so a Git host hears only when that changes.

A commit status is one state per context: pending, success or failure. The
events of one run can say the same thing twice (a run that recovers and
applies makes `recovered` and `applied`, both success) and a later run can
repeat it (drift set back on the revision already applied): per revision,
`CommitStatuses.select` keeps the one event that is the run's last word, and
only when it changes what the commit shows. Pending and failure keep their
reason apart — a plan about to be written or parts held; a failed run or a
rejected plan — so a revision that goes from planning to held for approval is
told, with the held documents named.

Values in, values out; the notifier keeps one per commit-status target.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from fleetward.notify.formats import commit_state

E = TypeVar("E", bound=Mapping[str, Any])

REMEMBERED = 1000  # revisions whose last status is kept (older ones are told again)
# Of one run's events about a revision, the later in this order is what its commit
# shows: an applied run that also holds a part is still pending on that part.
_LAST_WORD = ("planning", "recovered", "applied", "held", "rejected", "failed")
_OWN_REASON = frozenset({"held", "rejected"})  # a pending or failure of their own


class CommitStatuses:
    """The status one target last posted per revision (see the module docstring)."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._said: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._remembered = remembered

    def said(self) -> list[list[str]]:
        """What the commits show, as JSON: [sha, state, reason], the oldest first."""
        return [[sha, state, reason] for sha, (state, reason) in self._said.items()]

    def restore(self, said: Sequence[Sequence[str]]) -> None:
        """Take back what `said` gave (ValueError or TypeError if it is not one)."""
        kept = OrderedDict((str(sha), (str(state), str(reason))) for sha, state, reason in said)
        while len(kept) > self._remembered:
            kept.popitem(last=False)
        self._said = kept

    def select(self, events: Sequence[E]) -> list[E]:
        """Of one reporter hook's events (those the target's filter takes), the ones to
        post: per Git revision the last word, unless the commit shows it already."""
        last: dict[str, E] = {}
        for event in events:
            sha = _git_sha(event)
            if sha is None or event["type"] not in _LAST_WORD:
                continue  # nothing a commit status can say
            kept = last.get(sha)
            if kept is None or _rank(event) >= _rank(kept):
                last[sha] = event
        chosen: set[int] = set()
        for sha, event in last.items():
            says = _says(event)
            if self._said.get(sha) == says:
                continue
            self._said[sha] = says
            self._said.move_to_end(sha)
            chosen.add(id(event))
        while len(self._said) > self._remembered:
            self._said.popitem(last=False)
        return [e for e in events if id(e) in chosen]


def _git_sha(event: Mapping[str, Any]) -> str | None:
    revision = event.get("revision") or {}
    return str(revision["id"]) if revision.get("kind") == "git" else None


def _rank(event: Mapping[str, Any]) -> int:
    return _LAST_WORD.index(str(event["type"]))


def _says(event: Mapping[str, Any]) -> tuple[str, str]:
    kind = str(event["type"])
    return (commit_state(kind) or "", kind if kind in _OWN_REASON else "")


__all__ = ["REMEMBERED", "CommitStatuses"]
