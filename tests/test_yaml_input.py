"""Hostile YAML: every input ends in documents or a located fleetward error, never a crash.

Three parts. Each class of YAML that used to crash the process, hang it or end
in "Internal error" is committed, as its smallest form, to a real repository
and run through `validate`, `plan` and `apply` (test_bad_input's world: exit 1,
Error / Reason / Resolution at `file:line:column`, the store untouched). The
corpus in tests/yaml_corpus/ (cases of the YAML test suite and our own edge
cases, one file each, sorted by what must happen to them) runs through
`validate --json` in-process. And the daemon stays on its last good revision
when a hostile one arrives.

Corpus folders:
  manifest/  valid manifests: exit 0
  data/      valid YAML that is no manifest: a fleetward error if any, never a YAML one
  refused/   valid YAML outside fleetward's rules (tags, keys, limits, encodings):
             refused by name at the YAML layer
  invalid/   invalid YAML: refused at the YAML layer, including what libyaml reads
             anyway (comments touching a token, flow lines not indented, ...), bare
             as the YAML test suite has it and inside an otherwise valid manifest
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import test_bad_input
from click.testing import CliRunner
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    Daemons,
    Workspace,
    daemons_fixture,
    ws_fixture,
)
from ruamel.yaml import YAML
from test_bad_input import World, expect, fleet

from fleetward import yaml_reader
from fleetward.cli import cli
from fleetward.errors import UsageError
from fleetward.loading import load_file, load_other
from fleetward.yaml_reader import compose_all, load_all, position

template = test_bad_input.template
world = test_bad_input.world

CORPUS = Path(__file__).resolve().parent / "yaml_corpus"
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*.yaml"))

# Errors of the YAML layer (loading.py, yaml_reader.py), as opposed to a manifest's schema.
YAML_ERRORS = (
    "Invalid YAML",
    "Tab character in indentation",
    "Duplicate key in mapping",
    "Unsupported YAML",
    "YAML directive without a document end marker",
    "Undefined YAML alias",
    "Recursive YAML alias",
    "YAML aliases expand too far",
    "YAML nested too deeply",
    "YAML scalar too long",
    "Mapping key is not a string",
    "Integer too large",
    "Non-finite number",
    "Number too large",
    "Invalid YAML merge",
    "Value does not match its tag",
    "Invalid date",
    "Invalid number",
    "File is UTF-",
    "File is not valid UTF-8",
    "Not a text file",
)


# -- one test per class of hostile YAML, through validate, plan and apply -------------------


P94K_IN_ENVELOPE = (
    "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:    # Comment\n"
    "             # lines\n  name: p94k\n  colour: red\nspec: {assets: []}\n"
)
CLASSES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (file content, location, what the error says)
    "4FJ6-nested-complex-keys": (
        "---\n[\n  [ a, [ [[b,c]]: d, e]]: 23\n]\n",
        "3:3",
        ("Mapping key is not a string", "This key is a list"),
    ),
    "565N-binary": (
        'canonical: !!binary "R0lGODlhDAAMAIQAAP"\n',
        "1:12",
        ("Unsupported YAML tag", "!!binary"),
    ),
    "binary-in-a-manifest": (
        fleet("bin", "    - externalAssetId: B-1\n      attributes: {b: !!binary aGk=}\n"),
        "8:23",
        ("Unsupported YAML tag", "!!binary"),
    ),
    "P94K-comment-after-key-with-an-error": (
        P94K_IN_ENVELOPE,
        "6:3",
        ('Unknown field "colour"',),
    ),
    "MUS6-00-text-after-version": (
        "%YAML 1.2#...\n---\n" + fleet("mus"),
        "1:1",
        ("Unsupported YAML directive", "'%YAML 1.2#...'"),
    ),
    "MUS6-01-directive-without-document-end": (
        "%YAML 1.2\n---\n" + fleet("mus") + "%YAML 1.2\n---\n" + fleet("mus2"),
        "10:1",
        ("YAML directive without a document end marker", "'...'"),
    ),
    "integer-of-4301-digits": (
        fleet("big", "    - externalAssetId: I-1\n      attributes: {n: " + "9" * 4301 + "}\n"),
        "8:23",
        ("Integer too large", "4301 characters", "64 bits"),
    ),
    "float-tag-on-text": (
        fleet("f", "    - externalAssetId: F-1\n      attributes: {n: !!float 'x'}\n"),
        "8:23",
        ("Value does not match its tag !!float", "'x' is not one"),
    ),
    "int-tag-on-text": (
        fleet("i", "    - externalAssetId: I-1\n      attributes: {n: !!int 'x'}\n"),
        "8:23",
        ("Value does not match its tag !!int",),
    ),
    "bool-tag-maybe": (
        fleet("b", "    - externalAssetId: B-1\n      attributes: {n: !!bool 'maybe'}\n"),
        "8:23",
        ("Value does not match its tag !!bool",),
    ),
    "set-tag": (
        fleet("s", "    - externalAssetId: S-1\n      attributes: {n: !!set {a, b}}\n"),
        "8:23",
        ("Unsupported YAML tag", "!!set"),
    ),
    "mapping-key-in-spec": (
        fleet("k", "    - externalAssetId: K-1\n      attributes:\n        ? {a: 1}\n        : b\n"),
        "9:11",
        ("Mapping key is not a string", "This key is a mapping"),
    ),
    "mapping-key-in-metadata": (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: k\n  labels: {? {a: 1} : b}\n"
        "spec: {assets: []}\n",
        "5:14",
        ("Mapping key is not a string",),
    ),
    "mapping-key-at-the-top": ("? {a: 1}\n: b\n", "1:3", ("Mapping key is not a string",)),
    "non-finite-number": (
        fleet("n", "    - externalAssetId: N-1\n      attributes: {n: .nan}\n"),
        "8:23",
        ("Non-finite number '.nan'", "no JSON form", "quote it if a string was meant"),
    ),
    "float-tag-on-infinity": (
        fleet("n", "    - externalAssetId: N-1\n      attributes: {n: !!float -.inf}\n"),
        "8:23",
        ("Non-finite number '-.inf'", "minus infinity", "no JSON form"),
    ),
    "float-past-the-largest-double": (
        fleet("n", "    - externalAssetId: N-1\n      attributes: {n: 1e400}\n"),
        "8:23",
        ("Number too large '1e400'", "reads as infinity", "no JSON form"),
    ),
    "invalid-date": (
        fleet("d", "    - externalAssetId: D-1\n      attributes: {on: 2024-13-45}\n"),
        "8:24",
        ("Invalid date '2024-13-45'", "month must be in 1..12"),
    ),
}


@pytest.mark.parametrize("name", list(CLASSES))
def test_hostile_yaml_is_a_located_error_everywhere(world: World, name: str) -> None:
    content, where, says = CLASSES[name]
    world.repo.commit({"manifests/bad.yaml": content}, f"hostile: {name}")
    world.assert_rejected(expect(f"manifests/bad.yaml:{where}", *says), count=1)


def test_an_internal_error_with_json_still_prints_a_json_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool reading --json gets an error object on stdout, even from a bug."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("fleetward.cli.reconcile.resolve", broken)
    (tmp_path / "manifests").mkdir()
    result = CliRunner().invoke(cli, ["validate", "--json", "--no-git", "--source", str(tmp_path)])
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert [e["error"] for e in errors] == ["Internal error: RuntimeError: a bug"]
    assert "Internal error" in result.stderr  # and the terminal still says it


# -- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 1_000_000 + "]" * 1_000_000, (0, 66)),
        ("a:\n  " + "- " * 1_000_000 + "x\n", (1, 128)),
        ("a: " + "{b: " * 500_000 + "1" + "}" * 500_000, (0, 255)),
    ],
    ids=["flow", "block", "flow-mappings"],
)
def test_two_megabytes_of_nesting_are_refused_at_the_65th_level(
    text: str, where: tuple[int, int]
) -> None:
    """The reader stops at the event that breaks the limit, not at the end of the text
    (the old fallback parsed all of it in pure Python: over 20 s)."""
    result = load_file(text.encode())
    assert len(result) == 1
    assert result[0].problem.error == "YAML nested too deeply"  # type: ignore[union-attr]
    assert (result[0].line - 1, result[0].column - 1) == where  # type: ignore[union-attr]


def _best_of_3(text: str) -> float:
    """CPU seconds of the best of three loads: this process's work, not the machine's load
    (on a busy 2-core box wall time swings several-fold between two runs)."""
    times = []
    for _ in range(3):
        started = time.process_time()
        load_file(text.encode())
        times.append(time.process_time() - started)
    return min(times)


def test_locating_many_errors_in_one_mapping_is_linear() -> None:
    """Each unknown key was found by a scan of its mapping: 100,000 of them took over 60 s."""
    small = "".join(f"k{i}: v\n" for i in range(20_000))
    large = "".join(f"k{i}: v\n" for i in range(40_000))
    assert len(load_file(large.encode())) == 40_000 + 4  # every unknown key, 4 missing fields
    ratio = _best_of_3(large) / _best_of_3(small)
    assert ratio < 3, f"twice the keys took {ratio:.1f} times as long"


def test_aliases_count_toward_depth() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    result = load_file(text.encode())
    assert result[0].problem.error == "YAML nested too deeply"  # type: ignore[union-attr]
    assert (result[0].line, result[0].column) == (2, 34)  # type: ignore[union-attr]  # *a


class _CountingText(str):
    """Text that counts how often it is split into lines (the C parser takes a plain str)."""

    splits = 0

    def splitlines(self, keepends: bool = False) -> list[str]:
        type(self).splits += 1
        return super().splitlines(keepends)


def test_many_documents_with_directives_split_the_text_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `%YAML` document split the whole file into lines to check its directive:
    20,000 such documents (440 KB) took over two minutes."""
    _CountingText.splits = 0
    parse = yaml_reader.events
    monkeypatch.setattr(yaml_reader.building, "events", lambda text: parse(str(text)))
    text = _CountingText("%YAML 1.2\n---\na: 1\n...\n" * 2_000)
    assert load_all(text) == [{"a": 1}] * 2_000
    assert _CountingText.splits <= 1
    with pytest.raises(yaml_reader.YamlDataError, match="Unsupported YAML directive") as info:
        load_all(_CountingText("%YAML 1.2\n---\na: 1\n...\n" * 1_000 + "%YAML 1.1\n---\nb\n"))
    assert (info.value.line, info.value.column) == (4_000, 0)
    assert _CountingText.splits <= 2


