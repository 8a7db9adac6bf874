"""A remote Git repository (`--source URL`), mirrored into a cache directory.

The mirror is a bare repository at `<cache_root>/<key>` (key: 16 hex digits
of the SHA-256 of the URL with its credentials masked). `sync(ref)` fetches
every branch and tag — forced and pruned, so a rewound branch is followed —,
resolves the ref to a commit and points the mirror's detached HEAD at it; the
snapshot is then read at that SHA (`open_git`). Nothing the remote sends is
ever checked out: there is no work tree.

Safety: only https, ssh (URL or scp-like `host:path`) and file URLs pass, and
git is told the same (`protocol.allow`), so no `ext::` helper or submodule
transport can run; a URL or ref that starts with '-' never reaches git; the URL
reaches git through its environment, never its command line (visible to every
user) or the mirror's config (on disk); every URL shown is redacted. Each git
command has a timeout after which its whole process group is killed, and never
prompts. A half-written or corrupt mirror is cloned afresh; a failed fetch
leaves the last good mirror as it was.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from fleetward.errors import SourceError, os_error
from fleetward.source.blobs import looks_corrupt
from fleetward.source.git_commands import clean_git_message
from fleetward.source.urls import (
    redact_url,
    split_ancestry,
    validate_remote_ref,
    validate_remote_url,
)

logger = logging.getLogger(__name__)

DEFAULT_GIT_TIMEOUT = 60.0
MIN_GIT_VERSION = (2, 31)  # GIT_CONFIG_COUNT, fetch --no-write-fetch-head / --no-auto-gc

_MARKER = "fleetward-mirror"  # written into a mirror once its first fetch succeeded
_REMOTE_HEAD = "refs/fleetward/remote-head"  # the remote's default branch, for --ref HEAD
_PINNED = "refs/fleetward/pinned"  # the last commit fetched by SHA
# The remote's name exists only in git's environment (see `_env`). It is not "origin":
# a remote.origin.url in someone's global config would be used before ours.
_REMOTE = "fleetward-source"
_BRANCHES = "refs/remotes/origin/"  # the familiar namespace, for people inspecting a mirror
_FETCH_REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
_GIT_CONFIG = (
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

# The remote has no such commit, or will not serve it by SHA.
_NOT_SERVED = re.compile(r"not our ref|remote ref .* not found|couldn't find remote ref")
_NOT_A_COMMIT = re.compile(r"expected commit type|dereferences to (?:tree|blob) type")
_HEX = re.compile(r"[0-9a-f]{4,64}")
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def mirror_key(url: str) -> str:
    """The cache directory name of `url`: the same repository with other credentials shares it."""
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]


def _remove(path: Path) -> None:
    """Delete a directory tree or a file, best effort (a leftover is swept next time)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- the mirror --------------------------------------------------------------------------


