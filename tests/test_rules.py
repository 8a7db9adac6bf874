"""Asset rules and stream sets: matching semantics, templates, CSV streams, the seed's
RuleModel bodies, incremental re-matching, `rules preview`, and rule lifecycles end to end.

Plan outcomes per scenario are golden cases (tests/cases/rules-*); bad input is
in test_rules_bad_input. This file pins the semantics the README documents.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import run_cli

from fleetward.cli import cli
from fleetward.errors import ManifestError
from fleetward.kinds import KindCaches
from fleetward.kinds.asset_rule import AssetRuleSpec, execution_progress
from fleetward.kinds.asset_rule import outputs as rule_outputs
from fleetward.kinds.asset_rule.explaining import captures, explain
from fleetward.kinds.asset_rule.matching import (
    MAX_FIELD_LENGTH,
    compile_rule,
    match,
    placeholders,
    render,
    solve,
)
from fleetward.kinds.base import DataProblems
from fleetward.kinds.streams import parse_csv
from fleetward.model import StoredObject
from fleetward.pipeline import SourceOptions, as_stored, resolve
from fleetward.planning import plan

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).parent / "cases"


def spec(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def rule(*expressions: tuple[str, list[dict[str, Any]]]) -> Any:
    return compile_rule(
        {"expressions": [{"field": f, "specifications": s} for f, s in expressions]}
    )


def stream(stream_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": stream_id, "metadata": {}, **fields}


# -- matching semantics (README: "How a rule matches a stream") ----------------------


def test_literal_and_delimiter_match_exactly_and_groups_capture_tokens() -> None:
    tanks = rule(
        (
            "Id",
            [
                spec("Group", name="site"),
                spec("Delimiter", value="-"),
                spec("Literal", value="Tank"),
                spec("Group", name="tank", characterType="Digit"),
                spec("Group", name="measurement"),
            ],
        )
    )
    assert match(tanks, stream("SL-Tank01Press")) == {
        "streamId": "SL-Tank01Press",
        "site": "SL",
        "tank": "01",
        "measurement": "Press",
    }
    assert match(tanks, stream("SL-tank01Press")) is None  # case-sensitive
    assert match(tanks, stream("SL-Tank0")) is None  # every Group takes at least one character
    # Greedy, but a Group gives characters back so that the rest still matches.
    assert match(tanks, stream("SL-Tank01")) == {
        "streamId": "SL-Tank01",
        "site": "SL",
        "tank": "0",
        "measurement": "1",
    }


def test_groups_are_greedy_leftmost_first() -> None:
    two = rule(("Id", [spec("Group", name="a"), spec("Group", name="b")]))
    assert match(two, stream("abcd")) == {"streamId": "abcd", "a": "abc", "b": "d"}
    sized = rule(("Id", [spec("Group", name="a", characterLength=1), spec("Group", name="b")]))
    assert match(sized, stream("abcd")) == {"streamId": "abcd", "a": "a", "b": "bcd"}


def test_a_group_never_contains_a_delimiter_of_its_expression() -> None:
    dotted = rule(
        ("Id", [spec("Group", name="a"), spec("Delimiter", value="."), spec("Group", name="b")])
    )
    assert match(dotted, stream("x.y")) == {"streamId": "x.y", "a": "x", "b": "y"}
    # Two dots, one Delimiter: neither Group may take a dot, so no match (no guessing).
    assert match(dotted, stream("x.y.z")) is None
    # Multi-character delimiters work the same way.
    dashes = rule(
        ("Id", [spec("Group", name="a"), spec("Delimiter", value="--"), spec("Group", name="b")])
    )
    assert match(dashes, stream("a-b--c")) == {"streamId": "a-b--c", "a": "a-b", "b": "c"}


@pytest.mark.parametrize(
    ("character_type", "value", "matches"),
    [
        ("Any", "a1_", True),
        ("Letter", "abc", True),
        ("Letter", "ab1", False),
        ("Digit", "042", True),
        ("Digit", "4a", False),
        ("Alphanumeric", "a4", True),
        ("Alphanumeric", "a_4", False),
        # Letter: Unicode category L*; Digit: 0-9; Alphanumeric: either (README).
        ("Letter", "éß", True),
        ("Letter", "x²", False),
        ("Letter", "Ⅻ", False),
        ("Digit", "٣", False),
        ("Alphanumeric", "a½", False),
        ("Alphanumeric", "a²", False),
        ("Alphanumeric", "Ⅻ", False),
        ("Alphanumeric", "a٣", False),
    ],
)
def test_character_types(character_type: str, value: str, matches: bool) -> None:
    one = rule(("Id", [spec("Group", name="x", characterType=character_type)]))
    assert (match(one, stream(value)) is not None) is matches


def test_value_mappings_strict_and_not() -> None:
    mappings = {"Press": "Pressure", "Temp": "Temperature"}
    lenient = rule(("Id", [spec("Group", name="m", valueMappings=mappings)]))
    strict = rule(
        ("Id", [spec("Group", name="m", valueMappings=mappings, strictValueMappings=True)])
    )
    assert match(lenient, stream("Press"))["m"] == "Pressure"  # type: ignore[index]
    assert match(lenient, stream("Flow"))["m"] == "Flow"  # type: ignore[index]
    assert match(strict, stream("Temp"))["m"] == "Temperature"  # type: ignore[index]
    assert match(strict, stream("Flow")) is None


# The rule of the issue: `tank` takes any characters, so only the strict mapping of
# `measurement` says where the tank number ends.
TANK_SPECS = [
    spec("Group", name="site"),
    spec("Delimiter", value="-"),
    spec("Literal", value="Tank"),
    spec("Group", name="tank"),
    spec(
        "Group",
        name="measurement",
        valueMappings={"Press": "Pressure", "Temp": "Temperature"},
        strictValueMappings=True,
    ),
]


def test_a_strict_mapping_takes_part_in_matching() -> None:
    """A greedy Group gives way so that a strict Group after it takes a mapped text: a
    strict mapping is part of "the rest still matches" (README)."""
    tanks = rule(("Id", TANK_SPECS))
    assert match(tanks, stream("SL-Tank01Press")) == {
        "streamId": "SL-Tank01Press",
        "site": "SL",
        "tank": "01",
        "measurement": "Pressure",
    }
    assert match(tanks, stream("SL-Tank01Temp"))["measurement"] == "Temperature"  # type: ignore[index]
    # Still greedy: the earlier Group takes all it can ("Press" is also a tank here).
    assert match(tanks, stream("SL-TankPressTemp"))["tank"] == "Press"  # type: ignore[index]
    assert match(tanks, stream("SL-Tank01Pres")) is None  # no mapped text ends it
    assert match(tanks, stream("SL-Tank01Press2")) is None
    # The strict Group's own characterType and the Delimiter rule still hold.
    lettered = rule(
        (
            "Id",
            [
                spec("Group", name="a"),
                spec(
                    "Group",
                    name="b",
                    characterType="Letter",
                    valueMappings={"x1": "one", "x": "ex"},
                    strictValueMappings=True,
                ),
            ],
        )
    )
    assert match(lettered, stream("ax1")) is None  # "x1" is not Letters only
    assert match(lettered, stream("abx"))["b"] == "ex"  # type: ignore[index]
    dotted = rule(
        (
            "Id",
            [
                spec("Group", name="a"),
                spec("Delimiter", value="."),
                spec("Group", name="b", valueMappings={"c.d": "CD"}, strictValueMappings=True),
            ],
        )
    )
    assert match(dotted, stream("a.c.d")) is None  # a Group never contains a Delimiter


def test_explain_shows_the_split_a_strict_mapping_made() -> None:
    tanks = rule(("Id", TANK_SPECS))
    (verdict,) = explain(tanks, stream("SL-Tank01Press"))
    assert verdict.matched
    assert [s.matched for s in verdict.steps] == ["SL", "-", "Tank", "01", "Press"]
    assert verdict.steps[4].note == "token measurement = 'Pressure' (mapped from 'Press')"
    (refused,) = explain(tanks, stream("SL-Tank01Pres"))
    assert not refused.matched
    assert refused.summary.startswith("specification 5 (Group 'measurement' strict mappings")
    assert "('Press', 'Temp') can follow the ones before it" in refused.summary
    assert refused.steps[-1].matched is None


def test_a_strict_mapping_keeps_matching_linear() -> None:
    """A strict Group tries one text per distinct mapped length at each position."""
    (expression,) = rule(
        ("Id", [spec("Group", name="a"), spec("Group", name="b"), *TANK_SPECS[3:]])
    )
    for value in ("Press" * 200, "x" * 999 + "Temp", "Temp" * 250 + "x"):
        solved = solve(expression, value)
        assert solved.steps <= 2 * (len(expression.specifications) + 1) * (len(value) + 1)
    assert solve(expression, "Press" * 200).texts is not None
    assert solve(expression, "Temp" * 250 + "x").texts is None


def _reference(specs: list[dict[str, Any]], value: str) -> tuple[str, ...] | None:
    """Matching by plain backtracking over every split (exponential; small inputs only):
    each Wildcard or Group tries its longest text first, as the README says."""
    delimiters = [s["value"] for s in specs if s["type"] == "Delimiter"]
    classes = {
        "Any": lambda c: True,
        "Letter": str.isalpha,
        "Digit": lambda c: c in "0123456789",
        "Alphanumeric": lambda c: c.isalpha() or c in "0123456789",
    }

    def takes(s: dict[str, Any], start: int, text: str) -> bool:
        accepts = classes[s.get("characterType", "Any")]
        length = s.get("characterLength")
        if not text or (length and len(text) != length) or not all(map(accepts, text)):
            return False
        if any(value.startswith(d, start + i) for i in range(len(text)) for d in delimiters):
            return False
        mappings = s.get("valueMappings") or {}
        return not s.get("strictValueMappings") or text in mappings

    def go(i: int, p: int) -> tuple[str, ...] | None:
        if i == len(specs):
            return () if p == len(value) else None
        s = specs[i]
        if s["type"] in ("Literal", "Delimiter"):
            rest = go(i + 1, p + len(s["value"])) if value.startswith(s["value"], p) else None
            return None if rest is None else (s["value"], *rest)
        for end in range(len(value), p, -1):
            if takes(s, p, value[p:end]):
                rest = go(i + 1, end)
                if rest is not None:
                    return (value[p:end], *rest)
        return None

    return go(0, 0)


_SPEC = st.one_of(
    st.builds(lambda v: spec("Literal", value=v), st.sampled_from(["a", "ab", "1"])),
    st.builds(lambda v: spec("Delimiter", value=v), st.sampled_from(["-", "--"])),
    st.builds(
        lambda t, n, strict, mapped: spec(
            "Group",
            name="g",
            characterType=t,
            **({"characterLength": n} if n else {}),
            **({"valueMappings": {m: m.upper() for m in mapped}} if mapped else {}),
            **({"strictValueMappings": True} if strict and mapped else {}),
        ),
        st.sampled_from(["Any", "Letter", "Digit", "Alphanumeric"]),
        st.sampled_from([None, None, 1, 2]),
        st.booleans(),
        st.lists(st.sampled_from(["a", "ab", "b1", "1", "ba", "a-", "é"]), max_size=3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_SPEC, min_size=1, max_size=4), st.text("ab1-é", max_size=9))
def test_matching_agrees_with_plain_backtracking(specs: list[dict[str, Any]], value: str) -> None:
    """The bounded matcher, and the regular expression where `match` uses it, split a value
    exactly as trying every split longest-first would, strict mappings included."""
    (expression,) = rule(("Id", specs))
    expected = _reference(specs, value)
    assert solve(expression, value).texts == expected
    split = captures((expression,), stream(value))
    if expected is None:
        assert split is None
    else:
        assert split is not None
        groups = [t for s, t in zip(specs, expected, strict=True) if s["type"] == "Group"]
        assert [c.text for c in split] == groups


def test_unnamed_wildcard_matches_but_captures_nothing() -> None:
    wild = rule(
        ("Id", [spec("Wildcard"), spec("Delimiter", value="."), spec("Wildcard", name="signal")])
    )
    assert match(wild, stream("PS1.Flow")) == {"streamId": "PS1.Flow", "signal": "Flow"}


def test_every_expression_must_match_and_fields_read_name_description_metadata() -> None:
    both = rule(
        ("Name", [spec("Literal", value="Tank "), spec("Group", name="n")]),
        ("site", [spec("Group", name="site")]),
    )
    good = stream("S1", name="Tank 7", metadata={"site": "Oslo"})
    assert match(both, good) == {"streamId": "S1", "n": "7", "site": "Oslo"}
    assert match(both, stream("S2", name="Tank 7")) is None  # no metadata key: no match
    assert match(both, stream("S3", name="Pump 7", metadata={"site": "Oslo"})) is None
    described = rule(("Description", [spec("Wildcard", name="d")]))
    assert match(described, stream("S4")) is None  # a missing description reads as ""


def test_explain_names_the_specification_where_matching_stops() -> None:
    tanks = rule(
        (
            "Id",
            [
                spec("Group", name="site"),
                spec("Delimiter", value="-"),
                spec("Literal", value="Tank"),
                spec("Group", name="tank", characterType="Digit"),
            ],
        )
    )
    (verdict,) = explain(tanks, stream("SL-TankXX"))
    assert not verdict.matched
    assert verdict.summary.startswith("specification 4 (Group 'tank' Digit) does not match")
    assert [s.matched for s in verdict.steps] == ["SL", "-", "Tank", None]
    (leftover,) = explain(rule(("Id", [spec("Literal", value="SL")])), stream("SL-1"))
    assert "'-1' is left over" in leftover.summary
    strict = rule(
        ("Id", [spec("Group", name="m", valueMappings={"a": "A"}, strictValueMappings=True)])
    )
    (rejected,) = explain(strict, stream("b"))
    assert not rejected.matched and "strict valueMappings" in rejected.summary


def test_placeholders_and_rendering() -> None:
    assert placeholders("{site}-Tank{tank}") == ["site", "tank"]
    assert placeholders("{{literal}} {x}") == ["x"]
    assert isinstance(placeholders("{x!r}"), str)
    assert isinstance(placeholders("{}"), str)
    assert isinstance(placeholders("{unclosed"), str)
    assert render("{{id}}={site}", {"site": "SL"}) == "{id}=SL"


# -- the seed's RuleModel bodies -----------------------------------------------------------

SEED_BODY = {
    "Id": "ruleId",
    "Name": "name",
    "Description": "description",
    "ExampleStreamId": "exampleId",
    "AutomationId": "00000000-0000-0000-0000-000000000000",
    "State": "Started",
    "Expressions": [{"Field": "Id", "Specification": [{"Type": "Wildcard", "Name": "id"}]}],
    "Outputs": [{"Field": "Metadata", "Value": {"key": "{id}"}}],
    "CreationTime": "0001-01-01T00:00:00",
    "ModifiedTime": "0001-01-01T00:00:00",
    "ErrorInfo": {"ErrorCount": 2},
}


def test_the_seed_rule_model_body_validates_unchanged() -> None:
    parsed = AssetRuleSpec.model_validate(SEED_BODY)
    assert parsed.expressions[0].specifications[0].type == "Wildcard"
    assert parsed.state == "Started"
    coded = AssetRuleSpec.model_validate(
        {
            **SEED_BODY,
            "State": 1,
            "Expressions": [
                {"Field": "Id", "Specifications": [{"Type": 1, "Name": "g", "CharacterType": 2}]}
            ],
        }
    )
    assert coded.state == "Stopped"
    assert coded.expressions[0].specifications[0].type == "Group"
    assert coded.expressions[0].specifications[0].characterType == "Digit"


def test_seed_payload_examples_keep_the_seed_spelling() -> None:
    tree = ROOT / "examples" / "seed-payloads" / "asset-rules" / "manifests"
    bodies = sorted(tree.glob("*.yaml"))
    assert len(bodies) >= 2
    for body in bodies:
        text = body.read_text()
        assert '"Expressions"' in text and '"Outputs"' in text
        assert "expressions:" not in text
    desired = resolve(SourceOptions(source=str(tree.parent), path="manifests", no_git=True))
    assert sum(1 for k in desired.objects if k.startswith("AssetRule/")) == len(bodies)


# -- CSV streams -------------------------------------------------------------------------


def test_csv_rows_become_streams_with_metadata_columns() -> None:
    rows = parse_csv(
        b"\xef\xbb\xbfid,name,description,metadata.site\n"
        b'S1,"Tank 1, north",,Oslo\n\nS2,Tank 2,desc,\n'
    )
    assert not isinstance(rows, DataProblems)
    assert list(rows) == [
        (2, {"id": "S1", "name": "Tank 1, north", "metadata": {"site": "Oslo"}}),
        (4, {"id": "S2", "name": "Tank 2", "description": "desc", "metadata": {}}),
    ]


def test_csv_problems_carry_lines() -> None:
    bad = parse_csv(b"id,name\nS 1,x\nS2,y\nS2,z\n")
    assert isinstance(bad, DataProblems)
    assert [(line, p.error) for line, _, p in bad.problems] == [
        (2, "Invalid stream id 'S 1'"),
        (4, "Duplicate stream id 'S2'"),
    ]


def test_csv_streams_are_located_by_row_in_cross_document_errors(tmp_path: Path) -> None:
    shutil.copytree(CASES / "rules-tank-example" / "manifests", tmp_path / "manifests")
    (tmp_path / "manifests" / "more.yaml").write_text(
        "apiVersion: fleetward/v1\nkind: StreamSet\nmetadata: {name: more}\n"
        "spec:\n  streams:\n    - {id: SL-Tank01Temp}\n"
    )
    with pytest.raises(ManifestError) as raised:
        resolve(SourceOptions(source=str(tmp_path), path="manifests", no_git=True))
    (problem,) = raised.value.problems
    assert problem.location in ("manifests/more.yaml:6:7", "manifests/streams/tanks.csv:3:1")
    assert "manifests/streams/tanks.csv:3:1" in f"{problem.location} {problem.reason}"


# -- bounded matching (review finding: catastrophic backtracking) -------------------------


def test_a_value_that_does_not_match_costs_linear_steps_not_every_split() -> None:
    """Six Wildcards and a Literal on 80 characters, and Group Wildcard Group Group
    Literal on 390: a backtracking regex tried every split (seconds per stream)."""
    wildcards = rule(("Id", [*[spec("Wildcard") for _ in range(6)], spec("Literal", value="Z")]))
    (expression,) = wildcards
    value = "a" * 80
    solved = solve(expression, value)
    assert solved.texts is None
    assert solved.steps <= 2 * (len(expression.specifications) + 1) * (len(value) + 1)
    assert match(wildcards, stream(value)) is None
    description = "San Leandro tank 01 temperature sensor " * 10
    groups = rule(
        (
            "Description",
            [
                spec("Group", name="a"),
                spec("Wildcard"),
                spec("Group", name="b"),
                spec("Group", name="c"),
                spec("Literal", value=" pressure"),
            ],
        )
    )
    (expression,) = groups
    solved = solve(expression, description)
    assert solved.texts is None
    assert solved.steps <= 2 * (len(expression.specifications) + 1) * (len(description) + 1)
    verdicts = explain(groups, stream("x", description=description))
    assert "specification 5" in verdicts[0].summary
    # The same shape on a value that matches: still greedy, leftmost first.
    assert match(groups, stream("x", description="ab cd pressure")) == {
        "streamId": "x",
        "a": "ab",
        "b": "c",
        "c": "d",
    }


@pytest.mark.parametrize(
    "value", ["abcd", "a.b", "a.b.c", "a-b--c", "x1.y22", "ü.b", "é-ß--ç", "a" * 40 + ".b"]
)
def test_the_fast_path_and_the_bounded_matcher_agree(value: str) -> None:
    """`match` uses a regular expression where its worst case is small (ASCII, few
    splits) and `solve` elsewhere: both give the same texts."""
    specs = [
        [spec("Group", name="a"), spec("Group", name="b")],
        [spec("Group", name="a"), spec("Delimiter", value="."), spec("Group", name="b")],
        [spec("Group", name="a"), spec("Delimiter", value="--"), spec("Group", name="b")],
        [spec("Group", name="a", characterType="Letter"), spec("Wildcard", name="b")],
        [spec("Wildcard", name="a", characterLength=2), spec("Group", name="b")],
    ]
    for specifications in specs:
        (expression,) = rule(("Id", specifications))
        solved = solve(expression, value).texts
        found = match((expression,), stream(value))
        expected = (
            None
            if solved is None
            else {"streamId": value, **{n: solved[i - 1] for i, n in expression.tokens}}
        )
        assert found == expected, (specifications, value)


def test_a_field_longer_than_the_cap_matches_nothing_and_counts_as_an_error() -> None:
    anything = rule(("Id", [spec("Group", name="a")]))
    assert match(anything, stream("a" * MAX_FIELD_LENGTH)) is not None
    assert match(anything, stream("a" * (MAX_FIELD_LENGTH + 1))) is None
    (verdict,) = explain(anything, stream("a" * (MAX_FIELD_LENGTH + 1)))
    assert f"at most {MAX_FIELD_LENGTH}" in verdict.summary
    compiled = rule_outputs.compile_outputs(
        {
            "expressions": [{"field": "Id", "specifications": [spec("Group", name="a")]}],
            "outputs": [{"field": "Asset", "value": {"id": "A-{a}"}}],
        }
    )
    result = rule_outputs.evaluate(compiled, stream("a" * (MAX_FIELD_LENGTH + 1)))
    assert result is not None and not result.matched and not result.assets
    assert f"than the {MAX_FIELD_LENGTH}" in result.errors[0]


# -- incremental matching ------------------------------------------------------------------


def test_adding_a_stream_matches_only_that_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(CASES / "rules-tank-example" / "manifests", tmp_path / "manifests")
    options = SourceOptions(source=str(tmp_path), path="manifests", no_git=True)
    caches = KindCaches()  # a daemon's, kept from one revision to the next
    resolve(options, caches=caches)
    seen: list[str] = []
    real = rule_outputs.evaluate

    def counting(compiled: rule_outputs.CompiledRule, s: Mapping[str, Any]) -> Any:
        seen.append(s["id"])
        return real(compiled, s)

    monkeypatch.setattr(rule_outputs, "evaluate", counting)
    again = resolve(options, caches=caches)
    assert seen == []  # nothing changed: nothing is matched again
    csv = tmp_path / "manifests" / "streams" / "tanks.csv"
    csv.write_text(csv.read_text() + "SL-Tank04Press,Tank 04,,San Leandro,bar\n")
    after = resolve(options, caches=caches)
    assert seen == ["SL-Tank04Press"]
    unchanged = "Asset/SL-Tank01"
    assert after.objects[unchanged] is again.objects[unchanged]  # type: ignore[index]


# -- end to end ----------------------------------------------------------------------------


_CLI_ENV = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"}


def _cli(*args: str, process: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI in-process, or as `python -m fleetward` if `process`."""
    if not process:
        return run_cli(args, env=_CLI_ENV)
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args],
        check=False,
        capture_output=True,
        text=True,
        env=_CLI_ENV,
    )


