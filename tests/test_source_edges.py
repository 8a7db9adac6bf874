"""Edge cases of reading a source: odd --path and --ref values, symlinks, special files.

Each test builds a real repository (with the `git` binary) or a plain directory
in tmp_path and runs the installed CLI as a subprocess, so what is checked is
what a user sees: exit 1, an `Error:` line that says what is wrong, and never a
traceback or an "Internal error".
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import isolated_env

from fleetward.errors import Problem
from fleetward.source import open_snapshot

MANIFEST = (
    "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n"
    "  assets:\n    - externalAssetId: {name}-1\n"
)


def fleet(name: str) -> str:
    return MANIFEST.format(name=name)


def _env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    (home / "gitconfig").touch()
    return isolated_env(home, {"TERM": "dumb", "COLUMNS": "250", **(extra or {})})


class Repo:
    """A directory of files; a Git repository once `init` ran."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.home = home
        path.mkdir(parents=True, exist_ok=True)

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            env=_env(self.home),
            check=True,
        )
        return result.stdout.strip()

    def init(self) -> Repo:
        self.git("init", "-q", "-b", "main")
        return self

    def write(self, files: Mapping[str, str]) -> Repo:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return self

    def link(self, rel: str, target: str) -> Repo:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        return self

    def commit(self) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "change")
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path, home: Path) -> Repo:
    """A committed repository: manifests/north.yaml, README.md and an empty-of-YAML docs/."""
    r = Repo(tmp_path / "repo", home).init()
    r.write(
        {
            "manifests/north.yaml": fleet("north"),
            "README.md": "# fleet\n",
            "docs/notes.txt": "nothing to see\n",
        }
    )
    r.commit()
    return r


def fleetward(
    home: Path, *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args],
        check=False,
        capture_output=True,
        text=True,
        env=_env(home, env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Walk:
    """What opening a snapshot found, and the work it took."""

    problems: tuple[Problem, ...]
    links_followed: int  # symlinks the walk took a step along (a step refused included)
    trees_listed: int  # `git ls-tree` commands run


def walk_in_process(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Walk:
    """Open the repository's HEAD snapshot in this process, counting the walk's work."""
    from fleetward.source import git as git_source
    from fleetward.source import git_commands, open_snapshot

    for name, value in _env(repo.home).items():
        monkeypatch.setenv(name, value)
    counts = {"links": 0, "listings": 0}
    real_follow = git_source.GitSnapshot._follow_link
    real_run = git_commands.run_git

    def follow(self: git_source.GitSnapshot, *args: Any, **kwargs: Any) -> None:
        counts["links"] += 1
        real_follow(self, *args, **kwargs)

    def run(repo: Any, command: str, *args: str) -> str:
        counts["listings"] += command == "ls_tree"
        return real_run(repo, command, *args)

    monkeypatch.setattr(git_source.GitSnapshot, "_follow_link", follow)
    monkeypatch.setattr(git_source, "run_git", run)
    with open_snapshot(str(repo.path)) as snapshot:
        problems = tuple(snapshot.problems)
    return Walk(problems, counts["links"], counts["listings"])


def errors(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str | None, str]]:
    """(error line, location, whole block) of each rendered problem."""
    found: list[tuple[str, str | None, list[str]]] = []
    for line in result.stderr.splitlines():
        if line.startswith("Error: "):
            found.append((line[len("Error: ") :], None, [line]))
        elif found:
            error, location, lines = found[-1]
            lines.append(line)
            if line.strip().startswith("--> ") and location is None:
                found[-1] = (error, line.strip()[len("--> ") :], lines)
    return [(e, loc, "\n".join(lines)) for e, loc, lines in found]


def rejected(
    result: subprocess.CompletedProcess[str],
    error: str,
    location: str | None = None,
    *says: str,
    count: int | None = 1,
) -> list[tuple[str, str | None, str]]:
    """Exit 1, no traceback, a problem whose Error line holds `error` (at `location`)."""
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 1, shown
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, shown
        assert "Internal error" not in stream, shown
    found = errors(result)
    assert found, shown
    for _, _, block in found:
        assert "Reason: " in block and "Resolution: " in block, shown
    matching = [f for f in found if error in f[0] and (location is None or f[1] == location)]
    assert matching, f"no error with {error!r} at {location!r}\n{shown}"
    assert any(all(s in block for s in says) for _, _, block in matching), (
        f"{error!r} does not say {says}\n{shown}"
    )
    if count is not None:
        assert len(found) == count, shown
    return found


def valid(result: subprocess.CompletedProcess[str], files: int) -> None:
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, shown
    assert f"in {files} file(s) are valid" in result.stdout + result.stderr, shown


# -- 1. --path and --ref values git must not misread -------------------------------------


def test_ref_naming_a_path_inside_a_commit(repo: Repo, home: Path) -> None:
    result = fleetward(home, "validate", "--source", str(repo.path), "--ref", "HEAD:m")
    rejected(result, "Ref 'HEAD:m' does not exist", "HEAD:m", "--path")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../x", "Manifest path '../x' leaves the source"),
        ("manifests/../../x", "Manifest path 'manifests/../../x' leaves the source"),
        ("..", "Manifest path '..' leaves the source"),
        ("/etc", "Manifest path '/etc' is absolute"),
        (":(exclude)x", "Manifest path ':(exclude)x' does not exist"),
        (":(glob)**/*.yaml", "Manifest path ':(glob)**/*.yaml' does not exist"),
        ("man*", "Manifest path 'man*' does not exist"),
    ],
)
@pytest.mark.parametrize("no_git", [False, True], ids=["git", "plain"])
def test_path_leaving_the_source_or_using_pathspec_magic(
    repo: Repo, home: Path, path: str, error: str, no_git: bool
) -> None:
    flags = ["--no-git"] if no_git else []
    result = fleetward(home, "validate", "--source", str(repo.path), "--path", path, *flags)
    rejected(result, error)


