"""A Git object that cannot be read in full is an error, never an empty file.

Real repositories with a manifest's loose object damaged the ways disks and
crashes damage them (cut short, emptied, deleted, corrupt zlib, a valid stream
of other bytes), read by the real CLI and the real daemon. What a user must
see: exit 1, an error naming the file and the object id with a way to repair
it, no misdiagnosis ("dubious ownership", "Broken pipe"), the store as it
was; the daemon keeps its last good revision and applies once the object is
repaired, without a restart; a damaged mirror of a remote is cloned again by
fleetward itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    Daemons,
    GitRepo,
    Workspace,
    daemons_fixture,
    ws_fixture,
)

TOKEN = "api-token-for-damage-tests"
MISDIAGNOSES = ("dubious", "safe.directory", "Broken pipe", "Traceback", "Internal error")


def loose_path(repo: GitRepo, blob: str) -> Path:
    return repo.root / ".git" / "objects" / blob[:2] / blob[2:]


def _cut_short(raw: bytes, loose: bytes) -> bytes | None:
    return loose[: len(loose) // 2]  # the zlib stream ends mid-content: the header is intact


def _emptied(raw: bytes, loose: bytes) -> bytes | None:
    return b""


def _missing(raw: bytes, loose: bytes) -> bytes | None:
    return None


def _corrupt_zlib(raw: bytes, loose: bytes) -> bytes | None:
    middle = len(loose) // 2
    flipped = bytes(b ^ 0x5A for b in loose[middle : middle + 32])
    return loose[:middle] + flipped + loose[middle + 32 :]


def _other_bytes(raw: bytes, loose: bytes) -> bytes | None:
    # A valid stream of the same size but other content: only the object id tells.
    return zlib.compress(raw.replace(b"Volvo", b"Volvp", 1))


DAMAGE: dict[str, Callable[[bytes, bytes], bytes | None]] = {
    "cut-short": _cut_short,
    "emptied": _emptied,
    "missing": _missing,
    "corrupt-zlib": _corrupt_zlib,
    "other-bytes": _other_bytes,
}


def damage(objects: Path, blob: str, how: str) -> bytes:
    """Damage the loose object `blob` under `objects` as `how` says; its good bytes."""
    path = objects / blob[:2] / blob[2:]
    loose = path.read_bytes()
    raw = zlib.decompress(loose)
    assert raw.startswith(b"blob ")
    damaged = DAMAGE[how](raw, loose)
    path.chmod(0o644)
    path.unlink()
    if damaged is not None:
        path.write_bytes(damaged)
    return loose


def assert_reported(result: subprocess.CompletedProcess[str], path: str, blob: str) -> None:
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 1, shown
    said = f"Git could not read '{path}': object {blob} is damaged or missing"
    assert said in result.stderr, shown
    assert f"--> {path}" in result.stderr, shown
    assert "git fsck" in result.stderr, shown
    for wrong in MISDIAGNOSES:
        assert wrong not in result.stdout + result.stderr, shown


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_plan_and_apply_refuse_a_damaged_blob(ws: Workspace, how: str) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    source = ["--source", str(repo.root), "--state-dir", str(state)]
    applied = ws.fleetward("apply", "--auto-approve", *source)
    assert applied.returncode == 0, applied.stderr
    store_before = (state / "state.json").read_bytes()
    blob = repo.git("rev-parse", f"HEAD:{NORTH}")
    damage(repo.root / ".git" / "objects", blob, how)

    planned = ws.fleetward("plan", *source)
    assert_reported(planned, NORTH, blob)
    assert "stop" not in planned.stdout
    as_json = ws.fleetward("plan", "--json", *source)
    assert as_json.returncode == 1, as_json.stderr
    (error,) = json.loads(as_json.stdout)["errors"]
    assert error["location"] == NORTH
    assert error["parameters"] == {"object": blob, "path": NORTH}
    assert "git fsck" in error["resolution"] and "hash-object -w" in error["resolution"]

    assert_reported(ws.fleetward("apply", "--auto-approve", *source), NORTH, blob)
    assert_reported(ws.fleetward("validate", "--source", str(repo.root)), NORTH, blob)
    assert (state / "state.json").read_bytes() == store_before


def test_every_damaged_file_is_reported_at_once(ws: Workspace) -> None:
    repo, _ = ws.repo()
    blobs = {}
    for path in (NORTH, "manifests/fleets/field-equipment.yaml"):
        blobs[path] = repo.git("rev-parse", f"HEAD:{path}")
        damage(repo.root / ".git" / "objects", blobs[path], "cut-short")
    result = ws.fleetward("validate", "--json", "--source", str(repo.root))
    assert result.returncode == 1, result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert {e["location"]: e["parameters"]["object"] for e in errors} == blobs


def _commit_damaged(repo: GitRepo, model: str) -> tuple[str, str, Path]:
    """Commit TRK-1001 as a `model` whose blob is cut short before git ever wrote it
    (git add finds the object present and keeps it): the commit, the blob, the object."""
    north = repo.root / NORTH
    text = north.read_text().replace("model: FH16, year: 2022", f"model: {model}, year: 2022")
    north.write_text(text)
    blob = repo.git("hash-object", NORTH)
    content = north.read_bytes()
    loose = zlib.compress(b"blob %d\0" % len(content) + content)
    path = loose_path(repo, blob)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(loose[: len(loose) // 2])
    return repo.commit(f"TRK-1001 is a {model}"), blob, path


def test_the_daemon_keeps_the_last_good_revision_and_applies_once_the_object_is_repaired(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, good = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state, api_token=TOKEN)
    daemon.wait_applied(good)
    store_before = (state / "state.json").read_bytes()

    bad, blob, path = _commit_damaged(repo, "FH16 Aero")
    summary = daemon.wait_summary(
        lambda s: s["source"]["revisionSeen"] == bad and s["lastOperation"]["state"] == "FAILURE",
        what="the revision with a damaged object to be refused",
    )
    assert summary["applied"]["revision"] == good
    (error,) = summary["errors"]
    assert error["location"] == NORTH
    assert blob in error["error"] and "git fsck" in error["resolution"]
    assert not any(wrong in json.dumps(summary) for wrong in MISDIAGNOSES)
    assert (state / "state.json").read_bytes() == store_before

    # Asked again before the repair: refused again (nothing of the bad read was kept).
    again = daemon.wait_operation(daemon.request_run(TOKEN).json()["content"]["operation_id"])
    assert again["state"] == "FAILURE", again
    assert (state / "state.json").read_bytes() == store_before

    path.unlink()
    assert repo.git("hash-object", "-w", NORTH) == blob
    repaired = daemon.wait_operation(daemon.request_run(TOKEN).json()["content"]["operation_id"])
    assert repaired["state"] == "SUCCESS", repaired
    daemon.wait_applied(bad)


# -- the mirror of a remote: fleetward repairs its own copy ---------------------------------------


def _changes(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    return [(c["address"], c["action"]) for c in json.loads(result.stdout)["changes"]]


def _mirror_objects(state: Path) -> Path:
    (mirror,) = [p for p in (state / "cache" / "git").iterdir() if p.is_dir()]
    return mirror / "objects"


def test_a_damaged_mirror_is_cloned_again_and_read_on(ws: Workspace) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    source = ["--source", remote.url, "--state-dir", str(state)]
    planned = ws.fleetward("plan", "--json", *source)
    assert planned.returncode == 0, planned.stderr
    blob = work.git("rev-parse", f"HEAD:{NORTH}")
    objects = _mirror_objects(state)
    assert (objects / blob[:2] / blob[2:]).is_file()  # a small fetch stays loose
    good = damage(objects, blob, "cut-short")

    again = ws.fleetward("plan", "--json", *source)
    assert again.returncode == 0, again.stderr
    assert _changes(again) == _changes(planned)  # the same plan: nothing stopped
    assert "cloning it again" in again.stderr and blob in again.stderr
    for wrong in MISDIAGNOSES:
        assert wrong not in again.stderr
    assert zlib.decompress(good) == zlib.decompress((objects / blob[:2] / blob[2:]).read_bytes())


def test_a_damaged_mirror_whose_remote_is_gone_says_what_was_tried(ws: Workspace) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    # At a full SHA the mirror already holds, a sync fetches nothing: the remote is
    # needed only to repair the mirror.
    source = ["--source", remote.url, "--ref", first, "--state-dir", str(state)]
    assert ws.fleetward("plan", *source).returncode == 0
    blob = work.git("rev-parse", f"HEAD:{NORTH}")
    damage(_mirror_objects(state), blob, "cut-short")
    os.rename(remote.root, remote.root.with_name("moved.git"))

    result = ws.fleetward("plan", *source)
    assert_reported(result, NORTH, blob)
    assert "tried to clone its mirror again, and that failed" in result.stderr
    assert "does not exist" in result.stderr  # why the clone failed


def test_the_daemon_clones_its_damaged_mirror_again_and_applies(
    ws: Workspace, daemons: Daemons
) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    daemon = daemons.start(remote.url, state, api_token=TOKEN)
    daemon.wait_applied(first)

    # The next commit reaches the mirror through a CLI plan on the same state directory
    # (--no-cache: its parse must not reach the shared document cache, or the daemon would
    # never read the blob); then its new blob is damaged before the daemon ever read it.
    second = work.set_model("FH16 Aero")
    work.git("push", "-q", "origin", "main")
    plan = ("plan", "--no-cache", "--source", remote.url, "--state-dir", str(state))
    assert ws.fleetward(*plan).returncode == 0
    blob = work.git("rev-parse", f"HEAD:{NORTH}")
    damage(_mirror_objects(state), blob, "cut-short")

    op = daemon.wait_operation(daemon.request_run(TOKEN).json()["content"]["operation_id"])
    assert op["state"] == "SUCCESS", op
    daemon.wait_applied(second)
    warned = [line for line in daemon.logs() if "cloning it again" in str(line.get("message"))]
    assert warned and blob in warned[0]["message"], daemon.output()
