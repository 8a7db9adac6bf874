"""A source is read while it is open, and not after: no git process outlives a run.

Real repositories (made with `git`) read in this process, so what is counted
is what a daemon would accumulate run after run: the git children left behind
by resolve and plan, the answers a reader keeps after an interrupted read, the
environment git runs in. The plan stage still locates its errors at
file:line:column from bytes kept before the source was closed.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_support import GitRepo, Workspace, ws_fixture  # noqa: F401  (ws_fixture: a fixture)

from fleetward.errors import CorruptObject, SourceError
from fleetward.pipeline import SourceOptions, make_plan, resolve
from fleetward.planning import PlanOptions
from fleetward.source import blobs, open_snapshot
from fleetward.source.remote import RemoteMirror
from fleetward.store import TinyDBStore

SAME_ID = "6f1c2b7e-4a4d-4a55-9d51-0c2a0d8e7b11"
# Two declarations of one kind, in two files, with one id: a plan-stage clash.
CLASHING_SPECS = {
    "Field": "{{xid: {name}, name: {name}, id: {id}}}",
    "TaskType": "{{xid: {name}, name: {name}, id: {id}}}",
    "User": "{{userName: {name}, email: {name}@example.com, id: {id}}}",
}


def children() -> list[str]:
    """The command lines of this process's live child processes."""
    me = os.getpid()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # it exited while listed
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


@pytest.fixture
def in_process(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """`ws`, with this process's environment set as the CLI's would be (its git identity)."""
    for name in [n for n in os.environ if n.startswith(("GIT_", "FLEETWARD_"))]:
        monkeypatch.delenv(name)
    for name, value in ws.env.items():
        monkeypatch.setenv(name, value)
    assert children() == []
    yield ws
    assert children() == [], "a git process outlived the test"


def _repo(ws: Workspace, files: dict[str, str]) -> GitRepo:
    repo = GitRepo(ws.path("work"), ws.env)
    repo.commit("manifests", files)
    return repo


def _document(kind: str, name: str, spec: str) -> str:
    return f"apiVersion: fleetward/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def _plan_errors(ws: Workspace, source: str) -> list[tuple[str | None, str]]:
    desired = resolve(SourceOptions(source=source))
    assert children() == [], "resolve left a git process"
    plan = make_plan(desired, TinyDBStore(ws.path("state")).read(), PlanOptions())
    assert children() == [], "the plan left a git process"
    return [(e.location, e.error) for e in plan.errors]


# -- 1. nothing reads a closed source ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CLASHING_SPECS))
def test_a_reference_clash_is_located_and_leaves_no_git_process(
    in_process: Workspace, kind: str
) -> None:
    files = {
        f"manifests/{name}.yaml": _document(
            kind, name, CLASHING_SPECS[kind].format(name=name, id=SAME_ID)
        )
        for name in ("north", "south")
    }
    repo = _repo(in_process, files)
    errors = _plan_errors(in_process, str(repo.root))
    # Line 4 of the second file, at its spec's id.
    spec_line = files["manifests/south.yaml"].splitlines()[3]
    at = f"manifests/south.yaml:4:{spec_line.index(SAME_ID) + 1}"
    assert errors == [(at, f"Duplicate {kind} id {SAME_ID!r}")]


def test_an_asset_id_clash_is_located_by_its_file_and_leaves_no_git_process(
    in_process: Workspace,
) -> None:
    """Fleets are not kept for the plan (they may be large): the clash names the file."""
    files = {
        f"manifests/{name}.yaml": _document(
            "Fleet", name, f"{{assets: [{{externalAssetId: {name}-1, id: {SAME_ID}}}]}}"
        )
        for name in ("north", "south")
    }
    repo = _repo(in_process, files)
    ((location, error),) = _plan_errors(in_process, str(repo.root))
    assert location is not None and location.startswith("manifests/south.yaml"), location
    assert error == f"Duplicate Asset id {SAME_ID!r}"


def _open(kind: str, ws: Workspace) -> Any:
    files = {"manifests/north.yaml": _document("Fleet", "north", "{assets: []}")}
    if kind == "plain":
        (ws.path("plain") / "manifests").mkdir(parents=True)
        (ws.path("plain") / "manifests" / "north.yaml").write_text(files["manifests/north.yaml"])
        return open_snapshot(str(ws.path("plain")), no_git=True)
    repo = _repo(ws, files)
    if kind == "git":
        return open_snapshot(str(repo.root))
    remote = ws.remote(repo)
    return open_snapshot(remote.url, cache_root=ws.path("cache"))


@pytest.mark.parametrize("kind", ["git", "remote", "plain"])
def test_a_closed_snapshot_refuses_reads_and_starts_nothing(
    in_process: Workspace, kind: str
) -> None:
    snapshot = _open(kind, in_process)
    with snapshot:
        ((f, content),) = list(snapshot.read(snapshot.files))
        assert b"kind: Fleet" in content
    assert children() == []
    with pytest.raises(SourceError) as raised:
        list(snapshot.read(snapshot.files))
    (problem,) = raised.value.problems
    assert problem.location == "manifests/north.yaml"
    assert "after its source was closed" in problem.error
    assert children() == [], "a read after the close started git again"


# -- 5. git's messages are English whatever the caller's locale ----------------------------------


def test_every_git_command_runs_in_the_c_locale(
    in_process: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source layer matches git's English messages ("is ambiguous", "dubious ownership",
    damaged objects), so no git it starts may speak the user's language."""
    repo = _repo(in_process, {"manifests/north.yaml": _document("Fleet", "north", "{assets: []}")})
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    monkeypatch.setenv("LANGUAGE", "fr")
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    seen: list[tuple[str, str | None, str | None]] = []
    real_init = subprocess.Popen.__init__

    def spy(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, str) else list(args)
        if argv and os.path.basename(str(argv[0])) == "git":
            env = kwargs.get("env")
            env = os.environ if env is None else env
            seen.append((" ".join(map(str, argv[:2])), env.get("LC_ALL"), env.get("LANGUAGE")))
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    with open_snapshot(str(repo.root)) as snapshot:
        list(snapshot.read(snapshot.files))
    assert seen, "no git command was seen"
    assert [s for s in seen if s[1:] != ("C", "C")] == [], seen


# -- 8. an interrupted read leaves nothing half-read ---------------------------------------------


@pytest.mark.parametrize(
    "interruption", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()]
)
def test_a_read_interrupted_midway_leaves_the_next_read_whole(
    in_process: Workspace, monkeypatch: pytest.MonkeyPatch, interruption: BaseException
) -> None:
    names = ("north", "south", "west")
    repo = _repo(
        in_process,
        {f"manifests/{n}.yaml": _document("Fleet", n, "{assets: []}") for n in names},
    )
    real_read = os.read
    armed = []

    def failing_read(fd: int, size: int) -> bytes:
        if armed:
            armed.clear()
            raise interruption
        return real_read(fd, size)

    with open_snapshot(str(repo.root)) as snapshot:
        first, second, third = snapshot.files
        assert [f for f, _ in snapshot.read([first])] == [first]  # git cat-file is running
        monkeypatch.setattr(blobs.os, "read", failing_read)
        armed.append(True)
        with pytest.raises(type(interruption)):
            list(snapshot.read([second]))
        # git answered the interrupted request all the same: none of it may be taken
        # for the next answer.
        read = dict(snapshot.read([third, second]))
    assert read == {
        third: (repo.root / third.path).read_bytes(),
        second: (repo.root / second.path).read_bytes(),
    }