def test_preview_explains_a_stream_without_touching_the_store(tmp_path: Path) -> None:
    where = ["--no-git", "--source", str(CASES / "rules-tank-example")]
    shown = _cli("rules", "preview", "tanks", *where)
    assert shown.returncode == 0, shown.stderr
    assert "Streams matched: 6" in shown.stdout and "Assets: 3" in shown.stdout
    assert "Stream SL-Tank01Press matches:" in shown.stdout  # the exampleStreamId
    as_json = json.loads(_cli("rules", "preview", "tanks", *where, "--json").stdout)
    assert [a["spec"]["externalAssetId"] for a in as_json["assets"]] == [
        "PHI-Tank03",
        "SL-Tank01",
        "SL-Tank02",
    ]
    assert as_json["explain"]["matches"] is True
    assert as_json["explain"]["tokens"]["measurement"] == "Pressure"
    missing = _cli("rules", "preview", "tankz", *where, process=True)
    assert missing.returncode == 1 and 'Did you mean "tanks"?' in missing.stderr
    assert "Traceback" not in missing.stderr


ISSUE_RULE = """apiVersion: fleetward/v1
kind: AssetRule
metadata: {name: tanks}
spec:
  exampleStreamId: SL-Tank01Press
  expressions:
    - field: Id
      specifications:
        - {type: Group, name: site}
        - {type: Delimiter, value: "-"}
        - {type: Literal, value: Tank}
        - {type: Group, name: tank}
        - type: Group
          name: measurement
          valueMappings: {Press: Pressure, Temp: Temperature}
          strictValueMappings: true
  outputs:
    - field: Asset
      value:
        id: "{site}-Tank{tank}"
        streamReferences: [{id: "{measurement}", streamId: "{streamId}"}]
"""


