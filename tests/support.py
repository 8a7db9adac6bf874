"""Helpers shared by the tests that run git and the CLI as subprocesses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus FLEETWARD_*/GIT_* settings, with a throw-away git identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETWARD_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "Fleet Tester",
            "GIT_AUTHOR_EMAIL": "tester@example.com",
            "GIT_COMMITTER_NAME": "Fleet Tester",
            "GIT_COMMITTER_EMAIL": "tester@example.com",
            "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(home),
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env
