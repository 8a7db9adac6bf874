"""Source addresses and refs: which strings are Git URLs and commit names, which are allowed.

Only https, ssh (URL or scp-like `host:path`) and file URLs pass; `ext::` and
other transports, `git://` and `http://` are refused by name; a URL or ref
that starts with '-' never reaches git (option injection). A ref is one
commit-ish (`main`, `v1.0^{commit}`, `HEAD~2`, an abbreviated SHA): never a
range, a reflog entry or anything with whitespace. Every URL shown anywhere
goes through `redact_url`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from fleetward.errors import SourceError

ALLOWED_SCHEMES = ("https", "ssh", "file")
_SCHEME_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^(?P<transport>[A-Za-z][A-Za-z0-9+.-]*)::")
# What git forbids in a ref name (git check-ref-format), and revision syntax.
_BAD_REF = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|//|^/|/$|\.lock$")
# Ancestry steps after a name (`main~2`, `v1^{commit}`, `HEAD^2^`): a remote source takes these.
_ANCESTRY = re.compile(r"(?:~\d*|\^\d*|\^\{(?:commit)?\})+$")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")


# -- URLs and refs -----------------------------------------------------------------------


def is_remote(source: str) -> bool:
    """Whether `source` is a Git URL rather than a local directory.

    Whatever git would read as a URL counts — `scheme://…`, `transport::…` and
    the scp-like `[user@]host:path` (a colon before any slash) — including the
    schemes fleetward refuses, so that `validate_remote_url` refuses them by name
    instead of their being looked for on disk. An scp-like string that names an
    existing path stays local (`./a:b` is always local).
    """
    if _SCHEME_URL.match(source) or _TRANSPORT.match(source):
        return True
    if not _scp_like(source):
        return False
    try:
        return not os.path.lexists(source)
    except (ValueError, OSError):  # e.g. a NUL byte: no such path
        return True


def redact_url(url: str) -> str:
    """`url` with the user-info of a `scheme://` URL masked: `https://***@host/x`.

    Everything up to the last '@' of the authority is masked, so a password
    holding '@' does not leak either. scp-like `user@host:path` has no password
    and is shown as it is.
    """
    found = _SCHEME_URL.match(url)
    if found is None:
        return url
    start = found.end()
    end = min((i for i in (url.find(c, start) for c in "/?#") if i != -1), default=len(url))
    at = url.rfind("@", start, end)
    return url if at == -1 else url[:start] + "***" + url[at:]


def validate_remote_url(url: str) -> None:
    """Raise `SourceError` unless `url` is an https, ssh or file URL that is safe to hand git."""
    shown = redact_url(url)

    def refuse(error: str, reason: str, resolution: str) -> SourceError:
        return SourceError.one(error, reason, resolution, location=repr(shown))

    use_https = "Use an https:// URL (or ssh://, git@host:path, file://)."
    if not url:
        raise refuse("The source URL is empty", "--source names no repository.", use_https)
    if url.startswith("-"):
        raise refuse(
            f"Source URL {shown!r} starts with '-'",
            "git would read it as an option, not as a repository.",
            use_https,
        )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise refuse(
            f"Source URL {shown!r} contains whitespace or control characters",
            "A repository URL has none; such characters are how a command or an option "
            "gets smuggled into one.",
            "Percent-encode them (a space is %20), or check what set --source.",
        )
    transport = _TRANSPORT.match(url)
    if transport is not None:
        raise refuse(
            f"Source URL {shown!r} uses the transport '{transport['transport']}::'",
            "'<transport>::' URLs run a remote helper program; 'ext::' and 'fd::' run "
            "arbitrary commands (CVE-2022-24439). fleetward allows only https, ssh and file.",
            use_https,
        )
    scheme = _SCHEME_URL.match(url)
    if scheme is not None:
        _check_scheme_url(url, scheme["scheme"].lower(), refuse)
        return
    if _scp_like(url):
        host_part, _, path = url.partition(":")
        user, _, host = host_part.rpartition("@")
        if not host or not path:
            raise refuse(
                f"Source URL {shown!r} has no {'host' if not host else 'path'}",
                "An scp-like URL is [user@]host:path.",
                "Give the full URL, e.g. git@github.com:org/repo.git.",
            )
        if host.startswith("-") or user.startswith("-"):
            raise refuse(
                f"Source URL {shown!r} has a host or user that starts with '-'",
                "ssh would read it as an option (CVE-2017-1000117).",
                "Check the URL; host names never start with '-'.",
            )
        return
    raise refuse(
        f"Source {shown!r} is not a URL",
        "It has no scheme (https://, ssh://, file://) and is not of the form host:path.",
        use_https + " A local repository is given by its directory.",
    )


def _check_scheme_url(
    url: str, scheme: str, refuse: Callable[[str, str, str], SourceError]
) -> None:
    shown = redact_url(url)
    if scheme == "http":
        raise refuse(
            f"Source URL {shown!r} uses plain http",
            "Over http the manifests (and any credentials) travel unencrypted and can be "
            "altered on the way; what they say is then applied.",
            "Use the https:// URL of the repository.",
        )
    if scheme == "git":
        raise refuse(
            f"Source URL {shown!r} uses the git:// protocol",
            "git:// is neither encrypted nor authenticated: anyone on the path can change "
            "the manifests that are then applied.",
            "Use the https:// or ssh:// URL of the repository.",
        )
    if scheme not in ALLOWED_SCHEMES:
        raise refuse(
            f"Source URL {shown!r} uses the unsupported scheme '{scheme}'",
            f"fleetward reads remote repositories over {', '.join(ALLOWED_SCHEMES)} only.",
            "Use the https:// or ssh:// URL of the repository.",
        )
    try:
        parts = urlsplit(url)
        host, user = parts.hostname or "", parts.username or ""
    except ValueError as exc:
        raise refuse(
            f"Source URL {shown!r} cannot be parsed",
            f"{exc}.",
            "Check the URL; e.g. https://github.com/org/repo.git.",
        ) from None
    if scheme == "file":
        if not parts.path.strip("/"):
            raise refuse(
                f"Source URL {shown!r} has no path",
                "A file URL names a repository directory: file:///path/to/repo.",
                "Give the repository's absolute path after file://.",
            )
        return
    if not host:
        raise refuse(
            f"Source URL {shown!r} has no host",
            f"A {scheme} URL is {scheme}://host/path.",
            "Give the full URL, e.g. https://github.com/org/repo.git.",
        )
    if host.startswith("-") or user.startswith("-"):
        raise refuse(
            f"Source URL {shown!r} has a host or user that starts with '-'",
            "ssh would read it as an option (CVE-2017-1000117).",
            "Check the URL; host names never start with '-'.",
        )


def validate_ref(ref: str, location: str | None = None) -> None:
    """Raise `SourceError` unless `ref` can name one commit, reproducibly, safely.

    Any commit-ish git accepts passes (`HEAD~2`, `main^`, `v1.0^{commit}`, SHAs,
    abbreviated ones too) except: a leading '-' (an option), whitespace or control
    characters, a range ('..') and '@{...}' (reflog entries, @{upstream}, @{-1}):
    those name this clone's local history, which another clone or the same one
    tomorrow does not share.
    """
    if ref.startswith("-"):
        raise SourceError.one(
            f"Invalid ref {ref!r}",
            "A ref may not start with '-': git would read it as an option.",
            "Give a branch, tag or commit SHA, e.g. --ref main.",
            location=location,
        )
    if not ref or _BLANK.search(ref):
        raise SourceError.one(
            f"Invalid ref {ref!r}",
            "A ref names one commit, and has no spaces or control characters.",
            "Give a branch, tag or commit SHA, e.g. --ref main.",
            location=location,
        )
    if "@{" in ref:
        raise SourceError.one(
            f"Invalid ref {ref!r}: a reflog entry",
            "'@{...}' forms (main@{1}, @{yesterday}, @{-1}, @{upstream}) read this clone's "
            "own record of where its refs were: another clone, or this one after a gc, "
            "answers differently, so the revision applied could not be reproduced.",
            f"Give the commit itself: git rev-parse '{ref}' prints its SHA; or use a branch, "
            "a tag or ancestry (main~1).",
            location=location,
        )
    if ".." in ref:
        raise SourceError.one(
            f"Invalid ref {ref!r}: a range of commits",
            "'A..B' and 'A...B' name many commits; fleetward reads the manifests of one.",
            "Give one commit with --ref; to review what changes between two revisions, "
            "use plan --base A --ref B.",
            location=location,
        )


def split_ancestry(ref: str) -> tuple[str, str]:
    """(name, ancestry steps): 'main~2^{commit}' → ('main', '~2^{commit}')."""
    found = _ANCESTRY.search(ref)
    if found is None or found.start() == 0:
        return ref, ""
    return ref[: found.start()], found.group()


def validate_remote_ref(ref: str, location: str | None = None) -> None:
    """Raise `SourceError` unless `ref` is a branch, tag or SHA name, with ancestry steps
    if any, that is safe to hand git."""
    validate_ref(ref, location)
    name, _ = split_ancestry(ref)
    if _BAD_REF.search(name):
        raise SourceError.one(
            f"Invalid ref {ref!r}",
            "For a remote source --ref names a branch, a tag or a commit SHA, optionally "
            "followed by ancestry steps (~N, ^N, ^{commit}); a ref name has no "
            "'~', '^', ':', '?', '*', '[' or '\\' of its own.",
            "Give a branch, tag or commit SHA, e.g. --ref main or --ref main~1 (HEAD: the "
            "remote's default branch).",
            location=location,
        )


def _scp_like(text: str) -> bool:
    colon, slash = text.find(":"), text.find("/")
    return colon > 0 and (slash == -1 or colon < slash)
