"""Reading Git blobs in full: one `git cat-file --batch` per snapshot, every answer checked.

GitPython's object streams gave 0 bytes for a truncated loose object without
raising, and its next read blamed "dubious ownership" (LIBRARIES.md). Here each
blob's type, size and id are checked against what git sent, and anything short
of the whole object is a `CorruptObject` naming the file, the object id and what
git said: a damaged file is never read as an empty one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO

from fleetward.errors import Problem, SourceError, os_error
from fleetward.source.base import read_after_close

logger = logging.getLogger(__name__)

# What git says of a damaged repository. Lines from a remote ("remote: ...") are the
# remote's problem, not local damage.
_CORRUPT = re.compile(
    r"not a git repository|corrupt|bad object|unable to read|invalid object|"
    r"missing (?:blob|tree|commit|object)|bad packed object|did not send all necessary "
    r"objects|object file .* is empty|packfile .* (?:cannot|does not)|inflate|"
    r"broken link|bad config|unable to parse .*HEAD|bad (?:tree|commit) object|"
    r"unable to (?:stream|unpack)|header for .* too long",
    re.IGNORECASE,
)
_CHUNK = 1 << 16
_MAX_HEADER = 200  # "<64 hex> blob <size>\n" and some


class UnreadableBlob(Exception):
    """git could not give a blob in full; `detail` says how, in git's words where it had any."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Stopped(Exception):
    """git's answer ended early (the process died) or did not come in time."""

    def __init__(self, timed_out: bool) -> None:
        super().__init__("timed out" if timed_out else "ended early")
        self.timed_out = timed_out


class BlobReader:
    """Reads blobs of one repository through a persistent `git cat-file --batch`.

    The process starts on the first read. After a failed read it is stopped and
    the next read starts a fresh one: nothing of a failed answer is kept. Once
    closed, a read is an error: a process started then would outlive the reader.
    """

    def __init__(
        self,
        cwd: str,
        where: str,
        env: Mapping[str, str],
        timeout: float,
        clean: Callable[[str], str],
    ) -> None:
        self._cwd = cwd
        self._where = where  # the repository as errors name it
        self._env = dict(env)
        self._timeout = timeout
        self._clean = clean
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = bytearray()
        self._closed = False

    def read(self, sha: str, path: str) -> bytes:
        """The whole content of blob `sha`, checked against its id; `UnreadableBlob` if git
        cannot give it in full. `path` names the file in a timeout's error."""
        if self._closed:
            raise read_after_close(path)
        proc = self._start()
        assert proc.stdin is not None and self._stderr is not None
        said_from = self._stderr.seek(0, os.SEEK_END)
        deadline = time.monotonic() + self._timeout
        try:
            proc.stdin.write(sha.encode("ascii") + b"\n")
            proc.stdin.flush()
            header = self._line(deadline).decode("utf-8", "replace").split()
            if header[1:2] == ["missing"] or header[1:2] == ["ambiguous"]:
                raise self._damaged(said_from, f"git reports the object {header[1]}")
            if len(header) != 3 or header[0] != sha or not header[2].isdigit():
                raise self._damaged(said_from, f"git answered {' '.join(header)!r}")
            kind, size = header[1], int(header[2])
            content = self._take(size + 1, deadline)[:-1]  # the answer ends with a newline
        except (BrokenPipeError, ConnectionResetError):
            raise self._damaged(said_from, "git cat-file stopped") from None
        except _Stopped as stopped:
            if stopped.timed_out:
                self._reset()
                raise SourceError.one(
                    f"Git did not answer when reading {path!r} (object {sha})",
                    f"git cat-file sent nothing for {self._timeout:g} s in {self._where}; "
                    "the disk or network file system holding it may be stuck.",
                    "Check that the repository's file system responds (ls, git fsck); "
                    "fleetward reads it again on the next run.",
                    location=path,
                    object=sha,
                ) from None
            raise self._damaged(said_from, "git stopped before sending all of it") from None
        except BaseException:
            # Anything else (EIO from os.read, KeyboardInterrupt) leaves git half-way
            # through an answer: the next read would take its rest for a header.
            self._stop()
            raise
        if kind != "blob":
            raise self._damaged(said_from, f"the object is a {kind}, not a file")
        if object_id(kind, content, len(sha)) != sha:
            raise self._damaged(said_from, "its content does not match its id")
        return content

    def close(self) -> None:
        """Stop the process for good: later reads are errors, never a new process."""
        self._closed = True
        self._reset()

    def _reset(self) -> None:
        """Stop the process and drop what it left (its stderr file, unread output);
        the next read starts afresh."""
        self._stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stop(self) -> None:
        """End the process: it exits on the end of its input (killed if it lingers)."""
        proc, self._proc = self._proc, None
        self._buffer.clear()
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # a broken pipe on the last flush: it is gone anyway
                    pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- the process ---------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            return self._proc
        # git's stderr goes to a file: nothing to drain while reading, and its words
        # are there to quote when an answer falls short.
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as exc:
            self._reset()
            raise os_error(
                exc,
                SourceError,
                "The git command cannot be run",
                "Install git and make sure it is on PATH, or read a plain directory with "
                "--no-git.",
                consequence="fleetward reads Git repositories with the git binary.",
            ) from None
        return self._proc

    def _fill(self, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Stopped(timed_out=True)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                break
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            raise _Stopped(timed_out=False)
        self._buffer += chunk

    def _line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_HEADER:
                return bytes(self._buffer[:_MAX_HEADER])  # not a header: reported as such
            self._fill(deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _take(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    # -- errors --------------------------------------------------------------------------

    def _damaged(self, said_from: int, what: str) -> UnreadableBlob:
        """The error for a blob git could not give in full, with git's words on it."""
        self._stop()  # after it exited, everything it wrote to stderr is in the file
        said = ""
        if self._stderr is not None:
            self._stderr.seek(said_from)
            said = self._clean(self._stderr.read().decode("utf-8", "replace"))
        self._reset()
        return UnreadableBlob(f"{what}; git said: {said}" if said else what)


def damaged_blob(where: str, path: str, sha: str, said: str, rewrite: str | None) -> Problem:
    """A blob that cannot be read in full: the problem, and how to repair it.

    `rewrite` is the file's path in the work tree, when there is one: the
    committed content may still be there to write the object back from.
    """
    restore = (
        f"; if the work tree still holds the committed {path}, delete the damaged object "
        f"file git fsck names and run git hash-object -w {rewrite} in {where}"
        if rewrite is not None
        else ""
    )
    return Problem(
        f"Git could not read {path!r}: object {sha} is damaged or missing",
        f"The repository {where} cannot give the file's object in full ({said}). fleetward "
        "never reads a damaged file as empty: nothing of this revision is applied.",
        f"Run git fsck in {where} to see what is damaged, then restore the object from a "
        "copy that has it: git fetch from the remote or another clone, or clone the "
        f"repository again{restore}.",
        location=path,
        parameters={"object": sha, "path": path},
    )


def object_id(kind: str, content: bytes, hex_length: int) -> str:
    """The id git gives an object of `kind` with `content` (SHA-1, or SHA-256 for 64 digits)."""
    algorithm = hashlib.sha256 if hex_length == 64 else hashlib.sha1
    header = b"%s %d\0" % (kind.encode("ascii"), len(content))
    return algorithm(header + content, usedforsecurity=False).hexdigest()


def looks_corrupt(stderr: str) -> bool:
    """Whether git's stderr reports a damaged repository (not a remote's failure)."""
    return any(
        _CORRUPT.search(line)
        for line in stderr.splitlines()
        if not line.lstrip().startswith("remote:")
    )
