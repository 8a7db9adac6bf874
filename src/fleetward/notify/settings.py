"""Notification targets as the daemon's config file declares them, and their secrets.

`notifications:` is a list of targets, each with a `name` (its label in
metrics and status files, and what `fleetward notify test` takes), a `type`,
an event filter and optional SyncPolicy/kind selectors. One flat model holds
every type's fields, so a bad value is located at `file:line:column` like the
rest of the config; `_check_type` refuses fields of another type.

Secrets (signing keys, tokens, a Slack URL, which embeds its own token) are
never written in the file: they are read from a file or an environment
variable by `prepare`, at start-up and at every reload, so a missing one is
an error then and never at the first event. A read secret is a `Secret`,
whose repr hides it from logs and error messages.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from fleetward.durations import check_range, parse_duration
from fleetward.errors import Problem, UsageError, os_error

EventType = Literal[
    "planning",
    "applied",
    "failed",
    "held",
    "rejected",
    "drift-reverted",
    "recovered",
    "daemon-started",
    "daemon-stopped",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
TargetType = Literal["webhook", "slack", "github", "gitlab", "gitea"]
TARGET_TYPES: tuple[str, ...] = TargetType.__args__  # type: ignore[attr-defined]
COMMIT_STATUS_TYPES = frozenset({"github", "gitlab", "gitea"})
# What a commit status can say: the revision's outcome, never the daemon's life.
COMMIT_STATUS_EVENTS = ("planning", "applied", "failed", "held", "rejected", "recovered")
# What a webhook or chat target is sent when its `events` are not listed: all but
# `planning`, which a commit shows as pending but which in a channel is a message
# before every `applied`. Listed by name, it is sent.
DEFAULT_EVENTS = tuple(e for e in EVENT_TYPES if e != "planning")
DEFAULT_BASE_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}

# The fields each type takes beyond the common ones (name, type, events, selectors,
# delivery tuning): any other is refused with the type named.
_OWN_FIELDS: dict[str, frozenset[str]] = {
    "webhook": frozenset({"url", "secret_file", "secret_env"}),
    "slack": frozenset({"url_file", "url_env"}),
    "github": frozenset({"base_url", "repository", "token_file", "token_env", "context"}),
    "gitlab": frozenset({"base_url", "project", "token_file", "token_env", "context"}),
    "gitea": frozenset({"base_url", "repository", "token_file", "token_env", "context"}),
}
_OWN_FIELDS = {k: v | {"target_url"} for k, v in _OWN_FIELDS.items()}


def _seconds(minimum: float) -> BeforeValidator:
    return BeforeValidator(lambda value: check_range(value, parse_duration(value), minimum))


def _url(value: Any) -> Any:
    if isinstance(value, str):
        check_url(value)
    return value


def check_url(value: str) -> str:
    """`value` if it is an absolute http(s) URL with a host; ValueError saying why not."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an absolute http:// or https:// URL with a host")
    return value


def rate_interval(value: str) -> float:
    """`"30/min"` → seconds between two requests (2.0); ValueError otherwise."""
    found = _RATE.match(value)
    if found is None or int(found[1]) == 0:
        raise ValueError("expected N/s, N/min or N/h with N at least 1 (e.g. 30/min)")
    return _PER[found[2]] / int(found[1])


def _rate(value: Any) -> Any:
    if isinstance(value, str):
        rate_interval(value)
    return value


Url = Annotated[str, BeforeValidator(_url)]


