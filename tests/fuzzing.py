"""The manifest fuzzer: hostile revisions made from valid ones, and the property they must keep.

A revision starts as one of the repository's own manifest trees (`manifests/`,
each `examples/*/manifests/`: every kind, with references that resolve) and
takes a few mutations, each on the parsed documents or on the text:

- on the data: a value replaced by a hostile one (a wrong type, a huge or
  non-finite number, odd unicode, a date outside the calendar, a value taken
  from elsewhere in the corpus, a self-referring JSON Schema, deep nesting),
  a key removed or added (unknown, non-string), a list item repeated;
- on the text: a YAML tag (`!!binary`, `!!set`, `!!float`, ...), an unquoted
  date, an anchor or alias, a control character, a repeated line or a cut.

`check_revision` runs what `validate` and `plan` run, in process: load, desire,
and a plan against an empty store and against the store of the unmutated
revision, then the plan as JSON. The property: every failure is a
`FleetwardError` whose problems say what, why and how to fix; any other
exception escaping is an internal error (the CLI would print "Internal error").

Used by tests/test_fuzz_manifests.py (a bounded number of examples) and by
bench/fuzz_long.py (a long run with a per-example alarm for hangs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from fleetward.desire import desire
from fleetward.errors import FleetwardError, ManifestError, PlanError, Problem
from fleetward.loading import DocumentCache, Locator, load
from fleetward.model import Revision, StoreMeta, StoreSnapshot
from fleetward.pipeline import as_stored
from fleetward.planning import PlanOptions, plan
from fleetward.rendering.json import plan_to_dict
from fleetward.source.base import ManifestFile, SnapshotBase, git_blob_id, is_listed_name

REPO = Path(__file__).resolve().parent.parent
NOW = "2026-01-01T00:00:00Z"
Files = dict[str, bytes]


# -- an in-memory revision ------------------------------------------------------------------


class MemorySnapshot(SnapshotBase):
    """A revision held in memory: the Snapshot interface over a dict of path → bytes."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._content = {p: c for p, c in files.items() if is_listed_name(p)}
        self.files = tuple(
            ManifestFile(p, git_blob_id(c), len(c)) for p, c in sorted(self._content.items())
        )
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.path}\0{f.blob_id}\n".encode())
        self.revision = Revision(id=f"sha256:{digest.hexdigest()}", kind="dir")

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        for f in files:
            yield f, self._content[f.path]


# -- the property ---------------------------------------------------------------------------

EMPTY = StoreSnapshot(StoreMeta(lineage=None, serial=0, last_applied_revision=None), {})
OPTIONS = PlanOptions(allow_empty=True, allow_mass_stop=True)


def desired_state(files: Files) -> Any:
    """load and desire, as `validate` runs them."""
    with MemorySnapshot(files) as snapshot:
        manifests = load(snapshot, DocumentCache())
        return desire(manifests.revision, manifests.documents(), Locator(snapshot))


def _check_problems(exc: FleetwardError) -> None:
    _check_each(exc.problems, located=isinstance(exc, ManifestError | PlanError))


def _check_each(problems: Iterable[Problem], located: bool) -> None:
    """What, why and how to fix, each said; where, for an error in the manifests."""
    for problem in problems:
        for part in (problem.error, problem.reason, problem.resolution):
            assert isinstance(part, str) and part.strip(), f"an empty part in {problem}"
        assert problem.location or not located, f"no location for {problem}"
        # What --json, the status files, the operation log and the HTTP API serialise.
        json.dumps(problem.to_dict(), allow_nan=False)


def check_revision(files: Files, seed: str | None = None) -> str:
    """Validate and plan `files` as the CLI does; 'ok' or the error class. Anything other
    than a FleetwardError propagates: that is the bug the fuzzer looks for.

    Plans run against an empty store and, given the tree `seed` the files came from,
    against the store of that tree applied; and, when `files` are valid, the seed is
    planned back against the store they would make (their values now stored ones).
    """
    try:
        desired = desired_state(files)
    except FleetwardError as exc:
        _check_problems(exc)
        return type(exc).__name__
    runs = [(desired, EMPTY)]
    if seed is not None:
        runs.append((desired, seed_store(seed)))
    outcomes = [_plan(wanted, store) for wanted, store in runs]
    if seed is not None and outcomes == ["ok", "ok"]:
        outcomes.append(_plan(seed_desired(seed), as_stored(desired)))
    return next((o for o in outcomes if o != "ok"), "ok")


def _plan(desired: Any, store: StoreSnapshot) -> str:
    try:
        made = plan(desired, store, NOW, OPTIONS)
    except FleetwardError as exc:
        _check_problems(exc)
        return type(exc).__name__
    json.dumps(plan_to_dict(made))
    _check_each(made.errors, located=True)
    return "ok"


