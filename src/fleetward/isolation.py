"""Failure isolation: apply a revision's valid documents, hold back the invalid ones. Pure.

With isolation off a revision is applied whole or not at all (DESIGN §1). With
it on, every invalid document — and every document whose validity or meaning
depends on one — stays at its last applied version, and the rest is planned
as usual. The converge path hands this module the revision's valid documents,
the problems of the others (each attributed to its file and document), the
store, and the stages to run (desire, plan); it holds documents until the
remaining ones desire and plan without errors:

1. a document with problems of its own is held;
2. a file that cannot be read at all holds the documents it declared at the
   last applied revision (when the source can still read that revision), and
   every document that owns stored objects but is missing from this revision
   (it may sit in the unreadable file: a file renamed and broken in one
   commit looks exactly like that), said as an assumption; a file neither
   accounts for (a new file, or a first revision) is held under its own path:
   nothing of it is created, and its errors are reported, not dropped;
3. a document that references a held document or an object one owns (a
   task's asset, a rule's streams), declares an object a held document
   declares too, or takes over an object a held document owns, is held;
4. cross-document problems (duplicate names or ids) and plan-stage problems
   hold every document they name, and the stages run again, to a fixpoint.

A problem that belongs to no document, or a document no isolation covers (a
SyncPolicy with `isolateFailures` covers only what it selects), fails the
revision as if isolation were off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fleetward.desire import DesiredState
from fleetward.errors import ManifestError, PlanError, Problem
from fleetward.kinds import REGISTRY, Document
from fleetward.model import (
    Failure,
    HeldDocument,
    ObjectKey,
    ObjectState,
    Origin,
    Plan,
    Revision,
    StoreSnapshot,
)
from fleetward.policy import Governance, policies_of

Documents = tuple[tuple[str, Document], ...]
Desire = Callable[[Documents], DesiredState]
MakePlan = Callable[[DesiredState, tuple[HeldDocument, ...]], Plan]
Locate = Callable[[Origin], str]


@dataclass(frozen=True, slots=True)
class Previous:
    """What the last applied revision declared in the files that cannot be read now:
    file path → document addresses. Empty when the source cannot read that revision
    (a plain directory) or holds no such file there."""

    revision: str | None = None
    documents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which documents isolation covers: all of them (`--isolate-failures`), or those a
    SyncPolicy with `isolateFailures: true` governs."""

    everywhere: bool = False

    def covers(self, address: str, governance: Governance) -> bool:
        if self.everywhere:
            return True
        policy = governance.of_owner(address)
        return policy is not None and policy.spec.isolateFailures is True


def isolating(everywhere: bool, documents: Iterable[tuple[str, Document]]) -> bool:
    """Whether isolation can apply to this revision at all: on everywhere, or some
    SyncPolicy asks for it."""
    return everywhere or any(p.spec.isolateFailures for p in policies_of(documents))


@dataclass(frozen=True, slots=True)
class Isolated:
    """What isolation made of a revision: the desired state of the documents it applies,
    and the plan with the held ones (`plan.held`), made against `stored`."""

    desired: DesiredState
    plan: Plan
    stored: StoreSnapshot

    @property
    def revision(self) -> Revision:
        return self.desired.revision


@dataclass
class _Hold:
    location: str | None
    because: str
    errors: list[Problem] = field(default_factory=list)


class _Holding:
    """The documents held so far, in the order they were held."""

    def __init__(self) -> None:
        self.held: dict[str, _Hold] = {}

    def __contains__(self, address: object) -> bool:
        return address in self.held

    def __len__(self) -> int:
        return len(self.held)

    def hold(
        self, address: str, because: str, location: str | None, errors: Iterable[Problem] = ()
    ) -> bool:
        """Hold `address` (adding `errors` to it if already held); True if newly held."""
        found = self.held.get(address)
        if found is None:
            self.held[address] = _Hold(location, because, list(errors))
            return True
        found.errors.extend(e for e in errors if e not in found.errors)
        return False

    def values(self) -> tuple[HeldDocument, ...]:
        return tuple(
            HeldDocument(address, h.location, h.because, tuple(h.errors))
            for address, h in self.held.items()
        )