def test_preview_shows_the_split_each_matched_stream_got(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "s.yaml": _streams("SL-Tank01Press", "SL-Tank01Temp", "SL-Tank01Pres"),
            "r.yaml": ISSUE_RULE,
        },
    )
    where = ["--no-git", "--source", str(tmp_path)]
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200", "FLEETWARD_STATE_DIR": None})
    shown = runner.invoke(cli, ["rules", "preview", "tanks", *where])
    assert shown.exit_code == 0, shown.output
    assert "Streams matched: 2" in shown.stdout and "Assets: 1" in shown.stdout
    lines = shown.stdout.splitlines()
    assert "  SL-Tank01Press  site='SL', tank='01', measurement='Pressure' (from 'Press')" in lines
    assert "  SL-Tank01Temp  site='SL', tank='01', measurement='Temperature' (from 'Temp')" in lines
    assert any("4. Group 'tank': '01'  token tank = '01'" in line for line in lines)
    as_json = json.loads(runner.invoke(cli, ["rules", "preview", "tanks", *where, "--json"]).stdout)
    assert [m["streamId"] for m in as_json["matches"]] == ["SL-Tank01Press", "SL-Tank01Temp"]
    assert as_json["matches"][0]["split"] == [
        {"field": "Id", "token": "site", "text": "SL", "value": "SL"},
        {"field": "Id", "token": "tank", "text": "01", "value": "01"},
        {"field": "Id", "token": "measurement", "text": "Press", "value": "Pressure"},
    ]
    refused = runner.invoke(cli, ["rules", "preview", "tanks", *where, "--stream", "SL-Tank01Pres"])
    assert "Stream SL-Tank01Pres does not match:" in refused.stdout
    assert "no text its strict valueMappings name ('Press', 'Temp')" in refused.stdout


