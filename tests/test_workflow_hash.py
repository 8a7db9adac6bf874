"""A workflow's hash is a property of its meaning, not of how its YAML is written.

Hypothesis draws random *valid* workflows (steps with actions from the registry
and configs their action accepts, `next` edges, inline steps, rescue steps) as
an abstract model, then writes each one out as YAML in many ways: shuffled key
order, block or flow style per node, plain / single / double quoted scalars,
derived ids spelled out or omitted, `stepId` or the seed's `step_id`, a target
named by step name or by id (in any UUID spelling), empty values spelled out
(`status: ""`, `config: {}`, `stop: false`, …) or omitted, the whole document
as JSON. Every spelling must normalise to the same spec hash; changing one
step's action, one config value or one edge target must change it.

Graph validity by construction: targets only point forward (to a later step of
the same list, or stop), a step never handles all of OK/SKIP/TIMEOUT without a
code (so something falls through to the next step) and never handles KO without
a code (so a KO can reach the rescue steps): every step is reachable, no loop.
"""

from __future__ import annotations

import copy
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from fleetward.kinds.workflow import ACTIONS
from fleetward.kinds.base import Document
from fleetward.kinds.workflow import normalize, step_id, workflow_id
from fleetward.loading import load_file
from fleetward.model import spec_hash

SEED_CASE = Path(__file__).parent / "cases" / "wf-seed-step-id" / "manifests" / "workflows"

# -- the abstract model ------------------------------------------------------------------


@dataclass
class Edge:
    status: str | None  # None: any status
    code: str | None
    target: str | None = None  # a step name of the same list
    stop: bool = False
    inline: list[Step] = field(default_factory=list)


@dataclass
class Step:
    name: str
    action: str
    config: dict[str, Any]
    explicit_id: str | None = None  # a UUID of the author's (else derived from names)
    summary: str | None = None
    notes: str | None = None
    next: list[Edge] = field(default_factory=list)


@dataclass
class Workflow:
    name: str  # metadata.name
    steps: list[Step]
    rescue: list[Step]
    title: str | None = None  # spec.name
    explicit_id: str | None = None
    description: str | None = None
    country: str | None = None
    schema: str | None = None
    draft: bool = False
    disabled: bool = False

    def all_steps(self) -> list[Step]:
        out: list[Step] = []

        def walk(steps: list[Step]) -> None:
            for s in steps:
                out.append(s)
                for e in s.next:
                    walk(e.inline)

        walk(self.steps)
        walk(self.rescue)
        return out


# -- strategies --------------------------------------------------------------------------

WORDS = ["invoice", "report", "billing", "north", "señal", "Ünïcode", "fleet", "yes", "null", "1e3"]
text = st.one_of(
    st.sampled_from(WORDS),
    st.text(
        alphabet=st.characters(
            whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=" -_.:#'\"é"
        ),
        min_size=1,
        max_size=24,
    )
    .map(str.strip)
    .filter(bool),
)
emails = st.sampled_from(["desk@example.com", "ops@example.org", "a.b+c@mail.example.net"])
durations = st.sampled_from(["PT5M", "PT1H30M", "P1D", "PT0.5S", "P2DT3H", "PT45S"])


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _config_of(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A config the action's model accepts (None values mean: field left out)."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "document.validate": {"strict": _optional(st.booleans())},
        "document.sign": {"keyId": _optional(text), "timestamp": _optional(st.booleans())},
        "email.send": {
            "to": _optional(st.lists(emails, min_size=1, max_size=2)),
            "cc": _optional(st.lists(emails, min_size=1, max_size=2)),
            "subject": _optional(text),
            "template": _optional(text),
            "attachPdf": _optional(st.booleans()),
        },
        "webhook.post": {
            "url": st.sampled_from(["https://hooks.example.com/a", "http://10.0.0.7:8080/wf"]),
            "headers": _optional(st.dictionaries(st.sampled_from(["X-A", "X-B"]), text)),
            "timeoutSeconds": _optional(st.integers(1, 300)),
        },
        "log": {
            "message": text,
            "level": _optional(st.sampled_from(["debug", "info", "warning", "error"])),
        },
        "sleep": {"duration": durations},
        "fail": {"reason": text, "code": _optional(text)},
        "asset.update": {
            "assetId": _optional(text),
            "attributes": _optional(
                st.dictionaries(
                    st.sampled_from(["make", "km", "ok", "since"]),
                    st.one_of(st.integers(-5, 10**6), st.booleans(), text),
                    max_size=3,
                )
            ),
            "labels": _optional(st.dictionaries(st.sampled_from(["class", "zone"]), text)),
        },
        "task.create": {
            "taskType": text,
            "description": _optional(text),
            "priority": _optional(st.sampled_from(["LOW", "MEDIUM", "HIGH", "URGENT"])),
            "dueIn": _optional(durations),
            "assigneeIds": _optional(st.lists(text, max_size=2)),
        },
    }[name]
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not None}
    )


