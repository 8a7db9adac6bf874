"""The daemon's configuration: flags > FLEETWARD_* environment > config file > defaults.

The config file is YAML whose keys are the flags' names without dashes
(`state-dir: /var/lib/fleetward`). It is validated like a manifest: unknown
keys get a "did you mean", wrong values a reason, each at `file:line:column`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetward.errors import Problem, UsageError
from fleetward.kinds.problems import PathProblem, unknown_field, validation_problems
from fleetward.loading import load_other
from fleetward.planning import DEFAULT_MIN_STOP_COUNT

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DEFAULT_LISTEN = "127.0.0.1:9477"
MIN_SECONDS = 1.0  # interval, git-timeout and ready-max-age: anything shorter cannot work


def parse_duration(value: Any) -> float:
    """`10s`, `2m`, `500ms`, `1h` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative; durations are 0 or more")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 500ms or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9477, or port 0 for any)")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    source: str = "."
    ref: str = "HEAD"
    path: str = "manifests"
    no_git: bool = False
    state_dir: str = ".fleetward"
    interval: float = 60.0
    listen: str = DEFAULT_LISTEN
    webhook_secret: str | None = None
    webhook_secret_file: str | None = None
    api_token: str | None = None
    api_token_file: str | None = None
    log_format: str = "text"
    ready_max_age: float | None = None  # None: 3 × interval, at least 5 minutes
    git_timeout: float = 60.0
    lock_timeout: float = 10.0
    operation_timeout: float = 600.0
    allow_empty: bool = False
    allow_mass_stop: bool = False
    min_stop_count: int = DEFAULT_MIN_STOP_COUNT
    once: bool = False

    @property
    def readiness_bound(self) -> float:
        if self.ready_max_age is not None:
            return self.ready_max_age
        return max(300.0, 3 * self.interval)

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def secret(self, which: Literal["webhook_secret", "api_token"]) -> str | None:
        """The value, or the content of its `-file` twin (first line, stripped)."""
        value: str | None = getattr(self, which)
        file: str | None = getattr(self, which + "_file")
        if value:
            return value
        if not file:
            return None
        flag = "--" + which.replace("_", "-") + "-file"
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError.one(
                f"Cannot read {flag} {file}",
                f"{exc.strerror or exc}.",
                f"Point {flag} at a readable file holding the secret on its first line.",
                location=file,
            ) from exc
        if not text:
            raise UsageError.one(
                f"{flag} {file} is empty",
                "An empty secret would leave the endpoint unprotected.",
                "Write the secret into the file, or drop the option to disable the endpoint.",
                location=file,
            )
        return text.splitlines()[0].strip()


@dataclass
class Secrets:
    """The HTTP API's credentials: read from the config, replaced as a whole on SIGHUP,
    read per request."""

    webhook_secret: str | None = None
    api_token: str | None = None


KEYS = {f.name.replace("_", "-"): f.name for f in fields(DaemonConfig)}


class _FileModel(BaseModel):
    """The config file's schema (keys as in the file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)

    source: str | None = None
    ref: str | None = None
    path: str | None = None
    no_git: bool | None = Field(None, alias="no-git")
    state_dir: str | None = Field(None, alias="state-dir")
    interval: float | None = None
    listen: str | None = None
    webhook_secret: str | None = Field(None, alias="webhook-secret")
    webhook_secret_file: str | None = Field(None, alias="webhook-secret-file")
    api_token: str | None = Field(None, alias="api-token")
    api_token_file: str | None = Field(None, alias="api-token-file")
    log_format: Literal["text", "json"] | None = Field(None, alias="log-format")
    ready_max_age: float | None = Field(None, alias="ready-max-age")
    git_timeout: float | None = Field(None, alias="git-timeout")
    lock_timeout: float | None = Field(None, alias="lock-timeout")
    operation_timeout: float | None = Field(None, alias="operation-timeout")
    allow_empty: bool | None = Field(None, alias="allow-empty")
    allow_mass_stop: bool | None = Field(None, alias="allow-mass-stop")
    min_stop_count: int | None = Field(None, alias="min-stop-count", ge=0)
    once: bool | None = None

    @field_validator(
        "interval",
        "ready_max_age",
        "git_timeout",
        "lock_timeout",
        "operation_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("interval", "git_timeout", "ready_max_age", "operation_timeout")
    @classmethod
    def _at_least_a_second(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_SECONDS:
            raise ValueError(f"must be at least {MIN_SECONDS:g}s")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value


def read_config_file(path: str) -> dict[str, Any]:
    """The config file's values by DaemonConfig field name; UsageError, located, if invalid."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError.one(
            f"Cannot read the config file {path}",
            f"{exc.strerror or exc}.",
            "Pass --config with the path of a readable YAML file, or drop --config.",
            location=path,
        ) from exc
    model: _FileModel | None = None

    def check(raw: Any) -> list[PathProblem]:
        nonlocal model
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            return [
                (
                    (),
                    False,
                    Problem(
                        "The config file is not a mapping",
                        "A fleetward config file maps option names to values.",
                        "Write one `key: value` per line, e.g. `interval: 30s`.",
                    ),
                )
            ]
        # Unknown keys and bad values of the known ones, all in one report: a file
        # fixed one error per start of the daemon is a slow way to configure it.
        problems: list[PathProblem] = [
            ((str(key),), True, unknown_field(str(key), "the config", list(KEYS)))
            for key in raw
            if str(key) not in KEYS
        ]
        known = {key: value for key, value in raw.items() if str(key) in KEYS}
        try:
            checked = _FileModel.model_validate(known)
        except ValidationError as exc:
            return problems + validation_problems(exc, (), _FileModel, "the config")
        if not problems:
            model = checked
        return problems

    load_other(content, path, check)
    assert model is not None
    return {name: value for name, value in model.model_dump().items() if value is not None}


def merge(
    explicit: Mapping[str, Any], from_file: Mapping[str, Any], defaults: DaemonConfig
) -> DaemonConfig:
    """Flags and environment (`explicit`) over the file over the defaults.

    A secret and its `-file` twin are one setting: a flag or variable for
    either replaces both from the file (rotating a secret by flag must win
    over the old one written in the file).
    """
    file_values = dict(from_file)
    for value, path in _SECRET_PAIRS:
        if value in explicit or path in explicit:
            file_values.pop(value, None)
            file_values.pop(path, None)
    return replace(defaults, **{**file_values, **explicit})


_SECRET_PAIRS = (("webhook_secret", "webhook_secret_file"), ("api_token", "api_token_file"))