def test_preview_lists_the_streams_it_does_not_match_and_where_they_fail(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tanks"
    shutil.copytree(CASES / "rules-tank-example", tree)
    with (tree / "manifests" / "streams" / "tanks.csv").open("a") as csv:
        csv.write(
            "SL_Tank05Press,wrong delimiter,x,San Leandro,bar\n"  # fails at the Delimiter
            "SL-TankXXPress,letters for digits,x,San Leandro,bar\n"  # at the Digit group
            "SL-Tank04Flow,not a mapped measurement,x,San Leandro,l\n"  # strict mappings
            "SL-Tank06Press,no site,x,,bar\n"  # expression 2: no metadata.site
        )
    where = ["--no-git", "--source", str(tree)]

    shown = _cli("rules", "preview", "tanks", *where)

    assert shown.returncode == 0, shown.stderr
    assert "Streams matched: 6" in shown.stdout
    lines = shown.stdout.splitlines()
    at = lines.index("Streams not matched: 4")
    listed = {line.split()[0]: line for line in lines[at + 1 : at + 5]}
    assert "expression 1 (Id): specification 2 (Delimiter '-') does not match at position 3" in (
        listed["SL_Tank05Press"]
    )
    assert "expression 1 (Id): specification 4 (Group 'tank' Digit)" in listed["SL-TankXXPress"]
    # The matcher names the texts the strict mappings allow, none of which fits here.
    assert "strict valueMappings name ('Press', 'Temp')" in listed["SL-Tank04Flow"]
    assert "expression 2 (site): " in listed["SL-Tank06Press"]

    as_json = json.loads(_cli("rules", "preview", "tanks", *where, "--json").stdout)
    assert as_json["streamsNotMatched"] == 4
    failing = {m["streamId"]: (m["expression"], m["specification"]) for m in as_json["unmatched"]}
    assert failing == {
        "SL_Tank05Press": (1, 2),
        "SL-TankXXPress": (1, 4),
        "SL-Tank04Flow": (1, 5),
        "SL-Tank06Press": (2, None),
    }


def test_rule_lifecycle_apply_stop_delete_keep(tmp_path: Path) -> None:
    """Apply the tank example, stop the rule, then delete it with keepOldAssets: the
    assets stay active and later plans leave them alone."""
    shutil.copytree(CASES / "rules-tank-example" / "manifests", tmp_path / "manifests")
    rule_file = tmp_path / "manifests" / "rules" / "tanks.yaml"
    where = ["--no-git", "--source", str(tmp_path), "--state-dir", str(tmp_path / "state")]

    def apply() -> None:
        result = _cli("apply", "--auto-approve", "--allow-mass-stop", *where)
        assert result.returncode == 0, result.stdout + result.stderr

    def store() -> dict[str, Any]:
        out = _cli("state", "show", "--state-dir", str(tmp_path / "state"), "--json").stdout
        return {o["key"]: o for o in json.loads(out)["objects"]}

    apply()
    objects = store()
    progress = execution_progress(
        StoredObject.from_doc(o) for o in objects.values() if o["kind"] == "AssetRule"
    )
    assert progress["tanks"]["State"] == "Completed"
    assert progress["tanks"]["StreamsMatched"] == 6 and progress["tanks"]["AssetsProduced"] == 3
    shown = _cli("state", "show", "--state-dir", str(tmp_path / "state")).stdout
    assert "ASSET RULE" in shown and "Completed" in shown

    rule_file.write_text(rule_file.read_text().replace("state: Started", "state: Stopped"))
    apply()
    assert store()["AssetRule/tanks"]["status"]["executionProgress"]["state"] == "Stopped"

    rule_file.write_text(
        rule_file.read_text().replace("state: Stopped", "state: Stopped\n  keepOldAssets: true")
    )
    apply()
    rule_file.unlink()
    plan = json.loads(_cli("plan", *where, "--json").stdout)
    actions = {c["address"]: c["action"] for c in plan["changes"]}
    assert actions["AssetRule/tanks"] == "delete"
    assert not any(a.startswith("Asset/") for a in actions)  # kept
    assert actions["StreamMetadata/SL-Tank01Press/tanks"] == "delete"  # keepOldMetadata: false
    apply()
    objects = store()
    assert objects["Asset/SL-Tank01"]["state"] == "active"
    again = _cli("plan", *where)
    assert "No changes." in again.stdout, again.stdout


def test_a_revision_reviewed_against_itself_shows_no_changes() -> None:
    """`plan --base REF` diffs against the store a first apply of REF makes, derived
    status (a rule's progress) included, so an unchanged rule is no change."""
    desired = resolve(
        SourceOptions(source=str(CASES / "rules-tank-example"), path="manifests", no_git=True)
    )
    assert plan(desired, as_stored(desired), "2024-05-01T10:00:00Z").changes == ()


# -- review findings: cache keys, stopped rules, preview conflicts ---------------------------

STREAMS_YAML = """apiVersion: fleetward/v1
kind: StreamSet
metadata: {name: s}
spec:
  streams:
%s
"""


def _streams(*ids: str) -> str:
    return STREAMS_YAML % "\n".join(f"    - {{id: {i}}}" for i in ids)


def _write(root: Path, files: Mapping[str, str]) -> SourceOptions:
    manifests = root / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)
    manifests.mkdir(parents=True)
    for name, text in files.items():
        (manifests / name).write_text(text)
    return SourceOptions(source=str(root), path="manifests", no_git=True)