@cache
def seed_desired(seed: str) -> Any:
    """The desired state of seed tree `seed`, unchanged."""
    return desired_state(SEEDS[seed])


@cache
def seed_store(seed: str) -> StoreSnapshot:
    """The store right after applying seed tree `seed` unchanged."""
    return as_stored(seed_desired(seed))


# -- the corpus -------------------------------------------------------------------------------


def _seed_trees() -> dict[str, Files]:
    roots = [REPO / "manifests", *sorted((REPO / "examples").glob("**/manifests"))]
    trees: dict[str, Files] = {}
    for root in roots:
        files = {
            f"manifests/{p.relative_to(root).as_posix()}": p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and is_listed_name(p.name)
        }
        if files:
            name = "manifests" if root == REPO / "manifests" else root.parent.relative_to(REPO)
            trees[str(name)] = files
    return trees


SEEDS = _seed_trees()
_YAML = YAML(typ="safe", pure=True)
_YAML.default_flow_style = False
_YAML.width = 4096


def parse(text: bytes) -> list[Any]:
    return list(_YAML.load_all(text.decode()))


def dump(documents: list[Any]) -> bytes:
    out = io.StringIO()
    _YAML.dump_all(documents, out)
    return out.getvalue().encode()


def _walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _walk(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _walk(sub, (*path, i))


@cache
def _corpus() -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Every scalar and every mapping key of the seed trees (semantically plausible values)."""
    scalars: set[Any] = set()
    keys: set[str] = set()
    for files in SEEDS.values():
        for path, content in files.items():
            if not path.endswith((".yaml", ".yml")):
                continue
            for doc in parse(content):
                for at in _walk(doc):
                    value = _get(doc, at)
                    if at and isinstance(at[-1], str):
                        keys.add(at[-1])
                    if not isinstance(value, dict | list):
                        scalars.add(value)
    return tuple(sorted(scalars, key=repr)), tuple(sorted(keys))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


# -- hostile values -----------------------------------------------------------------------------

EDGE_DATES = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2026-02-30",
    "2026-02-30T08:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-24T24:00:00Z",
    "2026-11-24T08:00:00+25:00",
    "10000-01-01T00:00:00Z",
    "0000-01-01",
    "2026-11-24T08:00:00.1234567890123Z",
    "2026-W48-1",
    "P1Y",
    "PT-5M",
    "P99999999999999999999D",
    "-PT1H",
    "* * * * *",
    "0 0 31 2 *",
    "@reboot",
    "61 25 * * *",
)
HOSTILE_SCHEMAS: tuple[Any, ...] = (
    {"$ref": "#"},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"properties": {"check": {"pattern": "^(a+)+$"}}},
    {"patternProperties": {"^(a|a)+$": {}}, "additionalProperties": False},
    {"pattern": "(a)\\1"},
    {"pattern": "(" * 400 + ")" * 400},
    {"pattern": "a{99999999999}"},
    {"anyOf": [{"$ref": "#"}]},
    {"not": {"$ref": "#"}},
    {"$schema": "http://json-schema.org/draft-04/schema#", "$ref": "#"},
    {"$schema": "http://json-schema.org/draft-07/schema#", "dependencies": {"a": {"$ref": "#"}}},
    {"$dynamicRef": "#"},
    {"$recursiveRef": "#", "$schema": "https://json-schema.org/draft/2019-09/schema"},
    {"unevaluatedProperties": False, "patternProperties": {"x": {}}},
    {"$ref": "http://example.com/remote.json"},
    {"type": "object", "properties": {"check": {"type": "string", "maxLength": 2**70}}},
    {"multipleOf": 1e-308},
    {"format": "regex"},
)
HUGE_NUMBERS = (2**63, -(2**63) - 1, 10**400, -(10**400), 1e308, -1e308, 5e-324)


def _leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(HUGE_NUMBERS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(("", " ", "x" * 300, "a/b", "..", "-", "~", "null", "Task/x", "é" * 5)),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
        st.sampled_from(EDGE_DATES),
        st.dates(),
        st.datetimes(timezones=st.sampled_from([dt.UTC, None])),
        st.sampled_from(_corpus()[0]),
    )


def _keys() -> st.SearchStrategy[Any]:
    """Mapping keys: the corpus's, other text, and the non-string keys YAML allows."""
    return st.one_of(
        st.sampled_from(_corpus()[1]), st.text(max_size=8), st.integers(-2, 2), st.none()
    )


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys(), inner, max_size=3))


def hostile_values() -> st.SearchStrategy[Any]:
    containers = st.recursive(_leaves(), _containers, max_leaves=6)
    deep = st.integers(min_value=40, max_value=80).map(_nest)
    return st.one_of(containers, st.sampled_from(HOSTILE_SCHEMAS), deep)


