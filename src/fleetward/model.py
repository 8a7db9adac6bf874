"""Frozen core values shared by every stage: keys, revisions, objects, changes, plans.

Nothing here does I/O. Specs are plain JSON-compatible dicts and are treated
as read-only once they sit inside one of these values.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, NewType

from fleetward.errors import Problem

ObjectKey = NewType("ObjectKey", str)  # "Kind/id", e.g. "Asset/TRK-1"
BlobId = NewType("BlobId", str)  # git blob id (SHA-1 hex) of a manifest file

FORMAT_VERSION = 1


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    STOP = "stop"
    DELETE = "delete"
    NOOP = "noop"


class ObjectState(str, Enum):
    ACTIVE = "active"
    STOPPED = "stopped"


class GuardVerdict(str, Enum):
    PASSED = "passed"
    BLOCKED = "blocked"
    OVERRIDDEN = "overridden"


def object_key(kind: str, ident: str) -> ObjectKey:
    return ObjectKey(f"{kind}/{ident}")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Revision:
    """What was read: a commit SHA, or a content digest of a plain directory."""

    id: str
    kind: Literal["git", "dir"]
    ref: str | None = None

    @property
    def short(self) -> str:
        if self.kind == "git":
            return self.id[:7]
        return self.id[: len("sha256:") + 12]

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a desired object was declared: file, document index, path inside it."""

    path: str
    document: int
    yaml_path: tuple[str | int, ...] = ()