class TargetSettings(BaseModel):
    """One entry of `notifications:` (see the module docstring and the README)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    name: str = Field(pattern=_NAME.pattern)
    type: TargetType
    # None: DEFAULT_EVENTS, or COMMIT_STATUS_EVENTS for a commit status.
    events: tuple[EventType, ...] | None = None
    # Only events about changes governed by one of these SyncPolicies / of these kinds.
    policies: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    url: Url | None = None
    url_file: str | None = None
    url_env: str | None = None
    secret_file: str | None = None
    secret_env: str | None = None
    base_url: Url | None = None
    repository: str | None = Field(None, pattern=r"^[^/\s]+/[^/\s]+$")
    project: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    context: str = "fleetward"
    target_url: Url | None = None
    timeout: Annotated[float, _seconds(0.1)] = Field(10.0, validate_default=False)
    attempts: int = Field(8, ge=1, le=1000)
    backoff: Annotated[float, _seconds(0.0)] = Field(1.0, validate_default=False)
    max_backoff: Annotated[float, _seconds(0.0)] = Field(300.0, validate_default=False)
    rate_limit: Annotated[str, BeforeValidator(_rate)] = "60/min"

    @model_validator(mode="after")
    def _check_type(self) -> TargetSettings:
        given = {name for name in self.model_fields_set if name in _ALL_OWN}
        if self.type == "slack" and "url" in given:
            # Said before the generic refusal: the URL is refused for what it holds.
            raise ValueError(
                "a slack target takes no url: a Slack URL is a secret (it embeds the "
                "webhook's token), so it is never written in the config file; put it in "
                "a file named by urlFile, or a variable named by urlEnv"
            )
        foreign = sorted(given - _OWN_FIELDS[self.type])
        if foreign:
            names = ", ".join(to_camel(f) for f in foreign)
            raise ValueError(f"a {self.type} target takes no {names}")
        missing = _missing(self)
        if missing:
            raise ValueError(f"a {self.type} target needs {missing}")
        if self.events is not None and self.type in COMMIT_STATUS_TYPES:
            wrong = [e for e in self.events if e not in COMMIT_STATUS_EVENTS]
            if wrong:
                raise ValueError(
                    f"a commit status cannot say {', '.join(wrong)}; it takes "
                    + ", ".join(COMMIT_STATUS_EVENTS)
                )
        return self

    @property
    def wanted(self) -> frozenset[str]:
        """The event types this target is sent."""
        if self.events is not None:
            return frozenset(self.events)
        return frozenset(COMMIT_STATUS_EVENTS if self.is_commit_status else DEFAULT_EVENTS)

    @property
    def is_commit_status(self) -> bool:
        return self.type in COMMIT_STATUS_TYPES

    @property
    def min_interval(self) -> float:
        return rate_interval(self.rate_limit)


_ALL_OWN = frozenset().union(*_OWN_FIELDS.values())


def _missing(target: TargetSettings) -> str:
    """What `target` lacks for its type, as the message says it ("" when complete)."""
    if target.type == "webhook" and target.url is None:
        return "url"
    if target.type == "slack" and (target.url_file is None) == (target.url_env is None):
        return "exactly one of urlFile, urlEnv"
    if target.is_commit_status:
        if (target.token_file is None) == (target.token_env is None):
            return "exactly one of tokenFile, tokenEnv"
        if target.type == "gitlab" and not target.project:
            return "project (the project's numeric id or its path, e.g. group/app)"
        if target.type in ("github", "gitea") and not target.repository:
            return "repository (owner/name)"
        if target.type == "gitea" and target.base_url is None:
            return "baseUrl (e.g. https://codeberg.org)"
    if target.type == "webhook" and target.secret_file and target.secret_env:
        return "at most one of secretFile, secretEnv"
    return ""


def check_unique_names(targets: Sequence[TargetSettings]) -> Sequence[TargetSettings]:
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            raise ValueError(f"two notification targets are named {target.name!r}")
        seen.add(target.name)
    return targets


class Secret:
    """A secret read from a file or the environment: its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Target:
    """A target ready to send to: its settings, its URL and its secret, read."""

    settings: TargetSettings
    url: Secret | None = None  # webhook and slack (a Slack URL is a secret)
    secret: Secret | None = None  # webhook signing key, or a Git host's token
    secrets: tuple[str, ...] = field(default=(), repr=False)  # what to mask in messages

    @property
    def name(self) -> str:
        return self.settings.name


def prepare(targets: Sequence[TargetSettings]) -> tuple[Target, ...]:
    """Every target with its secrets read; one UsageError naming every one missing."""
    problems: list[Problem] = []
    ready = []
    for target in targets:
        try:
            ready.append(_prepare(target))
        except UsageError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UsageError(*problems)
    return tuple(ready)


def _prepare(target: TargetSettings) -> Target:
    where = f"notifications: {target.name}"
    url: Secret | None = None
    secret: Secret | None = None
    if target.type == "webhook":
        url = Secret(target.url or "")
        secret = _read(where, "secretFile", target.secret_file, "secretEnv", target.secret_env)
    elif target.type == "slack":
        url = _read(where, "urlFile", target.url_file, "urlEnv", target.url_env)
        assert url is not None
        try:
            check_url(url.value)
        except ValueError as exc:
            raise UsageError.one(
                f"The Slack URL of notification target {target.name} is not a URL",
                f"{exc}.",
                "Put the incoming webhook's URL (https://hooks…) in the file or variable.",
                location=where,
            ) from None
    else:
        secret = _read(where, "tokenFile", target.token_file, "tokenEnv", target.token_env)
    masked = tuple(s.value for s in (url, secret) if s is not None and s.value)
    return Target(target, url, secret, masked)


def _read(
    where: str, file_key: str, file: str | None, env_key: str, env: str | None
) -> Secret | None:
    """The secret in `file` (first line) or in variable `env`; None when neither is set."""
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise os_error(
                exc,
                UsageError,
                f"Cannot read {file_key} {file} of {where}",
                f"Point {file_key} at a readable file holding the secret on its first line.",
                where,
            ) from exc
        if not text:
            raise UsageError.one(
                f"{file_key} {file} of {where} is empty",
                "An empty secret cannot sign or authenticate anything.",
                "Write the secret into the file on its first line.",
                location=where,
            )
        return Secret(text.splitlines()[0].strip())
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise UsageError.one(
                f"The environment variable {env} ({env_key} of {where}) is not set",
                "The target's secret is read from it at start-up and at every reload.",
                f"Set {env} in the daemon's environment (e.g. systemd's EnvironmentFile=).",
                location=where,
            )
        return Secret(value)
    return None


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret masked: error messages quote URLs and bodies."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


__all__ = [
    "COMMIT_STATUS_EVENTS",
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "TARGET_TYPES",
    "Secret",
    "Target",
    "TargetSettings",
    "check_unique_names",
    "check_url",
    "prepare",
    "redact",
]
