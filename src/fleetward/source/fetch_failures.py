"""What a failed git command of a remote mirror means: a timeout, or a failure recognised
by what git said (no default branch, an untrusted host key, refused credentials, no such
repository, no connection), each with its reason and what to do."""

from __future__ import annotations

import re
from typing import NamedTuple

from fleetward.errors import SourceError
from fleetward.source.git_process import GitFailure


def fetch_failed(
    failure: GitFailure, url: str, said: str, timeout: float, retained: str
) -> SourceError:
    """The error for `failure` of git against `url` (shown redacted), `said` being git's
    message scrubbed of credentials; `retained` tells what the mirror still holds."""
    if failure.timed_out:
        return SourceError.one(
            f"git {failure.command} of {url} timed out after {timeout:g} s",
            f"git did not finish within the git timeout of {timeout:g} s; the "
            "remote may be unreachable or very slow, or ssh may be waiting for something "
            "that never comes.",
            "Check that the remote answers from this machine (git ls-remote URL); for a "
            "very large first clone, raise the git timeout." + retained,
            location=url,
            timeout=timeout,
        )
    for known in FETCH_FAILURES:
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


class _Diagnosis(NamedTuple):
    """A kind of git failure, recognised by what git said."""

    pattern: re.Pattern[str]
    error: str  # formatted with url=
    reason: str
    resolution: str


def _diagnosis(pattern: str, error: str, reason: str, resolution: str) -> _Diagnosis:
    return _Diagnosis(re.compile(pattern, re.IGNORECASE), error, reason, resolution)


# First match wins: ssh's "Permission denied" also says "Could not read from remote".
FETCH_FAILURES = (
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