class RemoteMirror:
    """A bare clone of a remote repository, kept in `cache_root` and synced on demand.

    One process (or thread) syncs a mirror at a time: `sync` holds a lock file
    next to it. Reading a synced commit needs no lock — a later sync only adds
    objects and moves refs.
    """

    def __init__(self, url: str, cache_root: Path, timeout: float = DEFAULT_GIT_TIMEOUT) -> None:
        validate_remote_url(url)
        if timeout <= 0:
            raise ValueError("the git timeout must be positive")
        self.url = url
        self.shown_url = redact_url(url)
        self.cache_root = Path(cache_root)
        self.path = self.cache_root / mirror_key(url)
        self.timeout = timeout

    def sync(self, ref: str = "HEAD") -> str:
        """Fetch the remote and return the commit SHA `ref` names there.

        `ref` is a branch, a tag, a commit SHA (full, or abbreviated if already
        fetched) or `HEAD` — the remote's default branch —, optionally followed by
        ancestry steps (`main~2`, `v1^{commit}`). Afterwards the
        mirror's HEAD is that commit. Raises `SourceError` (the mirror left as
        it was) if the remote cannot be reached, refuses access, does not have
        the ref, or a git command times out.
        """
        validate_remote_ref(ref, self.shown_url)
        _require_git_version()
        self._make_cache_root()
        with self._locked():
            try:
                self._sweep()
                fresh = not self._healthy()
                if fresh:
                    self._clone(ref)
                try:
                    sha = self._update(ref, fetch=not fresh)
                except _Corrupt as corrupt:
                    if fresh:
                        raise self._failed(corrupt.failure) from None
                    logger.warning(
                        "Mirror of %s at %s is damaged (%s); cloning it again",
                        self.shown_url,
                        self.path,
                        self._scrub(corrupt.failure.raw),
                    )
                    self._clone(ref)
                    try:
                        sha = self._update(ref, fetch=False)
                    except _Corrupt as again:
                        raise self._failed(again.failure) from None
                self._maintain()
            except _Failure as failure:  # any git step not diagnosed where it ran
                raise self._failed(failure) from None
        logger.info("Synced %s at %s to %s", self.shown_url, ref, sha[:12])
        return sha

    def reclone(self, ref: str, sha: str) -> None:
        """Clone the mirror afresh and point its HEAD at `sha` again (synced for `ref`).

        For a mirror found damaged while reading it (a truncated or corrupt object):
        sync checks only that objects exist, so damage is found by the reader. The old
        mirror stays in place until the new one is complete. Raises `SourceError` if
        the clone fails (the next reader finds the damage again and retries).
        """
        self._make_cache_root()
        with self._locked():
            try:
                self._sweep()
                self._clone(ref)
                got = self._update(sha, fetch=False)
            except _Corrupt as corrupt:  # a fresh clone is damaged: the remote's copy is
                raise self._failed(corrupt.failure) from None
            except _Failure as failure:
                raise self._failed(failure) from None
        logger.info("Cloned the mirror of %s again; HEAD is %s", self.shown_url, got[:12])

    def head(self) -> str | None:
        """The commit of the last successful sync, read offline; None before the first."""
        if not (self.path / _MARKER).is_file():
            return None
        try:
            out = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        except (_Failure, _Corrupt):
            return None
        sha = out.strip()
        return sha if _FULL_SHA.fullmatch(sha) else None

    # -- steps of a sync -------------------------------------------------------------------

    def _update(self, ref: str, fetch: bool) -> str:
        """Fetch (unless just cloned), resolve `ref`, and point HEAD at its commit."""
        previous = self.head()
        name, ancestry = split_ancestry(ref)
        pinned = _FULL_SHA.fullmatch(name) is not None
        sha = self._commit_of(name) if pinned else None  # a commit is immutable: no fetch
        if sha is None:
            if fetch:
                self._fetch(self.path, name)
            sha = self._resolve(name)
        if sha is None and pinned:
            # Not reachable from any branch or tag (e.g. a pull-request head): ask for it.
            self._fetch_sha(name)
            sha = self._commit_of(name)
        if sha is None:
            raise self._unknown_ref(name)
        if ancestry:
            sha = self._ancestor(ref, name, sha, ancestry)
        if sha == previous:
            return sha  # HEAD is there already: one git process less on every quiet poll
        self._check_complete(sha)
        return self._point_head(sha)

    def _check_complete(self, sha: str) -> None:
        """Raise `_Corrupt` unless every tree and blob of commit `sha` is in the mirror.

        fetch only checks the objects it receives: one lost from an earlier fetch
        would surface only when the snapshot reads it. Run when HEAD moves; a few
        milliseconds per thousand files.
        """
        try:
            self._git("rev-list", "--objects", "--no-walk", "--quiet", sha)
        except _Failure as failure:
            raise self._failed(failure) from None

    def _clone(self, ref: str) -> None:
        """A fresh mirror, built beside the old one and renamed into place once complete."""
        temp = self.cache_root / f"{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        logger.info("Cloning %s into %s", self.shown_url, self.path)
        try:
            _run(
                ["git", *_GIT_CONFIG, "init", "--quiet", "--bare", "--", str(temp)],
                self._env(),
                self.timeout,
            )
            self._fetch(temp, ref)
            (temp / _MARKER).write_text(self.shown_url + "\n", encoding="utf-8")
            if self.path.exists() or self.path.is_symlink():
                old = self.cache_root / f"{self.path.name}.old-{uuid.uuid4().hex[:8]}"
                self.path.rename(old)
                _remove(old)
            temp.rename(self.path)
        except _Corrupt as corrupt:  # a brand-new repository cannot be damaged locally
            raise self._failed(corrupt.failure) from None
        except _Failure as failure:
            raise self._failed(failure) from None
        except OSError as exc:
            raise self._cache_failed(exc) from None
        finally:
            _remove(temp)

    def _fetch(self, git_dir: Path, ref: str) -> None:
        refspecs = [*_FETCH_REFSPECS]
        if split_ancestry(ref)[0] == "HEAD":
            refspecs.append(f"+HEAD:{_REMOTE_HEAD}")
        try:
            self._git(
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                "--no-auto-gc",
                _REMOTE,
                *refspecs,
                git_dir=git_dir,
            )
        except _Failure as failure:
            raise self._failed(failure) from None

    def _fetch_sha(self, sha: str) -> None:
        try:
            self._git(
                "fetch",
                "--quiet",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                "--no-auto-gc",
                _REMOTE,
                f"+{sha}:{_PINNED}",
            )
        except _Failure as failure:
            if failure.timed_out or not _NOT_SERVED.search(failure.said):
                raise self._failed(failure) from None
            # The remote does not have it (or will not serve it by SHA): an unknown ref.

    def _resolve(self, ref: str) -> str | None:
        """The commit `ref` names: a branch, else a tag, else a commit SHA; None if none."""
        if ref == "HEAD":
            candidates = [_REMOTE_HEAD]
        elif ref.startswith("refs/heads/"):
            candidates = [_BRANCHES + ref.removeprefix("refs/heads/")]
        elif ref.startswith("refs/tags/"):
            candidates = [ref]
        else:
            candidates = [_BRANCHES + ref, f"refs/tags/{ref}"]
        out = self._git("for-each-ref", "--format=%(refname)", *candidates)
        existing = set(out.splitlines())
        for name in candidates:
            if name in existing:
                sha = self._commit_of(name)
                if sha is None:
                    raise self._not_a_commit(ref, name)
                return sha
        if _HEX.fullmatch(ref):
            return self._commit_of(ref)
        return None

    def _ancestor(self, ref: str, name: str, sha: str, ancestry: str) -> str:
        """The commit `ancestry` steps (~N, ^N) lead to from `name`'s commit `sha`."""
        found = self._commit_of(sha + ancestry)
        if found is None:
            raise SourceError.one(
                f"Ref {ref!r} does not exist in {self.shown_url}",
                f"{name!r} is commit {sha[:12]}, and {ancestry!r} steps past the first commit "
                "of its history (or to a parent it does not have).",
                "Step back fewer commits, or give the commit's SHA.",
                location=self.shown_url,
            )
        return found

    def _commit_of(self, name: str) -> str | None:
        """The commit `name` peels to; None if it names nothing or something else."""
        try:
            out = self._git(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"
            )
        except _Failure as failure:
            if not failure.said or _NOT_A_COMMIT.search(failure.said):
                return None  # --quiet silences "not found"; anything else is a real error
            if "ambiguous" in failure.said:
                raise SourceError.one(
                    f"Ref {name!r} is ambiguous in {self.shown_url}",
                    f"More than one object's id starts with {name!r}.",
                    "Give more digits of the commit SHA, or all 40.",
                    location=self.shown_url,
                ) from None
            raise self._failed(failure) from None
        sha = out.strip()
        return sha if _FULL_SHA.fullmatch(sha) else None

    def _point_head(self, sha: str) -> str:
        # HEAD, detached, is exactly the resolved commit: never merged, and it keeps
        # the commit reachable (readable) after a force-push drops it from the branch.
        try:
            self._git("update-ref", "--no-deref", "HEAD", sha)
        except _Failure as failure:
            raise self._failed(failure) from None
        return sha

    def _maintain(self) -> None:
        """`git gc --auto`, in the foreground: a detached gc would outlive the sync."""
        try:
            self._git("-c", "gc.autoDetach=false", "gc", "--auto", "--quiet")
        except (_Failure, _Corrupt) as exc:
            failure = exc.failure if isinstance(exc, _Corrupt) else exc
            logger.warning(
                "git gc in the mirror %s failed: %s", self.path, self._scrub(failure.raw)
            )

    # -- the cache directory -----------------------------------------------------------------

    def _healthy(self) -> bool:
        """Whether the mirror exists, is complete (its marker) and git can open it."""
        if not self.path.is_dir():
            return False
        try:
            marker = (self.path / _MARKER).read_text(encoding="utf-8").strip()
            is_bare = self._git("rev-parse", "--is-bare-repository").strip() == "true"
        except (OSError, UnicodeDecodeError, _Failure, _Corrupt) as exc:
            if isinstance(exc, _Failure) and exc.timed_out:
                raise self._failed(exc) from None
            logger.warning("Mirror %s is incomplete or damaged; cloning it again", self.path)
            return False
        if not is_bare or marker != self.shown_url:
            logger.warning(
                "Mirror %s does not hold %s; cloning it again", self.path, self.shown_url
            )
            return False
        return True

    def _make_cache_root(self) -> None:
        try:
            self.cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cache_failed(exc) from None

    def _sweep(self) -> None:
        """Remove what an interrupted clone left behind (the lock is held)."""
        for pattern in (f"{self.path.name}.tmp-*", f"{self.path.name}.old-*"):
            for leftover in self.cache_root.glob(pattern):
                _remove(leftover)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.cache_root / f"{self.path.name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._cache_failed(exc) from None
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SourceError.one(
                            f"The mirror of {self.shown_url} is busy",
                            f"Another fleetward process held {lock} for more than "
                            f"{self.timeout:g} s while syncing it.",
                            "Retry; if it persists, check for a hung fleetward or git process.",
                            location=self.shown_url,
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- running git -------------------------------------------------------------------------

    def _git(self, *args: str, git_dir: Path | None = None) -> str:
        """Run git on the mirror (or on `git_dir`); its stdout.

        Raises `_Corrupt` when git reports a damaged repository, `_Failure` on any
        other non-zero exit or a timeout.
        """
        # Always an explicit --git-dir: never a repository git finds by searching upwards.
        argv = ["git", *_GIT_CONFIG, f"--git-dir={git_dir or self.path}", *args]
        try:
            return _run(argv, self._env(), self.timeout)
        except _Failure as failure:
            if not failure.timed_out and looks_corrupt(failure.raw):
                raise _Corrupt(failure) from None
            raise

    def _env(self) -> dict[str, str]:
        # fleetward's own settings (an API token, a webhook secret) are not git's business.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _DROPPED_ENV and not k.startswith("FLEETWARD_")
        }
        # The URL travels as environment configuration (GIT_CONFIG_COUNT), appended
        # after any the caller set: never on a command line, never on disk.
        count = int(env["GIT_CONFIG_COUNT"]) if env.get("GIT_CONFIG_COUNT", "").isdigit() else 0
        env[f"GIT_CONFIG_KEY_{count}"] = f"remote.{_REMOTE}.url"
        env[f"GIT_CONFIG_VALUE_{count}"] = self.url
        env["GIT_CONFIG_COUNT"] = str(count + 1)
        env.update(_FIXED_ENV)
        return env

    # -- errors ------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """`text` with the URL's credentials masked, however git quoted them."""
        text = clean_git_message(text.replace(self.url, self.shown_url))
        try:
            password = urlsplit(self.url).password
        except ValueError:
            password = None
        if password and len(password) >= 3:
            text = text.replace(password, "***")
        return text

    def _failed(self, failure: _Failure) -> SourceError:
        url, said = self.shown_url, self._scrub(failure.raw) or "(no message)"
        head = self.head()
        retained = f" The mirror still holds the last fetched commit {head[:12]}." if head else ""
        if failure.timed_out:
            return SourceError.one(
                f"git {failure.command} of {url} timed out after {self.timeout:g} s",
                f"git did not finish within the git timeout of {self.timeout:g} s; the "
                "remote may be unreachable or very slow, or ssh may be waiting for something "
                "that never comes.",
                "Check that the remote answers from this machine (git ls-remote URL); for a "
                "very large first clone, raise the git timeout." + retained,
                location=url,
                timeout=self.timeout,
            )
        for known in _FETCH_FAILURES:
            if known.pattern.search(said):
                return SourceError.one(
                    known.error.format(url=url),
                    f"{known.reason} git said: {said}",
                    known.resolution + retained,
                    location=url,
                )
        return SourceError.one(
            f"git {failure.command} of {url} failed",
            f"git said: {said}",
            "Check the URL, the network and the credentials; try git ls-remote with the "
            "same URL." + retained,
            location=url,
        )

    def _unknown_ref(self, ref: str) -> SourceError:
        try:
            out = self._git(
                "for-each-ref", "--count=200", "--format=%(refname)", _BRANCHES, "refs/tags/"
            )
            known = sorted(
                {n.removeprefix(_BRANCHES).removeprefix("refs/tags/") for n in out.splitlines()}
            )
        except (_Failure, _Corrupt):
            known = []
        hint = f" Its branches and tags include: {', '.join(known[:10])}." if known else ""
        pinned = (
            " A commit SHA must be given in full unless it is on a branch or tag."
            if _HEX.fullmatch(ref) and not _FULL_SHA.fullmatch(ref)
            else ""
        )
        return SourceError.one(
            f"Ref {ref!r} does not exist in {self.shown_url}",
            "It names no branch or tag of the remote, and no commit the remote serves."
            + (hint or " The remote has no branches or tags."),
            "Check the spelling of --ref, and that the branch or tag is pushed." + pinned,
            location=self.shown_url,
        )

    def _not_a_commit(self, ref: str, name: str) -> SourceError:
        return SourceError.one(
            f"Ref {ref!r} of {self.shown_url} does not name a commit",
            f"{name} points at a tree or blob; fleetward reads the manifests of a whole commit.",
            "Give a branch, a tag of a commit, or a commit SHA with --ref.",
            location=self.shown_url,
        )

    def _cache_failed(self, exc: OSError) -> SourceError:
        return os_error(
            exc,
            SourceError,
            f"The cache directory {self.cache_root} cannot be used",
            "Make the state directory writable by this user, or point --state-dir elsewhere.",
            self.cache_root,
        )


