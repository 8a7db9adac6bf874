"""Bad input: every mistake a user can make ends in a readable error and an untouched store.

Each case commits a bad revision to a real Git repository (built with the `git`
binary) on top of a good revision that is already applied, then runs the real
CLI (`fleetward validate | plan | apply --auto-approve`), in-process through
click's CliRunner; the cases where the process is the point (a memory limit,
another user, a multi-file revision end to end) run `python -m fleetward` as a
subprocess. Every command must exit 1 with the Error / Reason / Resolution
shape (DESIGN §5), name the right `manifests/<file>:line:column`, print no
traceback, and leave the state directory byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import run_cli

# -- the good revisions every case starts from -------------------------------

FLEET_V1 = """\
apiVersion: fleetward/v1
kind: Fleet
metadata:
  name: north-yard
  labels: {region: north}
spec:
  assets:
    - externalAssetId: TRK-1
      name: Volvo FH16
      type: truck
      labels: {class: heavy}
"""
FLEET_V2 = (
    FLEET_V1
    + """\
    - externalAssetId: TRK-2
      name: Scania R
      type: truck
"""
)
# In FLEET_V2, TRK-1's mapping starts at line 8, column 7; TRK-2's at line 12, column 7.


def fleet(name: str, assets: str = "    - externalAssetId: X-1\n", **metadata: str) -> str:
    """A small valid Fleet document (assets given as YAML lines under spec.assets)."""
    extra = "".join(f"  {k}: {v}\n" for k, v in metadata.items())
    return (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n"
        f"  name: {name}\n{extra}spec:\n  assets:\n{assets}"
    )


# -- running things ----------------------------------------------------------

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "fleetward tests",
    "GIT_AUTHOR_EMAIL": "tests@fleetward.invalid",
    "GIT_COMMITTER_NAME": "fleetward tests",
    "GIT_COMMITTER_EMAIL": "tests@fleetward.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    # Repositories here are owned by root; let another user read them too.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETWARD_", "GIT_"))}
    env.update(_GIT_ENV)
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return env


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=_env(), check=True
    )
    return result.stdout.strip()


@dataclass(frozen=True)
class Link:
    """A symlink to commit (git stores it as a symlink, mode 120000)."""

    target: str


FileContent = str | bytes | Link | None  # None removes the file


class GitRepo:
    """A real repository in a directory: write files, commit them with the git binary."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path) -> GitRepo:
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        return cls(path)

    def commit(self, files: Mapping[str, FileContent], message: str = "change") -> str:
        for rel, content in files.items():
            target = self.path / rel
            if target.is_symlink() or target.exists():
                target.unlink()
            if content is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Link):
                os.symlink(content.target, target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


def fleetward(
    *args: str,
    prefix: Sequence[str] = (),
    timeout: float = 60,
    memory_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a subprocess."""

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [*prefix, sys.executable, "-m", "fleetward", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit if memory_limit is not None else None,
    )


def fleetward_in(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in-process, with the environment a subprocess would get."""
    return run_cli(args, env=_env())


def fleetward_all(
    commands: Sequence[Sequence[str]], timeout: float = 60
) -> list[subprocess.CompletedProcess[str]]:
    """Run several CLI commands at once (they only read, or fail before writing)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fleetward", *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        for cmd in commands
    ]
    results = []
    for cmd, proc in zip(commands, procs):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        results.append(subprocess.CompletedProcess([*cmd], proc.returncode, out, err))
    return results


# -- reading the CLI's error output -------------------------------------------


@dataclass
class Reported:
    """One rendered problem: `Error:` line, `-->` location, Reason, Resolution."""

    error: str
    location: str | None = None
    reason: str = ""
    resolution: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def parse_problems(stderr: str) -> list[Reported]:
    problems: list[Reported] = []
    for line in stderr.splitlines():
        if line.startswith("Error: "):
            problems.append(Reported(error=line[len("Error: ") :], lines=[line]))
            continue
        if not problems:
            continue
        current = problems[-1]
        current.lines.append(line)
        stripped = line.strip()
        if stripped.startswith("--> ") and current.location is None:
            current.location = stripped[len("--> ") :]
        elif stripped.startswith("Reason: ") and not current.reason:
            current.reason = stripped[len("Reason: ") :]
        elif stripped.startswith("Resolution: ") and not current.resolution:
            current.resolution = stripped[len("Resolution: ") :]
    return problems


@dataclass(frozen=True)
class Expect:
    """A problem the output must contain: at `location`, with every string in `says`."""

    location: str | None
    says: tuple[str, ...] = ()


def expect(location: str | None, *says: str) -> Expect:
    return Expect(location, says)


def assert_user_error(
    result: subprocess.CompletedProcess[str], *expected: Expect, count: int | None = None
) -> list[Reported]:
    """Exit 1, no traceback, every problem in the Error/Reason/Resolution shape, the expected ones present."""
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 1, shown
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, shown
    problems = parse_problems(result.stderr)
    assert problems, f"no 'Error:' block on stderr\n{shown}"
    for p in problems:
        assert not p.error.startswith("Internal error"), shown
        # Every block reads as Error / Reason / Resolution, each a real sentence.
        for part in (p.error, p.reason, p.resolution):
            readable = part[0].isupper() or part[0] in "\"'-" or part.startswith("fleetward ")
            assert len(part) >= 8 and readable, f"unreadable part {part!r} in\n{p.text}"
            assert "object at 0x" not in part and "Errno" not in part, p.text
        order = [
            ln.strip().split(":")[0]
            for ln in p.lines
            if ln.strip().startswith(("Reason: ", "Resolution: "))
        ]
        assert order[:2] == ["Reason", "Resolution"], p.text
    for want in expected:
        matches = [p for p in problems if p.location == want.location]
        assert matches, (
            f"no problem at {want.location!r}; got {[p.location for p in problems]}\n{shown}"
        )
        assert any(all(s in p.text for s in want.says) for p in matches), (
            f"no problem at {want.location!r} says {want.says}\n{shown}"
        )
    if count is not None:
        assert len(problems) == count, shown
        if count > 1:
            assert f"{count} errors; nothing was changed." in result.stderr, shown
    return problems


# -- the world: a repository with two good revisions applied --------------------


# The lock files record a PID; the operation log records every apply, failed ones too.
_NOT_STATE = {"state.lock", "operations.json", "operations.lock"}


def _state_files(state: Path) -> dict[str, bytes]:
    """Everything in the state directory that holds object state."""
    return {
        p.name: p.read_bytes()
        for p in sorted(state.iterdir())
        if p.is_file() and p.name not in _NOT_STATE
    }


def _temporary(path: Path) -> bool:
    """A temp file of an atomic write (`.<name>.tmp-*`); the directory's .gitignore is not."""
    return path.name.startswith(".") and path.name != ".gitignore"


@dataclass
class World:
    repo: GitRepo
    state: Path

    @property
    def source(self) -> list[str]:
        return ["--source", str(self.repo.path)]

    @property
    def state_args(self) -> list[str]:
        return ["--state-dir", str(self.state)]

    def snapshot(self) -> dict[str, bytes]:
        return _state_files(self.state)

    def commands(self, *extra: str) -> list[list[str]]:
        return [
            ["validate", *self.source, *extra],
            ["plan", *self.source, *self.state_args, *extra],
            ["apply", "--auto-approve", *self.source, *self.state_args, *extra],
        ]

    def assert_rejected(
        self,
        *expected: Expect,
        count: int | None = None,
        extra: Sequence[str] = (),
        process: bool = False,
    ) -> None:
        """validate, plan and apply all fail the same way; plan and apply change nothing.

        In-process unless `process`: then as three `python -m fleetward` at once."""
        before = self.snapshot()
        assert "state.json" in before
        commands = self.commands(*extra)
        results = (
            fleetward_all(commands) if process else [fleetward_in(*cmd) for cmd in commands]
        )
        for result in results:
            assert_user_error(result, *expected, count=count)
        assert self.snapshot() == before, "the state directory changed"
        leftovers = [p.name for p in self.state.iterdir() if _temporary(p)]
        assert not leftovers, f"temporary files left in the state directory: {leftovers}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A repository whose second good revision is applied (so a backup exists too)."""
    root = tmp_path_factory.mktemp("template")
    repo = GitRepo.create(root / "repo")
    world = World(repo, root / "state")
    for content in (FLEET_V1, FLEET_V2):
        repo.commit({"manifests/fleet.yaml": content}, "good revision")
        result = fleetward_in("apply", "--auto-approve", *world.source, *world.state_args)
        assert result.returncode == 0, result.stdout + result.stderr
    assert {"state.json", "state.json.backup"} <= set(world.snapshot())
    return world


@pytest.fixture
def world(template: World, tmp_path: Path) -> World:
    """A private copy of the template: the good revision applied, ready for a bad commit."""
    shutil.copytree(template.repo.path, tmp_path / "repo", symlinks=True)
    shutil.copytree(template.state, tmp_path / "state")
    return World(GitRepo(tmp_path / "repo"), tmp_path / "state")


# -- manifest errors -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    files: Mapping[str, FileContent]
    expected: tuple[Expect, ...]
    count: int | None = 1


ALIAS_BOMB = """\
apiVersion: fleetward/v1
kind: Fleet
metadata:
  name: laughs
spec:
  assets:
    - externalAssetId: LOL-1
      attributes:
        a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
        h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
        i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

CASES: dict[str, Case] = {
    "yaml-syntax-error": Case(
        {"manifests/bad.yaml": fleet("south-yard: depot")},
        # "  name: south-yard: depot": the second ':' is at column 19.
        (
            expect(
                "manifests/bad.yaml:4:19",
                "Invalid YAML",
                "Mapping values are not allowed",
                'Quote a value that contains ": "',
            ),
        ),
    ),
    "yaml-unclosed-quote": Case(
        {"manifests/bad.yaml": fleet('"south-yard')},
        # The quote opens at line 4, column 9 and never closes: point at the quote,
        # not past the end of the file.
        (
            expect(
                "manifests/bad.yaml:4:9",
                "Invalid YAML",
                "quoted scalar",
                "end of stream",
                '"south-yard',
                "Close the quote",
            ),
        ),
    ),
    "tab-indentation": Case(
        {
            "manifests/bad.yaml": "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n\tname: south-yard\nspec: {}\n"
        },
        (expect("manifests/bad.yaml:4:1", "Tab character in indentation", "Indent with spaces"),),
    ),
    "duplicate-key": Case(
        {
            "manifests/bad.yaml": fleet("south-yard").replace(
                "  name: south-yard\n", "  name: south-yard\n  name: east\n"
            )
        },
        (
            expect(
                "manifests/bad.yaml:5:3",
                "Duplicate key",
                'duplicate key "name"',
                "Keep one of the two keys",
            ),
        ),
    ),
    "unknown-kind": Case(
        {"manifests/bad.yaml": fleet("south-yard").replace("kind: Fleet", "kind: Flet")},
        (expect("manifests/bad.yaml:2:7", "Unknown kind 'Flet'", 'Did you mean "Fleet"?'),),
    ),
    "unknown-field": Case(
        {"manifests/bad.yaml": fleet("south-yard").replace("  name:", "  nmae:")},
        (
            expect("manifests/bad.yaml:4:3", 'Unknown field "nmae"', 'Did you mean "name"?'),
            expect("manifests/bad.yaml:3:1", 'Missing required field "name"'),
        ),
        count=2,
    ),
    "unknown-asset-field": Case(
        {
            "manifests/bad.yaml": fleet(
                "south-yard", "    - externalAssetId: V-1\n      nmae: Van\n"
            )
        },
        (expect("manifests/bad.yaml:8:7", 'Unknown field "nmae"', 'Did you mean "name"?'),),
    ),
    "wrong-type-label": Case(
        {
            "manifests/bad.yaml": fleet(
                "south-yard", "    - externalAssetId: V-1\n      labels: {class: 5}\n"
            )
        },
        # "      labels: {class: 5}": the 5 is at column 23.
        (
            expect(
                "manifests/bad.yaml:8:23",
                "spec.assets[0].labels.class",
                "valid string",
                "got a number (5)",
                "Quote the value",
            ),
        ),
    ),
    "wrong-type-name": Case(
        {"manifests/bad.yaml": fleet("123")},
        (expect("manifests/bad.yaml:4:9", "metadata.name", "valid string", 'e.g. "123"'),),
    ),
    "missing-external-asset-id": Case(
        {
            "manifests/bad.yaml": fleet(
                "south-yard",
                "    - externalAssetId: V-1\n    - name: Van without id\n      type: van\n",
            )
        },
        # The second asset's mapping starts at line 8, column 7.
        (
            expect(
                "manifests/bad.yaml:8:7",
                'Missing required field "externalAssetId"',
                "spec.assets[1]",
            ),
        ),
    ),
    "duplicate-external-asset-id-across-files": Case(
        {
            "manifests/south.yaml": fleet(
                "south-yard", "    - externalAssetId: V-1\n    - externalAssetId: TRK-2\n"
            )
        },
        # TRK-2 is declared in fleet.yaml (line 12) and in south.yaml (line 8): both named.
        (
            expect(
                "manifests/south.yaml:8:7",
                "Duplicate externalAssetId 'TRK-2'",
                "manifests/fleet.yaml:12:7",
                "Fleet/south-yard",
                "Fleet/north-yard",
            ),
        ),
    ),
    "invalid-name": Case(
        {"manifests/bad.yaml": fleet("North_Yard")},
        (
            expect(
                "manifests/bad.yaml:4:9",
                "Invalid metadata.name 'North_Yard'",
                "lower-case",
                "Rename it, e.g. north-yard.",
            ),
        ),
    ),
    "document-is-a-list": Case(
        # A valid document, then a list as the second document (line 9).
        {
            "manifests/bad.yaml": fleet("south-yard")
            + "---\n- apiVersion: fleetward/v1\n- kind: Fleet\n"
        },
        (expect("manifests/bad.yaml:9:1", "Document is not a mapping", "this one is a list"),),
    ),
    "binary-file": Case(
        {"manifests/blob.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" * 64},
        (expect("manifests/blob.yaml:1:1", "Not a text file", "binary data"),),
    ),
    "not-utf8": Case(
        {"manifests/bad.yaml": b"apiVersion: fleetward/v1\nkind: Fle\xe9t\n"},
        (expect("manifests/bad.yaml:2:10", "not valid UTF-8", "0xe9", "Save the file as UTF-8"),),
    ),
    "file-over-6-mib": Case(
        # Valid YAML, just too much of it: 7 MiB of assets.
        {
            "manifests/huge.yaml": fleet(
                "huge",
                "".join(
                    f"    - {{externalAssetId: H-{i:07d}, name: padding-padding-padding-padding}}\n"
                    for i in range(7 * 1024 * 1024 // 70 + 1)
                ),
            )
        },
        (
            expect(
                "manifests/huge.yaml:1:1", "Manifest file too large", "the limit is 6 MiB", "Split"
            ),
        ),
    ),
    "unsupported-tag": Case(
        {
            "manifests/bad.yaml": "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: !!python/name:os.system\nspec: {}\n"
        },
        (expect("manifests/bad.yaml:3:11", "Unsupported YAML tag", "plain YAML data only"),),
    ),
    "nested-too-deeply": Case(
        {
            "manifests/bad.yaml": fleet(
                "south-yard",
                "    - externalAssetId: V-1\n      attributes: {deep: "
                + "[" * 200
                + "]" * 200
                + "}\n",
            )
        },
        # Line 8 is the asset's attributes; the 63rd "[" (column 85) is the 65th level.
        (expect("manifests/bad.yaml:8:85", "nested too deeply", "64 levels"),),
    ),
    "symlink-out-of-repository": Case(
        {
            "manifests/passwd.yaml": Link("/etc/passwd"),
            "manifests/up.yaml": Link("../../outside.yaml"),
        },
        (
            expect("manifests/passwd.yaml", "points outside the repository", "'/etc/passwd'"),
            expect("manifests/up.yaml", "points outside the repository", "'../../outside.yaml'"),
        ),
        count=2,
    ),
    "symlinked-directory-out-of-repository": Case(
        {"manifests/shared": Link("../..")},
        (expect("manifests/shared", "points outside the repository", "'../..'"),),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_manifest_is_rejected_and_changes_nothing(world: World, name: str) -> None:
    case = CASES[name]
    world.repo.commit(case.files, f"bad revision: {name}")
    world.assert_rejected(*case.expected, count=case.count)


def test_unsupported_tag_constructs_nothing(world: World) -> None:
    marker = world.repo.path.parent / "pwned"
    world.repo.commit(
        {"manifests/bad.yaml": f"!!python/object/apply:os.system ['touch {marker}']\n"},
        "a tag that would run a command",
    )
    result = fleetward_in("validate", *world.source)
    assert_user_error(result, expect("manifests/bad.yaml:1:1", "Unsupported YAML tag"))
    assert not marker.exists()


def test_alias_bomb_fails_in_bounded_memory(world: World) -> None:
    """A 'billion laughs' document (9^9 strings if expanded) is refused, inside a 1 GiB
    address space (the work it takes is bounded in the next test)."""
    world.repo.commit({"manifests/bomb.yaml": ALIAS_BOMB}, "billion laughs")
    before = world.snapshot()
    for command in world.commands():
        result = fleetward(*command, timeout=120, memory_limit=1 << 30)  # a hang guard only
        assert_user_error(
            result,
            expect(
                # The first alias that takes the expansion past the limit: 9 * 729 + 6,561.
                "manifests/bomb.yaml:13:16",
                "YAML aliases expand too far",
                "10,000 nodes",
                "billion laughs",
            ),
            count=1,
        )
    assert world.snapshot() == before


def test_alias_bomb_is_measured_without_expanding_it() -> None:
    """An alias adds the size its anchor recorded once: the reader's work is linear in
    the text, not in the 9^9 nodes the aliases stand for."""
    from fleetward import loading, yaml_reader

    package = os.path.dirname(yaml_reader.__file__) + os.sep  # every module of the reader
    steps = 0

    def count(frame: types.FrameType, event: str, arg: object) -> None:
        nonlocal steps
        if event == "call" and frame.f_code.co_filename.startswith(package):
            steps += 1

    sys.setprofile(count)
    try:
        result = loading.load_file(ALIAS_BOMB.encode())
    finally:
        sys.setprofile(None)
    assert [item.problem.error for item in result] == ["YAML aliases expand too far"]  # type: ignore[union-attr]
    # A few calls per character at most; walking the expansion would take millions.
    assert steps <= 4 * len(ALIAS_BOMB), steps


def test_large_file_is_refused_without_parsing_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 7 MiB file is refused by its size, without reading or parsing 7 MiB of YAML."""
    world.repo.commit(
        {"manifests/huge.yaml": "# " + "x" * (7 * 1024 * 1024) + "\n"}, "huge comment"
    )
    result = fleetward_in("validate", *world.source)
    assert_user_error(
        result, expect("manifests/huge.yaml:1:1", "Manifest file too large", "7.0 MiB"), count=1
    )
    # In-process, the same load: the parser is handed only the small file.
    from fleetward import loading
    from fleetward.errors import ManifestError
    from fleetward.source import open_snapshot

    parsed: list[int] = []
    real_load_file = loading.load_file

    def load_file(content: bytes) -> Any:
        parsed.append(len(content))
        return real_load_file(content)

    monkeypatch.setattr(loading, "load_file", load_file)
    with open_snapshot(str(world.repo.path)) as snapshot, pytest.raises(ManifestError):
        loading.load(snapshot)
    assert parsed == [len(FLEET_V2.encode())]


def test_many_errors_in_one_revision_are_all_reported_in_one_run(world: World) -> None:
    world.repo.commit(
        {
            "manifests/a-syntax.yaml": fleet("south-yard: depot"),
            "manifests/b-kind.yaml": fleet("b-yard").replace("kind: Fleet", "kind: Flet"),
            "manifests/c-name.yaml": fleet(
                "C_Yard", "    - externalAssetId: C-1\n      labels: {class: 5}\n"
            ),
            "manifests/d-binary.yaml": b"\x00\x01\x02",
            "manifests/e-link.yaml": Link("/etc/hostname"),
            "manifests/f-dup.yaml": fleet(
                "f-yard", "    - externalAssetId: F-1\n    - externalAssetId: F-1\n"
            ),
        },
        "six broken files",
    )
    expected = (
        expect("manifests/e-link.yaml", "points outside the repository"),
        expect("manifests/a-syntax.yaml:4:19", "Invalid YAML"),
        expect("manifests/b-kind.yaml:2:7", 'Did you mean "Fleet"?'),
        expect("manifests/c-name.yaml:4:9", "Invalid metadata.name 'C_Yard'", "e.g. c-yard."),
        expect("manifests/c-name.yaml:8:23", "labels.class"),
        expect("manifests/d-binary.yaml:1:1", "Not a text file"),
    )
    # The duplicate F-1 inside f-dup.yaml is a cross-document check, which today runs only
    # once every file loads; it may or may not be among the problems of this run.
    world.assert_rejected(*expected, process=True)  # end to end: the real process
    result = fleetward("validate", *world.source)
    problems = assert_user_error(result, *expected)
    assert len(problems) >= len(expected)
    assert f"{len(problems)} errors; nothing was changed." in result.stderr

    # The same problems as JSON, in the shape DESIGN §5 gives.
    result = fleetward("validate", "--json", *world.source)
    assert result.returncode == 1
    errors = json.loads(result.stdout)["errors"]
    assert len(errors) == len(problems)
    for error in errors:
        assert set(error) >= {"error", "reason", "resolution", "location", "parameters"}
    assert {e["location"] for e in errors} >= {e.location for e in expected}


def test_cross_document_errors_are_all_reported_in_one_run(world: World) -> None:
    world.repo.commit(
        {
            "manifests/south.yaml": fleet(
                "south-yard",
                "    - externalAssetId: TRK-1\n    - externalAssetId: S-1\n    - externalAssetId: S-1\n",
            ),
            "manifests/again.yaml": fleet("north-yard", "    - externalAssetId: A-1\n"),
        },
        "duplicates",
    )
    world.assert_rejected(
        expect(
            "manifests/fleet.yaml:4:9",
            "Duplicate Fleet name 'north-yard'",
            "manifests/again.yaml:4:9",
        ),
        expect(
            "manifests/south.yaml:7:7",
            "Duplicate externalAssetId 'TRK-1'",
            "manifests/fleet.yaml:8:7",
        ),
        expect(
            "manifests/south.yaml:9:7",
            "Duplicate externalAssetId 'S-1'",
            "manifests/south.yaml:8:7",
        ),
        count=3,
    )


# -- what is not an error ------------------------------------------------------------


def test_empty_and_comment_only_files_contribute_nothing(world: World) -> None:
    world.repo.commit(
        {
            "manifests/empty.yaml": "",
            "manifests/comments.yml": "# Nothing here yet.\n# The east yard opens next year.\n",
            "manifests/separators.yaml": "---\n# an empty document\n---\n...\n",
        },
        "empty files",
    )
    validate = fleetward_in("validate", *world.source)
    plan = fleetward_in("plan", "--detailed-exitcode", *world.source, *world.state_args)
    for result in (validate, plan):
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
    assert "Success!" in validate.stdout
    assert "No changes." in plan.stdout  # exit 0 with --detailed-exitcode: nothing to change
    apply = fleetward_in("apply", "--auto-approve", *world.source, *world.state_args)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert (
        "0 created, 0 updated, 0 stopped, 0 deleted" in apply.stdout
        or "No changes." in apply.stdout
    )


# -- source errors ---------------------------------------------------------------------


def test_ref_that_does_not_exist(world: World) -> None:
    world.assert_rejected(
        expect(
            "no-such-branch", "Ref 'no-such-branch' does not exist", "Known branches and tags: main"
        ),
        count=1,
        extra=["--ref", "no-such-branch"],
    )


def test_ref_that_looks_like_an_option(world: World) -> None:
    world.assert_rejected(
        expect(None, "Invalid ref '--upload-pack=touch'", "may not start with '-'"),
        count=1,
        extra=["--ref=--upload-pack=touch"],
    )


def test_source_that_does_not_exist(world: World, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-repo")
    before = world.snapshot()
    for command in (
        ["validate", "--source", missing],
        ["plan", "--source", missing, *world.state_args],
        ["apply", "--auto-approve", "--source", missing, *world.state_args],
    ):
        assert_user_error(
            fleetward_in(*command), expect(missing, "does not exist", "--source"), count=1
        )
    assert world.snapshot() == before


def test_manifest_path_that_does_not_exist(world: World) -> None:
    world.assert_rejected(
        expect("HEAD:nowhere", "Manifest path 'nowhere' does not exist", "--path"),
        count=1,
        extra=["--path", "nowhere"],
    )


# -- state errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage", [b'{"_default": {"1": ', b"\x00\xffnot json at all", b"[1, 2, 3]"]
)
def test_corrupt_state_file_names_the_backup(world: World, garbage: bytes) -> None:
    (world.state / "state.json").write_bytes(garbage)
    backup = world.state / "state.json.backup"
    before = world.snapshot()
    for command in (world.commands()[1], world.commands()[2]):
        problems = assert_user_error(
            fleetward_in(*command), expect(str(world.state / "state.json"), "is corrupt"), count=1
        )
        assert str(backup) in problems[0].resolution
        assert "Restore" in problems[0].resolution
    assert world.snapshot() == before
    # validate does not read the store.
    assert fleetward_in(*world.commands()[0]).returncode == 0


def test_corrupt_state_file_without_backup_says_so(world: World) -> None:
    (world.state / "state.json.backup").unlink()
    (world.state / "state.json").write_text("garbage")
    before = world.snapshot()
    problems = assert_user_error(
        fleetward_in(*world.commands()[2]),
        expect(str(world.state / "state.json"), "is corrupt"),
        count=1,
    )
    assert "no backup" in problems[0].resolution
    assert world.snapshot() == before


def _probe(prefix: Sequence[str], check: str) -> bool:
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-c", check],
            capture_output=True,
            env=_env(),
            cwd="/",
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


_CAN_IMPORT = "import fleetward.cli"
# Root without capabilities: file permissions apply to it as to any owner.
_NO_CAPS = (
    _CAN_IMPORT
    + "\nimport os\ncaps = dict(l.split(':') for l in open('/proc/self/status') if l.startswith('Cap'))"
    + "\nassert int(caps['CapEff'].strip(), 16) == 0"
)


def unprivileged() -> tuple[list[str], str] | None:
    """A command prefix that runs the CLI without the power to ignore file permissions.

    Prefers another user (nobody); that user must be able to run this Python and import
    fleetward. Otherwise root with every capability dropped (no CAP_DAC_OVERRIDE), which
    file permissions bind exactly like an unprivileged owner.
    """
    if os.geteuid() != 0:
        return [], "not root"
    candidates: list[tuple[list[str], str, str]] = []
    if shutil.which("setpriv"):
        candidates.append(
            (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], "user", _CAN_IMPORT)
        )
    if shutil.which("runuser"):
        candidates.append((["runuser", "-u", "nobody", "--"], "user", _CAN_IMPORT))
    if shutil.which("setpriv"):
        candidates.append(
            (["setpriv", "--inh-caps=-all", "--bounding-set=-all"], "nocaps", _NO_CAPS)
        )
    for prefix, how, check in candidates:
        if _probe(prefix, check):
            return prefix, how
    return None


@pytest.mark.parametrize(
    "lock_writable", [False, True], ids=["lock-file-read-only", "lock-file-writable"]
)
def test_state_dir_without_write_permission(template: World, lock_writable: bool) -> None:
    found = unprivileged()
    if found is None:
        pytest.skip(
            "running as root and neither setpriv nor runuser can drop root's file-permission override"
        )
    prefix, how = found
    # A private tree another user can traverse (pytest's tmp dirs are 0700 root).
    root = Path(tempfile.mkdtemp(prefix="fleetward-perm-"))
    try:
        os.chmod(root, 0o755)
        repo = root / "repo"
        state = root / "state"
        shutil.copytree(template.repo.path, repo, symlinks=True)
        shutil.copytree(template.state, state)
        GitRepo(repo).commit(
            {"manifests/fleet.yaml": FLEET_V2.replace("Scania R", "Scania S")}, "rename"
        )
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o755)
            for f in filenames:
                os.chmod(Path(dirpath) / f, 0o644)
        # Readable, not writable: the files and the directory itself.
        for f in state.iterdir():
            os.chmod(f, 0o444)
        if lock_writable:  # the lock can be taken; the write itself is refused
            os.chmod(state / "state.lock", 0o666)
        os.chmod(state, 0o555)
        before = _state_files(state)

        args = ["--source", str(repo), "--state-dir", str(state)]
        # Reading is fine: the plan shows the rename.
        plan = fleetward("plan", *args, prefix=prefix)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "Scania S" in plan.stdout

        problems = assert_user_error(
            fleetward("apply", "--auto-approve", *args, prefix=prefix), count=1
        )
        problem = problems[0]
        if lock_writable:
            assert problem.location == str(state), problem.text
            assert "Cannot write to the state directory" in problem.error, problem.text
        else:
            assert problem.location == str(state / "state.lock"), problem.text
            assert "lock file" in problem.error, problem.text
        assert "Permission denied" in problem.reason, problem.text
        assert "writable" in problem.resolution, problem.text
        assert _state_files(state) == before
        assert not [p.name for p in state.iterdir() if _temporary(p)]
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, stat.S_IRWXU)
        shutil.rmtree(root, ignore_errors=True)