def test_renaming_a_rule_and_changing_its_labels_reaches_its_assets(tmp_path: Path) -> None:
    """The memo of merged assets was keyed without the rule's name and labels."""

    def rule_yaml(name: str, team: str) -> str:
        return (
            f"apiVersion: fleetward/v1\nkind: AssetRule\n"
            f"metadata: {{name: {name}, labels: {{team: {team}}}}}\n"
            "spec:\n  Name: fixed\n  Id: fixed\n  expressions:\n    - field: Id\n"
            "      specifications: [{type: Group, name: a}]\n  outputs:\n"
            '    - field: Asset\n      value: {id: "A-{a}"}\n'
        )

    first = resolve(_write(tmp_path, {"s.yaml": _streams("x1"), "r.yaml": rule_yaml("old", "red")}))
    asset = first.objects["Asset/A-x1"]  # type: ignore[index]
    assert (asset.owner, dict(asset.labels)) == ("AssetRule/old", {"team": "red"})
    second = resolve(
        _write(tmp_path, {"s.yaml": _streams("x1"), "r.yaml": rule_yaml("new", "blue")})
    )
    asset = second.objects["Asset/A-x1"]  # type: ignore[index]
    assert (asset.owner, dict(asset.labels)) == ("AssetRule/new", {"team": "blue"})