def _nest(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# -- mutations ----------------------------------------------------------------------------------

TAGS = (
    "!!binary aGVsbG8=",
    "!!float 1",
    "!!int 1",
    "!!str 2026-02-30",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1, a: 2]",
    "!!timestamp 2026-02-30",
    "!!null ''",
    "!!bool yes",
    "!custom x",
    "!!python/name:os.system",
    "!<tag:yaml.org,2002:str> x",
)
TEXT_BITS = (
    "\t",
    "\x00",
    "\ufeff",
    "\u2028",
    "\r",
    "#",
    "'",
    '"',
    ": ",
    "- ",
    "{",
    "[",
    "*a",
    "&a ",
    "&a [*a]",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
    "<<: *a\n",
    "? ",
    " #c",
    "2026-02-30",
    "2026-02-30T08:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0x1F",
    "1e999",
    ".nan",
    "\\ud800",
    '"\\ud800"',
    "1_000",
    "0o17",
    "yes",
)


@st.composite
def _mutate_data(draw: st.DrawFn, documents: list[Any]) -> list[Any]:
    candidates = [
        (i, path) for i, doc in enumerate(documents) for path in _walk(doc) if doc is not None
    ]
    if not candidates:
        return documents
    index, path = draw(st.sampled_from(candidates))
    operation = draw(st.sampled_from(("replace", "replace", "delete", "add-key", "repeat", "wrap")))
    if not path:
        if operation == "replace":
            documents[index] = draw(hostile_values())
        return documents
    parent = _get(documents[index], path[:-1])
    last = path[-1]
    if operation == "replace":
        parent[last] = draw(hostile_values())
    elif operation == "delete":
        del parent[last]
    elif operation == "add-key":
        target = parent[last]
        if isinstance(target, dict):
            key = draw(
                st.one_of(
                    st.sampled_from(_corpus()[1]),
                    st.text(max_size=8),
                    st.integers(-1, 1),
                    st.none(),
                    st.booleans(),
                    st.dates(),
                )
            )
            target[key] = draw(hostile_values())
        else:
            parent[last] = {"x": target}
    elif operation == "repeat":
        target = parent[last]
        if isinstance(target, list) and target:
            target.append(target[draw(st.integers(0, len(target) - 1))])
        elif isinstance(parent, list):
            parent.append(target)
    else:  # wrap: a value where a list or a mapping of it is expected, or the reverse
        parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
    return documents


@st.composite
def _mutate_text(draw: st.DrawFn, text: bytes) -> bytes:
    decoded = text.decode("utf-8", "surrogateescape")
    operation = draw(st.sampled_from(("insert", "insert", "tag", "cut", "repeat-line")))
    at = draw(st.integers(0, len(decoded)))
    if operation == "insert":
        bit = draw(st.one_of(st.sampled_from(TEXT_BITS), st.text(max_size=3)))
        decoded = decoded[:at] + bit + decoded[at:]
    elif operation == "tag":
        colons = [i for i in range(len(decoded)) if decoded.startswith(": ", i)]
        if colons:
            at = draw(st.sampled_from(colons)) + 2
            end = decoded.find("\n", at)
            end = len(decoded) if end < 0 else end
            decoded = decoded[:at] + draw(st.sampled_from(TAGS)) + decoded[end:]
    elif operation == "cut":
        decoded = decoded[:at]
    else:
        lines = decoded.splitlines(keepends=True)
        if lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            decoded = "".join(lines)
    return decoded.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, repr=False)
class Generated:
    """A generated revision: the seed tree it came from and its files."""

    seed: str
    files: Files

    def __repr__(self) -> str:
        """The seed and only the files that differ from it: what a failure report needs."""
        base = SEEDS.get(self.seed, {})
        changed = {p: c for p, c in self.files.items() if base.get(p) != c}
        return f"Generated({self.seed!r}, {{**SEEDS[{self.seed!r}], **{changed!r}}})"


@st.composite
def revisions(draw: st.DrawFn) -> Generated:
    """A seed tree with one to three mutations, sometimes with a document of another tree."""
    seed = draw(st.sampled_from(sorted(SEEDS)))
    files = dict(SEEDS[seed])
    if draw(st.booleans()):  # a document of another tree: kinds meet that never met
        other = draw(st.sampled_from(sorted(SEEDS)))
        path = draw(st.sampled_from(sorted(SEEDS[other])))
        files.setdefault(path, SEEDS[other][path])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(sorted(files)))
        on_data = path.endswith((".yaml", ".yml")) and draw(st.booleans())
        if on_data:
            try:
                documents = parse(files[path])
            except Exception:  # noqa: BLE001 - an earlier text mutation broke it: mutate text
                documents = None
            if documents is not None:
                files[path] = dump(draw(_mutate_data(documents)))
                continue

        files[path] = draw(_mutate_text(files[path]))
    return Generated(seed, files)