def _step(draw: st.DrawFn, name: str) -> Step:
    action = draw(st.sampled_from(sorted(ACTIONS)))
    return Step(
        name=name,
        action=action,
        config=draw(_config_of(action)),
        explicit_id=draw(_optional(st.uuids().map(str))),
        summary=draw(_optional(text)),
        notes=draw(_optional(text)),
    )


def _edges(draw: st.DrawFn, later: list[str], inline_names: list[str]) -> list[Edge]:
    """Up to two edges with distinct (status, code): see the module docstring for why
    uncoded edges never take KO and never take all of OK/SKIP/TIMEOUT."""
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(0, 2))):
        code = draw(_optional(st.sampled_from(["E1", "expired-key", "42", "no"])))
        choices = [None, "OK", "SKIP", "KO", "TIMEOUT"] if code else ["OK", "SKIP", "TIMEOUT"]
        status = draw(st.sampled_from(choices))
        if (status or "", code or "") in seen:
            continue
        seen.add((status or "", code or ""))
        kind = draw(
            st.sampled_from(["step", "step", "stop", "inline"] if later else ["stop", "inline"])
        )
        if kind == "inline" and not inline_names:
            kind = "stop"
        if kind == "step":
            edges.append(Edge(status, code, target=draw(st.sampled_from(later))))
        elif kind == "stop":
            edges.append(Edge(status, code, stop=True))
        else:
            inline = [_step(draw, inline_names.pop())]
            inline[0].next = _edges(draw, [], [])  # stop only: inline steps go nowhere else
            edges.append(Edge(status, code, inline=inline))
    return edges


def _steps(draw: st.DrawFn, names: list[str], inline_names: list[str]) -> list[Step]:
    steps = [_step(draw, n) for n in names]
    for i, s in enumerate(steps):
        s.next = _edges(draw, names[i + 1 :], inline_names)
    return steps


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    pool = draw(
        st.lists(
            st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), text),
            min_size=13,
            max_size=13,
            unique=True,
        )
    )
    n_main, n_rescue = draw(st.sampled_from([1, 2, 3, 4, 5])), draw(st.sampled_from([0, 1, 2]))
    main, rescue, inline = pool[:n_main], pool[n_main : n_main + n_rescue], pool[7:]
    return Workflow(
        name=draw(st.sampled_from(["invoice-flow", "report", "a1"])),
        steps=_steps(draw, main, inline),
        rescue=_steps(draw, rescue, inline),
        title=draw(_optional(text)),
        explicit_id=draw(_optional(st.uuids().map(str))),
        description=draw(_optional(text)),
        country=draw(_optional(st.sampled_from(["ES", "DE", "US", "GB", "PT"]))),
        schema=draw(_optional(st.sampled_from(["bill/invoice", "fleet/inspection-report"]))),
        draft=draw(st.booleans()),
        disabled=draw(st.booleans()),
    )


# -- writing one model out, in one of many spellings ---------------------------------------


def _uuid_spelling(value: str, rnd: random.Random) -> str:
    u = uuid.UUID(value)
    return rnd.choice([str(u), str(u).upper(), u.hex, "{" + str(u) + "}", u.urn])


