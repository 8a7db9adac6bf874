"""Remote Git sources (`--source URL`): a mirror in a cache directory, synced to a ref.

Each test builds real repositories in tmp_path with the `git` binary and
reaches them over file:// URLs (or an ssh:// URL whose "ssh" is a script that
hangs), in process: what is checked is the commit a sync lands on, the
snapshot read from the mirror, and the errors — what, why, how to fix, and
never a credential. Hostile URLs and refs are refused before any git runs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import isolated_env

from fleetward.errors import SourceError, UsageError
from fleetward.source import (
    RemoteMirror,
    is_remote,
    open_snapshot,
    redact_url,
    validate_remote_ref,
    validate_remote_url,
)
from fleetward.source import git_process
from fleetward.source.git import open_git

V1 = {"manifests/north.yaml": "north: 1\n", "manifests/south.yaml": "south: 1\n"}
V2 = {"manifests/north.yaml": "north: 2\n"}
V3 = {"manifests/west.yaml": "west: 3\n"}
NOWHERE = "file:///nonexistent/repo.git"  # for tests in which no git may run at all
HANG = "29.7301"  # seconds: a duration no other sleeping process has


class Remote:
    """A repository that plays the remote, reached as a file:// URL."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", branch)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def commit(self, files: Mapping[str, str], message: str) -> str:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment, isolated: the mirror's git inherits it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    for name in list(os.environ):
        if name.startswith(("GIT_", "FLEETWARD_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    for name, value in isolated_env(home).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "remote")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cache" / "git"


@pytest.fixture
def no_git_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts a process."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a process was started: {args[0] if args else kwargs}")

    # The module the mirror starts git through (and everything else) is patched.
    assert git_process.__dict__["subprocess"] is subprocess
    monkeypatch.setattr(subprocess, "Popen", refuse)


def read_all(
    url: str, ref: str, cache: Path, path: str = "manifests"
) -> tuple[str, str | None, dict[str, str]]:
    """(commit, shown ref, {file: text}) of one snapshot of `url` at `ref`."""
    with open_snapshot(url, ref, path, cache_root=cache) as snapshot:
        texts = {f.path: data.decode() for f, data in snapshot.read(snapshot.files)}
        return snapshot.revision.id, snapshot.revision.ref, texts


def problem_text(exc: SourceError | UsageError) -> str:
    return json.dumps([p.to_dict() for p in exc.problems]) + str(exc)


def child_processes() -> list[str]:
    """Command lines of this process's children (from /proc: no psutil needed)."""
    mine = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if fields[1] != mine:  # fields: state, ppid, ...
                continue
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # exited while we looked
        found.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


def processes_mentioning(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(text)
    return found


# -- what counts as remote, and how it is shown ----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "remote"),
    [
        ("https://github.com/org/repo.git", True),
        ("ssh://git@github.com/org/repo.git", True),
        ("git@github.com:org/repo.git", True),
        ("file:///srv/repo.git", True),
        ("ext::sh -c true", True),  # remote-shaped, so refused by name rather than looked for
        ("http://example.com/repo.git", True),
        (".", False),
        ("manifests", False),
        ("./dir:with-colon", False),
        ("/srv/repo.git", False),
    ],
)
def test_what_counts_as_a_remote(source: str, remote: bool) -> None:
    assert is_remote(source) is remote


def test_an_existing_directory_with_a_colon_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_remote("data:2024")
    (tmp_path / "data:2024").mkdir()
    assert not is_remote("data:2024")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok@host/x", "https://***@host/x"),
        ("https://tok@host:8443/x.git", "https://***@host:8443/x.git"),
        ("https://user:p@ss@host/x", "https://***@host/x"),  # an '@' inside the password
        ("https://host/x@y", "https://host/x@y"),  # an '@' in the path is no user-info
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("file:///srv/repo", "file:///srv/repo"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- syncing ---------------------------------------------------------------------------------------


def test_clone_at_branch_tag_and_sha(remote: Remote, cache: Path) -> None:
    first = remote.commit(V1, "v1")
    remote.git("tag", "-a", "-m", "release 1", "v1")  # annotated: peeled to its commit
    second = remote.commit(V2, "v2")
    mirror = RemoteMirror(remote.url, cache)

    assert mirror.sync("main") == second
    assert mirror.sync("v1") == first
    assert mirror.sync("refs/heads/main") == second
    assert mirror.sync("refs/tags/v1") == first
    assert mirror.sync(first) == first
    assert mirror.sync(first[:8]) == first
    assert mirror.head() == first
    assert mirror.path.parent == cache and len(mirror.path.name) == 16

    commit, shown, texts = read_all(remote.url, "main", cache)
    assert (commit, shown) == (second, "main")
    assert texts == {"manifests/north.yaml": "north: 2\n", "manifests/south.yaml": "south: 1\n"}
    commit, shown, texts = read_all(remote.url, "v1", cache)
    assert (commit, shown, texts["manifests/north.yaml"]) == (first, "v1", "north: 1\n")


def test_the_mirror_is_bare_and_keeps_no_url(remote: Remote, cache: Path) -> None:
    remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")
    assert not (mirror.path / "manifests").exists()  # nothing is checked out
    config = (mirror.path / "config").read_text()
    assert "bare = true" in config
    assert str(remote.path) not in config  # the URL reaches git through its environment


def test_head_is_the_remotes_default_branch(tmp_path: Path, cache: Path) -> None:
    remote = Remote(tmp_path / "remote", branch="trunk")
    trunk = remote.commit(V1, "v1")
    remote.git("checkout", "-q", "-b", "next")
    following = remote.commit(V2, "v2")
    remote.git("checkout", "-q", "trunk")
    mirror = RemoteMirror(remote.url, cache)

    assert mirror.sync("HEAD") == trunk
    assert mirror.sync() == trunk
    remote.git("symbolic-ref", "HEAD", "refs/heads/next")  # the default branch changes
    assert mirror.sync("HEAD") == following
    commit, shown, _ = read_all(remote.url, "HEAD", cache)
    assert (commit, shown) == (following, "HEAD")


def test_new_commits_are_picked_up(remote: Remote, cache: Path) -> None:
    remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")
    second = remote.commit(V2, "v2")
    assert mirror.sync("main") == second
    third = remote.commit(V3, "v3")
    _, _, texts = read_all(remote.url, "main", cache)
    assert mirror.head() == third
    assert texts["manifests/west.yaml"] == "west: 3\n"


def test_a_force_push_that_rewinds_the_branch_is_followed(remote: Remote, cache: Path) -> None:
    first = remote.commit(V1, "v1")
    remote.commit(V2, "v2")
    remote.git("checkout", "-q", "-b", "feature")
    remote.git("tag", "doomed")
    remote.git("checkout", "-q", "main")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")
    mirror.sync("feature")

    remote.git("reset", "-q", "--hard", first)  # main rewound: never merged, followed
    remote.git("branch", "-q", "-D", "feature")
    remote.git("tag", "-d", "doomed")
    assert mirror.sync("main") == first
    commit, _, texts = read_all(remote.url, "main", cache)
    assert commit == first
    assert texts["manifests/north.yaml"] == "north: 1\n"
    for gone in ("feature", "doomed"):  # pruned: a deleted branch or tag is not served stale
        with pytest.raises(SourceError, match=f"Ref '{gone}' does not exist"):
            mirror.sync(gone)
    assert mirror.head() == first


def test_a_sha_on_no_branch_or_tag_is_fetched_by_sha(remote: Remote, cache: Path) -> None:
    remote.commit(V1, "v1")
    remote.git("checkout", "-q", "-b", "pr")
    hidden = remote.commit(V3, "proposed")
    remote.git("update-ref", "refs/pull/1/head", hidden)  # as a Git host keeps a pull request
    remote.git("checkout", "-q", "main")
    remote.git("branch", "-q", "-D", "pr")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")

    assert mirror.sync(hidden) == hidden
    _, shown, texts = read_all(remote.url, hidden, cache)
    assert shown == hidden
    assert "manifests/west.yaml" in texts


def test_unknown_refs_say_what_exists(remote: Remote, cache: Path) -> None:
    remote.commit(V1, "v1")
    remote.git("tag", "v1")
    remote.git("tag", "tree-tag", "HEAD^{tree}")
    mirror = RemoteMirror(remote.url, cache)

    with pytest.raises(SourceError) as caught:
        mirror.sync("mian")
    problem = caught.value.problems[0]
    assert problem.error == f"Ref 'mian' does not exist in {remote.url}"
    assert "main, tree-tag, v1" in problem.reason
    assert problem.location == remote.url
    with pytest.raises(SourceError, match="not name a commit"):
        mirror.sync("tree-tag")
    with pytest.raises(SourceError) as caught:
        mirror.sync("abcdef1")  # an abbreviated SHA cannot be fetched
    assert "given in full" in caught.value.problems[0].resolution
    with pytest.raises(SourceError, match="does not exist"):
        mirror.sync("1" * 40)  # the remote will not serve it


def test_a_remote_without_a_default_branch(tmp_path: Path, cache: Path) -> None:
    empty = Remote(tmp_path / "empty")
    with pytest.raises(SourceError) as caught:
        RemoteMirror(empty.url, cache).sync("HEAD")
    assert caught.value.problems[0].error == f"The remote {empty.url} has no default branch"
    assert "--ref" in caught.value.problems[0].resolution


# -- failures keep the last good mirror ------------------------------------------------------------


def test_an_unreachable_remote_keeps_the_last_good_mirror(remote: Remote, cache: Path) -> None:
    good = remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")
    away = remote.path.with_name("away")
    remote.path.rename(away)

    with pytest.raises(SourceError) as caught:
        mirror.sync("main")
    problem = caught.value.problems[0]
    assert problem.error == f"The repository {remote.url} does not exist"
    assert problem.location == remote.url
    assert good[:12] in problem.resolution  # the commit the mirror still holds
    assert mirror.head() == good
    snapshot = open_git(mirror.path, good, "manifests")
    assert snapshot is not None
    with snapshot:
        assert {f.path for f in snapshot.files} == set(V1)

    away.rename(remote.path)
    newer = remote.commit(V2, "v2")
    assert mirror.sync("main") == newer


# -- the cache directory ---------------------------------------------------------------------------


def test_a_half_written_mirror_is_cloned_again(
    remote: Remote, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sha = remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    # What an interrupted first clone can leave: a directory git cannot open, and the
    # temporary clone it was building.
    mirror.path.mkdir(parents=True)
    (mirror.path / "HEAD").write_text("ref: refs/heads/ma")
    leftover = cache / f"{mirror.path.name}.tmp-deadbeef"
    (leftover / "objects").mkdir(parents=True)

    assert mirror.sync("main") == sha
    assert "is incomplete or damaged; cloning it again" in caplog.text
    assert not leftover.exists()
    assert (mirror.path / "fleetward-mirror").is_file()
    assert read_all(remote.url, "main", cache)[0] == sha


def test_a_mirror_without_its_marker_is_cloned_again(remote: Remote, cache: Path) -> None:
    sha = remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    mirror.sync("main")
    (mirror.path / "fleetward-mirror").unlink()  # a clone cut short before its first fetch ended
    (mirror.path / "objects" / "stray").write_text("x")
    assert mirror.sync("main") == sha
    assert not (mirror.path / "objects" / "stray").exists()


def test_a_mirror_missing_objects_is_cloned_again(
    remote: Remote, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    first = mirror.sync("main")
    blob = remote.git("rev-parse", "HEAD:manifests/south.yaml")
    loose = mirror.path / "objects" / blob[:2] / blob[2:]
    assert loose.is_file()  # a small fetch is stored as loose objects
    loose.unlink()
    # The next commit keeps south.yaml: fetch sends only new objects and never
    # notices the lost one; the completeness check does.
    second = remote.commit(V2, "v2")
    assert mirror.sync("main") == second != first
    assert "is damaged (fatal: missing blob object" in caplog.text
    _, _, texts = read_all(remote.url, "main", cache)
    assert texts["manifests/south.yaml"] == "south: 1\n"


def test_a_file_where_the_mirror_belongs_is_replaced(remote: Remote, cache: Path) -> None:
    sha = remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    cache.mkdir(parents=True)
    mirror.path.write_text("not a repository")
    assert mirror.sync("main") == sha
    assert sorted(p.name for p in cache.iterdir()) == [mirror.path.name, f"{mirror.path.name}.lock"]


def test_concurrent_syncs_of_one_mirror(remote: Remote, cache: Path) -> None:
    sha = remote.commit(V1, "v1")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: RemoteMirror(remote.url, cache).sync("main"), range(8)))
    assert results == [sha] * 8


def test_git_configuration_from_the_environment_is_kept(
    remote: Remote, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = remote.commit(V1, "v1")
    # A caller's own GIT_CONFIG_* entries (e.g. http.extraHeader for a token) still
    # apply; the mirror's URL is added after them, and a remote.origin.url elsewhere
    # is not the remote fleetward fetches from.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "X-Test: 1")
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "remote.origin.url")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "file:///nonexistent/elsewhere.git")
    assert RemoteMirror(remote.url, cache).sync("main") == sha


# -- hostile input is refused before any git runs --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "-oProxyCommand=touch% pwned",
        "--upload-pack=touch pwned",
        "-oProxyCommand=x:repo",
    ],
)
def test_urls_starting_with_a_dash(url: str, cache: Path, no_git_runs: None) -> None:
    with pytest.raises(SourceError, match="starts with '-'"):
        RemoteMirror(url, cache)
    with pytest.raises(SourceError, match="starts with '-'"):
        validate_remote_url(url)