def _merge_rule(name: str, literal: str, state: str) -> str:
    return (
        f"apiVersion: fleetward/v1\nkind: AssetRule\nmetadata: {{name: {name}}}\n"
        f"spec:\n  state: {state}\n  expressions:\n    - field: Id\n"
        "      specifications: [{type: Group, name: a, characterLength: 1}, "
        f"{{type: Literal, value: {literal}}}]\n  outputs:\n    - field: Asset\n"
        f'      value: {{id: "A-{{a}}", streamReferences: [{{id: "{literal}", '
        'streamId: "{streamId}"}]}\n'
    )


@pytest.mark.parametrize("stopped", ["a", "b"])
def test_stopping_a_rule_keeps_the_assets_it_merged_with_another(
    tmp_path: Path, stopped: str
) -> None:
    """Rules a and b both make Asset/A-x; stopping either (the owner or not) leaves it
    as stored: the stopped rule's stream reference stays."""
    files = {
        "s.yaml": _streams("xP", "xT"),
        "a.yaml": _merge_rule("a", "P", "Started"),
        "b.yaml": _merge_rule("b", "T", "Started"),
    }
    before = resolve(_write(tmp_path, files))
    store = as_stored(before)
    assert len(before.objects["Asset/A-x"].spec["streamReferences"]) == 2  # type: ignore[index]
    literal = {"a": "P", "b": "T"}[stopped]
    files[f"{stopped}.yaml"] = _merge_rule(stopped, literal, "Stopped")
    changes = plan(resolve(_write(tmp_path, files)), store, "2026-01-01T00:00:00Z").changes
    assert [c.address for c in changes if c.address.startswith("Asset/")] == []
    # Streams the running rule adds still reach assets only it makes.
    running = {"a": "T", "b": "P"}[stopped]
    files["s.yaml"] = _streams("xP", "xT", f"y{running}")
    changes = plan(resolve(_write(tmp_path, files)), store, "2026-01-01T00:00:00Z").changes
    assert [(c.address, c.action.value) for c in changes if c.address.startswith("Asset/")] == [
        ("Asset/A-y", "create")
    ]


