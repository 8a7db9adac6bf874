"""Isolating a revision: hold back the documents that cannot be applied, plan the rest. Pure.

The rules are the package's (see `fleetward.isolation`); this module runs them to a
fixpoint over the documents, the loader's failures and the stored objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fleetward.desire import DesiredState
from fleetward.errors import ManifestError, PlanError, Problem
from fleetward.isolation.attribution import Documents, Index, Locate, document_line, line_of, named
from fleetward.kinds import REGISTRY, Document
from fleetward.model import (
    Failure,
    HeldDocument,
    ObjectState,
    Plan,
    Revision,
    StoreSnapshot,
)
from fleetward.policy import Governance, policies_of

Desire = Callable[[Documents], DesiredState]
MakePlan = Callable[[DesiredState, tuple[HeldDocument, ...]], Plan]


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
    index = Index(documents, stored, locate)
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
                document_line(failure),
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


def _close(holding: _Holding, index: Index, claims: Mapping[str, str]) -> None:
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


def _held_kinds(holding: _Holding, index: Index) -> dict[str, str]:
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
    index: Index,
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
        added |= holding.hold(want.owner, why, line_of(located) or want.origin.path)
    return added


def _hold_named(
    holding: _Holding,
    problems: Iterable[Problem],
    index: Index,
    good: Documents,
    desired: DesiredState | None = None,
) -> bool:
    """Hold the documents each problem names; False when some problem names none
    (isolation cannot help with it) or nothing new was held."""
    added = False
    for problem in problems:
        addresses = named(problem, index, desired)
        if not addresses:
            return False
        for address in addresses:
            located = index.by_address.get(address)
            where = index.where(*located[0]) if located else None
            added |= holding.hold(address, "its manifest has errors", where, [problem])
    return added
