"""Asset-rule matching: expressions over stream fields, `{token}` templates. Pure.

An expression's specifications compile into one anchored regular expression,
one capturing group per specification, so a match is a single `fullmatch` and
an explanation can say which specification took which text. The semantics
(README, "AssetRule"):

- Literal and Delimiter match their `value` exactly (case-sensitive).
- Wildcard and Group match one or more characters of their `characterType`
  (Any, Letter, Digit, Alphanumeric), exactly `characterLength` of them when
  given, and never text that contains a Delimiter value of the same
  expression. They are greedy: each takes as much as it can while the rest of
  the expression still matches (leftmost first).
- A Group (and a named Wildcard) captures its text as a token. A Group's
  `valueMappings` replace the captured text; with `strictValueMappings` a
  value the mappings do not name makes the stream not match.
- Every expression of a rule must match; tokens of all expressions are merged.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STREAM_FIELDS = ("Id", "Name", "Description")
BUILTIN_TOKENS = ("streamId",)
CHARACTER_CLASSES = {
    "Any": ".",
    "Letter": r"[^\W\d_]",
    "Digit": "[0-9]",
    "Alphanumeric": r"[^\W_]",
}
TOKEN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def field_value(stream: Mapping[str, Any], field: str) -> str | None:
    """The text an expression on `field` sees: Id, Name, Description, else a metadata key.

    None when the stream has no such metadata key (the expression cannot match).
    A missing name or description reads as the empty string.
    """
    if field == "Id":
        return str(stream["id"])
    if field == "Name":
        return str(stream.get("name") or "")
    if field == "Description":
        return str(stream.get("description") or "")
    value = stream.get("metadata", {}).get(field)
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    field: str
    specifications: tuple[Mapping[str, Any], ...]
    parts: tuple[str, ...]  # one regex per specification, each one capturing group
    pattern: re.Pattern[str]
    tokens: tuple[tuple[int, str], ...]  # (group number, token name)
    mappings: tuple[tuple[int, str, Mapping[str, str], bool], ...]  # (group, name, map, strict)


def compile_expression(expression: Mapping[str, Any]) -> CompiledExpression:
    specs = tuple(expression["specifications"])
    delimiters = sorted(
        {s["value"] for s in specs if s["type"] == "Delimiter"}, key=len, reverse=True
    )
    guard = "(?!" + "|".join(re.escape(d) for d in delimiters) + ")" if delimiters else ""
    parts: list[str] = []
    tokens: list[tuple[int, str]] = []
    mappings: list[tuple[int, str, Mapping[str, str], bool]] = []
    for group, spec in enumerate(specs, 1):
        kind = spec["type"]
        if kind in ("Literal", "Delimiter"):
            parts.append(f"({re.escape(spec['value'])})")
            continue
        unit = CHARACTER_CLASSES[spec.get("characterType", "Any")]
        unit = f"(?:{guard}{unit})" if guard else unit
        length = spec.get("characterLength")
        parts.append(f"({unit}{{{length}}})" if length else f"({unit}+)")
        if spec.get("name"):
            tokens.append((group, spec["name"]))
            if spec.get("valueMappings"):
                mappings.append(
                    (
                        group,
                        spec["name"],
                        spec["valueMappings"],
                        bool(spec.get("strictValueMappings")),
                    )
                )
    return CompiledExpression(
        expression["field"],
        specs,
        tuple(parts),
        re.compile("".join(parts), re.DOTALL),
        tuple(tokens),
        tuple(mappings),
    )


def compile_rule(spec: Mapping[str, Any]) -> tuple[CompiledExpression, ...]:
    return tuple(compile_expression(e) for e in spec["expressions"])


def match(
    expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]
) -> dict[str, str] | None:
    """The tokens a stream gives a rule, or None when it does not match."""
    tokens: dict[str, str] = {"streamId": str(stream["id"])}
    for expression in expressions:
        value = field_value(stream, expression.field)
        if value is None:
            return None
        found = expression.pattern.fullmatch(value)
        if found is None:
            return None
        for group, name in expression.tokens:
            tokens[name] = found.group(group)
        for group, name, mapping, strict in expression.mappings:
            raw = found.group(group)
            mapped = mapping.get(raw)
            if mapped is None:
                if strict:
                    return None
            else:
                tokens[name] = mapped
    return tokens


# -- explaining ------------------------------------------------------------------


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
    found = expression.pattern.fullmatch(value)
    if found is not None:
        steps = []
        rejected = None
        for i, spec in enumerate(specs, 1):
            text = found.group(i)
            note = _token_note(spec, text)
            strict = spec.get("valueMappings") and spec.get("strictValueMappings")
            if strict and text not in spec["valueMappings"]:
                note = f"{text!r} is not in the strict valueMappings: the stream is rejected"
                rejected = spec
            steps.append(Step(i, spec, text, note))
        if rejected is not None:
            return ExpressionVerdict(
                expression.field,
                value,
                False,
                tuple(steps),
                f"Group {rejected['name']!r} captured {found.group(specs.index(rejected) + 1)!r}, "
                "which its strict valueMappings do not map",
            )
        return ExpressionVerdict(expression.field, value, True, tuple(steps), "matches")
    # Find the first specification that cannot follow the ones before it.
    steps = []
    for k in range(1, len(specs) + 1):
        prefix = re.compile("".join(expression.parts[:k]), re.DOTALL).match(value)
        if prefix is None:
            taken = (
                re.compile("".join(expression.parts[: k - 1]), re.DOTALL).match(value)
                if k > 1
                else None
            )
            at = taken.end() if taken is not None else 0
            for i in range(1, k):
                assert taken is not None
                steps.append(
                    Step(i, specs[i - 1], taken.group(i), _token_note(specs[i - 1], taken.group(i)))
                )
            rest = value[at:]
            steps.append(
                Step(
                    k,
                    specs[k - 1],
                    None,
                    f"does not match the rest of the value, {rest!r}"
                    if rest
                    else "nothing is left to match",
                )
            )
            return ExpressionVerdict(
                expression.field,
                value,
                False,
                tuple(steps),
                f"specification {k} ({describe_specification(specs[k - 1])}) does not match "
                f"at position {at + 1} of {value!r}",
            )
    whole = re.compile("".join(expression.parts), re.DOTALL).match(value)
    assert whole is not None
    for i, spec in enumerate(specs, 1):
        steps.append(Step(i, spec, whole.group(i), "matches"))
    return ExpressionVerdict(
        expression.field,
        value,
        False,
        tuple(steps),
        f"every specification matches, but {value[whole.end() :]!r} is left over at the end "
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


# -- templates -------------------------------------------------------------------

_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str] | str:
    """The token names a template uses, or a message saying why it is not a template.

    `{token}` takes a token's value; `{{` and `}}` are literal braces.
    """
    names = []
    try:
        for _, name, spec, conversion in _FORMATTER.parse(template):
            if name is None:
                continue
            if spec or conversion or not TOKEN_NAME.match(name):
                shown = "{" + name + (f"!{conversion}" if conversion else "")
                shown += (f":{spec}" if spec else "") + "}"
                return (
                    f"{shown} is not a placeholder: write {{token}} with a token name "
                    "(letters, digits, '_' and '-'), and {{ or }} for a literal brace"
                )
            names.append(name)
    except ValueError as exc:
        return f"{exc}; write {{{{ or }}}} for a literal brace"
    return names


def render(template: str, tokens: Mapping[str, str]) -> str:
    return template.format_map(tokens) if "{" in template or "}" in template else template
