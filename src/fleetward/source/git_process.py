"""Running the git binary outside GitPython (a remote mirror, signature checks): locked-down
configuration and environment, a timeout after which git's whole process group is killed,
and the minimum git version.

Only https, ssh and file transports are allowed (`protocol.allow`), so no `ext::` helper
or submodule transport can run; git never prompts; variables that would point git at
another repository are dropped, and the remote's URL reaches git through its environment
only (never its command line, visible to every user, nor the mirror's config on disk).
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess

from fleetward.errors import SourceError, os_error
from fleetward.source.git_commands import clean_git_message, stored_objects, with_config

MIN_GIT_VERSION = (2, 31)  # GIT_CONFIG_COUNT, fetch --no-write-fetch-head / --no-auto-gc

# The remote's name exists only in git's environment (see `mirror_env`). It is not
# "origin": a remote.origin.url in someone's global config would be used before ours.
REMOTE_NAME = "fleetward-source"
GIT_CONFIG = (
    # Refuse every transport but these, for the remote and anything it points at
    # (submodules, redirects, `ext::`/`fd::` helpers).
    *("-c", "protocol.allow=never"),
    *("-c", "protocol.https.allow=always"),
    *("-c", "protocol.ssh.allow=always"),
    *("-c", "protocol.file.allow=always"),
    # No askpass program (a dialog nobody answers in a daemon); credential helpers still work.
    *("-c", "core.askPass="),
)
# Variables that point git at another repository or object store: inherited from
# a hook or wrapper, they would send the mirror's commands somewhere else.
_DROPPED_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_GRAFT_FILE",
        "GIT_REPLACE_REF_BASE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    }
)
_FIXED_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "https:ssh:file",  # overrides protocol.allow if set by the caller
    "SSH_ASKPASS_REQUIRE": "never",
    "LC_ALL": "C",  # git's messages are classified below, so they must be in English
}


def locked_env() -> dict[str, str]:
    """git's environment: the caller's, minus what would redirect git or leak fleetward's
    own secrets, plus the fixed settings (no prompt, English messages) and objects read
    as stored (`stored_objects`: replace refs off, as for the local readers)."""
    # fleetward's own settings (an API token, a webhook secret) are not git's business.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith("FLEETWARD_")
    }
    env.update(_FIXED_ENV)
    return stored_objects(env)


def mirror_env(url: str) -> dict[str, str]:
    """git's environment for a mirror of `url`: `locked_env()` plus the remote's URL."""
    # The URL travels as environment configuration (GIT_CONFIG_COUNT), appended
    # after any the caller set: never on a command line, never on disk.
    return with_config(locked_env(), f"remote.{REMOTE_NAME}.url", url)


class GitFailure(Exception):
    """A git command exited non-zero or timed out."""

    def __init__(self, command: str, raw: str, timed_out: bool = False) -> None:
        self.command = command
        self.raw = raw  # stderr as git wrote it (never shown: may hold a URL)
        self.said = clean_git_message(raw)  # may be empty
        self.timed_out = timed_out
        super().__init__(f"git {command}: {self.said}")


class MirrorCorrupt(Exception):
    """git reported a damaged repository: the mirror is cloned again."""

    def __init__(self, failure: GitFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def run_git_process(argv: list[str], env: dict[str, str], timeout: float) -> str:
    """Run git in its own process group; its stdout, or `GitFailure`."""
    command = next((a for a in argv[1:] if not a.startswith("-") and "=" not in a), "git")
    try:
        # Its own session: on a timeout the whole group (git, ssh, remote helpers)
        # is killed, and nothing can open a terminal to prompt.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise os_error(
            exc,
            SourceError,
            "The git command cannot be run",
            "Install git and make sure it is on PATH.",
            consequence="fleetward reads remote repositories with the git binary.",
        ) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise GitFailure(command, f"timed out after {timeout:g} s", timed_out=True) from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        raise GitFailure(command, err.decode("utf-8", "replace"))
    return out.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something left the group and still holds our pipes: stop waiting for them.
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


@functools.cache
def _git_version() -> tuple[int, ...]:
    """git's (major, minor), or () if it does not say; asked once per process."""
    try:
        out = run_git_process(["git", "version"], {**os.environ, "LC_ALL": "C"}, 10.0)
    except GitFailure:
        return ()
    found = re.search(r"(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else ()


def require_git_version() -> None:
    version = _git_version()
    if version and version < MIN_GIT_VERSION:
        need = ".".join(map(str, MIN_GIT_VERSION))
        raise SourceError.one(
            f"git {'.'.join(map(str, version))} is too old for a remote source",
            f"Reading a remote repository safely needs git {need} or newer (credentials "
            "passed through the environment, fetch without side effects).",
            f"Install git {need} or newer, or read a local clone of the repository.",
        )