class Writer:
    """Turns a Workflow model into a raw document, making every presentational choice
    with `rnd`; `dump` makes the style choices (flow/block, quoting)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def maybe(self, p: float = 0.5) -> bool:
        return self.rnd.random() < p

    def document(self, wf: Workflow) -> dict[str, Any]:
        self.wf = wf
        spec: dict[str, Any] = {}
        if wf.explicit_id or self.maybe():
            spec["id"] = _uuid_spelling(wf.explicit_id or workflow_id(wf.name), self.rnd)
        if wf.title or self.maybe(0.3):
            spec["name"] = wf.title or wf.name
        for key in ("description", "country", "schema"):
            value = getattr(wf, key)
            if value is not None:
                spec[key] = value
            elif self.maybe(0.2):  # null: same as left out ("" is no country or schema)
                spec[key] = "" if key == "description" and self.maybe() else None
        for key in ("draft", "disabled"):
            if getattr(wf, key) or self.maybe(0.3):
                spec[key] = getattr(wf, key)
        spec["steps"] = [self.step(s) for s in wf.steps]
        if wf.rescue or self.maybe(0.2):
            spec["rescue"] = [self.step(s) for s in wf.rescue]
        meta: dict[str, Any] = {"name": wf.name}
        if self.maybe(0.3):
            meta["labels"] = {}
        return {"apiVersion": "fleetward/v1", "kind": "Workflow", "metadata": meta, "spec": spec}

    def effective_id(self, s: Step) -> str:
        return s.explicit_id or step_id(self.wf.name, s.name)

    def step(self, s: Step) -> dict[str, Any]:
        out: dict[str, Any] = {"name": s.name, "action": s.action}
        if s.explicit_id or self.maybe():
            out["id"] = _uuid_spelling(self.effective_id(s), self.rnd)
        if s.config or self.maybe(0.3):
            out["config"] = copy.deepcopy(s.config)
        for key in ("summary", "notes"):
            value = getattr(s, key)
            if value is not None:
                out[key] = value
            elif self.maybe(0.2):
                out[key] = "" if self.maybe() else None
        if s.next or self.maybe(0.2):
            out["next"] = [self.edge(e) for e in s.next]
        return out

    def edge(self, e: Edge) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("status", "code"):
            value = getattr(e, key)
            if value is not None:
                out[key] = value
            elif self.maybe(0.3):
                out[key] = "" if self.maybe() else None  # empty status: always
        if e.target is not None:
            target = next(s for s in self.wf.all_steps() if s.name == e.target)
            by_id = self.maybe()
            ref = _uuid_spelling(self.effective_id(target), self.rnd) if by_id else target.name
            out["step_id" if self.maybe() else "stepId"] = ref
        if e.stop:
            out["stop"] = True
        elif self.maybe(0.2):
            out["stop"] = False
        if e.inline:
            out["steps"] = [self.step(s) for s in e.inline]
        elif self.maybe(0.15):
            out["steps"] = []
        return out

    # -- YAML -----------------------------------------------------------------------

    def styled(self, value: Any) -> Any:
        if isinstance(value, dict):
            keys = list(value)
            self.rnd.shuffle(keys)
            out = CommentedMap((k, self.styled(value[k])) for k in keys)
            out.fa.set_flow_style() if self.maybe(0.3) else out.fa.set_block_style()
            return out
        if isinstance(value, list):
            seq = CommentedSeq(self.styled(v) for v in value)
            seq.fa.set_flow_style() if self.maybe(0.3) else seq.fa.set_block_style()
            return seq
        if isinstance(value, str):
            # ruamel may write `urn:uuid:…` plain inside a flow collection (valid YAML 1.2),
            # which libyaml (the C parser fleetward loads with) rejects: quote any ':'.
            plain = [] if ":" in value else [str, str]
            quote = self.rnd.choice([*plain, SingleQuotedScalarString, DoubleQuotedScalarString])
            return quote(value)
        return value

    def dump(self, doc: dict[str, Any]) -> bytes:
        if self.maybe(0.15):  # a JSON document is a YAML document too
            return json.dumps(doc, indent=self.rnd.choice([None, 2]), ensure_ascii=False).encode()
        yaml = YAML(typ="rt")
        yaml.width = self.rnd.choice([40, 80, 4096])
        mapping, sequence, offset = self.rnd.choice([(2, 2, 0), (2, 4, 2), (4, 4, 2), (3, 5, 1)])
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        buf = io.StringIO()
        yaml.dump(self.styled(doc), buf)
        return buf.getvalue().encode()


def spelled(wf: Workflow, rnd: random.Random) -> bytes:
    writer = Writer(rnd)
    return writer.dump(writer.document(wf))


def normalised(content: bytes) -> dict[str, Any]:
    result = load_file(content)
    problems = [r.problem for r in result if not isinstance(r, Document)]
    assert not problems, f"{[(p.error, p.reason) for p in problems]}\n---\n{content.decode()}"
    (document,) = result
    assert isinstance(document, Document)
    return normalize(document)


def workflow_hash(content: bytes) -> str:
    return spec_hash(normalised(content))


# -- one semantic change -------------------------------------------------------------------


def _config_change(action: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with one value changed, still valid for `action`."""
    c = copy.deepcopy(config)
    if action == "document.validate":
        c["strict"] = not c.get("strict", True)
    elif action == "document.sign":
        c["keyId"] = c.get("keyId", "key") + "-rotated"
    elif action == "email.send":
        c["subject"] = c.get("subject", "Hello") + " (again)"
    elif action == "webhook.post":
        c["url"] += "/v2"
    elif action == "log":
        c["message"] += "!"
    elif action == "sleep":
        c["duration"] = "PT7M" if c["duration"] != "PT7M" else "PT8M"
    elif action == "fail":
        c["reason"] += " again"
    elif action == "asset.update":
        attributes = c.setdefault("attributes", {})
        attributes["km"] = attributes["km"] + 1 if isinstance(attributes.get("km"), int) else 7
    elif action == "task.create":
        c["taskType"] += "-b"
    else:  # pragma: no cover - a new action: teach this test how to change its config
        raise AssertionError(f"no config change known for {action}")
    return c