def test_aliases_to_scalars_count_toward_the_alias_limit() -> None:
    """An alias of a scalar is a node like any other: 10,001 of them are too many."""
    assert load_all("a: &a x\nb: [" + "*a, " * 9_999 + "*a]\n") == [{"a": "x", "b": ["x"] * 10_000}]
    with pytest.raises(yaml_reader.YamlDataError, match="expand to more than 10,000") as info:
        load_all("a: &a x\nb: [" + "*a, " * 10_000 + "*a]\n")
    assert (info.value.line, info.value.column) == (1, 4 + 4 * 10_000)


def test_aliases_may_not_repeat_more_text_than_a_file_holds() -> None:
    """Ninety aliases of a 64 KiB string in a 66 KB file stood for 5.9 MB of text (and
    90,000 of them, 5.9 GB, in a 425 KB file): aliases may add at most 6 MiB per file."""
    limit = 6 * 1024 * 1024  # what a file may hold
    big = "x" * 65_536
    repeats = limit // len(big)  # as many as fit exactly
    text = f"a: &a {big}\nb: [" + "*a, " * (repeats - 1) + "*a]\n"
    [data] = load_all(text)
    assert len(data["b"]) == repeats
    with pytest.raises(yaml_reader.YamlDataError, match="YAML aliases expand too far") as info:
        load_all(text.replace("*a]", "*a, *a]"))
    assert (info.value.line, info.value.column) == (1, 4 + 4 * repeats)
    assert info.value.parameters["limit"] == limit
    nested = f"a: &a {{k: {big}}}\nb: &b [*a, *a, *a, *a]\nc: [" + "*b, " * 30 + "*b]\n"
    with pytest.raises(yaml_reader.YamlDataError, match="characters") as info:
        load_all(nested)  # through collections too: 4 x 64 KiB per *b
    assert info.value.line == 2
    result = load_file(("---\na: &a " + big + "\nb: [*a, *a, *a, *a]\n").encode() * 30)
    problems = [r for r in result if hasattr(r, "problem")]
    assert problems[0].problem.error == "YAML aliases expand too far"  # type: ignore[attr-defined]


