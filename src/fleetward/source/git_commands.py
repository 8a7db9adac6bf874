"""Running git in a local repository through GitPython, and what its failures mean.

Every command runs with literal pathspecs, English messages, no prompt and a
timeout; a failing one becomes `GitFailed` with git's own message on one line,
credentials masked, which `read_failed` turns into a `SourceError` (or a
`CorruptObject` when git reports damage).
"""

from __future__ import annotations

import re
import shlex

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
MAX_GIT_MESSAGE = 2000
LOCAL_GIT_TIMEOUT = 120.0  # seconds per command on a local repository (ls-tree: ms)


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
            env=GIT_ENV,
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
