"""`--ref` takes any commit-ish git accepts, and refuses what is not one reproducible commit.

Accepted: branches, tags, full and abbreviated SHAs, ancestry (`HEAD~2`, `main^`,
`v1.0^{commit}`), for a local repository and (ancestry after a branch, tag or
SHA) for a remote. Refused with a reason: reflog forms (`main@{1}`: local
history), ranges, whitespace, options, `:` forms, ambiguous and unknown names.
Everything runs through the real CLI (`validate --json`) on real repositories.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from click.testing import CliRunner
from daemon_support import (  # noqa: F401  (ws_fixture: a pytest fixture)
    GitRepo,
    Workspace,
    ws_fixture,
)

from fleetward.cli import cli

FLEET = "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: north\nspec:\n  assets: []\n"


def validate(ws: Workspace, source: str, ref: str) -> dict[str, Any]:
    """`validate --json` on `source` at `ref`: its JSON, with the exit code as "exit"."""
    env: dict[str, str | None] = {**ws.env, "FLEETWARD_REF": None, "FLEETWARD_SOURCE": None}
    result = CliRunner(env=env).invoke(
        cli, ["validate", "--json", "--source", source, "--ref", ref], catch_exceptions=False
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "Internal error" not in stream, stream
    body: dict[str, Any] = json.loads(result.stdout)
    body["exit"] = result.exit_code
    return body


def refused(body: dict[str, Any], error: str, *says: str) -> dict[str, Any]:
    assert body["exit"] == 1, body
    (problem,) = body["errors"]
    assert error in problem["error"], problem
    text = problem["reason"] + " " + problem["resolution"]
    for said in says:
        assert said in text, (said, problem)
    return dict(problem)


@pytest.fixture(name="history")
def history_fixture(ws: Workspace) -> tuple[GitRepo, list[str]]:
    """A repository with three commits (oldest first); v1.0 tags the first, annotated."""
    repo = GitRepo(ws.path("repo"), ws.env)
    commits = [
        repo.commit(f"commit {n}", {"manifests/north.yaml": FLEET + f"# {n}\n"}) for n in range(3)
    ]
    repo.git("tag", "-a", "-m", "release", "v1.0", commits[0])
    return repo, commits


@pytest.mark.parametrize(
    ("ref", "index"),
    [
        ("HEAD~2", 0),
        ("HEAD~1", 1),
        ("main^", 1),
        ("main^^", 0),
        ("v1.0^{commit}", 0),
        ("v1.0", 0),
        ("@", 2),
        ("HEAD^{/it.1}", 1),
        ("FULL", 2),
        ("SHORT", 1),
    ],
)
def test_commit_ish_refs_of_a_local_repository(
    ws: Workspace, history: tuple[GitRepo, list[str]], ref: str, index: int
) -> None:
    repo, commits = history
    ref = {"FULL": commits[2], "SHORT": commits[1][:7]}.get(ref, ref)
    body = validate(ws, str(repo.root), ref)
    assert body["exit"] == 0, body
    assert body["revision"] == commits[index]


@pytest.mark.parametrize(
    ("ref", "error", "says"),
    [
        ("main@{1}", "Invalid ref 'main@{1}': a reflog entry", ("reproduced", "git rev-parse")),
        ("@{-1}", "a reflog entry", ("reproduced",)),
        ("HEAD@{upstream}", "a reflog entry", ()),
        ("HEAD~1..main", "a range of commits", ("--base",)),
        ("main...HEAD", "a range of commits", ()),
        ("main foo", "Invalid ref 'main foo'", ("no spaces",)),
        ("main\tfoo", "Invalid ref", ()),
        ("--output=/tmp/x", "Invalid ref '--output=/tmp/x'", ("option",)),
        (":/1", "does not exist", ("searches commit messages",)),
        (":/commit", "does not exist", ("searches commit messages",)),
        ("HEAD:manifests", "names a tree, not a commit", ("--path",)),
        ("HEAD~7", "Ref 'HEAD~7' does not exist", ("'HEAD' exists", "steps past")),
        ("nope~1", "Ref 'nope~1' does not exist", ("Known branches and tags: main, v1.0",)),
    ],
)
def test_refs_that_name_no_single_reproducible_commit(
    ws: Workspace,
    history: tuple[GitRepo, list[str]],
    ref: str,
    error: str,
    says: tuple[str, ...],
) -> None:
    repo, _ = history
    refused(validate(ws, str(repo.root), ref), error, *says)


def test_a_name_that_is_a_branch_and_a_tag_is_ambiguous(
    ws: Workspace, history: tuple[GitRepo, list[str]]
) -> None:
    repo, commits = history
    repo.git("branch", "release", commits[0])
    repo.git("tag", "release", commits[2])
    refused(
        validate(ws, str(repo.root), "release"),
        "Ref 'release' is ambiguous",
        "refs/tags/release, refs/heads/release",
        "--ref refs/tags/release",
    )
    assert validate(ws, str(repo.root), "refs/heads/release")["revision"] == commits[0]
    assert validate(ws, str(repo.root), "refs/tags/release~1")["revision"] == commits[1]


def test_an_abbreviated_sha_of_two_commits_is_ambiguous(ws: Workspace) -> None:
    repo = GitRepo(ws.path("repo"), ws.env)
    repo.commit("base", {"manifests/north.yaml": FLEET})
    # 1,500 commits in one fast-import: some two share their first 4 hex digits.
    stream = "".join(
        f"commit refs/heads/many\ncommitter a <a@example.com> {1_700_000_000 + n} +0000\n"
        f"data {len(str(n))}\n{n}\n" + ("from refs/heads/main\n" if n == 0 else "") + "\n"
        for n in range(1500)
    )
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        input=stream,
        text=True,
        cwd=repo.root,
        env=repo.env,
        check=True,
    )
    prefixes = [sha[:4] for sha in repo.git("rev-list", "many").split()]
    shared = next(p for p in prefixes if prefixes.count(p) > 1)
    refused(
        validate(ws, str(repo.root), shared),
        f"Ref '{shared}' is ambiguous",
        "(commit)",
        "more digits",
    )


# -- a remote source: ancestry after a branch, tag or SHA -----------------------------------------


@pytest.mark.parametrize(
    ("ref", "index"),
    [("main~2", 0), ("HEAD~1", 1), ("main^", 1), ("v1.0^{commit}", 0), ("FULL~1", 1)],
)
def test_ancestry_refs_of_a_remote(
    ws: Workspace, history: tuple[GitRepo, list[str]], ref: str, index: int
) -> None:
    repo, commits = history
    bare = ws.remote(repo)
    repo.git("push", "-q", "origin", "v1.0")
    ref = ref.replace("FULL", commits[2])
    body = validate(ws, bare.url, ref)
    assert body["exit"] == 0, body
    assert body["revision"] == commits[index]


@pytest.mark.parametrize(
    ("ref", "error", "says"),
    [
        ("main~5", "Ref 'main~5' does not exist", ("steps past",)),
        ("main@{1}", "a reflog entry", ("reproduced",)),
        ("main^{/commit}", "Invalid ref", ("ancestry steps",)),
        ("main:manifests", "Invalid ref", ()),
    ],
)
def test_refs_a_remote_refuses(
    ws: Workspace,
    history: tuple[GitRepo, list[str]],
    ref: str,
    error: str,
    says: tuple[str, ...],
) -> None:
    repo, _ = history
    bare = ws.remote(repo)
    refused(validate(ws, bare.url, ref), error, *says)


def test_the_daemon_refuses_a_ref_no_commit_can_fix_at_start(
    ws: Workspace, history: tuple[GitRepo, list[str]]
) -> None:
    """Refused at start with the reason, not retried with backoff run after run."""
    repo, _ = history
    state = ws.path("state")
    done = ws.fleetward(
        "daemon", "--once", "--source", str(repo.root), "--ref", "main@{1}",
        "--state-dir", str(state), "--listen", "127.0.0.1:0",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Invalid ref 'main@{1}': a reflog entry" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (state / "operations.json").exists()  # no run was recorded
