"""`fleetward schema`: the JSON Schema accepts what the loader accepts, and refuses what it refuses."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fleetward.cli import cli
from fleetward.kinds import API_VERSION, REGISTRY, Metadata
from fleetward.loading import load_file
from fleetward.schema import descriptions, kind_schema, manifest_schema, spellings

ROOT = Path(__file__).resolve().parent.parent
# Every manifest tree of the repository: manifests/ and examples/**/manifests (seed payloads).
MANIFEST_FILES = sorted(
    p
    for tree in [ROOT / "manifests", *sorted((ROOT / "examples").glob("**/manifests"))]
    for p in tree.rglob("*")
    if p.suffix in (".yaml", ".yml")
)
_YAML = YAML(typ="safe")


def as_json(value: Any) -> Any:
    """What an editor's YAML language server sees: unquoted dates are text."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def documents(path: Path) -> list[Any]:
    return [d for d in _YAML.load_all(path.read_text(encoding="utf-8")) if d is not None]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema())


def errors_of(validator: Draft202012Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(as_json(document))
    ]


# -- the repository's own documents ---------------------------------------------------------


def test_every_bundled_document_validates(validator: Draft202012Validator) -> None:
    failures = {
        f"{path.relative_to(ROOT)}#{i}": errors_of(validator, doc)
        for path in MANIFEST_FILES
        for i, doc in enumerate(documents(path))
        if errors_of(validator, doc)
    }
    count = sum(len(documents(p)) for p in MANIFEST_FILES)
    assert count >= 30  # every kind, the seeds' payloads included
    assert {d["kind"] for p in MANIFEST_FILES for d in documents(p)} == set(REGISTRY)
    assert failures == {}


def test_each_kind_schema_validates_its_documents() -> None:
    by_kind: dict[str, list[Any]] = {}
    for path in MANIFEST_FILES:
        for doc in documents(path):
            by_kind.setdefault(doc["kind"], []).append(doc)
    for kind, docs in by_kind.items():
        check = Draft202012Validator(kind_schema(kind))
        assert [d for d in docs if not check.is_valid(as_json(d))] == []
        other = next(k for k in REGISTRY if k != kind)
        assert not check.is_valid({**as_json(docs[0]), "kind": other})


def test_the_schemas_pass_the_meta_schema() -> None:
    Draft202012Validator.check_schema(manifest_schema())
    for kind in REGISTRY:
        Draft202012Validator.check_schema(kind_schema(kind))


def test_golden_case_documents_the_loader_accepts_validate(
    validator: Draft202012Validator,
) -> None:
    """No document the loader accepts is refused: an editor never flags a valid manifest."""
    checked = 0
    for path in sorted((ROOT / "tests" / "cases").glob("*/manifests/**/*.y*ml")):
        try:
            found = documents(path)
        except YAMLError:  # a case's broken file (failure isolation): the loader takes none
            continue
        for doc in found:
            if loader_accepts(doc):
                checked += 1
                assert errors_of(validator, doc) == [], path
    assert checked > 100


# -- what it refuses ------------------------------------------------------------------------

FLEET = {
    "apiVersion": API_VERSION,
    "kind": "Fleet",
    "metadata": {"name": "north"},
    "spec": {"prune": "stop", "assets": [{"externalAssetId": "TRK-1", "name": "Truck 1"}]},
}


def _set(path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(FLEET)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "complaint"),
    [
        (_set(("spec", "assets", 0, "nmae"), "x"), "'nmae' was unexpected"),
        (_set(("spec", "prune"), "delete"), "'delete' is not one of ['stop', 'forbid']"),
        (_set(("spec", "assets"), "TRK-1"), "'TRK-1' is not of type 'array'"),
        (_set(("metadata", "name"), "Not_A_Name"), "does not match"),
        (_set(("spec", "prunes"), "stop"), "'prunes' was unexpected"),
        (_set(("apiVersion",), "fleetward/v2"), "'fleetward/v1' was expected"),
    ],
    ids=["misspelt field", "wrong enum value", "wrong type", "bad name", "unknown", "version"],
)
def test_a_wrong_document_fails_as_the_loader_fails(
    validator: Draft202012Validator, doc: Any, complaint: str
) -> None:
    assert errors_of(validator, FLEET) == [] and loader_accepts(FLEET)
    assert any(complaint in e for e in errors_of(validator, doc)), errors_of(validator, doc)
    assert not loader_accepts(doc)