class _Diagnosis(NamedTuple):
    """A kind of git failure, recognised by what git said."""

    pattern: re.Pattern[str]
    error: str  # formatted with url=
    reason: str
    resolution: str


def _diagnosis(pattern: str, error: str, reason: str, resolution: str) -> _Diagnosis:
    return _Diagnosis(re.compile(pattern, re.IGNORECASE), error, reason, resolution)


# First match wins: ssh's "Permission denied" also says "Could not read from remote".
_FETCH_FAILURES = (
    _diagnosis(
        pattern=r"couldn't find remote ref HEAD",
        error="The remote {url} has no default branch",
        reason="Its HEAD names no commit (an empty repository, or HEAD names a deleted branch).",
        resolution="Give the branch to track with --ref.",
    ),
    _diagnosis(
        pattern=r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
        error="The ssh host key of {url} is not trusted",
        reason="ssh cannot confirm it talks to the right server, and fleetward never "
        "answers ssh's question for you.",
        resolution="Add the server's key to known_hosts of the user fleetward runs as "
        "(ssh-keyscan, checked against the key your Git host publishes).",
    ),
    _diagnosis(
        pattern=r"Authentication failed|could not read (Username|Password)|terminal prompts "
        r"disabled|Permission denied|Access denied|returned error: 40[13]|HTTP 40[13]",
        error="Access to {url} was refused",
        reason="The remote asked for credentials that were missing or wrong; fleetward "
        "never prompts for them.",
        resolution="For https, use a token (a credential helper, or "
        "https://user:TOKEN@host/...); for ssh, make the key available to this user "
        "(ssh-agent or ~/.ssh) and check its access to the repository.",
    ),
    _diagnosis(
        pattern=r"Repository not found|does not appear to be a git repository|not found|"
        r"does not exist|returned error: 404|No such file or directory",
        error="The repository {url} does not exist",
        reason="The remote answered, but has no repository at that path (or hides a "
        "private one from these credentials).",
        resolution="Check the URL, and that the credentials may read the repository.",
    ),
    _diagnosis(
        pattern=r"Could not resolve host|Connection refused|Failed to connect|Couldn't "
        r"connect|Connection timed out|Network is unreachable|No route to host|Could not "
        r"read from remote repository|unable to access|Connection reset",
        error="The remote {url} cannot be reached",
        reason="The connection to it failed.",
        resolution="Check the host name, the network path and any proxy (https_proxy) "
        "from this machine; fleetward retries on its next run.",
    ),
)


