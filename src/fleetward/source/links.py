"""Symlinks in a committed manifest tree: where they may lead, and why one is refused."""

from __future__ import annotations

from typing import NamedTuple

from fleetward.errors import Problem
from fleetward.source.base import MAX_SYMLINK_HOPS

# Symlinks followed plus entries listed through directory symlinks, in all: past
# this a tree of links that fans out (without looping) is refused with one
# problem instead of walked for minutes.
MAX_LINKED_ENTRIES = 50_000


def join_path(prefix: str, path: str) -> str:
    """`prefix`/`path` as a tree path ('' for the repository's root)."""
    parts = [p for p in (prefix, path.strip("/")) if p and p != "."]
    return "/".join(parts)


def tree_contains(tree: str, path: str) -> bool:
    """Whether the tree `tree` ('' for the root) is `path` or holds it."""
    return tree == "" or path == tree or path.startswith(tree + "/")


class LinkWhy(NamedTuple):
    """Why a symlink of one sort is refused, and what to do about it."""

    reason: str
    resolution: str


LINK_OUTSIDE = LinkWhy(
    reason="fleetward reads only files inside the repository, so a manifest cannot pull "
    "in content from elsewhere on the machine.",
    resolution="Replace the symlink with the file itself, or point it at a file inside "
    "the repository.",
)
LINK_MISSING = LinkWhy(
    reason="The commit has no file or directory at that path.",
    resolution="Point the symlink at a file or directory that is committed, or remove it.",
)
LINK_CHAIN_LOOP = LinkWhy(
    reason="Following it leads back to itself through symlinks, so it names no file.",
    resolution="Point the symlink straight at the manifest file, or replace it with the file.",
)
LINK_TREE_LOOP = LinkWhy(
    reason="That directory holds the link itself, or is already being read through "
    "another link: following it would read the same files again and again.",
    resolution="Replace the symlink with the files it should add, or point it at a "
    "directory that does not contain it.",
)
LINK_TOO_DEEP = LinkWhy(
    reason=f"fleetward follows at most {MAX_SYMLINK_HOPS} symlinks from a manifest path to a file.",
    resolution="Point the symlink straight at the file or directory it should add.",
)
LINK_TOO_MANY = LinkWhy(
    reason="Directory symlinks that lead to more directory symlinks multiply the tree; "
    f"fleetward stops after {MAX_LINKED_ENTRIES} entries reached through symlinks.",
    resolution="Replace the symlinks with the directories themselves, or link each shared "
    "directory once.",
)


def link_problem(where: str, target: str, why: str, kind: LinkWhy) -> Problem:
    return Problem(
        f"Symlink {where!r} {why}",
        f"It points at {target!r}. {kind.reason}",
        kind.resolution,
        location=where,
    )
