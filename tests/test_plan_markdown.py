"""`plan --format markdown`: the comment a bot posts on a pull request.

Whatever the plan says, failure included, it is on standard output, names the
revisions compared, and shows every value as written: a value cannot close a
code span, split a table row or inject HTML. Parsed with markdown-it (CommonMark
plus GFM tables, HTML allowed as GitHub allows it) to check what a reader sees.
The CLI runs in-process (click's CliRunner): what is tested is the text.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from daemon_support import NORTH, GitRepo, manifest_repo
from markdown_it import MarkdownIt
from support import isolated_env, run_cli

SECOND_NAME = "      name: Volvo FH16 no. 2\n"
HOSTILE_NAME = "Volvo `FH16` | <script>alert(1)</script> ``x`` no. 1"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    return isolated_env(home, {"COLUMNS": "200"})


def fleetward(
    repo: GitRepo, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env=env, cwd=repo.root)


def html_of(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def cells(html: str) -> list[list[str]]:
    """The rows of the rendered table body, as lists of cell HTML."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [row for row in body.split("</tr>") if "<td>" in row]
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]


def test_manifest_errors_are_a_markdown_comment_naming_the_revision(
    tmp_path: Path, env: dict[str, str]
) -> None:
    repo, _ = manifest_repo(tmp_path / "repo", env)
    repo.replace(NORTH, SECOND_NAME, SECOND_NAME + "      bogus: 1\n")
    bad = repo.commit("a field the schema does not have")

    done = fleetward(repo, env, "plan", "--format", "markdown")

    assert done.returncode == 1
    assert done.stdout.startswith(f"### fleetward plan for `{bad[:7]}` (`HEAD`)"), done.stdout
    html = html_of(done.stdout)
    assert "No plan: 1 error in revision" in html
    assert "<strong>Error: Unknown field &quot;bogus&quot;</strong>" in html
    assert f"<code>{NORTH}:" in html  # the location, file:line:column
    assert 'Unknown field "bogus"' in done.stderr  # the terminal still gets the text
    assert "Traceback" not in done.stderr


def test_plan_base_names_the_base_revision_whose_manifests_fail(
    tmp_path: Path, env: dict[str, str]
) -> None:
    repo, _ = manifest_repo(tmp_path / "repo", env)
    repo.replace(NORTH, SECOND_NAME, SECOND_NAME + "      bogus: 1\n")
    bad = repo.commit("a field the schema does not have")
    repo.replace(NORTH, "      bogus: 1\n", "")
    good = repo.commit("fixed")

    text = fleetward(repo, env, "plan", "--base", "HEAD~1")
    assert text.returncode == 1
    assert f"Reading the base revision HEAD~1 ({bad[:7]}) failed" in text.stderr

    markdown = fleetward(repo, env, "plan", "--base", "HEAD~1", "--format", "markdown")
    assert markdown.returncode == 1
    heading = markdown.stdout.splitlines()[0]
    assert heading == (
        f"### fleetward plan from `{bad[:7]}` (`HEAD~1`) to `{good[:7]}` (`HEAD`)"
    ), heading
    assert f"1 error in the base revision `{bad[:7]}` (`HEAD~1`)" in markdown.stdout

    as_json = fleetward(repo, env, "plan", "--base", "HEAD~1", "--json")
    assert '"side": "base"' in as_json.stdout and bad in as_json.stdout


def test_a_review_plan_names_both_revisions(tmp_path: Path, env: dict[str, str]) -> None:
    repo, first = manifest_repo(tmp_path / "repo", env)
    second = repo.set_model("FH16 Aero")
    done = fleetward(repo, env, "plan", "--base", first, "--format", "markdown")
    assert done.returncode == 0, done.stderr
    # A SHA given as --base is not repeated as a ref; HEAD is.
    assert done.stdout.splitlines()[0] == (
        f"### fleetward plan from `{first[:7]}` to `{second[:7]}` (`HEAD`)"
    )


def test_values_are_escaped_in_the_table(tmp_path: Path, env: dict[str, str]) -> None:
    repo, _ = manifest_repo(tmp_path / "repo", env)
    assert fleetward(repo, env, "apply", "--auto-approve").returncode == 0
    repo.replace(NORTH, "name: Volvo FH16 no. 1", f"name: {HOSTILE_NAME!r}".replace("'", '"'))
    repo.commit("a name with Markdown and HTML in it")

    done = fleetward(repo, env, "plan", "--format", "markdown")

    assert done.returncode == 0, done.stderr
    html = html_of(done.stdout)
    assert "<script>" not in html
    (row,) = cells(html)
    assert len(row) == 5, row  # the `|` in the value did not split the row
    symbol, address, action, reason, change = row
    assert (address, action, reason) == ("<code>Asset/TRK-1001</code>", "update", "spec changed")
    # The new value reads exactly as written (as JSON, in one code span).
    shown = re.findall(r"<code>(.*?)</code>", change)
    escaped = HOSTILE_NAME.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown[-1] == f"&quot;{escaped}&quot;", change


def test_max_lines_limits_the_rows(tmp_path: Path, env: dict[str, str]) -> None:
    repo, _ = manifest_repo(tmp_path / "repo", env)
    full = fleetward(repo, env, "plan", "--format", "markdown", "--max-lines", "0")
    assert full.returncode == 0, full.stderr
    total = len(cells(html_of(full.stdout)))
    assert total > 10

    done = fleetward(repo, env, "plan", "--format", "markdown", "--max-lines", "4")

    assert len(cells(html_of(done.stdout))) == 4
    assert f"… and {total - 4} more change(s) not shown (--max-lines 4;" in done.stdout


@pytest.mark.parametrize("fmt", ["markdown", "text"])
def test_json_with_another_format_is_an_error(
    tmp_path: Path, env: dict[str, str], fmt: str
) -> None:
    repo, _ = manifest_repo(tmp_path / "repo", env)
    done = fleetward(repo, env, "plan", "--json", "--format", fmt)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"Error: --json conflicts with --format {fmt}" in done.stderr
    agreeing = fleetward(repo, env, "plan", "--json", "--format", "json")
    assert agreeing.returncode == 0 and agreeing.stdout.startswith("{")
