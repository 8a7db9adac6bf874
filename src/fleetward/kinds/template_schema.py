"""A TaskType's `templateSchema` at plan time: template data checked with bounded work.

`TemplateChecker` matches `pattern`, `patternProperties` and `additionalProperties`
with RE2, counts every keyword evaluation against `MAX_STEPS` per template item, and
makes running out (or too deep a recursion) an error the caller locates at the item's
data. A schema from the store gets the load-time checks (`schema_bounds`) again,
since an older fleetward may have accepted it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import re2

from fleetward.kinds.schema_bounds import (
    MAX_STEPS,
    Defect,
    render_schema_path,
    schema_defects,
    search,
)
from fleetward.model import canonical_json


class TemplateCheckFailed(Exception):
    """Checking template data against a schema could not finish (the message says why)."""


# -- checking data -----------------------------------------------------------------------------


class _Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


class _OutOfSteps(Exception):
    pass


def _counted(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def counted(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.left -= 1
            if budget.left < 0:
                raise _OutOfSteps
        return keyword(validator, value, instance, schema)

    return counted


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    """jsonschema's additionalProperties, with patternProperties matched by RE2."""
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield jsonschema.ValidationError(
                f"{joined} {verb} not match any of the regexes: {listed}"
            )
        else:
            shown = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield jsonschema.ValidationError(
                f"Additional properties are not allowed ({shown} {verb} unexpected)"
            )


_OWN_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


@functools.cache
def _bounded(base: type) -> Any:
    """`base` (a jsonschema validator class) with RE2 patterns and every keyword counted."""
    keywords = {
        name: _counted(_OWN_KEYWORDS.get(name, keyword))
        for name, keyword in base.VALIDATORS.items()  # type: ignore[attr-defined]
    }
    return jsonschema.validators.extend(base, keywords)


class TemplateChecker:
    """Checks template data against one TaskType's schema, within MAX_STEPS per value."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._defect: Defect | None = None
        try:
            defects = schema_defects(schema)
        except RecursionError:  # the schema nests deeper than any manifest can
            defects = [Defect((), "templateSchema nested too deeply", "", "")]
        if defects:
            self._defect = defects[0]
        base = jsonschema.validators.validator_for(schema)
        self._validator = _bounded(base)(schema)

    def first_error(self, data: Any) -> Any:
        """The best-matching ValidationError, or None; TemplateCheckFailed when unbounded."""
        if self._defect is not None:
            where = render_schema_path(self._defect.path)
            raise TemplateCheckFailed(f"{self._defect.error} (at {where})")
        token = _BUDGET.set(_Budget(MAX_STEPS))
        try:
            return jsonschema.exceptions.best_match(self._validator.iter_errors(data))
        except _OutOfSteps:
            raise TemplateCheckFailed(
                f"checking the data took more than {MAX_STEPS} keyword evaluations"
            ) from None
        except RecursionError:
            raise TemplateCheckFailed("checking the data recursed too deeply") from None
        except re2.error as exc:
            raise TemplateCheckFailed(f"a pattern cannot be compiled ({exc})") from None
        finally:
            _BUDGET.reset(token)


class TemplateCheckers:
    """TaskTypes' checkers by schema: an entry of the caller's `KindCaches`.

    Building a checker analyses its schema (`schema_defects`) and makes a validator, so
    a daemon builds one per schema, not one per run. Keyed by the schema's canonical
    JSON (equal schemas share a checker, a changed one gets its own); holds the checkers
    of the last run only (`start_run`), so edited schemas do not pile up.
    """

    def __init__(self) -> None:
        self._last: dict[str, TemplateChecker] = {}
        self._used: dict[str, TemplateChecker] = {}
        self.built = 0  # checkers built, for tests and benchmarks

    def start_run(self) -> None:
        """Forget the checkers of the run before last: keep those the last run used."""
        if self._used:
            self._last, self._used = self._used, {}

    def checker(self, schema: Mapping[str, Any]) -> TemplateChecker:
        key = canonical_json(schema)
        found = self._used.get(key) or self._last.get(key)
        if found is None:
            found = TemplateChecker(schema)
            self.built += 1
        self._used[key] = found
        return found
