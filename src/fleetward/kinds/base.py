"""What a kind plug-in provides: its spec model, its expansion into objects, its checks.

The engine knows kinds only through these interfaces and the registry; a new
kind is one module that defines a `KindPlugin` plus one line in `kinds/__init__`.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from fleetward.errors import Problem
from fleetward.kinds.names import NAME_PATTERN
from fleetward.kinds.problems import validation_problems
from fleetward.model import (
    Action,
    Change,
    DesiredObject,
    ObjectKey,
    Origin,
    StoredObject,
    object_key,
    spec_hash,
)

API_VERSION = "fleetward/v1"

ResourceName = Annotated[str, StringConstraints(max_length=63, pattern=NAME_PATTERN)]


class Strict(BaseModel):
    """Base of every manifest model: unknown fields are errors, no silent coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Metadata(Strict):
    name: ResourceName
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


def canonical_uuid(value: str) -> str:
    """A UUID in its canonical spelling; ValueError naming the value otherwise."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None


def as_uuid(value: str) -> str:
    """A UUID in its canonical spelling (as ids are stored); anything else unchanged."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


# Fixed namespace for ids derived from keys: the same key gives the same id everywhere.
NAMESPACE = uuid.UUID("0d6c3a52-7f4e-5b1a-8c2d-3e9f1a4b6c70")


