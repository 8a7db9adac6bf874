"""`fleetward workflows show NAME [--graph]`, and a workflow's version across applies.

The CLI runs in-process (click's CliRunner); an unknown workflow also runs as
`python -m fleetward`, its exit code and stderr crossing a process boundary. The DOT output is checked by
Graphviz's own parser (`dot`, Debian's graphviz package; CI installs it): it
renders to SVG, and `-Tcanon` reads back what it writes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from support import isolated_env, run_cli

from fleetward.kinds.workflow import step_id

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "manifests" / "workflows" / "inspection-report.yaml"
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(
    DOT is None,
    reason="Graphviz's `dot` is not installed (apt-get install graphviz); "
    "the --graph output needs a real DOT parser to be checked",
)


def _env(home: Path) -> dict[str, str]:
    return isolated_env(home)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return _env(home)


def fleetward(
    *args: str, env: dict[str, str], cwd: Path, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI in-process, or as `python -m fleetward` if `process`."""
    if not process:
        done = run_cli(args, env=env, cwd=cwd)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "fleetward", *args],
            check=False,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """A plain directory holding only the bundled inspection-report workflow."""
    tree = tmp_path / "tree"
    (tree / "manifests").mkdir(parents=True)
    shutil.copy(BUNDLED, tree / "manifests" / BUNDLED.name)
    return tree


def show(
    tree: Path, env: dict[str, str], *extra: str, process: bool = False
) -> subprocess.CompletedProcess[str]:
    where = ["--no-git", "--source", str(tree), "--state-dir", str(tree.parent / "state")]
    return fleetward(
        "workflows", "show", *extra, *where, env=env, cwd=tree.parent, process=process
    )


# -- the tree ------------------------------------------------------------------------------