# -- 15. a mirror still damaged after its reclone reports every damaged file ---------------------


def test_files_still_damaged_after_the_reclone_are_reported_together(
    in_process: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("north", "south", "west")
    repo = _repo(
        in_process,
        {f"manifests/{n}.yaml": _document("Fleet", n, "{assets: []}") for n in names},
    )
    remote = in_process.remote(repo)
    cache = in_process.path("cache")
    damaged = {
        f"manifests/{n}.yaml": repo.git("rev-parse", f"HEAD:manifests/{n}.yaml")
        for n in ("north", "west")
    }

    def cut_short() -> None:
        (mirror,) = [p for p in cache.iterdir() if p.is_dir()]
        for blob in damaged.values():
            loose = mirror / "objects" / blob[:2] / blob[2:]
            data = loose.read_bytes()
            loose.chmod(0o644)
            loose.write_bytes(data[: len(data) // 2])

    real_reclone = RemoteMirror.reclone
    reclones = []

    def reclone_onto_a_failing_disk(self: RemoteMirror, ref: str, sha: str) -> None:
        reclones.append(sha)
        real_reclone(self, ref, sha)
        cut_short()  # the new clone's objects are damaged on disk again

    monkeypatch.setattr(RemoteMirror, "reclone", reclone_onto_a_failing_disk)
    with open_snapshot(remote.url, cache_root=cache) as snapshot:
        cut_short()
        read = []
        with pytest.raises(CorruptObject) as raised:
            for f, _ in snapshot.read(snapshot.files):
                read.append(f.path)
    assert read == ["manifests/south.yaml"]
    assert len(reclones) == 1
    problems = raised.value.problems
    assert {p.location: p.parameters["object"] for p in problems} == damaged
    for p in problems:
        assert re.search(r"in the mirror of .*remote\.git$", p.error), p.error
        assert "unreadable in the new clone too" in p.reason, p.reason
