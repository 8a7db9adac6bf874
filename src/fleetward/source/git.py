"""A local Git repository read at a ref: only committed content counts.

Blobs are listed with one `git ls-tree` and read through GitPython's
persistent `git cat-file --batch`; the `Repo` is closed with the snapshot so
no `cat-file` child outlives it (LIBRARIES.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import git

from fleetward.errors import Problem, SourceError
from fleetward.model import BlobId, Revision
from fleetward.source.base import (
    MAX_SYMLINK_HOPS,
    ManifestFile,
    SnapshotBase,
    is_manifest_name,
    resolve_link,
)

logger = logging.getLogger(__name__)

_SYMLINK_MODE = "120000"
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}


class GitSnapshot(SnapshotBase):
    def __init__(self, repo: git.Repo, ref: str, manifest_path: str, prefix: str) -> None:
        self._repo = repo
        self._prefix = prefix  # the --source directory, relative to the work tree root
        commit = _resolve_ref(repo, ref)
        self.revision = Revision(id=commit, kind="git", ref=ref)
        self._commit = commit
        tree_path = _join(prefix, manifest_path)
        problems: list[Problem] = []
        files: dict[str, ManifestFile] = {}
        entries = self._ls_tree(tree_path, recursive=True)
        if not entries:
            raise SourceError.one(
                f"Manifest path {manifest_path!r} does not exist at revision {commit[:7]}",
                f"The tree of commit {commit} ({ref}) has no file or directory at {tree_path or '.'!r}.",
                "Check --path (default 'manifests') and that the directory is committed: "
                "fleetward reads committed content only, never uncommitted edits.",
                location=f"{ref}:{tree_path}",
            )
        self._collect(entries, files, problems, hops=0, shown_prefix=None)
        # Reported by load() together with every other error of the revision.
        self.problems = tuple(problems)
        self.files = tuple(files[p] for p in sorted(files))

    # -- listing -----------------------------------------------------------

    def _ls_tree(self, path: str, recursive: bool) -> list[tuple[str, str, str, int, str]]:
        args = ["-z", "-l", "--full-tree"]
        if recursive:
            args.insert(0, "-r")
        out = self._repo.git.ls_tree(*args, self._commit, "--", path or ".", env=_GIT_ENV)
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, name = record.partition("\t")
            mode, kind, sha, size = meta.split()
            entries.append((mode, kind, sha, int(size) if size != "-" else 0, name))
        return entries

    def _collect(
        self,
        entries: list[tuple[str, str, str, int, str]],
        files: dict[str, ManifestFile],
        problems: list[Problem],
        hops: int,
        shown_prefix: tuple[str, str] | None,
    ) -> None:
        for mode, kind, sha, size, name in entries:
            # Paths reached through a directory symlink are shown under the link.
            shown = name if shown_prefix is None else shown_prefix[1] + name[len(shown_prefix[0]) :]
            if kind != "blob":
                continue  # submodules (commit entries) are not manifests
            if mode == _SYMLINK_MODE:
                self._follow_link(name, shown, sha, files, problems, hops)
            elif is_manifest_name(shown):
                files[self._relative(shown)] = ManifestFile(
                    self._relative(shown), BlobId(sha), size
                )

    def _follow_link(
        self,
        name: str,
        shown: str,
        sha: str,
        files: dict[str, ManifestFile],
        problems: list[Problem],
        hops: int,
    ) -> None:
        target = self._repo.odb.stream(bytes.fromhex(sha)).read().decode("utf-8", "replace")
        resolved = resolve_link(name, target)
        where = self._relative(shown)
        if resolved is None:
            problems.append(_link_problem(where, target, "points outside the repository"))
            return
        if hops >= MAX_SYMLINK_HOPS:
            problems.append(_link_problem(where, target, "is part of a symlink loop"))
            return
        entries = self._ls_tree(resolved, recursive=False)
        if not entries:
            problems.append(_link_problem(where, target, "points at nothing in this commit"))
            return
        mode, kind, target_sha, size, target_name = entries[0]
        if kind == "tree" and target_name == resolved:
            inner = self._ls_tree(resolved + "/", recursive=True)
            self._collect(inner, files, problems, hops + 1, (resolved, shown))
        elif mode == _SYMLINK_MODE:
            self._follow_link(target_name, shown, target_sha, files, problems, hops + 1)
        elif is_manifest_name(shown):
            files[where] = ManifestFile(where, BlobId(target_sha), size)

    def _relative(self, path: str) -> str:
        if self._prefix and path.startswith(self._prefix + "/"):
            return path[len(self._prefix) + 1 :]
        return path

    # -- reading -----------------------------------------------------------

    def read(self, files: Iterable[ManifestFile]) -> Iterator[tuple[ManifestFile, bytes]]:
        odb = self._repo.odb
        for f in files:
            yield f, odb.stream(bytes.fromhex(f.blob_id)).read()

    def close(self) -> None:
        self._repo.close()


def open_git(source: Path, ref: str, manifest_path: str) -> GitSnapshot | None:
    """A snapshot of the repository containing `source`, or None if it is not in one."""
    try:
        repo = git.Repo(source, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if repo.bare or repo.working_tree_dir is None:
        prefix = ""
    else:
        rel = os.path.relpath(source.resolve(), Path(repo.working_tree_dir).resolve())
        prefix = "" if rel == "." else Path(rel).as_posix()
    try:
        return GitSnapshot(repo, ref, manifest_path, prefix)
    except BaseException:
        repo.close()
        raise


def _resolve_ref(repo: git.Repo, ref: str) -> str:
    if ref.startswith("-"):
        raise SourceError.one(
            f"Invalid ref {ref!r}",
            "A ref may not start with '-': git would read it as an option.",
            "Give a branch, tag or commit SHA, e.g. --ref main.",
        )
    try:
        return str(repo.rev_parse(f"{ref}^{{commit}}").hexsha)
    except (git.BadName, git.BadObject, ValueError, IndexError) as exc:
        known = sorted({h.name for h in repo.heads} | {t.name for t in repo.tags})
        hint = f" Known branches and tags: {', '.join(known[:10])}." if known else ""
        has_commits = bool(known) or _has_head(repo)
        raise SourceError.one(
            f"Ref {ref!r} does not exist in {repo.working_tree_dir or repo.git_dir}",
            "It names no branch, tag or commit of the repository."
            if has_commits
            else "The repository has no commits yet.",
            ("Check the spelling of --ref, or fetch the branch first." + hint)
            if has_commits
            else "Commit your manifests first: fleetward reads committed content only.",
            location=ref,
        ) from exc


def _has_head(repo: git.Repo) -> bool:
    try:
        repo.head.commit
    except ValueError:
        return False
    return True


def _join(prefix: str, path: str) -> str:
    parts = [p for p in (prefix, path.strip("/")) if p and p != "."]
    return "/".join(parts)


def _link_problem(where: str, target: str, why: str) -> Problem:
    return Problem(
        f"Symlink {where!r} {why}",
        f"It points at {target!r}. fleetward reads only files inside the repository, "
        "so a manifest cannot pull in content from elsewhere on the machine.",
        "Replace the symlink with the file itself, or point it at a file inside the repository.",
        location=where,
    )
