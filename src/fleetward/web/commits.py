"""Commit subjects, authors and times for the revisions the pages show, read from Git once.

A commit never changes, so each one is read once (`git log -1`) and kept. A
local source is read in place; a remote one in the mirror the daemon keeps
under its state directory. A plain directory has no commits: None.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetward.errors import FleetwardError
from fleetward.source import RemoteMirror, git_env, is_remote

logger = logging.getLogger(__name__)

_KEPT = 256
_TIMEOUT = 10.0  # seconds for one `git log -1`
_FORMAT = "%H%x00%s%x00%an%x00%aI"
_SHA = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    subject: str
    author: str  # the name only: an address is not the page's to publish
    time: str  # ISO 8601, as the author recorded it

    @property
    def short(self) -> str:
        return self.sha[:7]


def repository_of(source: str, no_git: bool, cache_root: Path) -> Path | None:
    """Where the commits of `source` can be read: the directory, the mirror, or None."""
    if no_git:
        return None
    if is_remote(source):
        try:
            return RemoteMirror(source, cache_root).path
        except FleetwardError:  # a URL the daemon refuses has no mirror either
            return None
    return Path(source)


class CommitReader:
    """Commits by SHA, from the repository `where()` names at the time of asking."""

    def __init__(self, where: Callable[[], Path | None]) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], Commit | None] = OrderedDict()

    def get(self, sha: str | None) -> Commit | None:
        if not sha or len(sha) < 7 or not set(sha) <= _SHA:
            return None  # a plain directory's digest, or nothing
        repository = self._where()
        if repository is None:
            return None
        key = (str(repository), sha)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        commit = _read(repository, sha)
        with self._lock:
            self._kept[key] = commit
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return commit


def _read(repository: Path, sha: str) -> Commit | None:
    # Objects as stored (no replace refs), as the source read them: the commit shown is
    # the commit applied.
    env = git_env()
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--no-show-signature", f"--format={_FORMAT}", sha, "--"],
            cwd=repository,
            env=env,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("cannot read commit %s: %s", sha[:12], exc)
        return None
    if done.returncode != 0:
        return None
    fields = done.stdout.decode("utf-8", "replace").rstrip("\n").split("\x00")
    if len(fields) != 4:
        return None
    return Commit(*fields)


__all__ = ["Commit", "CommitReader", "repository_of"]
