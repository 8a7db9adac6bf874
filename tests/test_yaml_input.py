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
  invalid/   invalid YAML: refused at the YAML layer
  lenient/   invalid YAML that libyaml reads anyway (comments touching a token,
             flow lines not indented, ...): refused, here because no manifest
             looks like that
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
    times = []
    for _ in range(3):
        started = time.perf_counter()
        load_file(text.encode())
        times.append(time.perf_counter() - started)
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
    elif category in ("refused", "invalid"):
        assert code == 1 and names, stderr
        assert names[0].startswith(YAML_ERRORS), stderr
        assert names[0] != "Invalid YAML" or category == "invalid", stderr
        assert ":" in errors[0]["location"], "a YAML error has a line and column"
    else:
        assert category == "lenient", case
        assert code == 1 and names, stderr


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


def test_nan_and_non_specific_tags() -> None:
    [data] = load_all("a: .NaN\nb: ! 12\nc: 12\n")
    assert data["a"] != data["a"] and data["b"] == "12" and data["c"] == 12


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