@pytest.mark.parametrize("ref", ["-x", "--upload-pack=touch pwned", "--output=/tmp/x"])
def test_refs_starting_with_a_dash(ref: str, cache: Path, no_git_runs: None) -> None:
    with pytest.raises(SourceError, match="may not start with '-'"):
        RemoteMirror(NOWHERE, cache).sync(ref)
    with pytest.raises(SourceError, match="may not start with '-'"):
        open_snapshot(NOWHERE, ref, cache_root=cache)


@pytest.mark.parametrize(
    "ref", ["main..next", "a b", "main:manifests", "x^{tree}", "", "a\nb", "main@{1}", "~1"]
)
def test_refs_that_are_not_ref_names(ref: str, cache: Path, no_git_runs: None) -> None:
    with pytest.raises(SourceError, match="Invalid ref"):
        validate_remote_ref(ref)
    with pytest.raises(SourceError, match="Invalid ref"):
        RemoteMirror(NOWHERE, cache).sync(ref)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ext::sh -c touch% {tmp}/pwned", "whitespace or control characters"),
        ("ext::touch{tmp}/pwned", "transport 'ext::'"),
        ("fd::3", "transport 'fd::'"),
        ("git://example.com/repo.git", "git:// protocol"),
        ("http://example.com/repo.git", "plain http"),
        ("ftp://example.com/repo.git", "unsupported scheme 'ftp'"),
        ("https://example.com/repo.git\n--upload-pack=x", "whitespace or control characters"),
        ("https://example.com/re\x00po", "whitespace or control characters"),
        ("ssh://-oProxyCommand=x/repo", "starts with '-'"),
        ("ssh://git@-oProxyCommand=x/repo", "starts with '-'"),
        ("https:///repo.git", "has no host"),
        ("file://", "has no path"),
        ("host:", "has no path"),
    ],
)
def test_unsafe_urls_are_refused(
    url: str, said: str, tmp_path: Path, cache: Path, no_git_runs: None
) -> None:
    url = url.format(tmp=tmp_path)
    with pytest.raises(SourceError) as caught:
        open_snapshot(url, cache_root=cache)
    assert said in caught.value.problems[0].error
    assert caught.value.problems[0].resolution
    assert not (tmp_path / "pwned").exists()
    assert not cache.exists()


