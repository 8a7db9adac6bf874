"""Running git in a local repository through GitPython, and what its failures mean.

Every command runs with literal pathspecs, English messages, no prompt and a
timeout; a failing one becomes `GitFailed` with git's own message on one line,
credentials masked, which `read_failed` turns into a `SourceError` (or a
`CorruptObject` when git reports damage).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import git

from fleetward.errors import CorruptObject, SourceError
from fleetward.source.blobs import looks_corrupt

# git's messages are matched below ("is ambiguous", "dubious ownership", damaged objects),
# so they must be in English: set here, not left to GitPython's own default.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_LITERAL_PATHSPECS": "1",
    "LANGUAGE": "C",
    "LC_ALL": "C",
}
# Replace refs (`git replace OLD NEW`, refs/replace/*) make git hand out NEW wherever OLD
# is looked up: a signed commit's tree could be swapped for any other tree, or an unsigned
# commit checked as a signed one. A revision is its commit's own content, so every git
# fleetward runs reads objects as stored: the variable turns replace refs off, and the
# configuration, which a repository's own core.useReplaceRefs=true would otherwise
# override it with (git 2.39), turns them off again with the precedence of `git -c`.
_STORED_OBJECTS_ENV = {"GIT_NO_REPLACE_OBJECTS": "1"}
_STORED_OBJECTS_CONFIG = ("core.useReplaceRefs", "false")
MAX_GIT_MESSAGE = 2000
LOCAL_GIT_TIMEOUT = 120.0  # seconds per command on a local repository (ls-tree: ms)


def with_config(env: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """`env` plus the configuration `key=value` given through the environment
    (GIT_CONFIG_COUNT): after any the caller gave, so it wins, as `git -c` would."""
    out = dict(env)
    count = int(out["GIT_CONFIG_COUNT"]) if out.get("GIT_CONFIG_COUNT", "").isdigit() else 0
    out[f"GIT_CONFIG_KEY_{count}"] = key
    out[f"GIT_CONFIG_VALUE_{count}"] = value
    out["GIT_CONFIG_COUNT"] = str(count + 1)
    return out


def stored_objects(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a git that reads objects as stored: replace refs off, however the
    caller's environment or the repository's configuration ask for them. Every git
    fleetward runs gets its environment from here (the readers, the signature check,
    the remote mirror), so the commit checked is the commit read."""
    out = {k: v for k, v in env.items() if k != "GIT_REPLACE_REF_BASE"}
    out.update(_STORED_OBJECTS_ENV)
    return with_config(out, *_STORED_OBJECTS_CONFIG)


def git_env() -> dict[str, str]:
    """The environment of git in a local repository: the caller's, objects as stored,
    English messages, literal pathspecs, no prompt."""
    return stored_objects({**os.environ, **GIT_ENV})


def open_repo(source: Path) -> git.Repo:
    """The repository containing `source`, every command GitPython runs in it (its own
    object reads included) in `git_env()`. Raises what `git.Repo` raises."""
    repo = git.Repo(source, search_parent_directories=True)
    repo.git.update_environment(**git_env())
    return repo


class GitFailed(Exception):
    """A git command exited non-zero; `said` is its stderr, cleaned for display."""

    def __init__(self, command: str, said: str) -> None:
        super().__init__(f"git {command}: {said}")
        self.command = command
        self.said = said


def run_git(repo: git.Repo, command: str, *args: str) -> str:
    """Run `git COMMAND ARGS...` in the repository; its stdout, or `GitFailed`."""
    return run_git_full(repo, command, *args)[0]


def run_git_full(repo: git.Repo, command: str, *args: str) -> tuple[str, str]:
    """Run `git COMMAND ARGS...` in the repository; its stdout and stderr (warnings), or
    `GitFailed`."""
    try:
        status, out, err = getattr(repo.git, command)(
            *args,
            env=git_env(),
            with_extended_output=True,
            with_exceptions=False,
            # A git that hangs (a stuck network file system) must not hang the daemon.
            kill_after_timeout=LOCAL_GIT_TIMEOUT,
        )
    except git.GitCommandNotFound as exc:
        raise SourceError.one(
            "The git command cannot be run",
            f"fleetward reads Git repositories with the git binary, and starting it failed: "
            f"{clean_git_message(str(exc))}.",
            "Install git and make sure it is on PATH, or read a plain directory with --no-git.",
        ) from None
    except git.GitCommandError as exc:  # e.g. git could not be started at all
        raise GitFailed(command, git_said(exc)) from None
    if status != 0:
        raise GitFailed(command, clean_git_message(err) or f"git exited with status {status}")
    return str(out), clean_git_message(str(err))


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_GITPYTHON_STDERR = re.compile(r"^\s*stderr:\s*'(.*)'\s*$", re.DOTALL)


def git_said(exc: Exception) -> str:
    """What git wrote to stderr for a GitPython exception (or the exception's text)."""
    stderr = getattr(exc, "stderr", "") or ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    found = _GITPYTHON_STDERR.match(stderr)  # GitPython keeps it as "\n  stderr: '...'"
    return clean_git_message(found.group(1) if found else stderr or str(exc))


def clean_git_message(message: str) -> str:
    """git's message on one line, credentials in URLs masked, bounded in length."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    text = _USERINFO.sub("***@", text)
    if len(text) > MAX_GIT_MESSAGE:
        text = text[:MAX_GIT_MESSAGE] + " ..."
    return text


def is_dubious(said: str) -> bool:
    return "dubious ownership" in said or "safe.directory" in said


def dubious_repository(repo: git.Repo | None, said: str, fallback: str) -> SourceError:
    found = re.search(r"safe\.directory\s+(\S.*?)\s*$", said)
    path = (
        found.group(1)
        if found
        else ((repo.working_tree_dir or repo.git_dir) if repo is not None else fallback)
    )
    return SourceError.one(
        f"Git refuses to read the repository {path}: it is owned by another user",
        f"git said: {said}",
        "If you trust the repository, mark it safe: "
        f"git config --global --add safe.directory {shlex.quote(str(path))}",
        location=str(path),
    )


def read_failed(repo: git.Repo | None, failed: GitFailed, location: str) -> SourceError:
    if is_dubious(failed.said):
        return dubious_repository(repo, failed.said, location)
    where = (repo.working_tree_dir or repo.git_dir) if repo is not None else location
    error = CorruptObject if looks_corrupt(failed.said) else SourceError
    return error.one(
        f"Git could not read {location!r} in {where}",
        f"git {failed.command.replace('_', '-')} failed: {failed.said}",
        f"Check that the repository is intact (git fsck in {where}) and readable by this "
        "user; restore a damaged object from a copy that has it (git fetch from the remote "
        "or another clone, or clone the repository again). fleetward only reads committed "
        "content.",
        location=location,
    )
