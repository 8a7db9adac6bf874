"""The running daemon's HTTP API from the CLI: finding it, its token, one JSON request.

`operations create|cancel|set-state|approve` change state through the daemon
(the daemon owns the operation log while it runs). Every failure is a
UsageError carrying the daemon's own error body when there is one.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetward.errors import Problem, UsageError, os_error

F = TypeVar("F", bound=Callable[..., Any])

TIMEOUT_SECONDS = 30.0
# The daemon's API is local (loopback by default): a proxy from the environment must not
# intercept it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def connection_options(command: F) -> F:
    """--url, --api-token and --api-token-file (the state dir comes from state_dir_option)."""
    for option in reversed(
        [
            click.option(
                "--url",
                metavar="URL",
                help="The daemon's HTTP address, e.g. http://127.0.0.1:9477 [default: the "
                "address the daemon of --state-dir wrote to status/summary.json].",
            ),
            click.option(
                "--api-token",
                envvar="FLEETWARD_API_TOKEN",
                show_envvar=True,
                metavar="TOKEN",
                help="The daemon's API token (its --api-token).",
            ),
            click.option(
                "--api-token-file",
                envvar="FLEETWARD_API_TOKEN_FILE",
                show_envvar=True,
                metavar="FILE",
                type=click.Path(dir_okay=False),
                help="Read the API token from FILE.",
            ),
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True, slots=True)
class DaemonApi:
    """Where the daemon listens and the token to send."""

    url: str
    token: str

    @classmethod
    def connect(
        cls, state_dir: str, url: str | None, token: str | None, token_file: str | None
    ) -> DaemonApi:
        return cls(_base_url(state_dir, url), _token(token, token_file))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer to `method path`; a UsageError for any failure."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        target = self.url + path
        try:
            request = urllib.request.Request(target, data=data, method=method, headers=headers)
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _refused(exc.code, exc.read(), target) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError.one(
                f"Cannot reach the daemon at {self.url}",
                f"{method} {target}: {_describe(reason)}.",
                "Check that the daemon runs (fleetward status --state-dir DIR) and listens "
                "there, or pass --url with its address.",
                location=self.url,
            ) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise UsageError.one(
                f"The daemon at {self.url} answered something other than JSON",
                f"{method} {target} returned {raw[:80]!r}.",
                "Check that --url points at a fleetward daemon.",
                location=self.url,
            ) from None


def _base_url(state_dir: str, url: str | None) -> str:
    if url:
        if not url.startswith(("http://", "https://")):
            raise UsageError.one(
                f"Invalid --url {url!r}",
                "The daemon's address is an http:// or https:// URL.",
                "Pass e.g. --url http://127.0.0.1:9477.",
                location="--url",
            )
        return url.rstrip("/")
    path = Path(state_dir) / "status" / "summary.json"
    try:
        summary = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError.one(
            "No daemon found",
            f"{path} does not exist: no daemon has run on the state directory {state_dir}.",
            "Start one (fleetward daemon --api-token ...), pass the --state-dir it uses, "
            "or pass --url with its address.",
            location=str(path),
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError.one(
            "No daemon found",
            f"Cannot read {path}: {exc}.",
            "Pass --url with the daemon's address.",
            location=str(path),
        ) from None
    daemon = summary.get("daemon") if isinstance(summary, dict) else None
    listen = daemon.get("listen") if isinstance(daemon, dict) else None
    if not isinstance(listen, str) or not listen.startswith(("http://", "https://")):
        raise UsageError.one(
            "No daemon found",
            f"{path} names no HTTP address: the daemon of {state_dir} was started with "
            "--once or without HTTP.",
            "Start the daemon (fleetward daemon), or pass --url with its address.",
            location=str(path),
        )
    return listen.rstrip("/")


def _token(token: str | None, token_file: str | None) -> str:
    if token:
        return token.strip()
    if token_file:
        what = f"Cannot read --api-token-file {token_file}"
        fix = "Point --api-token-file at a readable file holding the token."
        try:
            text = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise os_error(exc, UsageError, what, fix, token_file) from None
        except UnicodeError as exc:
            raise UsageError.one(what, f"{exc}.", fix, location=token_file) from None
        if text:
            return text.splitlines()[0].strip()
        raise UsageError.one(
            f"--api-token-file {token_file} is empty",
            "The file holds no token.",
            "Write the daemon's API token into it.",
            location=token_file,
        )
    raise UsageError.one(
        "No API token",
        "Changing operations goes through the daemon, which needs its API token.",
        "Pass --api-token TOKEN or --api-token-file FILE, or set FLEETWARD_API_TOKEN "
        "(the token the daemon was started with).",
        location="--api-token",
    )


def _refused(status: int, raw: bytes, target: str) -> UsageError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        problem = Problem.from_dict(body)
        return UsageError(
            Problem(
                problem.error,
                problem.reason,
                problem.resolution,
                problem.location or None,
                {**problem.parameters, "status": status},
            )
        )
    return UsageError.one(
        f"The daemon refused the request ({status})",
        f"{target} answered {status}: {raw[:200].decode(errors='replace')!r}.",
        "Check --url points at a fleetward daemon of this version.",
        location=target,
        status=status,
    )


def _describe(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(reason, socket.timeout | TimeoutError):
        return f"no answer within {TIMEOUT_SECONDS:g}s"
    return str(reason) or type(reason).__name__