def test_http_is_refused_with_https_suggested(no_git_runs: None) -> None:
    with pytest.raises(SourceError) as caught:
        validate_remote_url("http://user:s3cret@example.com/repo.git")
    problem = caught.value.problems[0]
    assert "https://" in problem.resolution
    assert "s3cret" not in problem_text(caught.value)


# -- credentials -----------------------------------------------------------------------------------


def test_credentials_never_appear_in_errors_logs_or_the_cache(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://user:s3cret@127.0.0.1:9/repo.git"  # the discard port: refused at once
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as caught:
        read_all(url, "main", cache)
    problem = caught.value.problems[0]
    assert problem.error == "The remote https://***@127.0.0.1:9/repo.git cannot be reached"
    assert problem.location == "https://***@127.0.0.1:9/repo.git"
    assert "s3cret" not in problem_text(caught.value)
    assert "s3cret" not in caplog.text
    for path in cache.rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path
    # Another token for the same repository shares the cache directory.
    assert RemoteMirror(url, cache).path == RemoteMirror(url.replace("s3cret", "other"), cache).path


# -- processes and time --------------------------------------------------------------------------


def test_no_git_process_outlives_a_sync_or_a_snapshot(remote: Remote, cache: Path) -> None:
    remote.commit(V1, "v1")
    mirror = RemoteMirror(remote.url, cache)
    for n in range(50):
        if n % 10 == 0:
            remote.commit({f"manifests/extra-{n}.yaml": f"n: {n}\n"}, f"commit {n}")
        sha = mirror.sync("main")
        with open_snapshot(remote.url, "main", cache_root=cache) as snapshot:
            assert snapshot.revision.id == sha
            assert len(list(snapshot.read(snapshot.files))) == len(snapshot.files)
    assert [p for p in child_processes() if "git" in p] == []


@pytest.fixture
def hanging_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An "ssh" that connects to nothing and never returns."""
    script = tmp_path / "hanging-ssh-7f3a"
    script.write_text(f"#!/bin/sh\nexec sleep {HANG}\n")
    script.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))
    monkeypatch.setenv("GIT_SSH_VARIANT", "simple")
    return script


def test_a_hanging_remote_times_out(cache: Path, hanging_ssh: Path) -> None:
    mirror = RemoteMirror("ssh://git@example.invalid/repo.git", cache, timeout=1)
    with pytest.raises(SourceError) as caught:
        mirror.sync("main")
    # The timeout fired (the "ssh" sleeps HANG s, then fails with another message) ...
    problem = caught.value.problems[0]
    assert problem.error == "git fetch of ssh://***@example.invalid/repo.git timed out after 1 s"
    assert problem.parameters == {"timeout": 1}
    # ... and the whole process group went with it: git, and the "ssh" it started.
    assert child_processes() == []
    assert processes_mentioning(f"sleep {HANG}") == []
    assert not list(cache.glob("*.tmp-*"))  # the half-made clone is gone


# -- open_snapshot ---------------------------------------------------------------------------------


def test_open_snapshot_needs_a_cache_and_git(cache: Path, no_git_runs: None) -> None:
    with pytest.raises(UsageError, match="cannot read a remote source") as caught:
        open_snapshot(NOWHERE)
    assert "--state-dir" in caught.value.problems[0].resolution
    with pytest.raises(UsageError, match="--no-git cannot read a remote source"):
        open_snapshot(NOWHERE, no_git=True, cache_root=cache)
    assert not cache.exists()


def test_a_missing_manifest_path_names_the_users_ref(remote: Remote, cache: Path) -> None:
    sha = remote.commit(V1, "v1")
    with pytest.raises(SourceError) as caught:
        open_snapshot(remote.url, "main", "elsewhere", cache_root=cache)
    problem = caught.value.problems[0]
    assert f"at revision {sha[:7]}" in problem.error
    assert problem.location == "main:elsewhere"


def test_parallel_mirrors_of_different_remotes(tmp_path: Path, cache: Path) -> None:
    one, two = Remote(tmp_path / "one"), Remote(tmp_path / "two")
    first, second = one.commit(V1, "one"), two.commit(V3, "two")
    assert read_all(one.url, "main", cache)[0] == first
    assert read_all(two.url, "main", cache)[0] == second
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2
