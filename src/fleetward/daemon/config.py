"""The daemon's settings, declared once: flags > FLEETWARD_* environment > config file > defaults.

Each field of `DaemonConfig` is one setting: its name gives the flag
(`--state-dir`), the variable (`FLEETWARD_STATE_DIR`) and the config-file key
(`state-dir`); its type says how every one of them is read; its default is
written as a user would write it (`"60s"`). `SETTINGS` is that declaration as
the CLI and the config reader use it: a new setting is one new field.

The config file is YAML whose keys are the flags' names without dashes
(`state-dir: /var/lib/fleetward`). It is validated like a manifest: unknown
keys get a "did you mean", wrong values a reason, each at `file:line:column`.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic.fields import FieldInfo

from fleetward.durations import check_range, parse_duration
from fleetward.errors import Problem, UsageError, os_error
from fleetward.kinds.problems import PathProblem, unknown_field, validation_problems
from fleetward.loading import load_other
from fleetward.notify import TargetSettings, check_unique_names
from fleetward.notify.settings import check_url
from fleetward.planning import DEFAULT_MIN_STOP_COUNT

MIN_SECONDS = 1.0  # interval, git-timeout and ready-max-age: anything shorter cannot work


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9477, or port 0 for any)")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Metavar:
    """How `--help` names a setting's value (`DURATION`, `HOST:PORT`); pydantic ignores it."""

    text: str


def _seconds(minimum: float) -> BeforeValidator:
    """A duration in the one grammar, at least `minimum` seconds."""

    def read(value: Any) -> float:
        return check_range(value, parse_duration(value), minimum)

    return BeforeValidator(read)


def _listen(value: str) -> str:
    parse_listen(value)
    return value


Seconds = Annotated[float, _seconds(0.0), Metavar("DURATION")]
AtLeastASecond = Annotated[float, _seconds(MIN_SECONDS), Metavar("DURATION")]
Listen = Annotated[str, AfterValidator(_listen), Metavar("HOST:PORT")]
Count = Annotated[int, Field(ge=0), Metavar("N")]


def _external_url(value: str) -> str:
    check_url(value)
    return value.rstrip("/")


ExternalUrl = Annotated[str, AfterValidator(_external_url), Metavar("URL")]


def _setting(default: Any, help: str, metavar: str | None = None) -> Any:
    """A field of DaemonConfig: its default as a user writes it, and its --help text."""
    extra: dict[str, Any] = {"metavar": metavar} if metavar else {}
    return Field(default, description=help, json_schema_extra=extra or None)