def isolate(
    documents: Documents,
    failures: Sequence[Failure],
    stored: StoreSnapshot,
    run_desire: Desire,
    run_plan: MakePlan,
    locate: Locate,
    scope: Scope = Scope(everywhere=True),
    previous: Previous = Previous(),
) -> Isolated:
    """The plan of `documents` with every document that cannot be applied held back.

    Raises ManifestError or PlanError, as a run without isolation would, when a
    problem cannot be pinned to a document isolation covers.
    """
    holding = _Holding()
    everything = [f.problem for f in failures]
    governance = Governance(policies_of(documents), documents, stored.meta.owner_labels)
    unreadable = _hold_failures(holding, failures, previous)
    if unreadable is None:
        raise ManifestError(*everything)
    if unreadable and not _hold_missing(holding, documents, stored, unreadable):
        _hold_unknown_files(holding, unreadable, previous)
    claims = _claims(failures)
    index = _Index(documents, stored, locate)
    while True:
        _refuse_uncovered(holding, scope, governance, everything)
        _close(holding, index, claims)
        good = tuple((p, d) for p, d in documents if d.address not in holding)
        try:
            desired = run_desire(good)
        except ManifestError as exc:
            if not _hold_named(holding, exc.problems, index, good):
                raise ManifestError(*everything, *exc.problems) from None
            continue
        if _hold_takers(holding, desired, stored, claims):
            continue
        made = run_plan(desired, holding.values())
        if not made.errors:
            return Isolated(desired, made, stored)
        if not _hold_named(holding, made.errors, index, good, desired):
            raise PlanError(*made.errors)


def _hold_failures(
    holding: _Holding, failures: Sequence[Failure], previous: Previous
) -> dict[str, list[Problem]] | None:
    """Hold the documents the loader's problems name; the files that cannot be read at
    all, with their problems (None: a problem belongs to no file: isolation cannot help)."""
    whole: dict[str, list[Problem]] = defaultdict(list)
    for failure in failures:
        if failure.address is not None:
            holding.hold(
                failure.address,
                "its manifest has errors",
                _document_line(failure),
                [failure.problem],
            )
        elif failure.path is not None:
            whole[failure.path].append(failure.problem)
        else:
            return None
    short = (previous.revision or "")[:7]
    for path, problems in whole.items():
        for address in previous.documents.get(path, ()):
            holding.hold(
                address,
                f"{path} cannot be read, and declared it at the last applied revision {short}",
                path,
                problems,
            )
    return dict(whole)


def _hold_missing(
    holding: _Holding,
    documents: Documents,
    stored: StoreSnapshot,
    unreadable: Mapping[str, list[Problem]],
) -> bool:
    """Hold every document that owns active stored objects and is not in this revision:
    while a file cannot be read, it may be in there (renamed and broken in one commit).
    Whether any was held."""
    present = {d.address for _, d in documents}
    owners = sorted(
        {
            o.owner
            for o in stored.objects.values()
            if o.state is ObjectState.ACTIVE and o.owner and o.owner not in present
        }
    )
    files = ", ".join(unreadable)
    for owner in owners:
        holding.hold(
            owner,
            f"assumed to be declared in {files}, which cannot be read: it owns applied objects "
            "and no readable file of this revision declares it",
            None,
            [p for path in unreadable for p in unreadable[path]],
        )
    return bool(owners)


def _hold_unknown_files(
    holding: _Holding, unreadable: Mapping[str, list[Problem]], previous: Previous
) -> None:
    """Hold, under its path, each file that cannot be read and that no held document
    accounts for: it declared nothing at the last applied revision (a new file, or a
    first revision) and no applied document is missing. Nothing it declares can be
    created; held by name, its errors are reported instead of dropped with it."""
    for path, problems in unreadable.items():
        if previous.documents.get(path):
            continue
        holding.hold(
            path,
            "the file cannot be read, and no document of it was applied before",
            None,
            problems,
        )


def _refuse_uncovered(
    holding: _Holding, scope: Scope, governance: Governance, everything: list[Problem]
) -> None:
    """Fail the revision, as without isolation, when a held document is one no isolation
    covers: all-or-nothing still rules it."""
    uncovered = [a for a in holding.held if not scope.covers(a, governance)]
    if not uncovered:
        return
    problems = list(everything)
    for address in uncovered:
        problems.extend(e for e in holding.held[address].errors if e not in problems)
    if not problems:
        held = holding.held[uncovered[0]]
        problems.append(
            Problem(
                f"{uncovered[0]} would be held back, and no isolation covers it",
                f"It is {held.because}; only documents selected by a SyncPolicy with "
                "isolateFailures: true (or every document, with --isolate-failures) can be "
                "held while the rest of the revision applies.",
                "Fix what it depends on, or select it with an isolating SyncPolicy.",
                location=held.location or uncovered[0],
                parameters={"address": uncovered[0]},
            )
        )
    raise ManifestError(*problems)