# -- running git -------------------------------------------------------------------------


class _Failure(Exception):
    """A git command exited non-zero or timed out."""

    def __init__(self, command: str, raw: str, timed_out: bool = False) -> None:
        self.command = command
        self.raw = raw  # stderr as git wrote it (never shown: may hold a URL)
        self.said = clean_git_message(raw)  # may be empty
        self.timed_out = timed_out
        super().__init__(f"git {command}: {self.said}")


class _Corrupt(Exception):
    """git reported a damaged repository: the mirror is cloned again."""

    def __init__(self, failure: _Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _run(argv: list[str], env: dict[str, str], timeout: float) -> str:
    """Run git in its own process group; its stdout, or `_Failure`."""
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
        raise _Failure(command, f"timed out after {timeout:g} s", timed_out=True) from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        raise _Failure(command, err.decode("utf-8", "replace"))
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
        out = _run(["git", "version"], {**os.environ, "LC_ALL": "C"}, 10.0)
    except _Failure:
        return ()
    found = re.search(r"(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else ()


def _require_git_version() -> None:
    version = _git_version()
    if version and version < MIN_GIT_VERSION:
        need = ".".join(map(str, MIN_GIT_VERSION))
        raise SourceError.one(
            f"git {'.'.join(map(str, version))} is too old for a remote source",
            f"Reading a remote repository safely needs git {need} or newer (credentials "
            "passed through the environment, fetch without side effects).",
            f"Install git {need} or newer, or read a local clone of the repository.",
        )