def test_seed_spellings_are_accepted_and_two_spellings_of_one_field_are_not(
    validator: Draft202012Validator,
) -> None:
    rule = {
        "apiVersion": API_VERSION,
        "kind": "AssetRule",
        "metadata": {"name": "tanks"},
        "spec": {
            "Name": "Tanks",
            "State": 0,
            "Expressions": [
                {"Field": "Id", "Specification": [{"Type": 1, "Name": "tank", "CharacterType": 2}]}
            ],
            "Outputs": [{"Field": "Asset", "Value": {"Id": "tank-{tank}"}}],
        },
    }
    assert errors_of(validator, rule) == [] and loader_accepts(rule)
    both = copy.deepcopy(rule)
    both["spec"]["name"] = "tanks"
    assert errors_of(validator, both) and not loader_accepts(both)
    missing = copy.deepcopy(rule)
    del missing["spec"]["Outputs"]
    assert errors_of(validator, missing) and not loader_accepts(missing)


def test_fields_have_descriptions_and_enums_are_listed() -> None:
    schema = manifest_schema()
    fleet = schema["$defs"]["FleetSpec"]["properties"]
    assert fleet["prune"]["enum"] == ["stop", "forbid"]
    assert "stopped" in fleet["prune"]["description"]
    assert schema["properties"]["kind"]["enum"] == list(REGISTRY)
    missing = [
        f"{model.__name__}.{name}"
        for model in all_models()
        for name in model.model_fields
        if descriptions.describe(model, name) is None
    ]
    assert missing == []
    known = {(k.__name__, f) for m in all_models() for k in m.__mro__ for f in m.model_fields}
    assert set(descriptions.FIELDS) - known == set()  # no entry for a field that is gone


def test_every_validator_is_stated_in_the_schema() -> None:
    """A validator may read other spellings or narrow a value: each one is in `spellings`."""
    stated = set(spellings.FIELDS) | spellings.PLAIN_VALIDATORS
    rules = spellings.model_rules(list(REGISTRY))
    unstated: list[str] = []
    for model in all_models():
        level, fields = validators_of(model)
        for name in fields:
            if not any((k.__name__, name) in stated for k in model.__mro__):
                unstated.append(f"{model.__name__}.{name}")
        if level and model.__name__ not in rules and model.__name__ not in _UNSTATED_MODEL_RULES:
            unstated.append(model.__name__)
    assert unstated == []


# Model validators a schema cannot state: TaskBatch remembers its raw input for error
# messages; a task's end time must fall before the year 10000.
_UNSTATED_MODEL_RULES = {"TaskBatchSpec", "TaskSpec"}


# -- the schema and the loader agree ----------------------------------------------------------


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)] + [
            k for v in value.values() for k in _keys(v)
        ]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