def test_scalar_key_and_integer_limits_sit_at_their_edges() -> None:
    assert load_all("a: 9223372036854775807\nb: -9223372036854775808\n") == [
        {"a": 2**63 - 1, "b": -(2**63)}
    ]
    assert load_all("a: " + "x" * 65_536 + "\n") == [{"a": "x" * 65_536}]
    for too_far in ("a: 9223372036854775808\n", "a: -9223372036854775809\n", "a: 0x8000000000000000\n"):
        with pytest.raises(Exception, match="does not fit in 64 bits"):
            load_all(too_far)
    with pytest.raises(Exception, match="the limit is 65,536"):
        load_all("a: " + "x" * 65_537 + "\n")


def test_a_file_holds_at_most_a_million_nodes() -> None:
    assert len(load_all("[" + "a," * 999_998 + "a]\n")[0]) == 999_999  # with the list: 10^6
    with pytest.raises(Exception, match="at most 1,000,000") as info:
        load_all("[" + "a," * 999_999 + "a]\n")
    assert (info.value.line, info.value.column) == (0, 2_000_000)  # type: ignore[attr-defined]


def test_a_config_file_with_several_documents_is_a_located_error() -> None:
    with pytest.raises(UsageError) as info:
        load_other(b"a: 1\n---\nb: 2\n", "fleetward.yaml", lambda raw: [])
    assert info.value.problems[0].error == "Several YAML documents"
    assert info.value.problems[0].location == "fleetward.yaml:1:1"


