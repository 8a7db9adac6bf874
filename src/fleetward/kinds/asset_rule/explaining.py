"""Why a stream does or does not match a rule: the split into tokens, step by step.

What `rules preview` and `rules explain` show. It asks the same questions as
`matching.match` (the same split, by `texts_of` and `solve`), and keeps the text
each token came from and where an expression stopped matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetward.kinds.asset_rule.matching import (
    MAX_FIELD_LENGTH,
    CompiledExpression,
    field_value,
    solve,
    texts_of,
)


@dataclass(frozen=True, slots=True)
class Capture:
    """What one named Group or Wildcard took from a stream's field, and the token it gave."""

    field: str
    token: str
    text: str  # the characters it took
    value: str  # the token's value: `text` after valueMappings


def captures(
    expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]
) -> tuple[Capture, ...] | None:
    """How a stream's fields were split into tokens (None: the stream does not match).
    The same split as `match`, with the text each token came from."""
    out: list[Capture] = []
    for expression in expressions:
        value = field_value(stream, expression.field)
        if value is None or len(value) > MAX_FIELD_LENGTH:
            return None
        found = texts_of(expression, value)
        if found is None:
            return None
        for group, name in expression.tokens:
            text = found[group - 1]
            mapping = expression.specifications[group - 1].get("valueMappings") or {}
            out.append(Capture(expression.field, name, text, mapping.get(text, text)))
    return tuple(out)


def describe_split(split: Sequence[Capture]) -> str:
    """`site='SL', tank='01', measurement='Pressure' (from 'Press')`."""
    return ", ".join(
        f"{c.token}={c.value!r}" + (f" (from {c.text!r})" if c.text != c.value else "")
        for c in split
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One specification's part in an explanation."""

    index: int
    specification: Mapping[str, Any]
    matched: str | None  # the text it took; None where matching stopped
    note: str


@dataclass(frozen=True, slots=True)
class ExpressionVerdict:
    field: str
    value: str | None
    matched: bool
    steps: tuple[Step, ...]
    summary: str


def describe_specification(spec: Mapping[str, Any]) -> str:
    kind = spec["type"]
    if kind in ("Literal", "Delimiter"):
        return f"{kind} {spec['value']!r}"
    bits = [kind]
    if spec.get("name"):
        bits.append(repr(spec["name"]))
    if spec.get("characterType", "Any") != "Any":
        bits.append(spec["characterType"])
    if spec.get("characterLength"):
        bits.append(f"length {spec['characterLength']}")
    if spec.get("valueMappings"):
        strict = "strict " if spec.get("strictValueMappings") else ""
        bits.append(f"{strict}mappings {dict(spec['valueMappings'])}")
    return " ".join(bits)


def explain(
    expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]
) -> tuple[ExpressionVerdict, ...]:
    """Why a stream does or does not match, expression by expression, specification by
    specification. Stops after the first expression that fails (the rule needs all)."""
    out: list[ExpressionVerdict] = []
    for expression in expressions:
        verdict = _explain_one(expression, stream)
        out.append(verdict)
        if not verdict.matched:
            break
    return tuple(out)


def _explain_one(expression: CompiledExpression, stream: Mapping[str, Any]) -> ExpressionVerdict:
    value = field_value(stream, expression.field)
    specs = expression.specifications
    if value is None:
        return ExpressionVerdict(
            expression.field,
            None,
            False,
            (),
            f"the stream has no field or metadata key {expression.field!r}",
        )
    if len(value) > MAX_FIELD_LENGTH:
        return ExpressionVerdict(
            expression.field,
            value,
            False,
            (),
            f"the value has {len(value)} characters; an expression matches at most "
            f"{MAX_FIELD_LENGTH}",
        )
    found = texts_of(expression, value)
    if found is not None:
        split = tuple(
            Step(i, spec, text, _token_note(spec, text))
            for i, (spec, text) in enumerate(zip(specs, found, strict=True), 1)
        )
        return ExpressionVerdict(expression.field, value, True, split, "matches")
    # Find the first specification that cannot follow the ones before it.
    steps = []
    taken: tuple[str, ...] = ()
    for k in range(1, len(specs) + 1):
        prefix = solve(expression, value, k, whole=False).texts
        if prefix is None:
            for i, text in enumerate(taken, 1):
                steps.append(Step(i, specs[i - 1], text, _token_note(specs[i - 1], text)))
            at = sum(len(t) for t in taken)
            rest = value[at:]
            allowed = expression.candidates[k - 1]
            if allowed is not None:
                # Where it would start depends on how the Groups before it give way:
                # name what it may take instead of one position.
                after = "starts the value" if k == 1 else "can follow the ones before it"
                note = (
                    f"no text its strict valueMappings name "
                    f"({', '.join(repr(t) for t in allowed)}) {after}"
                    if allowed
                    else "its strict valueMappings name no text of its characterType and "
                    "characterLength"
                )
                where = f"in {value!r}: {note}"
            else:
                note = (
                    f"does not match the rest of the value, {rest!r}"
                    if rest
                    else "nothing is left to match"
                )
                where = f"at position {at + 1} of {value!r}"
            steps.append(Step(k, specs[k - 1], None, note))
            return ExpressionVerdict(
                expression.field,
                value,
                False,
                tuple(steps),
                f"specification {k} ({describe_specification(specs[k - 1])}) does not match "
                + where,
            )
        taken = prefix
    for i, spec in enumerate(specs, 1):
        steps.append(Step(i, spec, taken[i - 1], "matches"))
    used = sum(len(t) for t in taken)
    return ExpressionVerdict(
        expression.field,
        value,
        False,
        tuple(steps),
        f"every specification matches, but {value[used:]!r} is left over at the end "
        "(an expression must match the whole value)",
    )


def _token_note(spec: Mapping[str, Any], text: str) -> str:
    name = spec.get("name")
    if not name:
        return "matches"
    mapping = spec.get("valueMappings") or {}
    if text in mapping:
        return f"token {name} = {mapping[text]!r} (mapped from {text!r})"
    return f"token {name} = {text!r}"