def _declared(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every step of a workflow file (inline and rescue too), and the spec."""
    spec = YAML(typ="safe").load(path.read_text(encoding="utf-8"))["spec"]
    out: list[dict[str, Any]] = []

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            out.append(step)
            for edge in step.get("next", []):
                walk(edge.get("steps", []))

    walk(spec["steps"])
    walk(spec.get("rescue", []))
    return out, spec


def _edge_line(edge: dict[str, Any]) -> str:
    condition = edge.get("status") or "any status"
    if edge.get("code"):
        condition += f", code {edge['code']}"
    target = (
        f"go to {edge['stepId']}" if edge.get("stepId") else "stop" if edge.get("stop") else "run:"
    )
    return f"on {condition} → {target}"


def test_show_prints_every_step_and_edge_of_the_bundled_workflow(
    bundled: Path, env: dict[str, str]
) -> None:
    done = show(bundled, env, "inspection-report")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    steps, spec = _declared(BUNDLED)
    assert len(steps) >= 6  # validate, ask-for-photos, sign, email, …, notify-coordinator
    assert out.splitlines()[0].startswith(f"Workflow {spec['name']} (active; id ")
    lines = [line.strip() for line in out.splitlines()]
    for step in steps:
        assert any(line.endswith(f"{step['name']}  [{step['action']}]") for line in lines), (
            f"step {step['name']} missing from\n{out}"
        )
        for edge in step.get("next", []):
            assert _edge_line(edge) in lines, f"edge {edge} of {step['name']} missing from\n{out}"
    assert "rescue (on a KO no edge handles):" in lines
    # Step order is kept, and the rescue steps come after the main ones.
    order = [out.index(f"{s['name']}  [") for s in steps]
    assert order == sorted(order)


def test_show_unknown_workflow_is_a_clear_error(bundled: Path, env: dict[str, str]) -> None:
    done = show(bundled, env, "inspection-reprot", process=True)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "No workflow named 'inspection-reprot'" in done.stderr
    assert "The workflows declared there are: inspection-report." in done.stderr


# -- the graph -----------------------------------------------------------------------------


def _dot(fmt: str, source: str) -> str:
    assert DOT is not None
    done = subprocess.run(
        [DOT, f"-T{fmt}"], check=False, input=source, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"dot -T{fmt} rejected the document: {done.stderr}\n{source}"
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    return done.stdout


def _svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


# An edge statement of render_dot: node ids are step UUIDs, or the start/end markers.
EDGE_STATEMENT = re.compile(r'^  ("[0-9a-f-]{36}"|start|end) -> ', re.MULTILINE)


def _parsed(source: str) -> tuple[dict[str, dict[str, Any]], list[tuple[str, ...]]]:
    """The graph as Graphviz parsed it (no layout): nodes with attributes, edges."""
    data = json.loads(_dot("dot_json", source))
    objects = [o for o in data["objects"] if "nodes" not in o]  # nodes, not (rank) subgraphs
    nodes = {o["name"]: {k: v for k, v in o.items() if k != "_gvid"} for o in objects}
    names = {o["_gvid"]: o["name"] for o in objects}
    keys = ("label", "style", "color")
    edges = sorted(
        (names[e["tail"]], names[e["head"]], *(str(e.get(k, "")) for k in keys))
        for e in data.get("edges", [])
    )
    return nodes, edges


def _check_graph(source: str, step_names: list[str], actions: list[str]) -> None:
    assert source.startswith("digraph ")
    texts = _svg_texts(_dot("svg", source))
    for name in step_names:
        assert name in texts, f"{name!r} not rendered; SVG texts: {texts}"
    for action in actions:
        assert action in texts
    nodes, edges = _parsed(source)
    assert len(nodes) == len(step_names) + 2  # every step, plus the start and end markers
    assert len(edges) == len(EDGE_STATEMENT.findall(source))
    # Round trip: Graphviz's canonical rewrite of the document parses to the same graph.
    canon = _dot("canon", source)
    assert _parsed(canon) == (nodes, edges)


@needs_dot
def test_graph_of_the_bundled_workflow_is_valid_dot(bundled: Path, env: dict[str, str]) -> None:
    done = show(bundled, env, "inspection-report", "--graph")
    assert done.returncode == 0, done.stderr
    steps, _ = _declared(BUNDLED)
    _check_graph(done.stdout, [s["name"] for s in steps], sorted({s["action"] for s in steps}))


TRICKY = """\
apiVersion: fleetward/v1
kind: Workflow
metadata: {name: tricky}
spec:
  name: 'digraph "x" { -> } \\ end'
  steps:
    - name: 'Say "hi" \\ then {brace}; -> go'
      action: log
      config: {message: hi}
      next: [{status: OK, code: 'a"b\\', stepId: 'Ünïcode → next'}]
    - name: 'Ünïcode → next'
      action: email.send
      next: [{status: KO, steps: [{name: 'inline <&> step', action: log, config: {message: x}}]}]
    - name: 'node'
      action: sleep
      config: {duration: PT1M}
  rescue:
    - name: 'edge [label="x"]'
      action: fail
      config: {reason: gave up}
"""


@needs_dot
def test_graph_escapes_names_dot_would_misread(tmp_path: Path, env: dict[str, str]) -> None:
    tree = tmp_path / "tree"
    (tree / "manifests").mkdir(parents=True)
    (tree / "manifests" / "tricky.yaml").write_text(TRICKY, encoding="utf-8")
    done = show(tree, env, "tricky", "--graph")
    assert done.returncode == 0, done.stderr
    steps, _ = _declared(tree / "manifests" / "tricky.yaml")
    _check_graph(done.stdout, [s["name"] for s in steps], [])


# -- versions across applies on a Git repository --------------------------------------------

V1 = """\
apiVersion: fleetward/v1
kind: Workflow
metadata:
  name: invoice-dispatch
spec:
  country: ES
  schema: bill/invoice
  steps:
    - name: sign
      action: document.sign
      next:
        - status: OK
          stepId: send
    - name: send
      action: email.send
      config: {subject: Your invoice}
"""
# A change of meaning: another subject.
V2 = V1.replace("Your invoice}", "Your invoice from Acme}")
# V2 spelled otherwise, same meaning: key order, flow style, quotes, the seed's
# `step_id`, the derived step id spelled out, `stop: false`, `notes: ""`, `draft: false`.
V2_REFORMATTED = f"""\
kind: Workflow
apiVersion: "fleetward/v1"
metadata: {{name: 'invoice-dispatch'}}
spec:
  steps:
    - {{next: [{{step_id: send, status: "OK", stop: false}}], action: "document.sign", name: sign}}
    - config:
        subject: "Your invoice from Acme"
      action: email.send
      id: "{step_id("invoice-dispatch", "send")}"
      name: "send"
      notes: ""
  schema: 'bill/invoice'
  draft: false
  country: "ES"
"""


class Repo:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        root.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def commit(self, text: str, message: str) -> None:
        path = self.root / "manifests" / "workflows" / "invoice-dispatch.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


def test_version_moves_on_a_change_of_meaning_only(tmp_path: Path, env: dict[str, str]) -> None:
    repo = Repo(tmp_path / "repo", env)
    state = ["--state-dir", str(tmp_path / "state")]
    source = ["--source", str(repo.root)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = fleetward(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    def stored() -> dict[str, Any]:
        objects = json.loads(run("state", "show", "--json", *state).stdout)["objects"]
        (workflow,) = [o for o in objects if o["key"] == "Workflow/invoice-dispatch"]
        return dict(workflow)

    repo.commit(V1, "v1")
    run("apply", "--auto-approve", *state, *source)
    first = stored()
    assert first["status"]["version"] == 1
    assert first["status"]["usable"] is True
    assert first["status"]["hash"] == first["specHash"][:16]

    repo.commit(V2, "v2: another subject")
    plan = json.loads(run("plan", "--json", *state, *source).stdout)
    (change,) = plan["changes"]
    assert change["action"] == "update"
    diff = {d["path"]: (d.get("before"), d.get("after")) for d in change["diff"]}
    assert diff["status.version"] == (1, 2)
    assert diff["spec.steps[1].config.subject"] == ("Your invoice", "Your invoice from Acme")
    run("apply", "--auto-approve", *state, *source)
    second = stored()
    assert second["status"]["version"] == 2
    assert second["status"]["hash"] != first["status"]["hash"]
    assert second["status"]["hash"] == second["specHash"][:16]
    assert second["createdAt"] == first["createdAt"]
    tree = run("workflows", "show", "invoice-dispatch", *state, *source).stdout
    assert "version 2" in tree.splitlines()[0]

    repo.commit(V2_REFORMATTED, "reformat only")
    plan = json.loads(run("plan", "--json", *state, *source).stdout)
    assert plan["changes"] == []
    quiet = fleetward("plan", "--detailed-exitcode", *state, *source, env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stdout  # 2 would mean: changes present
    assert "No changes." in quiet.stdout
    run("apply", "--auto-approve", *state, *source)
    third = stored()
    assert third["status"] == second["status"]
    assert third["specHash"] == second["specHash"]


def test_show_at_a_ref_gives_the_version_of_that_definition(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The version shown is the store's only when the store holds the definition read
    at --ref; otherwise it says so, and which version applying that one gives."""
    repo = Repo(tmp_path / "repo", env)
    state = ["--state-dir", str(tmp_path / "state")]
    source = ["--source", str(repo.root)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = fleetward(*args, *state, *source, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    def show_at(*ref: str) -> str:
        return run("workflows", "show", "invoice-dispatch", *ref).stdout

    repo.commit(V1, "v1")
    v1 = repo.git("rev-parse", "HEAD")
    run("apply", "--auto-approve")
    repo.commit(V2, "v2: another subject")

    header, note = show_at().splitlines()[:2]
    assert "version" not in header  # HEAD's definition is not the store's version 1
    assert note.strip() == (
        "not applied: the store holds version 1 of another definition; "
        "applying it makes it version 2"
    )
    assert "(active; version 1, id " in show_at("--ref", v1).splitlines()[0]
    body = json.loads(run("workflows", "show", "invoice-dispatch", "--json").stdout)
    assert (body["status"]["version"], body["applied"]) == (2, False)

    run("apply", "--auto-approve")
    assert "(active; version 2, id " in show_at().splitlines()[0]
    # v1 is no longer what the store holds: applying it again is a change, to version 3.
    assert "makes it version 3" in show_at("--ref", v1).splitlines()[1]


def test_graph_and_json_together_are_an_error(bundled: Path, env: dict[str, str]) -> None:
    done = show(bundled, env, "inspection-report", "--graph", "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Error: --graph conflicts with --json" in done.stderr