# -- what libyaml reads although YAML 1.2 forbids it --------------------------------------------

LENIENT_LIBYAML = {  # text, 1-based line and column of the error, what the reason says
    "comment after a quoted string (SU5Z)": ('key: "value"# c\n', 1, 13, "right after '\"'"),
    "comment after a flow list (9JBA)": ("---\n[ a, b, c, ]#c\n", 2, 13, "right after ']'"),
    "comment after a comma (CVW2)": ("---\n[ a, b, c,#c\n]\n", 2, 11, "right after ','"),
    "comment after a block indicator (X4QW)": ("block: ># c\n  scalar\n", 1, 9, "after '>'"),
    "comment after a flow mapping": ("a: {b: c}#d\n", 1, 10, "right after '}'"),
    "lone dash in a flow list (YJV2)": ("[-]\n", 1, 2, "lone '-'"),
    "lone dashes in a nested flow list (G5U8)": ("---\n- [-, -]\n", 2, 4, "lone '-'"),
    "unindented flow list (9C9N)": ("---\nflow: [a,\nb,\nc]\n", 3, 1, "flow list"),
    "flow entry under its key": ("a:\n  b: [c,\n  d]\n", 3, 3, "flow list"),
    "unindented quoted string (QB6E)": ('---\nquoted: "a\nb\nc"\n', 3, 1, "quoted string"),
    "tab-indented quoted string (DK95)": ('foo: "bar\n\tbaz"\n', 2, 1, "tabs do not count"),
    "tab-indented flow list (Y79Y)": ("- [\n\tfoo,\n foo\n ]\n", 2, 1, "flow list"),
    "block scalar with wide empty lines (S98Z)": (
        "empty block scalar: >\n \n  \n   \n # comment\n",
        5,
        1,
        "up to 3 of them, more than the 1",
    ),
}


@pytest.mark.parametrize("text,line,column,says", LENIENT_LIBYAML.values(), ids=LENIENT_LIBYAML)
def test_yaml_that_libyaml_reads_but_yaml_forbids_is_a_located_error(
    text: str, line: int, column: int, says: str
) -> None:
    with pytest.raises(yaml_reader.YamlDataError) as info:
        load_all(text)
    assert info.value.error == "Invalid YAML"
    assert says in info.value.reason
    assert (info.value.line + 1, info.value.column + 1) == (line, column)


LIKE_LENIENT_BUT_VALID = {  # the same shapes, written as YAML 1.2 wants them
    "comment after a space": ('key: "value" # c\n', {"key": "value"}),
    "comment after a tab": ("a: [b]\t# c\n", {"a": ["b"]}),
    "hash inside strings": ("a: x'#'y\nb: c#d\nc: \"#\"\n", {"a": "x'#'y", "b": "c#d", "c": "#"}),
    "anchored hash": ("a: &x c#d\nb: *x\n", {"a": "c#d", "b": "c#d"}),
    "tagged string with a hash": ("a: !!str c#d\n", {"a": "c#d"}),
    "block indicator with a comment": ("a: > # c\n  text\n", {"a": "text\n"}),
    "dash key in a flow mapping": ("{-: a}\n", {"-": "a"}),
    "dash inside a flow string": ("[-a, a-, '-']\n", ["-a", "a-", "-"]),
    "indented flow lines": ("a:\n  b: [c,\n   d\n   ]\n", {"a": {"b": ["c", "d"]}}),
    "flow lines at the top": ("[a,\nb\n]\n", ["a", "b"]),
    "closing bracket under its key, as JSON is written": (
        "a:\n  b: {\n    c: [d,\n      e\n    ]\n  }\n",
        {"a": {"b": {"c": ["d", "e"]}}},
    ),
    "comment lines in a flow list": ("a: [b,\n# c\n  d]\n", {"a": ["b", "d"]}),
    "flow under a list not indented under its key": ("a:\n- [b,\n  c]\n", {"a": [["b", "c"]]}),
    "indented quoted lines": ('a:\n  - "b\n    c"\n', {"a": ["b c"]}),
    "quoted line indented with a space and a tab (DK95)": ('foo: "bar\n \tbaz"\n', {"foo": "bar baz"}),
    "block scalar with narrow empty lines": ("a: |\n \n  text\n", {"a": "\ntext\n"}),
    "block scalar with an explicit indentation": ("a: |2\n   \n  text\n", {"a": " \ntext\n"}),
    "byte-order mark before a touching hash": ('\ufeffa: "b" #c\n', {"a": "b"}),
}


