"""What a daemon's configuration means for its runs: their settings, its secrets, and
how its source is shown in status files, logs and notifications.

Read at the start and again on every reload, so a setting that cannot work (signature
options without a key file, say) refuses the start or the reload, never a run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fleetward.daemon.config import DaemonConfig, Secrets
from fleetward.pipeline import SourceOptions, documents_cache, git_cache, signatures_of
from fleetward.planning import PlanOptions
from fleetward.runs import RunSettings
from fleetward.source import is_remote, redact_url

__all__ = ["display_source", "kept_until_restart", "run_settings", "secrets_of", "source_info"]

logger = logging.getLogger("fleetward.daemon")

# Settings a reload cannot change: the state, the store, the listening socket, the mode.
RESTART_ONLY = ("state_dir", "store", "listen", "once")


def run_settings(config: DaemonConfig) -> RunSettings:
    """The runs' settings; `UsageError` for signature options that cannot work."""
    sources = SourceOptions(
        config.source,
        config.ref,
        config.path,
        config.no_git,
        cache_root=git_cache(config.state_dir),
        git_timeout=config.git_timeout,
        verify_signatures=config.verify_signatures,
        allowed_signers=config.allowed_signers,
        gpg_keyring=config.gpg_keyring,
        cache_dir=config.cache_dir or documents_cache(config.state_dir),
        no_cache=config.no_cache,
    )
    signatures_of(sources)
    return RunSettings(
        sources=sources,
        state_dir=Path(config.state_dir),
        guards=PlanOptions(
            allow_empty=config.allow_empty,
            allow_mass_stop=config.allow_mass_stop,
            min_stop_count=config.min_stop_count,
        ),
        lock_timeout=config.lock_timeout,
        operation_timeout=config.operation_timeout,
        isolate_failures=config.isolate_failures,
        follow_pin=True,
    )


def secrets_of(config: DaemonConfig) -> Secrets:
    """The webhook secret and the API and UI tokens, read from wherever the config says."""
    return Secrets(
        config.secret("webhook_secret"), config.secret("api_token"), config.secret("ui_token")
    )


def source_info(config: DaemonConfig) -> dict[str, Any]:
    """The source as status files show it (credentials masked)."""
    return {
        "url": display_source(config.source),
        "ref": config.ref,
        "path": config.path,
        "mode": "remote" if is_remote(config.source) else "plain" if config.no_git else "git",
        "verifySignatures": config.verify_signatures,
    }


def display_source(source: str) -> str:
    """The source as logs and status files show it: credentials masked, paths absolute."""
    return redact_url(source) if is_remote(source) else str(Path(source).resolve())


def kept_until_restart(new: DaemonConfig, old: DaemonConfig) -> DaemonConfig:
    """`new` as a reload takes it: the settings only a restart changes kept as in `old`
    (each one that differs is logged)."""
    for key in RESTART_ONLY:
        if getattr(new, key) != getattr(old, key):
            logger.warning(
                "%s changed in the configuration; it takes effect at the next restart",
                key.replace("_", "-"),
            )
            new = new.model_copy(update={key: getattr(old, key)})
    return new