_SEEDS = [doc for path in MANIFEST_FILES for doc in documents(path)]
_KEYS = sorted(
    {k for doc in _SEEDS for k in _keys(doc)} | {"nmae", "Id", "step_id", "value", "Value"}
)
_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    7,
    0.5,
    2.5,
    "",
    " ",
    "x",
    "North Yard",
    "north-yard",
    "TRK-1",
    "Started",
    "Stopped",
    "Group",
    "Literal",
    "Any",
    "Digit",
    "stop",
    "forbid",
    "manual",
    "WINDOW",
    "IMMEDIATE",
    "CREATE",
    "OK",
    "KO",
    "high",
    "Urgent",
    "PT1H30M",
    "pt45m",
    "P1Y",
    "2h",
    "90m",
    "0 2 * * *",
    "Europe/Berlin",
    "6e73722a-f09b-5b00-87df-ce1fe0fbc8e9",
    "In",
    "Exists",
    "ES",
    "Fleet",
    "Workflow",
    "SyncPolicy",
    "log",
    [],
    {},
    ["x"],
    {"id": "a"},
    {"xid": "a"},
    {"userName": "jdoe"},
]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A bundled document with a few changes of the kinds JSON Schema can judge: a value
    of another type or another enum member, a key removed or added (a misspelling, the
    other spelling of a field), a value wrapped in a list or a mapping."""
    doc = copy.deepcopy(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(("replace", "replace", "delete", "add", "wrap")))
        if action == "replace":
            parent[last] = copy.deepcopy(draw(st.sampled_from(_VALUES)))
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(_KEYS))] = copy.deepcopy(
                draw(st.sampled_from(_VALUES))
            )
        elif action == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
    return doc


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=mutated_documents())
def test_the_schema_and_the_loader_agree(doc: Any) -> None:
    schema_says = not errors_of(_VALIDATOR, doc)
    event("accepted" if schema_says else "refused")
    assert schema_says == validates(doc), (errors_of(_VALIDATOR, doc), doc)


_VALIDATOR = Draft202012Validator(manifest_schema())


def validates(doc: Any) -> bool:
    """What the loader's schema stage decides (before a kind's checks across fields, such
    as a workflow's graph or a rule's placeholders, which no JSON Schema states)."""
    if not isinstance(doc, dict) or set(doc) != {"apiVersion", "kind", "metadata", "spec"}:
        return False
    plugin = REGISTRY.get(doc["kind"]) if isinstance(doc["kind"], str) else None
    if doc["apiVersion"] != API_VERSION or plugin is None:
        return False
    try:
        Metadata.model_validate(doc["metadata"])
        plugin.spec_adapter.validate_python(doc["spec"])
    except ValidationError:
        return False
    return True


def loader_accepts(doc: Any) -> bool:
    """Whether `load_file` reads the document as YAML text into a Document."""
    out = io.StringIO()
    YAML(typ="safe").dump(doc, out)
    return all(type(r).__name__ == "Document" for r in load_file(out.getvalue().encode()))


def test_agreement_on_the_bundled_documents() -> None:
    assert all(validates(doc) for doc in _SEEDS)
    assert all(loader_accepts(doc) for doc in _SEEDS)


# -- helpers over the models ----------------------------------------------------------------


def all_models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}

    def walk(model: type[BaseModel]) -> None:
        if model.__name__ in seen:
            return
        seen[model.__name__] = model
        for info in model.model_fields.values():
            visit(info.annotation)

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            walk(annotation)
        for arg in typing.get_args(annotation):
            visit(arg)

    walk(Metadata)
    for plugin in REGISTRY.values():
        walk(plugin.spec_model)
    return list(seen.values())


_FUNCTIONS = {"function-before", "function-after", "function-wrap", "function-plain"}


def validators_of(model: type[BaseModel]) -> tuple[bool, list[str]]:
    """(whether the model has a model validator, its fields that have a validator)."""
    core: Any = model.__pydantic_core_schema__
    definitions = {d["ref"]: d for d in core.get("definitions", ())}
    if core["type"] == "definitions":
        core = core["schema"]
    if core["type"] == "definition-ref":
        core = definitions[core["schema_ref"]]
    model_level = False
    while core["type"] in _FUNCTIONS:
        model_level, core = True, core["schema"]
    inner = core["schema"]
    while inner["type"] in _FUNCTIONS:
        model_level, inner = True, inner["schema"]
    fields = [name for name, f in inner["fields"].items() if _has_function(f["schema"])]
    return model_level, fields


def _has_function(node: Any) -> bool:
    """A validator function in a field's schema (not inside a nested model's own)."""
    if isinstance(node, list):
        return any(_has_function(n) for n in node)
    if not isinstance(node, dict):
        return False
    if node.get("type") in ("model", "definition-ref"):
        return False
    if node.get("type") in _FUNCTIONS:
        return not (isinstance(node.get("schema"), dict) and node["schema"].get("type") == "model")
    return any(_has_function(v) for k, v in node.items() if k not in ("metadata", "serialization"))


# -- the command ----------------------------------------------------------------------------


def test_schema_prints_the_combined_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == manifest_schema()


def test_schema_kind_prints_one_kind() -> None:
    result = CliRunner().invoke(cli, ["schema", "--kind", "Workflow"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["properties"]["kind"] == kind_schema("Workflow")["properties"]["kind"]
    assert "TaskSpec" not in printed["$defs"]


def test_schema_out_writes_a_file_per_kind_and_the_combined_one(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = CliRunner().invoke(cli, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f"{k}.schema.json" for k in REGISTRY), "manifest.schema.json"]
    )
    assert json.loads((out / "Fleet.schema.json").read_text()) == kind_schema("Fleet")


def test_schema_unknown_kind_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["schema", "--kind", "Fleets"])
    assert result.exit_code == 1
    assert "Unknown kind 'Fleets'" in result.output
    assert "Traceback" not in result.output
