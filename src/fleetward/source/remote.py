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
prompts (`git_process`). A half-written or corrupt mirror is cloned afresh; a
failed fetch leaves the last good mirror as it was (`mirror_cache` holds the lock
and sweeps what an interrupted clone left).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from fleetward.errors import SourceError
from fleetward.source.base import UNKNOWN_REVISION
from fleetward.source.blobs import looks_corrupt
from fleetward.source.fetch_failures import fetch_failed
from fleetward.source.git_commands import clean_git_message
from fleetward.source.git_process import (
    GIT_CONFIG,
    REMOTE_NAME,
    GitFailure,
    MirrorCorrupt,
    mirror_env,
    require_git_version,
    run_git_process,
)
from fleetward.source.mirror_cache import (
    cache_failed,
    mirror_lock,
    remove_path,
    sweep_leftovers,
)
from fleetward.source.urls import (
    redact_url,
    split_ancestry,
    validate_remote_ref,
    validate_remote_url,
)

logger = logging.getLogger(__name__)

DEFAULT_GIT_TIMEOUT = 60.0

_MARKER = "fleetward-mirror"  # written into a mirror once its first fetch succeeded
_REMOTE_HEAD = "refs/fleetward/remote-head"  # the remote's default branch, for --ref HEAD
_PINNED = "refs/fleetward/pinned"  # the last commit fetched by SHA
_BRANCHES = "refs/remotes/origin/"  # the familiar namespace, for people inspecting a mirror
_FETCH_REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
# The remote has no such commit, or will not serve it by SHA.
_NOT_SERVED = re.compile(r"not our ref|remote ref .* not found|couldn't find remote ref")
_NOT_A_COMMIT = re.compile(r"expected commit type|dereferences to (?:tree|blob) type")
_HEX = re.compile(r"[0-9a-f]{4,64}")
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def mirror_key(url: str) -> str:
    """The cache directory name of `url`: the same repository with other credentials shares it."""
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]


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
        require_git_version()
        self._make_cache_root()
        with mirror_lock(self.path, self.timeout, self.shown_url):
            try:
                sweep_leftovers(self.path)
                fresh = not self._healthy()
                if fresh:
                    self._clone(ref)
                try:
                    sha = self._update(ref, fetch=not fresh)
                except MirrorCorrupt as corrupt:
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
                    except MirrorCorrupt as again:
                        raise self._failed(again.failure) from None
                self._maintain()
            except GitFailure as failure:  # any git step not diagnosed where it ran
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
        with mirror_lock(self.path, self.timeout, self.shown_url):
            try:
                sweep_leftovers(self.path)
                self._clone(ref)
                got = self._update(sha, fetch=False)
            except MirrorCorrupt as corrupt:  # a fresh clone is damaged: the remote's copy is
                raise self._failed(corrupt.failure) from None
            except GitFailure as failure:
                raise self._failed(failure) from None
        logger.info("Cloned the mirror of %s again; HEAD is %s", self.shown_url, got[:12])

    def head(self) -> str | None:
        """The commit of the last successful sync, read offline; None before the first."""
        if not (self.path / _MARKER).is_file():
            return None
        try:
            out = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        except (GitFailure, MirrorCorrupt):
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
        """Raise `MirrorCorrupt` unless every tree and blob of commit `sha` is in the mirror.

        fetch only checks the objects it receives: one lost from an earlier fetch
        would surface only when the snapshot reads it. Run when HEAD moves; a few
        milliseconds per thousand files.
        """
        try:
            self._git("rev-list", "--objects", "--no-walk", "--quiet", sha)
        except GitFailure as failure:
            raise self._failed(failure) from None

    def _clone(self, ref: str) -> None:
        """A fresh mirror, built beside the old one and renamed into place once complete."""
        temp = self.cache_root / f"{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        logger.info("Cloning %s into %s", self.shown_url, self.path)
        try:
            run_git_process(
                ["git", *GIT_CONFIG, "init", "--quiet", "--bare", "--", str(temp)],
                mirror_env(self.url),
                self.timeout,
            )
            self._fetch(temp, ref)
            (temp / _MARKER).write_text(self.shown_url + "\n", encoding="utf-8")
            if self.path.exists() or self.path.is_symlink():
                old = self.cache_root / f"{self.path.name}.old-{uuid.uuid4().hex[:8]}"
                self.path.rename(old)
                remove_path(old)
            temp.rename(self.path)
        except MirrorCorrupt as corrupt:  # a brand-new repository cannot be damaged locally
            raise self._failed(corrupt.failure) from None
        except GitFailure as failure:
            raise self._failed(failure) from None
        except OSError as exc:
            raise self._cache_failed(exc) from None
        finally:
            remove_path(temp)

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
                REMOTE_NAME,
                *refspecs,
                git_dir=git_dir,
            )
        except GitFailure as failure:
            raise self._failed(failure) from None

    def _fetch_sha(self, sha: str) -> None:
        try:
            self._git(
                "fetch",
                "--quiet",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                "--no-auto-gc",
                REMOTE_NAME,
                f"+{sha}:{_PINNED}",
            )
        except GitFailure as failure:
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
        except GitFailure as failure:
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
        except GitFailure as failure:
            raise self._failed(failure) from None
        return sha

    def _maintain(self) -> None:
        """`git gc --auto`, in the foreground: a detached gc would outlive the sync."""
        try:
            self._git("-c", "gc.autoDetach=false", "gc", "--auto", "--quiet")
        except (GitFailure, MirrorCorrupt) as exc:
            failure = exc.failure if isinstance(exc, MirrorCorrupt) else exc
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
        except (OSError, UnicodeDecodeError, GitFailure, MirrorCorrupt) as exc:
            if isinstance(exc, GitFailure) and exc.timed_out:
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

    # -- running git -------------------------------------------------------------------------

    def _git(self, *args: str, git_dir: Path | None = None) -> str:
        """Run git on the mirror (or on `git_dir`); its stdout.

        Raises `MirrorCorrupt` when git reports a damaged repository, `GitFailure` on any
        other non-zero exit or a timeout.
        """
        # Always an explicit --git-dir: never a repository git finds by searching upwards.
        argv = ["git", *GIT_CONFIG, f"--git-dir={git_dir or self.path}", *args]
        try:
            return run_git_process(argv, mirror_env(self.url), self.timeout)
        except GitFailure as failure:
            if not failure.timed_out and looks_corrupt(failure.raw):
                raise MirrorCorrupt(failure) from None
            raise

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

    def _failed(self, failure: GitFailure) -> SourceError:
        said = self._scrub(failure.raw) or "(no message)"
        head = self.head()
        retained = f" The mirror still holds the last fetched commit {head[:12]}." if head else ""
        return fetch_failed(failure, self.shown_url, said, self.timeout, retained)

    def _unknown_ref(self, ref: str) -> SourceError:
        try:
            out = self._git(
                "for-each-ref", "--count=200", "--format=%(refname)", _BRANCHES, "refs/tags/"
            )
            known = sorted(
                {n.removeprefix(_BRANCHES).removeprefix("refs/tags/") for n in out.splitlines()}
            )
        except (GitFailure, MirrorCorrupt):
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
            why=UNKNOWN_REVISION,
        )

    def _not_a_commit(self, ref: str, name: str) -> SourceError:
        return SourceError.one(
            f"Ref {ref!r} of {self.shown_url} does not name a commit",
            f"{name} points at a tree or blob; fleetward reads the manifests of a whole commit.",
            "Give a branch, a tag of a commit, or a commit SHA with --ref.",
            location=self.shown_url,
        )

    def _cache_failed(self, exc: OSError) -> SourceError:
        return cache_failed(self.cache_root, exc)