@dataclass(frozen=True, slots=True)
class DesiredObject:
    key: ObjectKey
    kind: str
    spec: Mapping[str, Any]
    spec_hash: str
    owner: str  # the document that declares it, e.g. "Fleet/north-yard"
    origin: Origin
    labels: Mapping[str, str] = field(default_factory=dict)
    # The seed's safety check: the operation the author expects (CREATE|UPDATE|STOP|NOTHING).
    expect: str | None = None
    # Status a first apply stores with the object (a task's `status` as written in its
    # manifest). Not spec: later plans never compare it, so people own it after creation.
    initial_status: Mapping[str, Any] | None = None
    # Why the object exists when not simply declared ("rule output"; a Fleet asset that
    # overrides a rule's): the create reason, and the prefix of update reasons.
    note: str | None = None
    # Status computed while desiring (an AssetRule's execution progress): compared and
    # stored like a kind's derived status, merged over it.
    derived_status: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: ObjectKey
    kind: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    owner: str
    state: ObjectState
    spec_hash: str
    generation: int
    applied_revision: str
    created_at: str
    updated_at: str
    # Memo of `drifted`: hashing every stored spec on every plan is most of a
    # warm re-plan, and a daemon keeps its snapshot across runs.
    _drift: bool | None = field(default=None, compare=False, repr=False)

    @classmethod
    def first(
        cls,
        key: ObjectKey,
        kind: str,
        view: ObjectView,
        revision: str,
        now: str,
    ) -> StoredObject:
        """An object as its first apply stores it (generation 1)."""
        return cls(
            key=key,
            kind=kind,
            spec=view.spec,
            status=dict(view.status or {}),
            owner=view.owner,
            state=view.state,
            spec_hash=view.spec_hash,
            generation=1,
            applied_revision=revision,
            created_at=now,
            updated_at=now,
            _drift=False,  # a first apply stores a spec with its own hash
        )

    @property
    def drifted(self) -> bool:
        """The stored spec was changed behind fleetward's back."""
        if self._drift is None:
            object.__setattr__(self, "_drift", spec_hash(self.spec) != self.spec_hash)
        return bool(self._drift)

    def to_doc(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "spec": self.spec,
            "status": self.status,
            "owner": self.owner,
            "state": self.state.value,
            "specHash": self.spec_hash,
            "generation": self.generation,
            "appliedRevision": self.applied_revision,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> StoredObject:
        return cls(
            key=ObjectKey(doc["key"]),
            kind=doc["kind"],
            spec=doc["spec"],
            status=doc.get("status") or {},
            owner=doc.get("owner") or "",
            state=ObjectState(doc.get("state", "active")),
            spec_hash=doc["specHash"],
            generation=int(doc.get("generation", 1)),
            applied_revision=doc.get("appliedRevision") or "",
            created_at=doc.get("createdAt") or "",
            updated_at=doc.get("updatedAt") or "",
        )


@dataclass(frozen=True, slots=True)
class StoreMeta:
    lineage: str | None  # None until the first apply creates the store
    serial: int
    last_applied_revision: str | None
    # The labels each owner document had when last applied ("Fleet/north" → labels):
    # a SyncPolicy selector still knows a document deleted from Git by them.
    owner_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    meta: StoreMeta
    objects: Mapping[ObjectKey, StoredObject]


class _Absent:
    """Marks a field that does not exist on one side of a diff."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class FieldDiff:
    path: str
    before: Any  # ABSENT when the field is new
    after: Any  # ABSENT when the field is removed


@dataclass(frozen=True, slots=True)
class ObjectView:
    """The parts of an object a plan shows and a saved plan re-applies."""

    state: ObjectState
    owner: str
    spec: Mapping[str, Any]
    # The hash to store with this spec, when the planner already has it (not
    # serialised): spec_hash(spec), except for a stop, which keeps the applied
    # hash so a drifted spec stays visibly drifted.
    known_hash: str | None = None
    # Status the system derives from the spec on apply (a workflow's hash and
    # version); None for kinds that derive none. Merged over the stored status.
    status: Mapping[str, Any] | None = None

    @property
    def spec_hash(self) -> str:
        return self.known_hash or spec_hash(self.spec)


@dataclass(frozen=True, slots=True)
class Change:
    address: ObjectKey
    kind: str
    action: Action
    reason: str
    owner: str
    before: ObjectView | None
    after: ObjectView | None
    diff: tuple[FieldDiff, ...] = ()
    # The SyncPolicy that governs this change (None: the daemon's default, at once).
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class Guard:
    name: str
    verdict: GuardVerdict
    message: str
    override: str  # the flag that overrides it
    # The SyncPolicy whose changes it judges (None: the whole plan). The daemon holds
    # only that policy's changes when it blocks; `apply` refuses the whole plan.
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A manifest problem and the document it belongs to, for failure isolation.

    `address` None: the problem stops the whole file at `path` from loading (a
    YAML syntax error, a file too large), so which documents it holds is not known
    from this revision. `path` None: the problem belongs to no file at all.
    """

    problem: Problem
    path: str | None
    address: str | None = None
    # Object keys the invalid document would declare, as far as its raw data says
    # (a fleet's externalAssetIds): a valid document declaring one of them is held too.
    claims: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldDocument:
    """A document failure isolation keeps at its last applied version.

    `errors` are its own problems (empty when it is held only for what it
    references); `because` says why in a sentence; `kept` lists the stored objects
    it owns, which this plan leaves exactly as they are.
    """

    address: str
    location: str | None  # file:line, or the file when the file cannot be read
    because: str
    errors: tuple[Problem, ...] = ()
    kept: tuple[ObjectKey, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    lineage: str | None
    serial: int
    revision: Revision
    created_at: str
    changes: tuple[Change, ...]
    guards: tuple[Guard, ...] = ()
    errors: tuple[Problem, ...] = ()
    # Object counts per kind in the desired state, for per-kind summaries.
    desired_counts: Mapping[str, int] = field(default_factory=dict)
    # The revision a `plan --base` review compared against instead of a store;
    # such a plan describes a diff between revisions and can never be applied.
    base: str | None = None
    # Per-kind reports in a seed's response shape (TaskBatch: processedItems /
    # unProcessedItems), keyed by manifest kind; empty for most plans.
    reports: Mapping[str, Any] = field(default_factory=dict)
    # The SyncPolicies governing at least one change: name → schedule, approval,
    # maxStopFraction, suspend, window (as of `created_at`) and `changes` (count).
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Documents failure isolation held back (empty unless it is on and something failed).
    held: tuple[HeldDocument, ...] = ()
    # The --target expressions a targeted plan was limited to (empty: the whole revision),
    # and how many changes of the whole plan it left out: the store will not equal the
    # revision after applying it.
    targeted: tuple[str, ...] = ()
    left_out: int = 0

    @property
    def blocked(self) -> bool:
        return bool(self.errors) or any(g.verdict is GuardVerdict.BLOCKED for g in self.guards)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    def summary(self) -> dict[str, int]:
        return action_counts(self.changes)


def action_counts(changes: Iterable[Change]) -> dict[str, int]:
    """Changes per action (create, update, stop, delete), zeros included."""
    counts = Counter(c.action for c in changes)
    return {a.value: counts[a] for a in Action if a is not Action.NOOP}
