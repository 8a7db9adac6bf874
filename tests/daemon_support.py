"""Fixtures and helpers for the daemon's end-to-end tests.

Everything here is real: repositories built with the `git` binary in
tmp_path, `python -m fleetward daemon` as a subprocess (its own process
group, so teardown can kill it and any git it started), HTTP over
127.0.0.1 with urllib. Nothing sleeps for a fixed time: waits poll a
predicate until a deadline (`wait_until`), and fail with what was seen.

Test modules import the fixtures they use:

    from daemon_support import daemons_fixture, ws_fixture  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import isolated_env

BUNDLED_MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
NORTH = "manifests/fleets/north-yard.yaml"
# TRK-1001's attributes in the bundled manifests; edits swap the model.
TRK_1001_LINE = "attributes: {make: Volvo, model: FH16, year: 2022, payloadTonnes: 40}"
STARTED = "fleetward daemon started"

T = TypeVar("T")


# -- waiting ---------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "",
    alive: Callable[[], None] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail at the deadline.

    `alive` is called on every round: it raises if the process waited on died,
    so a crash fails at once with its log rather than after the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what or predicate!r}; last value {last!r}"
            )
        time.sleep(interval)


# -- git -------------------------------------------------------------------------------------------


class GitRepo:
    """A working repository (or, with bare=True, a bare one that plays the remote)."""

    def __init__(self, root: Path, env: Mapping[str, str], bare: bool = False) -> None:
        self.root = root
        self.env = dict(env)
        root.mkdir(parents=True)
        self.git("init", "-q", *(["--bare"] if bare else []), "-b", "main")

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args],
            check=False,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def copy_manifests(self) -> None:
        shutil.copytree(BUNDLED_MANIFESTS, self.root / "manifests")

    def replace(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    def commit(self, message: str, files: Mapping[str, str] | None = None) -> str:
        for rel, text in (files or {}).items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def set_model(self, model: str, message: str | None = None) -> str:
        """Commit TRK-1001 with attributes.model = `model`; the new commit."""
        path = self.root / NORTH
        lines = path.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if "make: Volvo" in line and "year: 2022" in line:
                indent = line[: len(line) - len(line.lstrip())]
                lines[i] = (
                    f"{indent}attributes: {{make: Volvo, model: {model}, year: 2022, "
                    "payloadTonnes: 40}\n"
                )
                break
        else:
            raise AssertionError("TRK-1001's attributes line not found")
        path.write_text("".join(lines))
        return self.commit(message or f"TRK-1001 is a {model}")


def manifest_repo(root: Path, env: Mapping[str, str]) -> tuple[GitRepo, str]:
    """A repository holding the bundled manifests, committed; and that commit."""
    repo = GitRepo(root, env)
    repo.copy_manifests()
    return repo, repo.commit("bundled manifests")


# -- HTTP ------------------------------------------------------------------------------------------

# No proxies: the daemon is on loopback, and a proxy from the environment would intercept it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


PUSH_BODY = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def assert_error_body(reply: Reply, status: int) -> dict[str, Any]:
    """The reply has `status` and the error body every failure carries; that body."""
    assert reply.status == status, (reply.status, reply.text)
    body: dict[str, Any] = reply.json()
    for key in ("error", "reason", "resolution"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    return body


# -- metrics ---------------------------------------------------------------------------------------


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample of a Prometheus text exposition."""
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    ]


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with (at least) `labels`; fails if there is none."""
    for found, have, value in samples(exposition):
        if found == name and all(have.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"no sample {name}{labels or ''} in the exposition")


# -- the daemon ------------------------------------------------------------------------------------


class DaemonDied(AssertionError):
    pass


class DaemonProcess:
    """One `fleetward daemon` subprocess, its log file and its HTTP address."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.argv = argv
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: teardown kills the git it started too
        )
        self.pid = self.proc.pid
        self.url = ""
        self.state_dir: Path | None = None

    # -- the log -------------------------------------------------------------------------

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (any other line is skipped)."""
        found = []
        for line in self.output().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def logged(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.logs() if line.get("message") == message]

    def alive(self) -> None:
        """Raise (with the log) if the daemon exited."""
        code = self.proc.poll()
        if code is not None:
            raise DaemonDied(f"the daemon exited with {code}; its log:\n{self.output()}")

    def wait(self, predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
        return wait_until(predicate, timeout=timeout, what=what, alive=self.alive)

    def wait_started(self, timeout: float = 20.0) -> str:
        line = self.wait(lambda: self.logged(STARTED), timeout, "the startup log line")[0]
        self.url = str(line["listen"])
        assert self.url.startswith("http://127.0.0.1:"), line
        return self.url

    # -- HTTP ----------------------------------------------------------------------------

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return http("GET", self.url + path, headers=headers)

    def post(self, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Reply:
        return http("POST", self.url + path, body=body, headers=headers)

    def webhook(
        self,
        secret: str | None,
        body: bytes = PUSH_BODY,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """POST /v0/webhook as GitHub sends a push; signed with `secret` unless it is None."""
        sent = {"Content-Type": "application/json", "X-GitHub-Event": "push", **(headers or {})}
        if secret is not None:
            sent["X-Hub-Signature-256"] = sign(secret, body)
        return self.post("/v0/webhook", body, sent)

    def request_run(self, token: str) -> Reply:
        return self.post(
            "/v0/operations/",
            json.dumps({"operation_type": "CONVERGE"}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    def operations(self, **query: str | int) -> list[dict[str, Any]]:
        """Every operation, oldest first (unless an ordering is given)."""
        params = {"limit": 1000, "ordering": "created_at", **query}
        qs = "&".join(f"{k}={v}" for k, v in params.items())
        reply = self.get(f"/v0/operations/?{qs}")
        assert reply.status == 200, reply.text
        results: list[dict[str, Any]] = reply.json()["content"]["results"]
        return results

    def operation(self, operation_id: str) -> dict[str, Any]:
        reply = self.get(f"/v0/operations/{operation_id}/")
        assert reply.status == 200, reply.text
        op: dict[str, Any] = reply.json()["content"]
        return op

    def wait_operation(self, operation_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The operation once it is final."""

        def ended() -> dict[str, Any] | None:
            op = self.operation(operation_id)
            return op if op["state"] in ("SUCCESS", "FAILURE", "CANCELLED", "TIMEOUT") else None

        return self.wait(ended, timeout, f"operation {operation_id} to end")

    def metrics(self) -> str:
        reply = self.get("/metrics")
        assert reply.status == 200, reply.text
        return reply.text

    # -- status files --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """summary.json as it is now (fails if the daemon has not written one yet)."""
        assert self.state_dir is not None
        return summary_of(self.state_dir)

    def _summary(self) -> dict[str, Any] | None:
        assert self.state_dir is not None
        return read_summary(self.state_dir)

    def wait_applied(self, revision: str, timeout: float = 15.0) -> dict[str, Any]:
        """summary.json once it says `revision` is applied and the last run succeeded."""

        def applied() -> dict[str, Any] | None:
            s = self._summary()
            if (
                s is not None
                and s["applied"]["revision"] == revision
                and s["lastOperation"]["state"] == "SUCCESS"
            ):
                return s
            return None

        return self.wait(applied, timeout, f"revision {revision[:12]} to be applied")

    def wait_summary(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 15.0, what: str = ""
    ) -> dict[str, Any]:

        def checked() -> dict[str, Any] | None:
            s = self._summary()
            return s if s is not None and check(s) else None

        return self.wait(checked, timeout, what)

    # -- stopping ------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code (TimeoutExpired if it takes longer than `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the daemon's process group (the daemon and any git it started)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        finally:
            self._log.close()