class _Index:
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
        return _line_of(located) or path

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
        line = _line_of(self.locate(Origin(path, doc.index, ())))
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


def _close(holding: _Holding, index: _Index, claims: Mapping[str, str]) -> None:
    """Hold, to a fixpoint, every document that references what a held document owns."""
    references = {
        doc.address: (path, doc, tuple(REGISTRY[doc.kind].references(doc)))
        for path, doc in index.documents
    }
    changed = True
    while changed:
        changed = False
        by_kind = _held_kinds(holding, index)
        for address, (path, doc, refs) in references.items():
            if address in holding:
                continue
            for ref in refs:
                by = _held_by(ref, holding, index, claims, by_kind)
                if by is not None:
                    kind, _, ident = ref.partition("/")
                    why = (
                        f"it depends on every {kind}, and held {by} owns some"
                        if ident == "*"
                        else f"it references {ref} of held {by}"
                    )
                    holding.hold(address, why, index.where(path, doc))
                    changed = True
                    break


def _held_kinds(holding: _Holding, index: _Index) -> dict[str, str]:
    """Kind → the first held document of that kind, or owning a stored object of it."""
    out: dict[str, str] = {}
    for address in holding.held:
        out.setdefault(address.split("/", 1)[0], address)
        for key in sorted(index.owned(address)):
            out.setdefault(key.split("/", 1)[0], address)
    return out


def _held_by(
    ref: str,
    holding: _Holding,
    index: _Index,
    claims: Mapping[str, str],
    by_kind: Mapping[str, str],
) -> str | None:
    """The held document that `ref` (a document address, an object key, or "Kind/*":
    every one of a kind) belongs to; None when it belongs to none."""
    kind, _, ident = ref.partition("/")
    if ident == "*":
        return by_kind.get(kind)
    if ref in holding:
        return ref
    owner = index.owner_of(ref)
    if owner is not None and owner in holding:
        return owner
    claimer = claims.get(ref)
    if claimer is not None and claimer in holding:
        return claimer
    return None


def _claims(failures: Sequence[Failure]) -> dict[str, str]:
    """Object keys invalid documents would declare → the document (first one wins)."""
    out: dict[str, str] = {}
    for failure in failures:
        if failure.address is None:
            continue
        for key in failure.claims:
            out.setdefault(key, failure.address)
    return out


def _hold_takers(
    holding: _Holding,
    desired: DesiredState,
    stored: StoreSnapshot,
    claims: Mapping[str, str],
) -> bool:
    """Hold documents that desire an object a held document owns or declares: whether
    the object moves, or is declared twice, is what the held document decides."""
    added = False
    for key, want in desired.objects.items():
        have = stored.objects.get(key)
        by = have.owner if have is not None and have.owner != want.owner else claims.get(key)
        if by is None or by not in holding or want.owner in holding:
            continue
        located = desired.locate(want.origin) if desired.locate is not None else want.origin.path
        why = f"it declares {key}, which held {by} " + (
            "owns" if have is not None and have.owner == by else "declares too"
        )
        added |= holding.hold(want.owner, why, _line_of(located) or want.origin.path)
    return added


def _hold_named(
    holding: _Holding,
    problems: Iterable[Problem],
    index: _Index,
    good: Documents,
    desired: DesiredState | None = None,
) -> bool:
    """Hold the documents each problem names; False when some problem names none
    (isolation cannot help with it) or nothing new was held."""
    added = False
    for problem in problems:
        named = _named(problem, index, desired)
        if not named:
            return False
        for address in named:
            located = index.by_address.get(address)
            where = index.where(*located[0]) if located else None
            added |= holding.hold(address, "its manifest has errors", where, [problem])
    return added


def _named(problem: Problem, index: _Index, desired: DesiredState | None) -> list[str]:
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


def _document_line(failure: Failure) -> str | None:
    """`file:line` of a failure's document: its problem's line when the problem is in the
    manifest itself, else (a problem in the data file it reads) the manifest's path."""
    line = _line_of(failure.problem.location)
    if line is not None and failure.path is not None and line.startswith(failure.path + ":"):
        return line
    return failure.path or line


def _line_of(location: str | None) -> str | None:
    """`file:line` of a `file:line:column` (None for anything else)."""
    if not location:
        return None
    parts = location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return f"{parts[0]}:{parts[1]}"
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


__all__ = ["Isolated", "Previous", "Scope", "isolate", "isolating"]
