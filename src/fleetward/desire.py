"""Desire: validated documents → the desired objects of a revision, cross-checked.

Each kind expands its documents; this stage then checks what no single
document can: names unique per kind, object ids unique across documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fleetward.errors import ManifestError, Problem
from fleetward.kinds import OBJECT_KINDS, REGISTRY, Document, KindCaches
from fleetward.model import DesiredObject, ObjectKey, Origin, Revision
from fleetward.progress import SILENT, Phase, Watch

Locate = Callable[[Origin], str]


@dataclass(frozen=True, slots=True)
class DesiredState:
    revision: Revision
    documents: tuple[tuple[str, Document], ...]  # (file path, document)
    objects: Mapping[ObjectKey, DesiredObject]
    # `file:line:column` of a declaration, for the plan stage's error reports.
    locate: Locate | None = None
    # The caches the kinds used (the caller's): planning this state reuses them.
    caches: KindCaches = field(default_factory=KindCaches)
    # Conflicting generated objects, left out: only when the caller kept them.
    conflicts: tuple[Problem, ...] = ()


# (file path, document) → (the document, its objects). The document is held so
# its id is never reused while the entry lives.
Expansions = dict[tuple[str, int], tuple[Document, tuple[DesiredObject, ...]]]


class KeptExpansions(Protocol):
    """Expansions kept across processes (`DocumentCache`): by the document's content and
    path, under the code that made them."""

    def expansion(self, path: str, doc: Document) -> tuple[DesiredObject, ...] | None: ...

    def keep_expansion(
        self, path: str, doc: Document, objects: tuple[DesiredObject, ...]
    ) -> None: ...


def desire(
    revision: Revision,
    documents: Iterable[tuple[str, Document]],
    locate: Locate,
    expansions: Expansions | None = None,
    watch: Watch = SILENT,
    *,
    caches: KindCaches | None = None,
    keep_conflicts: bool = False,
    kept: KeptExpansions | None = None,
) -> DesiredState:
    """Expand every (file path, document); raise ManifestError with every cross-document problem.

    `locate` turns an origin into `file:line:column`; it is called only to report errors.
    `expansions` memoises expansion across calls: a daemon passes the same dict
    every run, and documents it got from the loader's cache (unchanged files)
    are not expanded again. It is left holding only this call's documents.
    `watch` counts the documents; its checkpoint is called before each document
    is expanded and before each kind generates objects: whatever it raises ends
    the stage there.
    `caches` are the kinds' caches, owned by the caller (a daemon keeps one for its
    life; None: fresh ones, nothing remembered). Conflicting generated objects fail
    the revision, unless `keep_conflicts`: then they are left out and returned in
    `DesiredState.conflicts` (`rules preview` shows them).
    `kept` holds expansions across processes: a document neither memoised nor kept is
    expanded and offered to it.
    """
    caches = caches if caches is not None else KindCaches()
    conflicts: list[Problem] = []
    documents = tuple(documents)
    watch.start(Phase.VALIDATING, len(documents))
    problems: list[Problem] = []
    names: dict[str, tuple[str, Document]] = {}
    for path, doc in documents:
        first = names.setdefault(doc.address, (path, doc))
        if first[1] is not doc:
            here = locate(Origin(path, doc.index, ("metadata", "name")))
            there = locate(Origin(first[0], first[1].index, ("metadata", "name")))
            problems.append(
                Problem(
                    f"Duplicate {doc.kind} name {doc.name!r}",
                    f"{doc.address} is declared twice: here and at {there}. Names are unique per kind.",
                    "Rename one of the two documents, or merge them.",
                    location=here,
                    parameters={"address": doc.address, "first": there},
                )
            )
    objects: dict[ObjectKey, DesiredObject] = {}
    fresh: Expansions = {}
    for path, doc in documents:
        memo = (path, id(doc))
        known = expansions.get(memo) if expansions is not None else None
        if known is None:
            watch.checkpoint()
            expanded = _expand(path, doc, kept)
        else:
            expanded = known[1]
        fresh[memo] = (doc, expanded)
        for obj in expanded:
            first_obj = objects.setdefault(obj.key, obj)
            if first_obj is not obj:
                problems.append(_duplicate(obj, first_obj, locate))
        watch.advance()
    if expansions is not None:
        expansions.clear()
        expansions.update(fresh)
    if not problems:
        # Objects made from other objects (AssetRule × streams), over the whole revision.
        for plugin in REGISTRY.values():
            watch.checkpoint()
            generated = plugin.generate(documents, objects, locate, caches)
            if generated is None:
                continue
            if keep_conflicts:
                problems.extend(generated.problems)
                conflicts.extend(generated.conflicts)
            else:
                problems.extend(generated.failing())
            objects.update(generated.objects)
    if problems:
        raise ManifestError(*problems)
    retain = getattr(locate, "retain", None)
    if retain is not None:
        # Kinds whose plan-stage checks report at file:line:column need their files
        # after the source is closed (the loader's Locator keeps their bytes).
        retain({path for path, doc in documents if REGISTRY[doc.kind].located_in_plan})
    return DesiredState(revision, documents, objects, locate, caches, tuple(conflicts))


def _expand(path: str, doc: Document, kept: KeptExpansions | None) -> tuple[DesiredObject, ...]:
    found = kept.expansion(path, doc) if kept is not None else None
    if found is not None:
        return found
    expanded = tuple(REGISTRY[doc.kind].expand(doc, path))
    if kept is not None:
        kept.keep_expansion(path, doc, expanded)
    return expanded


def _duplicate(obj: DesiredObject, first: DesiredObject, locate: Locate) -> Problem:
    id_field = OBJECT_KINDS[obj.kind].id_field
    ident = obj.key.split("/", 1)[1]
    there = locate(first.origin)
    same = obj.owner == first.owner
    return Problem(
        f"Duplicate {id_field} {ident!r}",
        f"{obj.key} is declared {'twice in ' + obj.owner if same else 'by ' + obj.owner + ' and by ' + first.owner}"
        f" (first at {there}). {id_field} is unique across all "
        f"{'fleets' if obj.kind == 'Asset' else obj.kind + ' declarations'}.",
        f"Keep one declaration of {ident!r}: remove the other or give it another {id_field}.",
        location=locate(obj.origin),
        parameters={"address": obj.key, id_field: ident, "first": there},
    )
