"""A TaskType's `templateSchema` at load: refused if checking data against it could run away.

JSON Schema lets a small schema do unbounded work on small data: a `$ref` that names
itself (`$ref: "#"`), or a cycle of them, recurses until Python gives up; a `pattern`
such as `^(a+)+$` takes time exponential in the string under a backtracking regex
engine (Python's `re`); `allOf: [{$ref: a}, {$ref: a}]` nested thirty times checks a
value 2^30 times. Each would let one manifest stall a plan or the daemon. So at load
(`schema_defects`) a `$ref` cycle that checks the same value again without descending
into it is refused, as is a schema that could check one value more than `MAX_STEPS`
times, and every `pattern` / `patternProperties` key must compile under RE2, a regex
engine whose matching time is linear in the input (no backreferences, no lookaround).
`check_schema` checks the schema against its draft's metaschema.

Checking data at plan time, within the same bounds, is `template_schema`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import re2
import referencing
import referencing.exceptions
import referencing.jsonschema

# Keyword evaluations one template item's data may cost. A realistic template (tens of
# fields, a few keywords each) costs hundreds; this allows far more and still checks
# in well under a second.
MAX_STEPS = 100_000

SchemaPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Defect:
    """Why a schema is refused, and where in it (`is_key`: the path ends at a mapping key)."""

    path: SchemaPath
    error: str
    reason: str
    resolution: str
    is_key: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)


# -- regular expressions ---------------------------------------------------------------


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would write every rejected pattern to stderr
    return options


_RE2_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Any:
    # Bytes with surrogatepass: a lone surrogate (a YAML "\ud800" escape) has no UTF-8
    # form, and RE2 would otherwise fail on it while encoding.
    return re2.compile(pattern.encode("utf-8", "surrogatepass"), _RE2_OPTIONS)


def pattern_error(pattern: str) -> str | None:
    """Why RE2 cannot compile `pattern`, or None when it can."""
    try:
        _compiled(pattern)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        return why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's `pattern` semantics)."""
    return _compiled(pattern).search(text.encode("utf-8", "surrogatepass")) is not None


# -- the schema as a graph -----------------------------------------------------------------

# Keywords whose subschemas apply to the same value (`in place`) ...
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
_REFS = ("$ref", "$dynamicRef", "$recursiveRef")
# ... and those whose subschemas apply to a value inside it (which ends: data is finite).
_CHILD_ONE = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_CHILD_MANY = ("prefixItems",)
_CHILD_MAP = ("properties", "patternProperties", "$defs", "definitions")


@dataclass
class _Node:
    schema: Mapping[str, Any]
    path: SchemaPath
    in_place: list[tuple[int, SchemaPath | None]] = field(default_factory=list)  # (id, $ref path)


def _resolver(schema: Mapping[str, Any]) -> Any:
    """Resolves a `$ref` against the schema's root (a nested `$id` is not followed)."""
    specification = referencing.jsonschema.specification_with(
        str(schema.get("$schema", "")), default=referencing.jsonschema.DRAFT202012
    )
    resource = specification.create_resource(schema)
    base = str(schema.get("$id", ""))
    return referencing.Registry().with_resource(base, resource).resolver(base_uri=base)


def _subschemas(
    schema: Mapping[str, Any], path: SchemaPath
) -> Iterator[tuple[Any, SchemaPath, bool]]:
    """(subschema, path, applies to the same value) for each subschema of one schema."""
    for key in _IN_PLACE_ONE:
        if key in schema:
            yield schema[key], (*path, key), True
    for key in _IN_PLACE_MANY:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield sub, (*path, key, i), True
    for key in _IN_PLACE_MAP:
        if isinstance(schema.get(key), Mapping):
            for name, sub in schema[key].items():
                yield sub, (*path, key, name), True
    extends = schema.get("extends")  # draft 3
    for i, sub in enumerate(extends if isinstance(extends, list) else [extends]):
        if extends is not None:
            yield sub, (*path, "extends", *([i] if isinstance(extends, list) else [])), True
    for key in _CHILD_ONE:
        if key in schema:
            yield schema[key], (*path, key), False
    for key in _CHILD_MANY:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield sub, (*path, key, i), False
    for key in _CHILD_MAP:
        if isinstance(schema.get(key), Mapping):
            for name, sub in schema[key].items():
                yield sub, (*path, key, name), False
    items = schema.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            yield sub, (*path, "items", i), False
    elif items is not None:
        yield items, (*path, "items"), False


