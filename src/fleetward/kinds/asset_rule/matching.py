"""Asset-rule matching: expressions over stream fields, `{token}` templates. Pure.

An expression is matched by dynamic programming over (specification, position)
(`solve`), so its cost is bounded: O(k·n) steps for k specifications and a
value of n characters, whatever the value (a backtracking regular expression
with several `(.+)` tries every split of a value that does not match). The
same expression as an anchored regular expression is faster on short values,
so `match` uses it where its worst case is small — an ASCII value (where the
character classes are plain ranges) whose number of splits, C(n, u) for u
unbounded Wildcards and Groups, is at most REGEX_MAX_SPLITS — and `solve`
everywhere else; both give the same answer. The semantics (README, "AssetRule"):

- Literal and Delimiter match their `value` exactly (case-sensitive).
- Wildcard and Group match one or more characters of their `characterType`
  (Any; Letter: Unicode letters, category L*; Digit: 0-9; Alphanumeric: a
  Letter or 0-9), exactly `characterLength` of them when given, and never
  text that contains a Delimiter value of the same expression (no character
  they take may start a Delimiter value). They are greedy: each takes as much
  as it can while the rest of the expression still matches (leftmost first).
- A Group (and a named Wildcard) captures its text as a token. A Group's
  `valueMappings` replace the captured text. With `strictValueMappings` the
  Group takes only a text the mappings name: that is part of "the rest still
  matches", so a greedy Group before it gives way (`Group tank` `Group
  measurement {Press, Temp}` on `01Press` gives `01` and `Press`, not `01Pres`
  and a rejected `s`). Its candidates are a finite set of strings, so at each
  position it tries one per distinct length: the cost stays O(k·n) times the
  mappings' size.
- Every expression of a rule must match; tokens of all expressions are merged.
- A field value longer than MAX_FIELD_LENGTH characters matches nothing (the
  rule's ErrorInfo counts the stream; see `too_long`).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STREAM_FIELDS = ("Id", "Name", "Description")
BUILTIN_TOKENS = ("streamId",)
MAX_FIELD_LENGTH = 1024  # characters of one field an expression may match
REGEX_MAX_SPLITS = 2000  # the regular expression's worst case, in splits tried
ASCII_CLASSES = {"Any": ".", "Letter": "[A-Za-z]", "Digit": "[0-9]", "Alphanumeric": "[A-Za-z0-9]"}


def _is_letter(c: str) -> bool:
    return unicodedata.category(c).startswith("L")


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


CHARACTER_CLASSES: dict[str, Callable[[str], bool]] = {
    "Any": lambda c: True,
    "Letter": _is_letter,
    "Digit": _is_digit,
    "Alphanumeric": lambda c: _is_digit(c) or _is_letter(c),
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
    delimiters: tuple[str, ...]
    tokens: tuple[tuple[int, str], ...]  # (specification number, 1-based; token name)
    mappings: tuple[tuple[int, str, Mapping[str, str], bool], ...]  # (number, name, map, strict)
    # per specification: the texts a strict Group may take (longest first), else None
    candidates: tuple[tuple[str, ...] | None, ...]
    pattern: re.Pattern[str]  # for ASCII values: one capturing group per specification
    unbounded: int  # Wildcards and Groups without a characterLength or strict mappings
    choices: int  # product of the strict Groups' numbers of candidates (the regex's branching)


def strict_candidates(spec: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The texts a Group with strict valueMappings may take, longest first (None: the
    specification is not such a Group; strictness without mappings changes nothing).
    Only mapped values that the Group could take at all: one or more characters of its
    characterType, of its characterLength."""
    if not (
        spec["type"] == "Group" and spec.get("strictValueMappings") and spec.get("valueMappings")
    ):
        return None
    accepts = CHARACTER_CLASSES[spec.get("characterType", "Any")]
    length = spec.get("characterLength")
    return tuple(
        sorted(
            (
                text
                for text in spec["valueMappings"]
                if text and (not length or len(text) == length) and all(map(accepts, text))
            ),
            key=lambda text: (-len(text), text),
        )
    )