@st.composite
def changed(draw: st.DrawFn, wf: Workflow) -> tuple[Workflow, str]:
    """A copy of `wf` with exactly one step's action, config value or edge target changed."""
    new = copy.deepcopy(wf)
    retargetable = []
    for lst in (new.steps, new.rescue):
        names = [s.name for s in lst]
        for i, s in enumerate(lst):
            for e in s.next:
                options: list[str | None] = [n for n in names[i + 1 :] if n != e.target]
                if e.target is not None:
                    options.append(None)  # None: stop instead
                if options and not e.inline:
                    retargetable.append((e, options))
    kinds = ["action", "config"] + (["edge"] if retargetable else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "edge":
        edge, options = draw(st.sampled_from(retargetable))
        target = draw(st.sampled_from(options))
        edge.target, edge.stop = target, target is None
        return new, f"edge retargeted to {target or 'stop'}"
    step = draw(st.sampled_from(new.all_steps()))
    if kind == "action":
        step.action = draw(st.sampled_from(sorted(set(ACTIONS) - {step.action})))
        step.config = draw(_config_of(step.action))
        return new, f"step {step.name!r} action → {step.action}"
    step.config = _config_change(step.action, step.config)
    return new, f"step {step.name!r} config → {step.config}"


# -- properties ----------------------------------------------------------------------------

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(wf=workflows(), seeds=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3))
def test_hash_ignores_how_the_yaml_is_written(wf: Workflow, seeds: list[int]) -> None:
    spellings = [spelled(wf, random.Random(seed)) for seed in seeds]
    hashes = {workflow_hash(text) for text in spellings}
    assert len(hashes) == 1, "\n=====\n".join(t.decode() for t in spellings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), wf=workflows(), seed=st.integers(0, 2**32 - 1))
def test_hash_changes_with_any_action_config_or_edge_target(
    data: st.DataObject, wf: Workflow, seed: int
) -> None:
    rnd = random.Random(seed)
    before = workflow_hash(spelled(wf, rnd))
    new, what = data.draw(changed(wf), label="change")
    after = spelled(new, rnd)
    assert workflow_hash(after) != before, f"{what} did not change the hash\n{after.decode()}"


# -- fixed examples ------------------------------------------------------------------------


def test_seed_step_id_body_is_the_same_spec_as_camel_case() -> None:
    """The golden case's seed body, with `step_id` respelled `stepId`: the identical spec."""
    (path,) = SEED_CASE.glob("*.yaml")
    seed = path.read_bytes()
    assert b'"step_id"' in seed
    camel = seed.replace(b'"step_id"', b'"stepId"')
    assert normalised(seed) == normalised(camel)
    assert "step_id" not in json.dumps(normalised(seed))


def test_uppercase_uuid_step_id_names_the_same_step() -> None:
    """A stepId spelled in upper case (as an author may copy it) is the step's id."""
    body = (
        "apiVersion: fleetward/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  steps:\n"
        "    - {id: 186522A6-E697-4E34-8498-EEE961BCB845, name: a, action: log,"
        " config: {message: hi}, next: [{status: SKIP, stop: true}]}\n"
        "    - {name: b, action: log, config: {message: hi},"
        " next: [{status: OK, step_id: %s}]}\n"
    )
    upper = workflow_hash((body % "186522A6-E697-4E34-8498-EEE961BCB845").encode())
    lower = workflow_hash((body % "186522a6-e697-4e34-8498-eee961bcb845").encode())
    by_name = workflow_hash((body % "a").encode())
    assert upper == lower == by_name


def test_a_yaml_date_in_a_config_hashes_like_its_iso_string() -> None:
    """Configs are JSON: an unquoted YAML date is stored (and hashed) as its ISO string."""
    body = (
        "apiVersion: fleetward/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  steps:\n"
        "    - {name: a, action: asset.update, config: {attributes: {since: %s}}}\n"
    )
    plain = normalised((body % "2024-01-02").encode())
    assert plain["steps"][0]["config"] == {"attributes": {"since": "2024-01-02"}}
    assert spec_hash(plain) == workflow_hash((body % '"2024-01-02"').encode())