def _graph(root: Mapping[str, Any]) -> dict[int, _Node]:
    """Every schema reachable from the root (through keywords and `$ref`s), by identity.

    Schemas are placed by keyword first, so each gets the path where it is written; a
    `$ref` target found no other way (inside an unknown keyword) gets the `$ref`'s path.
    """
    resolver = _resolver(root)
    nodes: dict[int, _Node] = {}

    def place(start: Any, path: SchemaPath) -> None:
        todo: list[tuple[Any, SchemaPath]] = [(start, path)]
        while todo:
            schema, at = todo.pop()
            if not isinstance(schema, Mapping) or id(schema) in nodes:
                continue
            node = nodes[id(schema)] = _Node(schema, at)
            for sub, sub_path, in_place in _subschemas(schema, at):
                if isinstance(sub, Mapping):
                    todo.append((sub, sub_path))
                    if in_place:
                        node.in_place.append((id(sub), None))

    place(root, ())
    unlinked = list(nodes.values())
    while unlinked:
        node = unlinked.pop()
        for key in _REFS:
            ref = node.schema.get(key)
            if not isinstance(ref, str):
                continue
            try:
                target = resolver.lookup(ref).contents
            except (referencing.exceptions.Unresolvable, ValueError, TypeError):
                continue  # reported as unresolvable where the schema is checked
            if not isinstance(target, Mapping):
                continue
            if id(target) not in nodes:
                known = set(nodes)
                place(target, (*node.path, key))
                unlinked.extend(n for k, n in nodes.items() if k not in known)
            node.in_place.append((id(target), (*node.path, key)))
    return nodes


def _cycle_refs(nodes: dict[int, _Node]) -> list[SchemaPath]:
    """The `$ref` closing each cycle of in-place edges (a value checked against itself)."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    closing: list[SchemaPath] = []
    for start, first in nodes.items():
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[int, Iterator[tuple[int, SchemaPath | None]]]] = [
            (start, iter(first.in_place))
        ]
        while stack:
            here, edges = stack[-1]
            for target, via in edges:
                if state.get(target) == 1:
                    closing.append(via if via is not None else nodes[here].path)
                elif target not in state:
                    state[target] = 1
                    stack.append((target, iter(nodes[target].in_place)))
                    break
            else:
                state[here] = 2
                stack.pop()
    return closing


def _costs(nodes: dict[int, _Node]) -> dict[int, int]:
    """Keyword evaluations one value may cost at each schema (an acyclic in-place graph)."""
    cost: dict[int, int] = {}
    for start in nodes:
        stack = [start]
        while stack:
            here = stack[-1]
            if here in cost:
                stack.pop()
                continue
            pending = [t for t, _ in nodes[here].in_place if t not in cost]
            if pending:
                stack.extend(pending)
                continue
            total = len(nodes[here].schema) + sum(cost[t] for t, _ in nodes[here].in_place)
            cost[here] = min(total, MAX_STEPS + 1)
            stack.pop()
    return cost


def _in_place_closure(nodes: dict[int, _Node], start: int) -> Iterator[_Node]:
    seen = {start}
    todo = [start]
    while todo:
        node = nodes[todo.pop()]
        yield node
        for target, _ in node.in_place:
            if target not in seen:
                seen.add(target)
                todo.append(target)


# Keywords whose values are data, not schemas: a "$ref" key in them is no reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default"})


def _refs(schema: Any, path: SchemaPath = ()) -> Iterator[tuple[SchemaPath, str]]:
    """Every `$ref` of a JSON Schema, with its path."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield (*path, key), value
            elif key not in _DATA_KEYWORDS:
                yield from _refs(value, (*path, key))
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _refs(value, (*path, i))


def unresolvable_refs(schema: Mapping[str, Any]) -> Iterator[tuple[SchemaPath, str, str]]:
    """(path, ref, why) of each `$ref` that names nothing: fleetward fetches no remote schema.

    References resolve against the schema's root (a nested `$id` is not followed).
    """
    resolver = _resolver(schema)
    for path, ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.PointerToNowhere as exc:
            yield path, ref, f"nothing is at {exc.ref!r} in the schema"
        except referencing.exceptions.Unresolvable:
            yield path, ref, f"{ref!r} names no part of the schema"


# -- checks ---------------------------------------------------------------------------------