def _ascii_pattern(
    specs: Sequence[Mapping[str, Any]],
    delimiters: Sequence[str],
    candidates: Sequence[tuple[str, ...] | None],
) -> re.Pattern[str]:
    longest_first = sorted(delimiters, key=len, reverse=True)
    guard = "(?!" + "|".join(re.escape(d) for d in longest_first) + ")" if delimiters else ""
    parts = []
    for spec, texts in zip(specs, candidates, strict=True):
        if spec["type"] in ("Literal", "Delimiter"):
            parts.append(f"({re.escape(spec['value'])})")
            continue
        if texts is not None:
            # Longest first, as the greedy matcher tries them; each character guarded
            # like any other a Group takes. No candidate: a group that never matches.
            options = ["".join(f"{guard}{re.escape(c)}" for c in text) for text in texts]
            parts.append("(" + "|".join(options) + ")" if options else "((?!))")
            continue
        unit = ASCII_CLASSES[spec.get("characterType", "Any")]
        unit = f"(?:{guard}{unit})" if guard else unit
        length = spec.get("characterLength")
        parts.append(f"({unit}{{{length}}})" if length else f"({unit}+)")
    return re.compile("".join(parts), re.DOTALL)


def compile_expression(expression: Mapping[str, Any]) -> CompiledExpression:
    specs = tuple(expression["specifications"])
    delimiters = tuple(sorted({s["value"] for s in specs if s["type"] == "Delimiter"}))
    tokens: list[tuple[int, str]] = []
    mappings: list[tuple[int, str, Mapping[str, str], bool]] = []
    for group, spec in enumerate(specs, 1):
        if spec["type"] in ("Literal", "Delimiter") or not spec.get("name"):
            continue
        tokens.append((group, spec["name"]))
        if spec.get("valueMappings"):
            mappings.append(
                (group, spec["name"], spec["valueMappings"], bool(spec.get("strictValueMappings")))
            )
    candidates = tuple(strict_candidates(s) for s in specs)
    unbounded = sum(
        1
        for s, texts in zip(specs, candidates, strict=True)
        if s["type"] not in ("Literal", "Delimiter")
        and not s.get("characterLength")
        and texts is None
    )
    return CompiledExpression(
        expression["field"],
        specs,
        delimiters,
        tuple(tokens),
        tuple(mappings),
        candidates,
        _ascii_pattern(specs, delimiters, candidates),
        unbounded,
        math.prod(max(1, len(texts)) for texts in candidates if texts is not None),
    )


def compile_rule(spec: Mapping[str, Any]) -> tuple[CompiledExpression, ...]:
    return tuple(compile_expression(e) for e in spec["expressions"])


@dataclass(frozen=True, slots=True)
class Solution:
    """The text each specification took (None: the specifications do not match)."""

    texts: tuple[str, ...] | None
    steps: int  # (specification, position) cells computed: at most (k + 1)·(n + 1)