def read_summary(state_dir: Path) -> dict[str, Any] | None:
    """STATE/status/summary.json, or None before the first run wrote it."""
    try:
        value: dict[str, Any] = json.loads((state_dir / "status" / "summary.json").read_bytes())
    except FileNotFoundError:
        return None
    return value


def summary_of(state_dir: Path) -> dict[str, Any]:
    summary = read_summary(state_dir)
    assert summary is not None, f"no {state_dir}/status/summary.json"
    return summary


# -- fixtures --------------------------------------------------------------------------------------


@dataclass
class Workspace:
    """tmp_path with a throw-away HOME and git identity; runs the CLI as a user would."""

    root: Path
    env: dict[str, str]
    _names: dict[str, int] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.root / name

    def repo(self, name: str = "work") -> tuple[GitRepo, str]:
        return manifest_repo(self.root / name, self.env)

    def remote(self, work: GitRepo, name: str = "remote.git") -> GitRepo:
        """A bare repository `work` pushes to (as origin); it holds work's main."""
        bare = GitRepo(self.root / name, self.env, bare=True)
        work.git("remote", "add", "origin", str(bare.root))
        work.git("push", "-q", "-u", "origin", "main")
        return bare

    def fleetward(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetward", *args],
            check=False,
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log_file(self, stem: str) -> Path:
        n = self._names.get(stem, 0) + 1
        self._names[stem] = n
        return self.root / f"{stem}-{n}.log"


@pytest.fixture(name="ws")
def ws_fixture(tmp_path: Path) -> Workspace:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    env = isolated_env(home)
    # No proxy for anything the daemon or git might reach.
    env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    return Workspace(tmp_path, env)


class Daemons:
    """Starts daemons for one test and kills every one of them at teardown."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.started: list[DaemonProcess] = []

    def spawn(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> DaemonProcess:
        """`fleetward daemon ARGS` as given (no defaults added), not waited for."""
        argv = [sys.executable, "-m", "fleetward", "daemon", *args]
        daemon = DaemonProcess(
            argv, {**self.ws.env, **(env or {})}, cwd or self.ws.root, self.ws.log_file("daemon")
        )
        self.started.append(daemon)
        return daemon

    def start(
        self,
        source: str | Path,
        state_dir: Path,
        *args: str,
        webhook_secret: str | None = None,
        api_token: str | None = None,
        interval: str = "60s",
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> DaemonProcess:
        """A daemon on 127.0.0.1:0 with JSON logs, started (its URL known)."""
        argv = [
            "--source",
            str(source),
            "--state-dir",
            str(state_dir),
            "--listen",
            "127.0.0.1:0",
            "--interval",
            interval,
            "--log-format",
            "json",
            *args,
        ]
        if webhook_secret is not None:
            argv += ["--webhook-secret", webhook_secret]
        if api_token is not None:
            argv += ["--api-token", api_token]
        daemon = self.spawn(*argv, env=env)
        daemon.state_dir = state_dir
        if wait:
            daemon.wait_started()
        return daemon

    def kill_all(self) -> None:
        for daemon in self.started:
            daemon.kill()


@pytest.fixture(name="daemons")
def daemons_fixture(ws: Workspace) -> Iterator[Daemons]:
    started = Daemons(ws)
    try:
        yield started
    finally:
        started.kill_all()


def big_repo(
    root: Path, env: Mapping[str, str], assets: int = 10_000, per_file: int | None = None
) -> tuple[GitRepo, str]:
    """A repository of `assets` assets: one Fleet (its first reconcile takes about a second
    for 10,000), or one Fleet per `per_file` assets, each in its own file."""
    repo = GitRepo(root, env)
    per_file = per_file or assets
    files: dict[str, str] = {}
    for first in range(0, assets, per_file):
        name = "big" if per_file == assets else f"big-{first // per_file:03}"
        lines = ["apiVersion: fleetward/v1", "kind: Fleet", "metadata:", f"  name: {name}"]
        lines += ["spec:", "  assets:"]
        for n in range(first, min(first + per_file, assets)):
            lines += [
                f"    - externalAssetId: BIG-{n}",
                f"      name: Big {n}",
                "      type: truck",
                "      attributes: {make: Volvo, model: FH16}",
            ]
        files[f"manifests/{name}.yaml"] = "\n".join(lines) + "\n"
    return repo, repo.commit("a big fleet", files)


def operations_on_disk(state_dir: Path) -> list[dict[str, Any]]:
    """The operation log as the file holds it, oldest first (no daemon needed)."""
    try:
        data = json.loads((state_dir / "operations.json").read_bytes())
    except FileNotFoundError:
        return []  # not written yet (writes are atomic: never half a file)
    table = data.get("operations", {})
    return [table[k] for k in sorted(table, key=int)]


# -- one daemon for a whole module -------------------------------------------------------------


@contextlib.contextmanager
def module_daemon(root: Path, **options: Any) -> Iterator[DaemonProcess]:
    """A daemon over a fresh repository in `root`, started once for a test module (with
    `options` as `Daemons.start` takes them), applied, and killed afterwards. Proxy
    variables are dropped: the tests talk to 127.0.0.1 only."""
    home = root / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    env = {k: v for k, v in isolated_env(home).items() if not k.lower().endswith("_proxy")}
    workspace = Workspace(root, env)
    repo, first = workspace.repo()
    started = Daemons(workspace)
    try:
        daemon = started.start(repo.root, workspace.path("state"), **options)
        daemon.wait_applied(first)  # ready: /readyz answers 200 (its 503 is a real signal)
        yield daemon
    finally:
        started.kill_all()
