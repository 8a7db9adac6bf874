"""A local Git repository read at a ref: only committed content counts.

Blobs are listed with `git ls-tree` and read through one persistent
`git cat-file --batch` that checks every blob's size and id (`BlobReader`:
a damaged object is an error naming the file, never an empty file); it and
the `Repo` are closed with the snapshot, so no git child outlives it.

Every git command runs with literal pathspecs (a --path such as
`:(exclude)x` is a file name, never pathspec magic), and a failing command
becomes a `SourceError` that passes git's own message on, with any
credentials in it masked.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import git

from fleetward.errors import CorruptObject, Problem, SourceError
from fleetward.model import BlobId, Revision
from fleetward.source.base import (
    MAX_SYMLINK_HOPS,
    ManifestFile,
    SnapshotBase,
    is_listed_name,
    is_manifest_name,
    not_a_manifest_file,
    resolve_link,
)
from fleetward.source.blobs import BlobReader, UnreadableBlob, damaged_blob, looks_corrupt
from fleetward.source.urls import split_ancestry, validate_ref

logger = logging.getLogger(__name__)

_SYMLINK_MODE = "120000"
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1"}
# Symlinks followed plus entries listed through directory symlinks, in all: past
# this a tree of links that fans out (without looping) is refused with one
# problem instead of walked for minutes.
MAX_LINKED_ENTRIES = 50_000
_MAX_GIT_MESSAGE = 2000
LOCAL_GIT_TIMEOUT = 120.0  # seconds per command on a local repository (ls-tree: ms)


class _Entry(NamedTuple):
    mode: str
    kind: str  # blob, tree or commit (a submodule)
    sha: str
    size: int
    name: str  # repository-relative path


class _GitFailed(Exception):
    """A git command exited non-zero; `said` is its stderr, cleaned for display."""

    def __init__(self, command: str, said: str) -> None:
        super().__init__(f"git {command}: {said}")
        self.command = command
        self.said = said


class GitSnapshot(SnapshotBase):
    revision: Revision
    files: tuple[ManifestFile, ...]
    _commit: str

    def __init__(
        self,
        repo: git.Repo,
        ref: str,
        manifest_path: str,
        prefix: str,
        display_ref: str | None = None,
    ) -> None:
        self._repo = repo
        self._prefix = prefix  # the --source directory, relative to the work tree root
        self._blobs = BlobReader(
            repo.working_dir,
            str(repo.working_tree_dir or repo.git_dir),
            {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", **_GIT_ENV},
            LOCAL_GIT_TIMEOUT,
            _clean,
        )
        self._listings: dict[tuple[str, bool], list[_Entry]] = {}
        self._linked_entries = 0
        self._over_budget = False
        self._link_targets: dict[str, str] = {}
        self._reported_links: set[str] = set()
        try:
            self._list(ref, manifest_path, display_ref)
        except BaseException:
            self._blobs.close()  # a symlink's target may have started it
            raise

    def _list(self, ref: str, manifest_path: str, display_ref: str | None) -> None:
        """Resolve the ref and list the files under the manifest path."""
        commit = _resolve_ref(self._repo, ref)
        # A remote source is read at the SHA it was synced to; the user's ref is shown.
        ref = display_ref or ref
        self.revision = Revision(id=commit, kind="git", ref=ref)
        self._commit = commit
        tree_path = _join(self._prefix, manifest_path)
        location = f"{ref}:{tree_path}"
        problems: list[Problem] = []
        files: dict[str, ManifestFile] = {}
        entries = self._ls_tree(tree_path, recursive=True, location=location)
        if not entries:
            raise SourceError.one(
                f"Manifest path {manifest_path!r} does not exist at revision {commit[:7]}",
                f"The tree of commit {commit} ({ref}) has no file or directory at {tree_path or '.'!r}.",
                "Check --path (default 'manifests') and that the directory is committed: "
                "fleetward reads committed content only, never uncommitted edits.",
                location=location,
            )
        self._check_single_file(entries, tree_path, manifest_path, location)
        self._collect(entries, files, problems, (tree_path,), hops=0, shown_prefix=None)
        # Reported by load() together with every other error of the revision.
        self.problems = tuple(problems)
        self.files = tuple(files[p] for p in sorted(files))

    # -- listing -----------------------------------------------------------

    def _ls_tree(self, path: str, recursive: bool, location: str | None = None) -> list[_Entry]:
        key = (path, recursive)
        cached = self._listings.get(key)
        if cached is not None:
            return cached
        args = ["-z", "-l", "--full-tree"]
        if recursive:
            args.insert(0, "-r")
        try:
            out = _run(self._repo, "ls_tree", *args, self._commit, "--", path or ".")
        except _GitFailed as failed:
            raise _read_failed(self._repo, failed, location or path or ".") from None
        entries = []
        damaged: list[Problem] = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, name = record.partition("\t")
            mode, kind, sha, size = meta.split()
            if size != "-" and not size.isdigit():  # "BAD": the object is missing or corrupt
                said = f"git cannot read its header: ls-tree shows its size as {size!r}"
                damaged.append(self._damaged(self._relative(name), sha, said))
                continue
            entries.append(_Entry(mode, kind, sha, int(size) if size != "-" else 0, name))
        if damaged:
            raise CorruptObject(*damaged)
        self._listings[key] = entries
        return entries

    def _check_single_file(
        self, entries: list[_Entry], tree_path: str, manifest_path: str, location: str
    ) -> None:
        """--path names one file: it must be a manifest (or a link to a directory)."""
        if len(entries) != 1 or entries[0].name != tree_path:
            return
        entry = entries[0]
        if entry.kind == "commit":
            raise SourceError.one(
                f"Manifest path {manifest_path!r} is a Git submodule",
                "fleetward reads the repository's own commits only, never submodules.",
                "Commit the manifests into this repository, or point --source at the "
                "submodule's own repository.",
                location=location,
            )
        if entry.kind != "blob" or is_manifest_name(tree_path):
            return
        if entry.mode == _SYMLINK_MODE:
            final = self._final_target(entry)
            if final is None or final.kind == "tree":
                return  # a link to a directory, or a broken one (reported as a problem)
        raise not_a_manifest_file(manifest_path, location)

    def _final_target(self, entry: _Entry) -> _Entry | None:
        """Where a chain of symlinks ends, or None if it leaves the repository, breaks or loops."""
        for _ in range(MAX_SYMLINK_HOPS):
            if entry.mode != _SYMLINK_MODE:
                return entry
            resolved = resolve_link(entry.name, self._link_target(entry))
            if resolved is None or resolved == ".":
                return None
            found = self._ls_tree(resolved, recursive=False)
            if not found:
                return None
            entry = found[0]
            if entry.kind == "tree" and entry.name != resolved:
                return None
        return None

    def _collect(
        self,
        entries: list[_Entry],
        files: dict[str, ManifestFile],
        problems: list[Problem],
        walking: tuple[str, ...],
        hops: int,
        shown_prefix: tuple[str, str] | None,
    ) -> None:
        for entry in entries:
            name = entry.name
            # Paths reached through a directory symlink are shown under the link.
            shown = name if shown_prefix is None else shown_prefix[1] + name[len(shown_prefix[0]) :]
            if entry.kind != "blob":
                continue  # submodules (commit entries) are not manifests
            if entry.mode == _SYMLINK_MODE:
                self._follow_link(entry, shown, files, problems, walking, hops, chain=())
            elif is_listed_name(shown):
                where = self._relative(shown)
                files[where] = ManifestFile(where, BlobId(entry.sha), entry.size)

    def _follow_link(
        self,
        link: _Entry,
        shown: str,
        files: dict[str, ManifestFile],
        problems: list[Problem],
        walking: tuple[str, ...],
        hops: int,
        chain: tuple[str, ...],
    ) -> None:
        """Follow the symlink `link` (reached as `shown`).

        `walking` holds the trees whose walk is under way: a link to one of
        them, or to a directory that holds one, would walk itself again and
        again, so it is reported as a loop instead of followed. `chain` holds
        the links followed to get here (a link to a link to ...).
        """
        if self._over_budget:
            return  # already reported once; following more links adds nothing
        target = self._link_target(link)
        resolved = resolve_link(link.name, target)
        where = self._relative(shown)

        def report(why: str, kind: _LinkWhy) -> None:
            # Once per link, however it was reached, and located where the link is.
            if link.name not in self._reported_links:
                self._reported_links.add(link.name)
                problems.append(_link_problem(self._relative(link.name), target, why, kind))

        if resolved is None:
            report("points outside the repository", _LINK_OUTSIDE)
            return
        tree = "" if resolved == "." else resolved
        if resolved == link.name or resolved in chain or link.name in chain:
            report("is part of a symlink loop", _LINK_CHAIN_LOOP)
            return
        if _contains(tree, link.name) or any(_contains(tree, walked) for walked in walking):
            report("is part of a symlink loop", _LINK_TREE_LOOP)
            return
        if hops >= MAX_SYMLINK_HOPS:
            report(f"goes through more than {MAX_SYMLINK_HOPS} symlinks", _LINK_TOO_DEEP)
            return
        entries = self._ls_tree(resolved, recursive=False)
        if not entries:
            report("points at nothing in this commit", _LINK_MISSING)
            return
        found = entries[0]
        if found.kind == "tree" and found.name == resolved:
            inner = self._ls_tree(resolved + "/", recursive=True)
            self._linked_entries += 1 + len(inner)
            if self._linked_entries > MAX_LINKED_ENTRIES:
                self._over_budget = True
                report(
                    f"expands the manifest tree past {MAX_LINKED_ENTRIES} entries "
                    "(directory symlinks that lead to directory symlinks again)",
                    _LINK_TOO_MANY,
                )
                return
            self._collect(inner, files, problems, (*walking, resolved), hops + 1, (resolved, shown))
        elif found.mode == _SYMLINK_MODE:
            self._follow_link(found, shown, files, problems, walking, hops + 1, (*chain, link.name))
        elif found.kind == "blob" and is_listed_name(shown):
            files[where] = ManifestFile(where, BlobId(found.sha), found.size)

    def _link_target(self, link: _Entry) -> str:
        target = self._link_targets.get(link.sha)
        if target is None:
            blob = self._read_blob(link.sha, self._relative(link.name))
            target = self._link_targets[link.sha] = blob.decode("utf-8", "replace")
        return target

    def _relative(self, path: str) -> str:
        if self._prefix and path.startswith(self._prefix + "/"):
            return path[len(self._prefix) + 1 :]
        return path

    # -- reading -----------------------------------------------------------

    @property
    def _where(self) -> str:
        return str(self._repo.working_tree_dir or self._repo.git_dir)

    def _read_blob(self, sha: str, where: str) -> bytes:
        try:
            return self._blobs.read(sha, where)
        except UnreadableBlob as exc:
            raise CorruptObject(self._damaged(where, sha, exc.detail)) from None

    def _damaged(self, where: str, sha: str, said: str) -> Problem:
        """A blob at `where` (shown path) that git cannot give in full."""
        in_work_tree = _join(self._prefix, where) if self._repo.working_tree_dir else None
        return damaged_blob(self._where, where, sha, said, in_work_tree)

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        """Yield each file's bytes; every file that cannot be read in full is reported,
        together, once the readable ones were yielded."""
        damaged: list[Problem] = []
        for f in files:
            try:
                content = self._read_blob(f.blob_id, f.path)
            except CorruptObject as exc:
                damaged.extend(exc.problems)
                continue
            yield f, content
        if damaged:
            raise CorruptObject(*damaged)

    def close(self) -> None:
        self._blobs.close()
        self._repo.close()


def open_git(
    source: Path, ref: str, manifest_path: str, display_ref: str | None = None
) -> GitSnapshot | None:
    """A snapshot of the repository containing `source`, or None if it is not in one.

    `display_ref`, when given, is the ref the revision shows instead of `ref`
    (a remote source reads its mirror at a SHA but names the branch it tracks).
    """
    try:
        repo = git.Repo(source, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except (git.GitCommandError, ValueError, OSError) as exc:
        said = _said(exc)
        raise _read_failed(None, _GitFailed("open", said), str(source)) from None
    if repo.bare or repo.working_tree_dir is None:
        prefix = ""
    else:
        rel = os.path.relpath(source.resolve(), Path(repo.working_tree_dir).resolve())
        prefix = "" if rel == "." else Path(rel).as_posix()
    try:
        return GitSnapshot(repo, ref, manifest_path, prefix, display_ref)
    except BaseException:
        repo.close()
        raise


def uncommitted_changes(source: Path, manifest_path: str) -> int | None:
    """How many files under `manifest_path` of `source`'s work tree differ from HEAD
    (edited, staged, deleted or untracked), or None if `source` is in no work tree.

    One `git status` limited to the path, taking no lock (a commit running beside
    it must not fail on index.lock). Only a hint: a failure counts as None.
    """
    try:
        repo = git.Repo(source, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except (git.GitCommandError, ValueError, OSError):
        return None
    try:
        if repo.bare or repo.working_tree_dir is None:
            return None
        rel = os.path.relpath(source.resolve(), Path(repo.working_tree_dir).resolve())
        pathspec = _join("" if rel == "." else Path(rel).as_posix(), manifest_path) or "."
        status, out, _ = repo.git.status(
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            pathspec,
            env={**_GIT_ENV, "GIT_OPTIONAL_LOCKS": "0"},
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=LOCAL_GIT_TIMEOUT,
        )
    except (git.GitCommandError, OSError, ValueError):
        return None
    finally:
        repo.close()
    if status != 0:
        return None
    count = 0
    fields = iter(str(out).split("\0"))
    for entry in fields:
        if not entry:
            continue
        count += 1
        if entry[:1] in ("R", "C"):  # a rename or copy: its source path follows
            next(fields, None)
    return count


# -- running git -------------------------------------------------------------------------


def _run(repo: git.Repo, command: str, *args: str) -> str:
    """Run `git COMMAND ARGS...` in the repository; its stdout, or `_GitFailed`."""
    return _run_full(repo, command, *args)[0]


def _run_full(repo: git.Repo, command: str, *args: str) -> tuple[str, str]:
    """Run `git COMMAND ARGS...` in the repository; its stdout and stderr (warnings), or
    `_GitFailed`."""
    try:
        status, out, err = getattr(repo.git, command)(
            *args,
            env=_GIT_ENV,
            with_extended_output=True,
            with_exceptions=False,
            # A git that hangs (a stuck network file system) must not hang the daemon.
            kill_after_timeout=LOCAL_GIT_TIMEOUT,
        )
    except git.GitCommandNotFound as exc:
        raise SourceError.one(
            "The git command cannot be run",
            f"fleetward reads Git repositories with the git binary, and starting it failed: "
            f"{_clean(str(exc))}.",
            "Install git and make sure it is on PATH, or read a plain directory with --no-git.",
        ) from None
    except git.GitCommandError as exc:  # e.g. git could not be started at all
        raise _GitFailed(command, _said(exc)) from None
    if status != 0:
        raise _GitFailed(command, _clean(err) or f"git exited with status {status}")
    return str(out), _clean(str(err))


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_GITPYTHON_STDERR = re.compile(r"^\s*stderr:\s*'(.*)'\s*$", re.DOTALL)


def _said(exc: Exception) -> str:
    """What git wrote to stderr for a GitPython exception (or the exception's text)."""
    stderr = getattr(exc, "stderr", "") or ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    found = _GITPYTHON_STDERR.match(stderr)  # GitPython keeps it as "\n  stderr: '...'"
    return _clean(found.group(1) if found else stderr or str(exc))


def _clean(message: str) -> str:
    """git's message on one line, credentials in URLs masked, bounded in length."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    text = _USERINFO.sub("***@", text)
    if len(text) > _MAX_GIT_MESSAGE:
        text = text[:_MAX_GIT_MESSAGE] + " ..."
    return text


def _is_dubious(said: str) -> bool:
    return "dubious ownership" in said or "safe.directory" in said


def _dubious(repo: git.Repo | None, said: str, fallback: str) -> SourceError:
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


def _read_failed(repo: git.Repo | None, failed: _GitFailed, location: str) -> SourceError:
    if _is_dubious(failed.said):
        return _dubious(repo, failed.said, location)
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


# -- refs --------------------------------------------------------------------------------


def _resolve_ref(repo: git.Repo, ref: str) -> str:
    """The commit `ref` names: any commit-ish git accepts, bar the forms `validate_ref` refuses.

    A ref with ':' (REVISION:PATH, :/TEXT) is never resolved as a commit: it names a
    file or directory, or searches commit messages; the error says which.
    """
    validate_ref(ref)
    if ":" in ref:
        raise _unresolved_ref(repo, ref, "")
    try:
        out, warned = _run_full(
            repo, "rev_parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"
        )
    except _GitFailed as failed:
        if _is_dubious(failed.said):
            raise _dubious(repo, failed.said, ref) from None
        raise _unresolved_ref(repo, ref, failed.said) from None
    commit = out.strip()
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise SourceError.one(
            f"Ref {ref!r} could not be resolved in {repo.working_tree_dir or repo.git_dir}",
            f"git rev-parse answered {commit[:200]!r} instead of a commit id.",
            "Give a branch, tag or commit SHA with --ref.",
            location=ref,
        )
    if "is ambiguous" in warned:  # a branch and a tag of one name: git picked one, silently
        raise _ambiguous_ref(repo, ref, warned)
    return commit


def _ambiguous_ref(repo: git.Repo, ref: str, said: str) -> SourceError:
    name, _ = split_ancestry(ref)
    # Where git looks a short name up (gitrevisions(7)), in its order.
    places = [f"refs/{name}", f"refs/tags/{name}", f"refs/heads/{name}", f"refs/remotes/{name}"]
    places.append(f"refs/remotes/{name}/HEAD")
    try:
        out = _run(repo, "for_each_ref", "--format=%(refname)", *places)
    except _GitFailed:
        out = ""
    found = set(out.split())
    full = [place for place in places if place in found]
    return SourceError.one(
        f"Ref {ref!r} is ambiguous in {repo.working_tree_dir or repo.git_dir}",
        f"{name!r} names more than one ref ({', '.join(full) or 'git said: ' + said}); git "
        "would pick one silently, and which one depends on what exists at the time.",
        "Give the full ref name, e.g. --ref "
        + (full[0] if full else f"refs/heads/{name}")
        + ", or rename one of them.",
        location=ref,
    )


def _unresolved_ref(repo: git.Repo, ref: str, said: str) -> SourceError:
    where = repo.working_tree_dir or repo.git_dir
    if "short object ID" in said and "ambiguous" in said:
        candidates = re.findall(r"hint:\s+([0-9a-f]{7,64})\s+(\w+)", said)
        listed = ", ".join(f"{sha} ({kind})" for sha, kind in candidates[:10])
        return SourceError.one(
            f"Ref {ref!r} is ambiguous in {where}",
            "More than one object's id starts with these digits"
            + (f": {listed}." if listed else f". git said: {said}"),
            "Give more digits of the commit SHA (or all of them).",
            location=ref,
        )
    found = _object_of(repo, ref)
    if found is not None and found[0] in ("tree", "blob"):
        kind, sha = found
        what = "a directory listing" if kind == "tree" else "a file's content"
        return SourceError.one(
            f"Ref {ref!r} names a {kind}, not a commit",
            f"It resolves to the {kind} {sha} ({what}); fleetward reads the manifests "
            "of a whole commit.",
            "Give a branch, tag or commit SHA with --ref, and pick the directory inside "
            "the commit with --path.",
            location=ref,
        )
    try:
        known = sorted({h.name for h in repo.heads} | {t.name for t in repo.tags})
    except Exception:  # noqa: BLE001 - only a hint: an unreadable ref list gives none
        known = []
    hint = f" Known branches and tags: {', '.join(known[:10])}." if known else ""
    has_commits = bool(known) or _has_head(repo)
    if not has_commits:
        return SourceError.one(
            f"Ref {ref!r} does not exist in {where}",
            "The repository has no commits yet.",
            "Commit your manifests first: fleetward reads committed content only.",
            location=ref,
        )
    reason = "It names no branch, tag or commit of the repository."
    if ":" in ref:
        reason += (
            " A ref with ':' names a file or directory inside a commit (REVISION:PATH) or "
            "searches commit messages (:/TEXT), never a commit of its own."
        )
    name, ancestry = split_ancestry(ref)
    if ancestry and ":" not in ref and _object_of(repo, name) is not None:
        reason = (
            f"{name!r} exists, but {ancestry!r} steps past the first commit of its history "
            "(or to a parent it does not have)."
        )
    # git's own words, unless they are only its generic "Needed a single revision".
    detail = said.replace("fatal: Needed a single revision", "").strip()
    if detail:
        reason += f" git said: {detail}"
    return SourceError.one(
        f"Ref {ref!r} does not exist in {where}",
        reason,
        "Check the spelling of --ref, or fetch the branch first; pick a directory with "
        "--path, not with the ref." + hint
        if ":" in ref
        else "Check the spelling of --ref, or fetch the branch first." + hint,
        location=ref,
    )


def _object_of(repo: git.Repo, ref: str) -> tuple[str, str] | None:
    """(type, sha) of what `ref` names, tags peeled; None if it names nothing."""
    try:
        sha = _run(repo, "rev_parse", "--verify", "--quiet", "--end-of-options", ref).strip()
        for _ in range(8):
            if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
                return None
            kind = _run(repo, "cat_file", "-t", sha).strip()
            if kind != "tag":
                return kind, sha
            sha = _run(repo, "rev_parse", "--verify", "--quiet", f"{sha}^{{}}").strip()
    except (_GitFailed, SourceError):
        return None
    return None


def _has_head(repo: git.Repo) -> bool:
    try:
        return repo.head.commit is not None
    except Exception:  # noqa: BLE001 - an unborn or unreadable HEAD: no commits to offer
        return False


def _join(prefix: str, path: str) -> str:
    parts = [p for p in (prefix, path.strip("/")) if p and p != "."]
    return "/".join(parts)


def _contains(tree: str, path: str) -> bool:
    """Whether the tree `tree` ('' for the root) is `path` or holds it."""
    return tree == "" or path == tree or path.startswith(tree + "/")


class _LinkWhy(NamedTuple):
    reason: str
    resolution: str


_LINK_OUTSIDE = _LinkWhy(
    reason="fleetward reads only files inside the repository, so a manifest cannot pull "
    "in content from elsewhere on the machine.",
    resolution="Replace the symlink with the file itself, or point it at a file inside "
    "the repository.",
)
_LINK_MISSING = _LinkWhy(
    reason="The commit has no file or directory at that path.",
    resolution="Point the symlink at a file or directory that is committed, or remove it.",
)
_LINK_CHAIN_LOOP = _LinkWhy(
    reason="Following it leads back to itself through symlinks, so it names no file.",
    resolution="Point the symlink straight at the manifest file, or replace it with the file.",
)
_LINK_TREE_LOOP = _LinkWhy(
    reason="That directory holds the link itself, or is already being read through "
    "another link: following it would read the same files again and again.",
    resolution="Replace the symlink with the files it should add, or point it at a "
    "directory that does not contain it.",
)
_LINK_TOO_DEEP = _LinkWhy(
    reason=f"fleetward follows at most {MAX_SYMLINK_HOPS} symlinks from a manifest path to a file.",
    resolution="Point the symlink straight at the file or directory it should add.",
)
_LINK_TOO_MANY = _LinkWhy(
    reason="Directory symlinks that lead to more directory symlinks multiply the tree; "
    f"fleetward stops after {MAX_LINKED_ENTRIES} entries reached through symlinks.",
    resolution="Replace the symlinks with the directories themselves, or link each shared "
    "directory once.",
)


def _link_problem(where: str, target: str, why: str, kind: _LinkWhy) -> Problem:
    return Problem(
        f"Symlink {where!r} {why}",
        f"It points at {target!r}. {kind.reason}",
        kind.resolution,
        location=where,
    )