def test_path_is_read_literally(repo: Repo, home: Path) -> None:
    """A directory whose name looks like pathspec magic is just a directory."""
    repo.write({":(icase)cfg/south.yaml": fleet("south")}).commit()
    result = fleetward(home, "validate", "--source", str(repo.path), "--path", ":(icase)cfg")
    valid(result, files=1)
    result = fleetward(home, "validate", "--source", str(repo.path), "--path", ":(icase)CFG")
    rejected(result, "Manifest path ':(icase)CFG' does not exist")


def test_path_is_normalised(repo: Repo, home: Path) -> None:
    for path in ("./manifests/", "manifests//", "docs/../manifests"):
        valid(fleetward(home, "validate", "--source", str(repo.path), "--path", path), files=1)


def test_path_above_a_source_in_a_subdirectory(repo: Repo, home: Path) -> None:
    source = str(repo.path / "manifests")
    result = fleetward(home, "validate", "--source", source, "--path", "../docs")
    rejected(result, "Manifest path '../docs' leaves the source")
    valid(fleetward(home, "validate", "--source", source, "--path", "."), files=1)


def test_unreadable_objects_are_a_source_error(repo: Repo, home: Path) -> None:
    """A missing object: git's own message, as a SourceError."""
    tree = repo.git("rev-parse", "HEAD:manifests")
    (repo.path / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
    result = fleetward(home, "validate", "--source", str(repo.path))
    rejected(result, "Git could not read 'HEAD:manifests'", None, "git ls-tree failed", tree)


def test_missing_blob_is_a_source_error(repo: Repo, home: Path) -> None:
    blob = repo.git("rev-parse", "HEAD:manifests/north.yaml")
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    result = fleetward(home, "validate", "--source", str(repo.path))
    rejected(result, "Git could not read 'manifests/north.yaml'", "manifests/north.yaml", blob)


def test_git_messages_never_show_credentials() -> None:
    import git

    from fleetward.source.git_commands import git_said as _said

    exc = git.GitCommandError(
        ["git", "ls-remote", "https://bob:s3cret@example.com/r.git"],
        128,
        b"fatal: unable to access 'https://bob:s3cret@example.com/r.git/'\nsecond line",
    )
    said = _said(exc)
    assert "s3cret" not in said and "bob" not in said
    assert said == "fatal: unable to access 'https://***@example.com/r.git/' second line"


# -- 2. refs that are not commits, repositories git refuses -------------------------------


def test_tree_and_blob_ids_are_not_commits(repo: Repo, home: Path) -> None:
    tree = repo.git("rev-parse", "HEAD^{tree}")
    blob = repo.git("rev-parse", "HEAD:manifests/north.yaml")
    repo.git("tag", "-a", "-m", "a tree", "tree-tag", tree)
    source = ["--source", str(repo.path)]
    rejected(
        fleetward(home, "validate", *source, "--ref", tree),
        f"Ref '{tree}' names a tree, not a commit",
        tree,
        "--path",
    )
    rejected(
        fleetward(home, "validate", *source, "--ref", "HEAD:manifests/north.yaml"),
        "Ref 'HEAD:manifests/north.yaml' names a blob, not a commit",
        None,
        blob,
    )
    rejected(
        fleetward(home, "validate", *source, "--ref", "tree-tag"),
        "Ref 'tree-tag' names a tree, not a commit",
    )


def test_unknown_refs_keep_their_hints(repo: Repo, home: Path, tmp_path: Path) -> None:
    rejected(
        fleetward(home, "validate", "--source", str(repo.path), "--ref", "nope"),
        "Ref 'nope' does not exist",
        "nope",
        "Known branches and tags: main",
    )
    rejected(
        fleetward(home, "validate", "--source", str(repo.path), "--ref=-x"),
        "Invalid ref '-x'",
        None,
        "may not start with '-'",
    )
    empty = Repo(tmp_path / "empty", home).init()
    rejected(
        fleetward(home, "validate", "--source", str(empty.path)),
        "Ref 'HEAD' does not exist",
        "HEAD",
        "no commits yet",
    )


def test_repository_of_another_user(repo: Repo, home: Path) -> None:
    """git's safe.directory check: its message and the fix, not 'Ref HEAD does not exist'."""
    probe = subprocess.run(
        ["git", "-C", str(repo.path), "rev-parse", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        env=_env(home, {"GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"}),
    )
    if "dubious ownership" not in probe.stderr:
        pytest.skip("this git cannot simulate a repository owned by another user")
    result = fleetward(
        home,
        "validate",
        "--source",
        str(repo.path),
        env={"GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"},
    )
    found = rejected(
        result,
        "Git refuses to read the repository",
        None,
        "dubious ownership",
        "git config --global --add safe.directory",
    )
    assert "does not exist" not in found[0][2]


@pytest.mark.parametrize("replaced", ["tree", "commit"])
@pytest.mark.parametrize("caller", ["default", "variable"])
def test_replace_refs_never_swap_the_content_of_a_revision(
    repo: Repo, home: Path, monkeypatch: pytest.MonkeyPatch, replaced: str, caller: str
) -> None:
    """A revision is its commit's own content: `git replace` swaps nothing in, whether the
    caller's environment turns replace refs off (GIT_NO_REPLACE_OBJECTS) or not, and even
    where the repository's config turns them on (core.useReplaceRefs, which git lets win
    over the variable)."""
    real = repo.git("rev-parse", "HEAD")
    other = repo.write({"manifests/north.yaml": fleet("elsewhere")}).commit()
    repo.git("reset", "-q", "--hard", real)
    if replaced == "tree":
        tree_of = [repo.git("rev-parse", f"{sha}^{{tree}}") for sha in (real, other)]
        repo.git("replace", *tree_of)
    else:
        repo.git("replace", real, other)
    repo.git("config", "core.useReplaceRefs", "true")
    for name, value in _env(home).items():
        monkeypatch.setenv(name, value)
    if caller == "variable":
        monkeypatch.setenv("GIT_NO_REPLACE_OBJECTS", "1")
    with open_snapshot(str(repo.path)) as snapshot:
        assert snapshot.revision.id == real
        contents = {f.path: data for f, data in snapshot.read(snapshot.files)}
    assert contents == {"manifests/north.yaml": fleet("north").encode()}


# -- 3. symlink loops in a commit ----------------------------------------------------------


def test_symlink_loops_are_reported_once_each_and_bounded(
    repo: Repo, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("l1", "l2", "l3"):
        repo.link(f"manifests/{name}", ".")
    repo.commit()
    result = fleetward(home, "validate", "--source", str(repo.path), timeout=60)
    found = rejected(result, "is part of a symlink loop", "manifests/l1", count=3)
    assert {loc for _, loc, _ in found} == {"manifests/l1", "manifests/l2", "manifests/l3"}
    # Each link is met once, in the one listing of manifests/, and refused there: no link
    # is walked into, so no directory is listed twice.
    walk = walk_in_process(repo, monkeypatch)
    assert len(walk.problems) == 3
    assert walk.links_followed == 3
    assert walk.trees_listed == 1


def test_loops_through_other_directories(repo: Repo, home: Path) -> None:
    repo.link("manifests/up", "..")  # the repository root holds the link
    repo.link("manifests/to-shared", "../shared")  # fine on its own ...
    repo.link("shared/back", "../manifests")  # ... but this leads back
    repo.link("manifests/a.yaml", "b.yaml")
    repo.link("manifests/b.yaml", "a.yaml")
    repo.write({"shared/common.yaml": fleet("common")}).commit()
    result = fleetward(home, "validate", "--source", str(repo.path), timeout=30)
    found = rejected(result, "is part of a symlink loop", "manifests/up", count=4)
    assert {loc for _, loc, _ in found} == {
        "manifests/up",
        "shared/back",
        "manifests/a.yaml",
        "manifests/b.yaml",
    }


def test_symlink_fan_out_is_bounded(
    repo: Repo, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No loop, but 5 links per level to the next level: 5**8 walks, refused early."""
    for level in range(9):
        for name in "abcde":
            repo.link(f"fan/d{level}/{name}", f"../d{level + 1}")
    repo.write({"fan/d9/x.yaml": fleet("deep")})
    repo.link("manifests/fan", "../fan/d0")
    repo.commit()
    result = fleetward(home, "validate", "--source", str(repo.path), timeout=120)
    found = rejected(result, "expands the manifest tree past", count=None)
    assert sum("expands the manifest tree past" in error for error, _, _ in found) == 1
    assert len(found) < 50
    # The work done: the links followed stay within the budget of linked entries (each
    # followed directory link spends at least one), not the 5**9 paths through the fan;
    # each directory is listed by git once, however many paths reach it.
    from fleetward.source.links import MAX_LINKED_ENTRIES

    walk = walk_in_process(repo, monkeypatch)
    assert sum("expands the manifest tree past" in p.error for p in walk.problems) == 1
    assert walk.links_followed <= MAX_LINKED_ENTRIES
    assert walk.trees_listed <= 2 * (1 + 10)  # manifests/ and fan/d0..d9, each flat and recursive


def test_shared_directory_links_still_work(repo: Repo, home: Path) -> None:
    repo.write({"shared/common.yaml": fleet("common"), "manifests/prod/p.yaml": fleet("prod")})
    repo.link("manifests/prod/common", "../../shared")
    repo.link("manifests/current.yaml", "prod/p.yaml")
    repo.commit()
    result = fleetward(home, "validate", "--source", str(repo.path), "--path", "manifests/prod")
    valid(result, files=2)


# -- 4. plain directories: broken links, FIFOs, unreadable files ---------------------------


def test_plain_broken_link_and_fifo(tmp_path: Path, home: Path) -> None:
    root = Repo(tmp_path / "plain", home).write({"manifests/north.yaml": fleet("north")})
    root.link("manifests/x.yaml", "nowhere.yaml")
    root.link("manifests/loop.yaml", "loop.yaml")
    os.mkfifo(root.path / "manifests" / "f.yaml")
    source = ["--source", str(root.path), "--no-git"]
    found = rejected(
        fleetward(home, "validate", *source, timeout=20),
        "points at nothing",
        "manifests/x.yaml",
        "nowhere.yaml",
        count=3,
    )
    by_location = {loc: error for error, loc, _ in found}
    assert "is not a regular file" in by_location["manifests/f.yaml"]
    assert "symlink loop" in by_location["manifests/loop.yaml"]
    rejected(
        fleetward(home, "validate", *source, "--path", "manifests/f.yaml", timeout=20),
        "Manifest file 'manifests/f.yaml' is not a regular file",
        "manifests/f.yaml",
        "FIFO",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_plain_unreadable_file(tmp_path: Path, home: Path) -> None:
    root = Repo(tmp_path / "plain", home).write({"manifests/north.yaml": fleet("north")})
    (root.path / "manifests" / "north.yaml").chmod(0)
    rejected(
        fleetward(home, "validate", "--source", str(root.path), "--no-git"),
        "Manifest file 'manifests/north.yaml' cannot be read",
        "manifests/north.yaml",
    )


def test_plain_unreadable_file_in_process(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as above for any user: opening the file fails with EACCES."""
    import errno

    from fleetward.source import open_snapshot

    root = Repo(tmp_path / "plain", home).write(
        {"manifests/north.yaml": fleet("north"), "manifests/south.yaml": fleet("south")}
    )
    real_open = os.open

    def deny(path: os.PathLike[str] | str, flags: int, *args: int, **kwargs: int) -> int:
        if str(path).endswith("north.yaml"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with open_snapshot(str(root.path), path="manifests", no_git=True) as snapshot:
        assert [f.path for f in snapshot.files] == ["manifests/south.yaml"]
        (problem,) = snapshot.problems
    assert problem.location == "manifests/north.yaml"
    assert problem.error == "Manifest file 'manifests/north.yaml' cannot be read"
    assert "Permission denied" in problem.reason and "Errno" not in problem.reason


def test_plain_path_leaving_the_source(tmp_path: Path, home: Path) -> None:
    root = Repo(tmp_path / "plain", home).write({"manifests/north.yaml": fleet("north")})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text(fleet("x"))
    root.link("outside", str(tmp_path / "elsewhere"))
    source = ["--source", str(root.path), "--no-git"]
    found = rejected(
        fleetward(home, "validate", *source, "--path", "../elsewhere"),
        "Manifest path '../elsewhere' leaves the source",
    )
    assert "Symlink" not in found[0][2]
    rejected(
        fleetward(home, "validate", *source, "--path", "outside"),
        "Manifest path 'outside' leads outside the source",
        "outside",
        "through a symlink",
    )


# -- 5. --path naming one file that is not YAML --------------------------------------------


@pytest.mark.parametrize("no_git", [False, True], ids=["git", "plain"])
def test_path_naming_a_non_yaml_file(repo: Repo, home: Path, no_git: bool) -> None:
    flags = ["--no-git"] if no_git else []
    source = ["--source", str(repo.path), *flags]
    rejected(
        fleetward(home, "validate", *source, "--path", "README.md"),
        "Manifest path 'README.md' is not a YAML file",
        None,
        ".yaml or .yml",
    )
    # One YAML file, or a directory without any, stays valid.
    valid(fleetward(home, "validate", *source, "--path", "manifests/north.yaml"), files=1)
    valid(fleetward(home, "validate", *source, "--path", "docs"), files=0)