def schema_defects(schema: Mapping[str, Any]) -> list[Defect]:
    """What makes checking data against a (metaschema-valid) schema unbounded, or unsupported."""
    nodes = _graph(schema)
    defects = list(_pattern_defects(nodes))
    cycles = _cycle_refs(nodes)
    for path in cycles:
        ref = _value_at(schema, path)
        defects.append(
            Defect(
                path,
                f"Recursive $ref {ref!r} in templateSchema",
                "It leads back to a schema that refers to it, without descending into the "
                "value, so checking any data against it would never end.",
                "Make each $ref name a schema that does not refer back to itself, other than "
                "inside properties or items (a tree may nest itself one level down).",
                parameters={"ref": ref},
            )
        )
    if not cycles:
        costs = _costs(nodes)
        for key, node in nodes.items():
            if costs[key] > MAX_STEPS:
                defects.append(
                    Defect(
                        node.path,
                        "Too costly templateSchema",
                        f"Checking one value against this schema could take more than "
                        f"{MAX_STEPS} keyword evaluations: its allOf / anyOf / oneOf / $ref "
                        "branches multiply.",
                        "Share one definition instead of repeating it in nested branches.",
                        parameters={"limit": MAX_STEPS},
                    )
                )
                break
        defects.extend(_unevaluated_defects(nodes))
    return defects


def _value_at(schema: Mapping[str, Any], path: SchemaPath) -> str:
    """The `$ref` value at `path` (the path of a `$ref` key)."""
    value: Any = schema
    for part in path:
        value = value[part]
    return str(value)


def render_schema_path(path: Sequence[str | int]) -> str:
    """A place in a schema as errors name it: "properties/level", or "(root)"."""
    return "/".join(str(p) for p in path) or "(root)"


def _pattern_defects(nodes: dict[int, _Node]) -> Iterator[Defect]:
    resolution = (
        "Rewrite the pattern without backreferences or lookaround (RE2 syntax, "
        "https://github.com/google/re2/wiki/Syntax), or check the value another way."
    )
    for node in nodes.values():
        pattern = node.schema.get("pattern")
        if isinstance(pattern, str) and (why := pattern_error(pattern)) is not None:
            yield Defect(
                (*node.path, "pattern"),
                f"Unsupported pattern {pattern!r} in templateSchema",
                f"fleetward matches patterns with RE2, which runs in time linear in the input "
                f"(a backtracking engine can take years on a short string); RE2 says: {why}.",
                resolution,
                parameters={"pattern": pattern},
            )
        patterns = node.schema.get("patternProperties")
        if isinstance(patterns, Mapping):
            for key in patterns:
                if isinstance(key, str) and (why := pattern_error(key)) is not None:
                    yield Defect(
                        (*node.path, "patternProperties", key),
                        f"Unsupported pattern {key!r} in templateSchema",
                        "fleetward matches patterns with RE2, which runs in time linear in the "
                        f"input; RE2 says: {why}.",
                        resolution,
                        is_key=True,
                        parameters={"pattern": key},
                    )


def _unevaluated_defects(nodes: dict[int, _Node]) -> Iterator[Defect]:
    """unevaluatedProperties applies patternProperties inside jsonschema with Python's `re`,
    which fleetward cannot swap for RE2: the two may not meet on one value."""
    for key, node in nodes.items():
        if "unevaluatedProperties" not in node.schema:
            continue
        if any("patternProperties" in n.schema for n in _in_place_closure(nodes, key)):
            yield Defect(
                (*node.path, "unevaluatedProperties"),
                "Unsupported unevaluatedProperties with patternProperties in templateSchema",
                "To find the unevaluated properties, jsonschema matches patternProperties with "
                "Python's backtracking regex engine, which a pattern can stall.",
                "Use additionalProperties next to patternProperties instead.",
                is_key=True,
            )


def check_schema(schema: Mapping[str, Any]) -> jsonschema.SchemaError | None:
    """The schema's first error against its draft's metaschema, or None.

    The `regex` format is left out: Python's `re.compile` recurses on nested groups and
    overflows on huge repeat counts; `schema_defects` compiles every pattern with RE2.
    """
    base = jsonschema.validators.validator_for(schema)
    formats = [name for name in base.FORMAT_CHECKER.checkers if name != "regex"]
    try:
        base.check_schema(schema, format_checker=jsonschema.FormatChecker(formats))
    except jsonschema.SchemaError as exc:
        return exc
    return None