@pytest.mark.parametrize(
    "text,data", LIKE_LENIENT_BUT_VALID.values(), ids=LIKE_LENIENT_BUT_VALID
)
def test_the_same_shapes_written_as_yaml_wants_them_still_read(text: str, data: Any) -> None:
    assert load_all(text) == [data]


# -- the corpus ---------------------------------------------------------------------------------


def _validate_json(tmp_path: Path, case: Path) -> tuple[int, list[dict[str, Any]], str]:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "case.yaml").write_bytes(case.read_bytes())
    result = CliRunner().invoke(cli, ["validate", "--json", "--no-git", "--source", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Internal error" not in result.output, result.output
    return result.exit_code, json.loads(result.stdout)["errors"], result.stderr


@pytest.mark.parametrize(
    "case", CORPUS_FILES, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_FILES]
)
def test_corpus_case_gets_its_verdict(tmp_path: Path, case: Path) -> None:
    category = case.parent.name
    code, errors, stderr = _validate_json(tmp_path, case)
    names = [e["error"] for e in errors]
    for error in errors:
        assert error["location"].startswith("manifests/case.yaml"), error
        assert error["reason"] and error["resolution"], error
    if category == "manifest":
        assert code == 0, stderr
    elif category == "data":
        assert not any(n.startswith(YAML_ERRORS) for n in names), stderr
    else:
        assert category in ("refused", "invalid"), case
        assert code == 1 and names, stderr
        assert names[0].startswith(YAML_ERRORS), stderr
        assert names[0] != "Invalid YAML" or category == "invalid", stderr
        assert ":" in errors[0]["location"], "a YAML error has a line and column"


@pytest.mark.filterwarnings("ignore::ruamel.yaml.composer.ReusedAnchorWarning")
@pytest.mark.parametrize(
    "case",
    [p for p in CORPUS_FILES if p.parent.name in ("data", "manifest")],
    ids=lambda p: p.name,
)
def test_corpus_data_reads_as_ruamels_safe_loader_reads_it(case: Path) -> None:
    """The reader is a faster, bounded safe loader: same data for YAML both accept."""
    text = case.read_bytes().decode("utf-8-sig")
    # repr: NaN is not equal to itself, and key order counts.
    assert repr(load_all(text)) == repr(list(YAML(typ="safe", pure=True).load_all(text)))


def test_non_specific_tags() -> None:
    [data] = load_all("b: ! 12\nc: 12\n")
    assert data["b"] == "12" and data["c"] == 12


# Every plain spelling YAML 1.2's core schema reads as a non-finite float, the same under
# !!float (also quoted), and float literals past the largest double (they read as inf).
NON_FINITE = [
    *(f"{sign}.{word}" for sign in ("", "+", "-") for word in ("inf", "Inf", "INF")),
    *(".nan", ".NaN", ".NAN"),
    *("!!float .nan", "!!float '.NaN'", '!!float "-.INF"', "!!float +.Inf"),
]
PAST_THE_LARGEST_DOUBLE = ["1e400", "-1e400", "1_0.5e999", "!!float 2e308", "!!float '-1e309'"]


@pytest.mark.parametrize("written", NON_FINITE + PAST_THE_LARGEST_DOUBLE)
def test_a_non_finite_number_is_refused_by_name_where_it_stands(written: str) -> None:
    """JSON has no NaN nor Infinity: plan --json, state.json and the PostgreSQL store's
    JSON columns could not hold one, so the reader refuses it at its line and column."""
    with pytest.raises(yaml_reader.YamlDataError) as info:
        load_all(f"spec:\n  ok: 1.5\n  value: {written}\n")
    shown = written.split()[-1].strip("'\"")
    overflow = written in PAST_THE_LARGEST_DOUBLE
    title = "Number too large" if overflow else "Non-finite number"
    assert info.value.error == f"{title} {shown!r}"
    assert (info.value.line, info.value.column) == (2, 9)
    assert "manifests are JSON-compatible data, and non-finite numbers have no JSON form" in (
        info.value.reason
    )
    assert ("beyond the largest 64-bit float" in info.value.reason) == overflow
    assert info.value.resolution == "Write a finite number, or quote it if a string was meant."


def test_a_non_finite_key_is_refused_as_a_number() -> None:
    with pytest.raises(yaml_reader.YamlDataError) as info:
        load_all("a: 1\n.inf: b\n")
    assert info.value.error == "Non-finite number '.inf'"
    assert (info.value.line, info.value.column) == (1, 0)


def test_spellings_that_are_no_yaml_numbers_stay_strings() -> None:
    """Quoted or tagged as strings, and the spellings YAML 1.2 does not resolve (a sign
    on .nan, mixed case): text, as every YAML 1.2 reader has them."""
    text = "a: '.nan'\nb: \"-.inf\"\nc: !!str .inf\nd: +.nan\ne: -.nan\nf: .nAn\ng: .infinity\n"
    assert load_all(text) == [
        {"a": ".nan", "b": "-.inf", "c": ".inf", "d": "+.nan", "e": "-.nan", "f": ".nAn"}
        | {"g": ".infinity"}
    ]
    assert load_all("a: 1.7976931348623157e308\nb: 1e-400\n") == [
        {"a": 1.7976931348623157e308, "b": 0.0}  # the largest double; an underflow is 0
    ]


@pytest.mark.parametrize("command", ["plan", "validate"])
def test_json_output_over_a_non_finite_number_is_strict_json(tmp_path: Path, command: str) -> None:
    """`plan --json` printed `NaN` (no JSON) for a `.nan` in a manifest: now an error
    object a strict JSON reader takes, located at the value."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "fleet.yaml").write_text(
        fleet("n", "    - externalAssetId: N-1\n      attributes: {n: -.inf}\n")
    )
    args = [command, "--json", "--no-git", "--source", str(tmp_path)]
    if command == "plan":
        args += ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in the JSON output")

    errors = json.loads(result.stdout, parse_constant=refuse)["errors"]
    assert [(e["error"], e["location"]) for e in errors] == [
        ("Non-finite number '-.inf'", "manifests/fleet.yaml:8:23")
    ]
    assert not (tmp_path / "state").exists()


def test_positions_follow_the_same_documents_as_the_data() -> None:
    text = "---\n# empty\n---\na: [b, {c: d}]\n---\nx\n"
    assert len(compose_all(text)) == len(load_all(text)) == 3
    root = compose_all(text)[1]
    assert position(root, ("a", 1, "c"), False) == (3, 11)
    assert position(root, ("a", 1, "c"), True) == (3, 8)
    assert position(root, ("a",), False) == (3, 0)  # a collection: shown at its key


# -- the daemon ---------------------------------------------------------------------------------


def test_the_daemon_stays_on_its_last_good_revision_through_hostile_commits(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, good = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(good)
    store_before = (state / "state.json").read_bytes()
    hostile = {
        "deep block nesting (was SIGSEGV)": "a:\n  " + "- " * 30_000 + "x\n",
        "complex keys (was SIGSEGV)": "a:\n" + "? " * 28_000 + "x\n",
        "binary tag": "a: !!binary aGk=\n",
        "nested complex key": "[ [ a, [ [[b,c]]: d, e]]: 23 ]\n",
    }
    for message, content in hostile.items():
        bad = repo.commit(message, {"manifests/hostile.yaml": content})
        summary = daemon.wait_summary(
            lambda s, bad=bad: (
                s["source"]["revisionSeen"] == bad and s["lastOperation"]["state"] == "FAILURE"
            ),
            timeout=15,
            what=f"{message} to be refused",
        )
        assert summary["applied"]["revision"] == good, message
        errors = summary["errors"]
        assert errors and all(e["location"].startswith("manifests/hostile.yaml:") for e in errors)
        assert not any(e["error"].startswith("Internal error") for e in errors), errors
        assert daemon.get("/healthz").status == 200
    assert (state / "state.json").read_bytes() == store_before
    assert (repo.root / NORTH).exists()