def test_a_stopped_rule_on_a_metadata_key_no_stream_has_does_not_block(tmp_path: Path) -> None:
    rule_yaml = (
        "apiVersion: fleetward/v1\nkind: AssetRule\nmetadata: {name: r}\nspec:\n"
        "  state: Stopped\n  expressions:\n    - field: site\n"
        "      specifications: [{type: Group, name: a}]\n  outputs:\n"
        '    - field: Asset\n      value: {id: "A-{a}"}\n'
    )
    desired = resolve(_write(tmp_path, {"s.yaml": _streams("x1"), "r.yaml": rule_yaml}))
    assert "AssetRule/r" in desired.objects
    started = rule_yaml.replace("Stopped", "Started")
    with pytest.raises(ManifestError, match="Unknown stream field 'site'"):
        resolve(_write(tmp_path, {"s.yaml": _streams("x1"), "r.yaml": started}))


def test_preview_shows_a_rule_that_conflicts_with_another() -> None:
    where = ["--no-git", "--source", str(CASES / "rules-err-conflicting-rules")]
    shown = _cli("rules", "preview", "pump-flow", *where)
    assert shown.returncode == 0, shown.stderr
    assert "Conflicting rule outputs for Asset/PS1-P01" in shown.stdout
    as_json = json.loads(_cli("rules", "preview", "pump-flow", *where, "--json").stdout)
    assert any("AssetRule/pump-pres" in c for c in as_json["conflicts"])
    # Planning the same revision still fails on the conflict.
    assert _cli("validate", *where).returncode == 1