@functools.lru_cache(maxsize=1 << 18)
def derived_id(kind: str, ident: str) -> str:
    """The id of an entity that declares none: UUIDv5 of its kind and key (canonical form).

    Memoised: every plan indexes every asset by id for the task checks, and 100,000
    UUIDv5s cost 0.6 s, most of a warm re-plan."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}/{ident}"))


EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


def jsonable(value: Any) -> Any:
    """Free-form YAML data as JSON data: YAML 1.2 dates and times become ISO strings.

    Keys must be strings: JSON has no others, and converting (1 and "1", null and
    "None") would silently merge or rename them.
    """
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(
                    f"keys must be strings, and {key!r} is {type(key).__name__}; quote it"
                )
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Document:
    """One validated manifest document (path-independent, so it can be cached by blob id)."""

    kind: str
    metadata: Metadata
    spec: Any  # the kind's validated spec model
    index: int  # position of the document in its file

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.metadata.name}"


@dataclass(frozen=True, slots=True)
class ObjectKind:
    """A kind of stored object (Asset, Task, …) and what removing it from Git does."""

    name: str
    id_field: str  # the spec field whose value makes the object's key
    on_removal: Action  # STOP keeps the object; DELETE removes it
    removal_reason: str = "removed from manifests"
    # (spec, previous status or None, spec changed?) → status fields the system derives on apply.
    derive_status: (
        Callable[[Mapping[str, Any], Mapping[str, Any] | None, bool], dict[str, Any]] | None
    ) = None
    # (before spec, after spec) → named transitions shown beside "spec changed".
    update_reasons: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]] | None = None
    # Status a removal (on_removal STOP) sets: a task's soft delete is {"isDeleted": True}.
    removal_status: Mapping[str, Any] | None = None


_Entry = TypeVar("_Entry")


class KindCaches:
    """What kinds remember between the stages of a run, and between runs: a value the
    caller owns and passes in (like the loader's DocumentCache), never module state.

    A daemon keeps one for its life, so a re-plan after one stream changes matches that
    stream only; a command makes one per run. Each kind keeps its entries here, one per
    class (`entry`), and no result depends on them: two runs given different caches, or
    one cache and different inputs, compute the same as from empty caches.
    """

    def __init__(self) -> None:
        self._entries: dict[type[Any], Any] = {}

    def entry(self, cls: type[_Entry]) -> _Entry:
        """The entry of class `cls`, made (with no arguments) on first use."""
        found = self._entries.get(cls)
        if found is None:
            found = self._entries[cls] = cls()
        return found

    def replace(self, value: Any) -> None:
        """Make `value` the entry of its class (a kind that rebuilds its entry per run)."""
        self._entries[type(value)] = value


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What a kind's plan-stage checks see: the whole plan-in-progress, read-only."""

    documents: tuple[tuple[str, Document], ...]  # (file path, document)
    desired: Mapping[ObjectKey, DesiredObject]
    stored: Mapping[ObjectKey, StoredObject]
    changes: Mapping[ObjectKey, Change]  # every change; an object without one is a no-op
    # `file:line:column` of a declaration, for error reports (the origin's path when unknown).
    locate: Callable[[Origin], str] = lambda origin: origin.path
    # Where check_plan puts a kind's report in its seed's response shape (Plan.reports).
    reports: dict[str, Any] = field(default_factory=dict)
    # The caller's caches (the desired state's): what a check may reuse between runs.
    caches: KindCaches = field(default_factory=KindCaches)


class KindPlugin:
    """A manifest kind. Subclasses set the class attributes and override the hooks."""

    kind: ClassVar[str]
    spec_model: ClassVar[type[BaseModel]]
    object_kinds: ClassVar[tuple[ObjectKind, ...]] = ()
    spec_adapter: ClassVar[TypeAdapter[Any]]
    # Whether check_plan reports problems at file:line:column (the loader then keeps
    # the kind's files readable after the source is closed).
    located_in_plan: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.spec_adapter = TypeAdapter(cls.spec_model)

    def check(self, document: Document) -> Iterable[tuple[tuple[str | int, ...], bool, Problem]]:
        """Rules within one document beyond its schema (e.g. a workflow's graph).

        Yields (path inside the document, is-the-key, problem); the loader
        locates each path and caches the verdict with the file's blob id.
        """
        return ()

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        """The desired objects one document declares."""
        return ()

    def check_plan(self, context: PlanContext) -> Iterable[Problem]:
        """Rules over the computed changes (e.g. prune: forbid); errors fail the plan."""
        return ()

    def schema_problems(
        self, exc: ValidationError, prefix: tuple[str | int, ...], raw: Any
    ) -> list[tuple[tuple[str | int, ...], bool, Problem]]:
        """The spec's validation errors as located problems; a kind may word them its seed's
        way, naming items by what `raw` (the spec as read, before validation) holds."""
        return validation_problems(exc, prefix, self.spec_model, f"a {self.kind} spec")

    # -- optional hooks: data files, generated objects, removal of owned objects --

    def data_file(self, document: Document) -> tuple[YamlPathT, str] | None:
        """A non-YAML file of the same revision the document reads (a StreamSet's CSV):
        (where the document names it, its path relative to the manifest file)."""
        return None

    def parse_data(self, content: bytes) -> Any | DataProblems:
        """The parsed content of a data file, or its problems; cached by blob id.

        Only called for kinds whose `data_file` names one, which must override it."""
        raise TypeError(f"{type(self).__name__} names a data file but does not parse it")

    def with_data(self, document: Document, parsed: Any) -> Document:
        """The document joined with its parsed data file."""
        return document

    def generate(
        self,
        documents: tuple[tuple[str, Document], ...],
        objects: Mapping[ObjectKey, DesiredObject],
        locate: Callable[[Origin], str],
        caches: KindCaches,
    ) -> Generated | None:
        """Objects made from other objects after every document is expanded (AssetRule ×
        streams). Runs once per revision over the whole desired state; `caches` is the
        caller's, for what it may reuse from the revision before."""
        return None

    def references(self, document: Document) -> Iterable[str]:
        """What the document's objects depend on, for failure isolation: document
        addresses ("Fleet/north"), object keys ("Asset/TRK-1"), or "Kind/*" for every
        one of a kind (a rule reads every stream). A document referencing what a held
        document owns is held with it."""
        return ()

    def claims(self, raw_spec: Any) -> Iterable[str]:
        """The object keys an invalid document's raw `spec` would declare, as far as it
        can be read (best effort, never raising): a valid document declaring one of
        them is held with it, since which of the two wins is undecided."""
        return ()

    def removal(
        self,
        have: StoredObject,
        desired: Mapping[ObjectKey, DesiredObject],
        stored: Mapping[ObjectKey, StoredObject],
        caches: KindCaches,
    ) -> Removal | None:
        """How to remove an object this kind's documents own that is no longer desired;
        None: the object kind's default (`ObjectKind.on_removal`). Asked once per such
        object: what the answers share is computed once into `caches` (the plan's)."""
        return None


YamlPathT = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class DataProblems:
    """Problems of a data file: (line, column, problem), 1-based."""

    problems: tuple[tuple[int, int, Problem], ...]


MAX_CONFLICTS_REPORTED = 20  # conflicts that fail a revision; the last says how many more


@dataclass(frozen=True, slots=True)
class Generated:
    """What `generate` adds to the desired state: new objects, objects it replaces
    (same key, e.g. with a note), and cross-document problems.

    `conflicts` are objects left out because what made them disagrees (two rules give
    one asset different names): they fail the revision unless the caller keeps them
    (`rules preview` shows them instead), so they come back as data, all of them."""

    objects: Mapping[ObjectKey, DesiredObject]
    problems: tuple[Problem, ...] = ()
    conflicts: tuple[Problem, ...] = ()

    def failing(self) -> tuple[Problem, ...]:
        """The problems that fail the revision when conflicts do: the first
        MAX_CONFLICTS_REPORTED of them, the last one counting the rest."""
        shown = list(self.conflicts[:MAX_CONFLICTS_REPORTED])
        more = len(self.conflicts) - MAX_CONFLICTS_REPORTED
        if more > 0:
            last = shown[-1]
            shown[-1] = replace(last, reason=f"{last.reason} ({more} more conflicts)")
        return (*self.problems, *shown)


@dataclass(frozen=True, slots=True)
class Removal:
    """How an owned object leaves: `action` None keeps it untouched (no change)."""

    action: Action | None
    reason: str


def declare(
    kind: str,
    ident: str,
    spec: Mapping[str, Any],
    document: Document,
    path: str,
    yaml_path: tuple[str | int, ...] = (),
    labels: Mapping[str, str] | None = None,
    expect: str | None = None,
    initial_status: Mapping[str, Any] | None = None,
) -> DesiredObject:
    """A desired object `kind/ident` that `document` (in file `path`) declares."""
    return DesiredObject(
        key=object_key(kind, ident),
        kind=kind,
        spec=spec,
        spec_hash=spec_hash(spec),
        owner=document.address,
        origin=Origin(path, document.index, yaml_path),
        labels=labels if labels is not None else document.metadata.labels,
        expect=expect,
        initial_status=initial_status,
    )
