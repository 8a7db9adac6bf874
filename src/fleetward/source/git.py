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
    read_after_close,
    resolve_link,
)
from fleetward.source.blobs import BlobReader, UnreadableBlob, damaged_blob
from fleetward.source.git_commands import (
    LOCAL_GIT_TIMEOUT,
    GitFailed,
    clean_git_message,
    git_env,
    git_said,
    open_repo,
    read_failed,
    run_git,
)
from fleetward.source.links import (
    LINK_CHAIN_LOOP,
    LINK_MISSING,
    LINK_OUTSIDE,
    LINK_TOO_DEEP,
    LINK_TOO_MANY,
    LINK_TREE_LOOP,
    MAX_LINKED_ENTRIES,
    LinkWhy,
    join_path,
    link_problem,
    tree_contains,
)
from fleetward.source.refs import resolve_ref
from fleetward.source.signatures import SignaturePolicy, verify_commit

logger = logging.getLogger(__name__)

_SYMLINK_MODE = "120000"


class _Entry(NamedTuple):
    mode: str
    kind: str  # blob, tree or commit (a submodule)
    sha: str
    size: int
    name: str  # repository-relative path


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
        signatures: SignaturePolicy | None = None,
    ) -> None:
        self._repo = repo
        self._prefix = prefix  # the --source directory, relative to the work tree root
        self._blobs = BlobReader(
            str(repo.working_dir),
            str(repo.working_tree_dir or repo.git_dir),
            git_env(),  # as the listing and the signature check: objects as stored
            LOCAL_GIT_TIMEOUT,
            clean_git_message,
        )
        self._listings: dict[tuple[str, bool], list[_Entry]] = {}
        self._linked_entries = 0
        self._over_budget = False
        self._link_targets: dict[str, str] = {}
        self._reported_links: set[str] = set()
        self._closed = False
        try:
            self._list(ref, manifest_path, display_ref, signatures)
        except BaseException:
            self._blobs.close()  # a symlink's target may have started it
            raise

    def _list(
        self,
        ref: str,
        manifest_path: str,
        display_ref: str | None,
        signatures: SignaturePolicy | None,
    ) -> None:
        """Resolve the ref (verify its commit's signature, if asked) and list the files
        under the manifest path."""
        commit = resolve_ref(self._repo, ref)
        # A remote source is read at the SHA it was synced to; the user's ref is shown.
        ref = display_ref or ref
        if signatures is not None:
            # Before a single file is listed: a refused revision is never read.
            verify_commit(str(self._repo.working_dir), commit, ref, signatures)
        self.revision = Revision(id=commit, kind="git", ref=ref)
        self._commit = commit
        tree_path = join_path(self._prefix, manifest_path)
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
            out = run_git(self._repo, "ls_tree", *args, self._commit, "--", path or ".")
        except GitFailed as failed:
            raise read_failed(self._repo, failed, location or path or ".") from None
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

        def report(why: str, kind: LinkWhy) -> None:
            # Once per link, however it was reached, and located where the link is.
            if link.name not in self._reported_links:
                self._reported_links.add(link.name)
                problems.append(link_problem(self._relative(link.name), target, why, kind))

        if resolved is None:
            report("points outside the repository", LINK_OUTSIDE)
            return
        tree = "" if resolved == "." else resolved
        if resolved == link.name or resolved in chain or link.name in chain:
            report("is part of a symlink loop", LINK_CHAIN_LOOP)
            return
        if tree_contains(tree, link.name) or any(tree_contains(tree, walked) for walked in walking):
            report("is part of a symlink loop", LINK_TREE_LOOP)
            return
        if hops >= MAX_SYMLINK_HOPS:
            report(f"goes through more than {MAX_SYMLINK_HOPS} symlinks", LINK_TOO_DEEP)
            return
        entries = self._ls_tree(resolved, recursive=False)
        if not entries:
            report("points at nothing in this commit", LINK_MISSING)
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
                    LINK_TOO_MANY,
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
        in_work_tree = join_path(self._prefix, where) if self._repo.working_tree_dir else None
        return damaged_blob(self._where, where, sha, said, in_work_tree)

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        """Yield each file's bytes; every file that cannot be read in full is reported,
        together, once the readable ones were yielded. Reading after `close` is an error."""
        damaged: list[Problem] = []
        for f in files:
            if self._closed:
                raise read_after_close(f.path)
            try:
                content = self._read_blob(f.blob_id, f.path)
            except CorruptObject as exc:
                damaged.extend(exc.problems)
                continue
            yield f, content
        if damaged:
            raise CorruptObject(*damaged)

    def close(self) -> None:
        self._closed = True
        self._blobs.close()
        self._repo.close()


def open_git(
    source: Path,
    ref: str,
    manifest_path: str,
    display_ref: str | None = None,
    signatures: SignaturePolicy | None = None,
) -> GitSnapshot | None:
    """A snapshot of the repository containing `source`, or None if it is not in one.

    `display_ref`, when given, is the ref the revision shows instead of `ref`
    (a remote source reads its mirror at a SHA but names the branch it tracks).
    With `signatures`, the commit must be signed by one of its keys
    (`UnverifiedRevision` otherwise).
    """
    try:
        repo = open_repo(source)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except (git.GitCommandError, ValueError, OSError) as exc:
        said = git_said(exc)
        raise read_failed(None, GitFailed("open", said), str(source)) from None
    if repo.bare or repo.working_tree_dir is None:
        prefix = ""
    else:
        rel = os.path.relpath(source.resolve(), Path(repo.working_tree_dir).resolve())
        prefix = "" if rel == "." else Path(rel).as_posix()
    try:
        return GitSnapshot(repo, ref, manifest_path, prefix, display_ref, signatures)
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
        repo = open_repo(source)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except (git.GitCommandError, ValueError, OSError):
        return None
    try:
        if repo.bare or repo.working_tree_dir is None:
            return None
        rel = os.path.relpath(source.resolve(), Path(repo.working_tree_dir).resolve())
        pathspec = join_path("" if rel == "." else Path(rel).as_posix(), manifest_path) or "."
        status, out, _ = repo.git.status(
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            pathspec,
            env={**git_env(), "GIT_OPTIONAL_LOCKS": "0"},
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
