"""Plan ⇄ JSON (formatVersion 1): what `plan --json` prints and `apply plan.json` reads.

Keys are emitted in a fixed order and changes in plan order, so the same plan
always serialises to the same bytes (apart from `createdAt`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fleetward.errors import Problem, UsageError
from fleetward.kinds import OBJECT_KINDS
from fleetward.model import (
    ABSENT,
    FORMAT_VERSION,
    Action,
    Change,
    FieldDiff,
    Guard,
    GuardVerdict,
    HeldDocument,
    ObjectKey,
    ObjectState,
    ObjectView,
    Plan,
    Revision,
)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return _plan_dict(plan, [_change(c) for c in plan.changes])


class Streamed(Sequence[Any]):
    """A long list whose items are made one at a time, as a writer reads them: a plan of
    100,000 changes is never held as 100,000 dicts (`plan_to_stream`, `write_json`)."""

    def __init__(self, items: Sequence[Any], make: Callable[[Any], Any]) -> None:
        self._items = items
        self._make = make

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._make(item) for item in self._items[index]]
        return self._make(self._items[index])

    def __iter__(self) -> Iterator[Any]:
        return map(self._make, self._items)


def plan_to_stream(plan: Plan) -> dict[str, Any]:
    """`plan_to_dict` with its changes `Streamed`: for `write_json` only."""
    return _plan_dict(plan, Streamed(plan.changes, _change))


LONG_LIST = 1000  # items: a top-level list this long is written one item per line


def write_json(value: Any, write: Callable[[str], Any], *, indent: int = 2) -> None:
    """`value` as indented JSON through `write`; a long top-level list (a plan's changes,
    `Streamed` or not) is written item by item, each compact on its own line.

    A plan of 100,000 changes is then never one string of a hundred megabytes, and
    each item goes through the C encoder (an indented dump runs the pure-Python one,
    several times slower). The same value always gives the same text.
    """
    items = value.items() if isinstance(value, dict) else ()
    if not any(_long(v) for _, v in items):
        write(_dumps(_listed(value), indent=indent) + "\n")
        return
    pad = " " * indent
    write("{")
    for position, (key, item) in enumerate(value.items()):
        write(("," if position else "") + f"\n{pad}" + _dumps(str(key)) + ": ")
        if not _long(item):
            write(_dumps(_listed(item), indent=indent).replace("\n", f"\n{pad}"))
            continue
        write("[")
        for index, element in enumerate(item):
            write(("," if index else "") + f"\n{pad}{pad}" + _dumps(element))
        write(f"\n{pad}]")
    write("\n}\n")


def _long(value: Any) -> bool:
    return isinstance(value, list | Streamed) and len(value) > LONG_LIST


def _listed(value: Any) -> Any:
    """`value` with its top-level `Streamed` lists made (a short one is dumped whole)."""
    if isinstance(value, Streamed):
        return list(value)
    if isinstance(value, dict) and any(isinstance(v, Streamed) for v in value.values()):
        return {k: list(v) if isinstance(v, Streamed) else v for k, v in value.items()}
    return value


def _dumps(value: Any, indent: int | None = None) -> str:
    # allow_nan=False: Python would write NaN/Infinity, which no JSON reader takes; the
    # YAML reader refuses non-finite numbers, so one here is a bug to fail loudly on.
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str, allow_nan=False)


def _plan_dict(plan: Plan, changes: Sequence[Any]) -> dict[str, Any]:
    return {
        "formatVersion": FORMAT_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "revision": plan.revision.id,
        "revisionKind": plan.revision.kind,
        "ref": plan.revision.ref,
        "createdAt": plan.created_at,
        "changes": changes,
        "guards": [
            {
                "name": g.name,
                "verdict": g.verdict.value,
                "message": g.message,
                "override": g.override,
                **({"policy": g.policy} if g.policy is not None else {}),
            }
            for g in plan.guards
        ],
        "errors": [p.to_dict() for p in plan.errors],
        "summary": plan.summary(),
        "desiredCounts": dict(sorted(plan.desired_counts.items())),
        **({"base": plan.base} if plan.base else {}),
        **({"reports": dict(plan.reports)} if plan.reports else {}),
        **({"policies": dict(plan.policies)} if plan.policies else {}),
        **({"held": [held_to_dict(h) for h in plan.held]} if plan.held else {}),
        **({"targeted": list(plan.targeted), "leftOut": plan.left_out} if plan.targeted else {}),
    }


def held_to_dict(held: HeldDocument) -> dict[str, Any]:
    """A document failure isolation held back, as plans and status files show it."""
    return {
        "address": held.address,
        "location": held.location,
        "because": held.because,
        "errors": [p.to_dict() for p in held.errors],
        "kept": list(held.kept),
    }


def held_from_dict(raw: Mapping[str, Any]) -> HeldDocument:
    return HeldDocument(
        address=str(raw["address"]),
        location=raw.get("location"),
        because=str(raw.get("because", "")),
        errors=tuple(Problem.from_dict(e) for e in raw.get("errors", [])),
        kept=tuple(ObjectKey(str(k)) for k in raw.get("kept", [])),
    )


def _view(view: ObjectView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    out = {"state": view.state.value, "owner": view.owner, "spec": view.spec}
    if view.status is not None:
        out["status"] = view.status
    return out


def _diff(d: FieldDiff) -> dict[str, Any]:
    out: dict[str, Any] = {"path": d.path}
    if d.before is not ABSENT:
        out["before"] = d.before
    if d.after is not ABSENT:
        out["after"] = d.after
    return out


def _change(c: Change) -> dict[str, Any]:
    return {
        "address": c.address,
        "kind": c.kind,
        "action": c.action.value,
        "reason": c.reason,
        "owner": c.owner,
        "before": _view(c.before),
        "after": _view(c.after),
        "diff": [_diff(d) for d in c.diff],
        **({"policy": c.policy} if c.policy is not None else {}),
    }


def plan_from_dict(data: Any, where: str) -> Plan:
    """Read a saved plan back; anything malformed is a clear UsageError."""
    if not isinstance(data, Mapping) or data.get("formatVersion") != FORMAT_VERSION:
        found = data.get("formatVersion") if isinstance(data, Mapping) else None
        raise UsageError.one(
            f"{where} is not a fleetward plan (formatVersion {FORMAT_VERSION})",
            f"Its formatVersion is {found!r}." if found is not None else "It has no formatVersion.",
            "Create the file with fleetward plan --out FILE.",
            location=where,
        )
    if data.get("base"):
        raise UsageError.one(
            f"{where} was made with plan --base and cannot be applied",
            f"It compares revision {data['base']} with {data.get('revision')}, not the store with "
            "a revision; applying it would write a diff the store never had.",
            "Make a plan against the store: fleetward plan --out plan.json.",
            location=where,
        )
    try:
        if not isinstance(data["revision"], str) or not isinstance(data["changes"], list):
            raise TypeError("revision must be a string and changes a list")
        return Plan(
            lineage=data["lineage"],
            serial=int(data["serial"]),
            revision=Revision(data["revision"], data.get("revisionKind", "git"), data.get("ref")),
            created_at=data["createdAt"],
            changes=tuple(_read_change(c) for c in data["changes"]),
            guards=tuple(
                Guard(
                    g["name"],
                    GuardVerdict(g["verdict"]),
                    g["message"],
                    g.get("override", ""),
                    g.get("policy"),
                )
                for g in data.get("guards", [])
            ),
            errors=tuple(
                Problem(
                    e["error"],
                    e["reason"],
                    e["resolution"],
                    e.get("location"),
                    e.get("parameters") or {},
                )
                for e in data.get("errors", [])
            ),
            desired_counts=data.get("desiredCounts", {}),
            reports=dict(data.get("reports") or {}),
            policies=dict(data.get("policies") or {}),
            held=tuple(held_from_dict(h) for h in data.get("held", [])),
            targeted=tuple(str(t) for t in data.get("targeted") or ()),
            left_out=int(data.get("leftOut") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError.one(
            f"{where} is not a valid fleetward plan",
            f"A required part is missing or malformed ({exc!r}); the file was edited or truncated.",
            "Create the plan again with fleetward plan --out FILE.",
            location=where,
        ) from exc


def _read_view(raw: Any) -> ObjectView | None:
    if raw is None:
        return None
    return ObjectView(
        ObjectState(raw["state"]), raw["owner"], raw["spec"], status=raw.get("status")
    )


def _read_change(raw: Mapping[str, Any]) -> Change:
    change = Change(
        address=ObjectKey(raw["address"]),
        kind=raw["kind"],
        action=Action(raw["action"]),
        reason=raw.get("reason", ""),
        owner=raw.get("owner", ""),
        before=_read_view(raw.get("before")),
        after=_read_view(raw.get("after")),
        diff=tuple(
            FieldDiff(d["path"], d.get("before", ABSENT), d.get("after", ABSENT))
            for d in raw.get("diff", [])
        ),
        policy=raw.get("policy"),
    )
    _check_change(change)
    return change


def _check_change(change: Change) -> None:
    """A change a fleetward plan could contain; raises ValueError naming what is off."""
    kind, _, ident = str(change.address).partition("/")
    object_kind = OBJECT_KINDS.get(kind)
    if (
        not isinstance(change.address, str)
        or not ident
        or object_kind is None
        or kind != change.kind
    ):
        raise ValueError(f"address {change.address!r} names no object of a known kind")
    allowed = {Action.CREATE, Action.UPDATE, object_kind.on_removal}
    if change.action not in allowed:
        raise ValueError(
            f"{change.address}: action {change.action.value} is not possible for a {kind}"
        )
    if (change.after is None) != (change.action is Action.DELETE):
        raise ValueError(f"{change.address}: 'after' must be present exactly when not deleting")
    for view in (change.before, change.after):
        if view is not None and (
            not isinstance(view.spec, Mapping) or not isinstance(view.owner, str)
        ):
            raise ValueError(f"{change.address}: spec must be a mapping and owner a string")
    # Created and updated specs come from manifests, keyed by their id field
    # (stopped ones are the store's own, possibly legacy, specs).
    declared = change.action in (Action.CREATE, Action.UPDATE) and change.after is not None
    spec = change.after.spec if declared and change.after is not None else None
    if spec is not None and not object_kind.id_field.startswith("metadata."):
        if spec.get(object_kind.id_field) != ident:
            raise ValueError(
                f"{change.address}: spec.{object_kind.id_field} does not match the address"
            )
