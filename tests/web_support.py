"""A web view over a real repository and a real store, served in-process (Starlette's TestClient).

`Site` commits manifests with the `git` binary, runs reconciles with the daemon's
own `Reconciler` into a real state directory, tells the web view's `LiveView`
of each run as the daemon does, and serves the pages without a socket: the
fast tests of escaping, tokens, pagination and empty states. The browser tests
run the real daemon instead (tests/test_web_browser.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from daemon_support import GitRepo
from starlette.applications import Starlette
from starlette.testclient import TestClient
from support import isolated_env

from fleetward.daemon.config import DaemonConfig
from fleetward.daemon.configured import run_settings
from fleetward.daemon.reconciler import Reconciler
from fleetward.observe.health import Health
from fleetward.operations import Operation
from fleetward.runs import RunReport
from fleetward.store import open_store
from fleetward.timestamps import now_iso
from fleetward.web import CommitReader, LiveView, WebSources, web_routes
from fleetward.web.graph import GraphRenderer
from fleetward.web.live import PLANS_KEPT

MANUAL_POLICY = """\
apiVersion: fleetward/v1
kind: SyncPolicy
metadata:
  name: north-by-hand
spec:
  selector: {kinds: [Fleet], names: [north-yard]}
  approval: manual
"""


def fleet(name: str, assets: int, prefix: str = "BIG", labels: str = "{tier: test}") -> str:
    """A Fleet document of `assets` assets named PREFIX-0…"""
    lines = [
        "apiVersion: fleetward/v1",
        "kind: Fleet",
        "metadata:",
        f"  name: {name}",
        f"  labels: {labels}",
        "spec:",
        "  assets:",
    ]
    for n in range(assets):
        lines += [
            f"    - externalAssetId: {prefix}-{n}",
            f"      name: {prefix} {n}",
            "      type: truck",
            f"      labels: {{class: {'odd' if n % 2 else 'even'}}}",
        ]
    return "\n".join(lines) + "\n"


class Site:
    """One repository, one state directory, and the web view over them."""

    def __init__(
        self,
        root: Path,
        files: Mapping[str, str] | None = None,
        *,
        bundled: bool = True,
        token: str | None = None,
        source_url: str | None = None,
        graphs: GraphRenderer | None = None,
        plans_kept: int = PLANS_KEPT,
    ) -> None:
        home = root / "home"
        home.mkdir(parents=True)
        (home / "gitconfig").touch()
        self.repo = GitRepo(root / "repo", isolated_env(home))
        if bundled:
            self.repo.copy_manifests()
        self.first = self.repo.commit("bundled manifests", files or {"manifests/.keep": ""})
        self.state = root / "state"
        config = DaemonConfig(source=str(self.repo.root), state_dir=str(self.state))
        self.store = open_store(self.state)
        self.reconciler = Reconciler(
            run_settings(config), self.store.operations, None, self.store
        )
        self.health = Health(ready_max_age=300.0)
        self.live = LiveView(kept=plans_kept)
        shown = {"url": source_url or str(self.repo.root), "ref": "HEAD", "path": "manifests"}
        self.sources = WebSources(
            health=self.health,
            operations=self.store.operations,
            store=self.store,
            live=self.live,
            source=lambda: shown,
            commits=CommitReader(lambda: self.repo.root),
            graphs=graphs or GraphRenderer(),
        )
        self.token = token
        app = Starlette(routes=web_routes(self.sources, lambda: self.token))
        self.client = TestClient(app, follow_redirects=False)

    def run(self) -> RunReport:
        """One reconcile, reported as the daemon reports it."""
        report = self.reconciler.run(Operation.new("poll", now_iso()))
        self.health.record(report)
        self.live.run_finished(report)
        return report

    def commit(self, message: str, files: Mapping[str, str]) -> str:
        return self.repo.commit(message, files)

    def page(self, path: str, status: int = 200) -> str:
        reply = self.client.get(path)
        assert reply.status_code == status, (path, reply.status_code, reply.text[:2000])
        return reply.text
