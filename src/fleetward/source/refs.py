"""Resolving a ref of a local repository to a commit, and saying why one does not resolve.

Any commit-ish git accepts passes, bar the forms `validate_ref` refuses; a ref
naming a tree or blob, an ambiguous name or abbreviation, or a missing one
gets an error that says which, with the branches and tags that do exist.
"""

from __future__ import annotations

import re

import git

from fleetward.errors import SourceError
from fleetward.source.base import UNKNOWN_REVISION
from fleetward.source.git_commands import (
    GitFailed,
    dubious_repository,
    is_dubious,
    run_git,
    run_git_full,
)
from fleetward.source.urls import split_ancestry, validate_ref


def resolve_ref(repo: git.Repo, ref: str) -> str:
    """The commit `ref` names: any commit-ish git accepts, bar the forms `validate_ref` refuses.

    A ref with ':' (REVISION:PATH, :/TEXT) is never resolved as a commit: it names a
    file or directory, or searches commit messages; the error says which.
    """
    validate_ref(ref)
    if ":" in ref:
        raise _unresolved_ref(repo, ref, "")
    try:
        out, warned = run_git_full(
            repo, "rev_parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"
        )
    except GitFailed as failed:
        if is_dubious(failed.said):
            raise dubious_repository(repo, failed.said, ref) from None
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
        out = run_git(repo, "for_each_ref", "--format=%(refname)", *places)
    except GitFailed:
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
        why=UNKNOWN_REVISION,
    )


def _object_of(repo: git.Repo, ref: str) -> tuple[str, str] | None:
    """(type, sha) of what `ref` names, tags peeled; None if it names nothing."""
    try:
        sha = run_git(repo, "rev_parse", "--verify", "--quiet", "--end-of-options", ref).strip()
        for _ in range(8):
            if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
                return None
            kind = run_git(repo, "cat_file", "-t", sha).strip()
            if kind != "tag":
                return kind, sha
            sha = run_git(repo, "rev_parse", "--verify", "--quiet", f"{sha}^{{}}").strip()
    except (GitFailed, SourceError):
        return None
    return None


def _has_head(repo: git.Repo) -> bool:
    try:
        return repo.head.commit is not None
    except Exception:  # noqa: BLE001 - an unborn or unreadable HEAD: no commits to offer
        return False
