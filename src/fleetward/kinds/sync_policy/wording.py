"""A SyncPolicy's own validation errors, in its own words.

pydantic's generic "Invalid value" says nothing a fleet operator can act on, so the
policy's validators raise `spec_error`: a custom error whose context carries a whole
Problem (error, reason, resolution). `located_problems` puts those in place of the
generic wording, and locates every problem at its path in the YAML.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from fleetward.errors import Problem
from fleetward.kinds.base import Strict
from fleetward.kinds.problems import PathProblem, YamlPath, render_path, validation_problems

# The error type of the policy's own validation errors (see `located_problems`).
ERROR_TYPE = "fleetward_policy"


def spec_error(error: str, reason: str, resolution: str) -> PydanticCustomError:
    """A validation error carrying its own Problem; raise it from a validator."""
    return PydanticCustomError(
        ERROR_TYPE, "{reason}", {"error": error, "reason": reason, "resolution": resolution}
    )


def located_problems(
    exc: ValidationError, prefix: YamlPath, model: type[Strict], what: str
) -> list[PathProblem]:
    """Validation errors as problems, the policy's own ones in their own words."""
    generic = validation_problems(exc, prefix, model, what)
    out: list[PathProblem] = []
    for err, (path, is_key, problem) in zip(exc.errors(include_url=False), generic, strict=True):
        if err["type"] == ERROR_TYPE:
            ctx = err.get("ctx", {})
            problem = Problem(
                str(ctx["error"]),
                str(ctx["reason"]),
                str(ctx["resolution"]),
                parameters={"field": render_path(path)},
            )
        out.append((path, is_key, problem))
    return out