class DaemonConfig(BaseModel):
    """Every setting of `fleetward daemon`, in --help order (see the module docstring)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,  # "60s" → 60.0, by the same rules as every other value
        alias_generator=lambda name: name.replace("_", "-"),  # the config file's keys
        populate_by_name=True,
    )

    source: str = _setting(
        ".",
        "Git repository: a local path, or a URL (https://, ssh://, git@host:path, file://) "
        "cloned into <state-dir>/cache.",
        metavar="PATH|URL",
    )
    ref: str = _setting("HEAD", "Branch, tag or commit SHA to track.")
    path: str = _setting("manifests", "Directory of manifests inside the repository.")
    no_git: bool = _setting(False, "Read --source as a plain directory (development only).")
    state_dir: str = _setting(
        ".fleetward",
        "Directory of the state store (unless --store names one) and of status files.",
    )
    store: str | None = _setting(
        None,
        "The state store: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or a directory "
        "[default: TinyDB in --state-dir].",
        metavar="URL|DIR",
    )
    cache_dir: str | None = _setting(
        None,
        "Directory of the parsed-manifest cache, shared with CLI runs "
        "[default: <state-dir>/cache/documents].",
        metavar="DIR",
    )
    no_cache: bool = _setting(
        False, "Keep parsed manifests in memory only: no cache directory is read or written."
    )
    interval: AtLeastASecond = _setting("60s", "Poll interval (with 10% jitter).")
    listen: Listen = _setting(
        "127.0.0.1:9477",
        "HTTP address for /metrics, /readyz and the API; port 0 picks a free port.",
    )
    webhook_secret: str | None = _setting(
        None,
        "Secret of POST /v0/webhook (HMAC X-Hub-Signature-256 or X-Gitlab-Token); "
        "without one the webhook is disabled.",
        metavar="SECRET",
    )
    webhook_secret_file: str | None = _setting(
        None, "Read the webhook secret from FILE.", metavar="FILE"
    )
    api_token: str | None = _setting(
        None,
        "Bearer token for HTTP endpoints that change state; without one they are disabled.",
        metavar="TOKEN",
    )
    api_token_file: str | None = _setting(None, "Read the API token from FILE.", metavar="FILE")
    ui_token: str | None = _setting(
        None,
        "Token the web view (/, /ui/...) asks for, as ?token= once (then a cookie); "
        "without one the pages are open like the other reads.",
        metavar="TOKEN",
    )
    ui_token_file: str | None = _setting(
        None, "Read the web view's token from FILE.", metavar="FILE"
    )
    log_format: Literal["text", "json"] = _setting("text", "Log line format.")
    ready_max_age: AtLeastASecond | None = _setting(
        None,
        "/readyz fails when the last good fetch or reconcile is older "
        "[default: 3 × interval, at least 5m].",
    )
    git_timeout: AtLeastASecond = _setting("60s", "Timeout of every git command.")
    verify_signatures: bool = _setting(
        False,
        "Apply only commits signed by a key of --allowed-signers or --gpg-keyring; "
        "others are refused and the last good revision stays.",
    )
    allowed_signers: str | None = _setting(
        None, "SSH keys trusted to sign commits, in Git's allowed-signers format.", "FILE"
    )
    gpg_keyring: str | None = _setting(
        None, "OpenPGP public keys trusted to sign commits (binary or armored export).", "FILE"
    )
    lock_timeout: Seconds = _setting(
        "10s", "How long to wait for another process's lock on the store."
    )
    operation_timeout: AtLeastASecond = _setting(
        "10m",
        "How long one operation may run before it ends TIMEOUT, without writing "
        "(a request's arguments.timeout overrides it).",
    )
    allow_empty: bool = _setting(False, "Apply revisions that declare no objects.")
    allow_mass_stop: bool = _setting(
        False, "Apply plans that stop or delete more than 20% of a kind's objects."
    )
    min_stop_count: Count = _setting(
        DEFAULT_MIN_STOP_COUNT,
        "The mass-stop guard holds only plans that stop or delete at least N objects "
        "(0: every plan past the fraction). A SyncPolicy's minStopCount wins.",
    )
    isolate_failures: bool = _setting(
        False,
        "Apply a revision's valid documents and hold back each invalid one (and what "
        "depends on it) at its last applied version, instead of applying nothing.",
    )
    once: bool = _setting(False, "Reconcile once and exit: 0 on success, 1 on failure.")
    external_url: ExternalUrl | None = _setting(
        None,
        "The URL people reach this daemon's API at, for links in notifications "
        "(approve a held plan) [default: the --listen address].",
        metavar="URL",
    )
    notify_wait: Seconds = _setting(
        "5s",
        "How long a --once run waits, before it exits, for its notifications to be "
        "delivered; what is left is sent by the next start (0: do not wait).",
    )
    # Config file only (a list of targets is no flag): see the README's Notifications.
    notifications: Annotated[tuple[TargetSettings, ...], AfterValidator(check_unique_names)] = (
        Field(default=(), description="Notification targets (config file only).")
    )

    @property
    def readiness_bound(self) -> float:
        if self.ready_max_age is not None:
            return self.ready_max_age
        return max(300.0, 3 * self.interval)

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def secret(self, which: Literal["webhook_secret", "api_token", "ui_token"]) -> str | None:
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
            raise os_error(
                exc,
                UsageError,
                f"Cannot read {flag} {file}",
                f"Point {flag} at a readable file holding the secret on its first line.",
                file,
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
    ui_token: str | None = None  # the web view's (None: its pages are open)


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of DaemonConfig as a flag, a variable and a config-file key."""

    name: str  # state_dir
    field: FieldInfo

    @property
    def flag(self) -> str:
        return "--" + self.key

    @property
    def env(self) -> str:
        return "FLEETWARD_" + self.name.upper()

    @property
    def key(self) -> str:
        return self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def help(self) -> str:
        return self.field.description or ""

    @property
    def is_flag(self) -> bool:
        return self.field.annotation is bool

    @property
    def choices(self) -> tuple[str, ...]:
        """The values of a Literal setting (log-format), else ()."""
        if typing.get_origin(self.field.annotation) is Literal:
            return tuple(str(choice) for choice in typing.get_args(self.field.annotation))
        return ()

    @property
    def metavar(self) -> str | None:
        extra = self.field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("metavar"), str):
            return str(extra["metavar"])
        return next((m.text for m in _metadata(self.field) if isinstance(m, Metavar)), None)

    def parse(self, value: Any) -> Any:
        """`value` read as this setting reads it; ValueError with the reason otherwise."""
        try:
            return _adapter(self.name).validate_python(value)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _metadata(field: FieldInfo) -> list[Any]:
    """The Annotated metadata of the field's type (`X | None` included)."""
    found = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        if typing.get_origin(arg) is Annotated:
            found += list(arg.__metadata__)
    return found


@functools.cache
def _adapter(name: str) -> TypeAdapter[Any]:
    field = DaemonConfig.model_fields[name]
    annotation: Any = field.annotation
    if field.metadata:  # pydantic moved the Annotated parts of the type here
        annotation = Annotated[annotation, *field.metadata]
    return TypeAdapter(annotation)


FILE_ONLY = frozenset({"notifications"})  # config-file keys that are no flag or variable
SETTINGS = tuple(
    Setting(name, field)
    for name, field in DaemonConfig.model_fields.items()
    if name not in FILE_ONLY
)
KEYS = {name.replace("_", "-"): name for name in DaemonConfig.model_fields}


def read_config_file(path: str) -> dict[str, Any]:
    """The config file's values by DaemonConfig field name; UsageError, located, if invalid."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise os_error(
            exc,
            UsageError,
            f"Cannot read the config file {path}",
            "Pass --config with the path of a readable YAML file, or drop --config.",
            path,
        ) from exc
    given: dict[str, Any] | None = None

    def check(raw: Any) -> list[PathProblem]:
        nonlocal given
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
        # An empty value (`interval:`) leaves the setting to its default.
        known = {key: value for key, value in raw.items() if str(key) in KEYS and value is not None}
        try:
            checked = DaemonConfig.model_validate(known)
        except ValidationError as exc:
            return problems + validation_problems(exc, (), DaemonConfig, "the config")
        if not problems:
            given = {name: getattr(checked, name) for name in checked.model_fields_set}
        return problems

    load_other(content, path, check)
    assert given is not None
    return given


def merge(
    explicit: Mapping[str, Any],
    from_file: Mapping[str, Any],
    defaults: DaemonConfig | None = None,
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
    return (defaults or DaemonConfig()).model_copy(update={**file_values, **explicit})


_SECRET_PAIRS = (
    ("webhook_secret", "webhook_secret_file"),
    ("api_token", "api_token_file"),
    ("ui_token", "ui_token_file"),
)