def solve(
    expression: CompiledExpression, value: str, count: int | None = None, whole: bool = True
) -> Solution:
    """Match the first `count` specifications (all by default) against `value`, the whole
    value when `whole`, else a prefix of it: greedy, leftmost first, as a backtracking
    matcher would, in O(k·n).

    `can[i][p]`: specifications i.. match from position p. Built from the last
    specification back; a Wildcard or Group at p may end anywhere in (p, p + run],
    where run counts the characters from p it may take, and greedily ends at the
    furthest such end from which the rest can match (`last[x]`: the furthest
    matching position at or before x).
    """
    specs = expression.specifications[: len(expression.specifications) if count is None else count]
    candidates = expression.candidates[: len(specs)]
    n = len(value)
    k = len(specs)
    guarded = [True] * n  # no Delimiter value starts here
    for delimiter in expression.delimiters:
        at = value.find(delimiter)
        while at != -1:
            guarded[at] = False
            at = value.find(delimiter, at + 1)
    runs: dict[str, list[int]] = {}
    steps = 0
    after = [not whole] * (n + 1)  # can[k]
    after[n] = True
    ends: list[list[int]] = []  # per specification: position → end (-1: no match)
    for spec, allowed in zip(reversed(specs), reversed(candidates), strict=True):
        end = [-1] * (n + 1)
        kind = spec["type"]
        if kind in ("Literal", "Delimiter"):
            text = spec["value"]
            size = len(text)
            for p in range(n + 1):
                if p + size <= n and after[p + size] and value.startswith(text, p):
                    end[p] = p + size
            steps += n + 1
        else:
            character_type = spec.get("characterType", "Any")
            run = runs.get(character_type)
            if run is None:
                accepts = CHARACTER_CLASSES[character_type]
                run = [0] * (n + 1)
                for q in range(n - 1, -1, -1):
                    run[q] = run[q + 1] + 1 if guarded[q] and accepts(value[q]) else 0
                runs[character_type] = run
                steps += n
            length = spec.get("characterLength")
            if allowed is not None:
                _strict_ends(value, allowed, run, after, end)
            elif length:
                for p in range(n + 1):
                    if run[p] >= length and after[p + length]:
                        end[p] = p + length
            else:
                last = [-1] * (n + 1)
                best = -1
                for x in range(n + 1):
                    if after[x]:
                        best = x
                    last[x] = best
                for p in range(n + 1):
                    if run[p] and last[p + run[p]] > p:
                        end[p] = last[p + run[p]]
            steps += n + 1
        ends.append(end)
        after = [e != -1 for e in end]
    ends.reverse()
    if k and not after[0]:
        return Solution(None, steps)
    texts = []
    p = 0
    for end in ends:
        texts.append(value[p : end[p]])
        p = end[p]
    return Solution(tuple(texts), steps)


def _strict_ends(
    value: str, texts: tuple[str, ...], run: list[int], after: list[bool], end: list[int]
) -> None:
    """Fill `end` for a strict Group: at each position the longest candidate text that
    starts there, lies within the run of characters the Group may take, and is followed
    by a match of the rest. One lookup per distinct candidate length and position."""
    wanted = frozenset(texts)
    lengths = sorted({len(t) for t in texts}, reverse=True)
    for p in range(len(value) + 1):
        for size in lengths:
            if size <= run[p] and after[p + size] and value[p : p + size] in wanted:
                end[p] = p + size
                break


def texts_of(expression: CompiledExpression, value: str) -> Sequence[str] | None:
    """`solve(expression, value).texts`, by the regular expression where that is cheap."""
    for spec, texts in zip(expression.specifications, expression.candidates, strict=True):
        if spec["type"] in ("Literal", "Delimiter") and spec["value"] not in value:
            return None  # most streams a rule does not match: no search at all
        if texts is not None and not any(text in value for text in texts):
            return None
    splits = math.comb(len(value), expression.unbounded) * expression.choices
    if value.isascii() and splits <= REGEX_MAX_SPLITS:
        found = expression.pattern.fullmatch(value)
        return None if found is None else found.groups()
    return solve(expression, value).texts


def too_long(expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]) -> str | None:
    """Why a stream cannot match (a field over MAX_FIELD_LENGTH), else None."""
    for expression in expressions:
        value = field_value(stream, expression.field)
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            return (
                f"stream {stream['id']}: {expression.field} has {len(value)} characters, more "
                f"than the {MAX_FIELD_LENGTH} an expression matches; the stream is not matched"
            )
    return None


def match(
    expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]
) -> dict[str, str] | None:
    """The tokens a stream gives a rule, or None when it does not match."""
    tokens: dict[str, str] = {"streamId": str(stream["id"])}
    for expression in expressions:
        value = field_value(stream, expression.field)
        if value is None or len(value) > MAX_FIELD_LENGTH:
            return None
        found = texts_of(expression, value)
        if found is None:
            return None
        for group, name in expression.tokens:
            tokens[name] = found[group - 1]
        # A strict Group only ever takes a mapped text; others keep an unmapped one.
        for group, name, mapping, _ in expression.mappings:
            mapped = mapping.get(found[group - 1])
            if mapped is not None:
                tokens[name] = mapped
    return tokens


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