def test_the_match_memo_keeps_matches_and_a_set_of_misses(tmp_path: Path) -> None:
    files = {"s.yaml": _streams("xP", "xT", "zz"), "a.yaml": _merge_rule("a", "P", "Started")}
    caches = KindCaches()
    resolve(_write(tmp_path, files), caches=caches)
    memo = caches.entry(rule_outputs.RuleMemo)
    (results,) = memo.results.values()
    (misses,) = memo.misses.values()
    assert len(results) == 1 and None not in results.values()
    assert len(misses) == 2


def test_deleting_rules_counts_their_objects_in_one_pass_over_the_store(tmp_path: Path) -> None:
    from fleetward.kinds.asset_rule import lifecycle as rule_lifecycle

    files = {
        "s.yaml": _streams("xP", "yP", "xT"),
        "a.yaml": _merge_rule("a", "P", "Started"),
        "b.yaml": _merge_rule("b", "T", "Started"),
    }
    store = as_stored(resolve(_write(tmp_path, files)))
    caches = KindCaches()
    counts = rule_lifecycle.owned_counts(store.objects, caches)
    assert counts[("AssetRule/a", "Asset")] == 2  # A-x (owner a, merged with b) and A-y
    assert ("AssetRule/b", "Asset") not in counts
    assert rule_lifecycle.owned_counts(store.objects, caches) is counts  # once per store
    changes = plan(
        resolve(_write(tmp_path, {"s.yaml": files["s.yaml"]})), store, "2026-01-01T00:00:00Z"
    ).changes
    reasons = {c.address: c.reason for c in changes}
    assert "(2 asset(s) stopped)" in reasons["AssetRule/a"]
