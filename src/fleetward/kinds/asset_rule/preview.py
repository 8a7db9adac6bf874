"""`fleetward rules preview`: what one AssetRule makes of a revision's streams. Pure.

The same matching and merging as the plan (`outputs`), for one rule and
without the store; conflicts within the rule are reported as text, not raised.
Each matched stream comes with the split that matched it: per token, the text
taken from the field and the value it gave.
Streams the rule does not match are listed with where they fail (`first_failure`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetward.kinds.asset_rule.explaining import Capture, Step, captures, explain
from fleetward.kinds.asset_rule.matching import CompiledExpression
from fleetward.kinds.asset_rule.outputs import Clash, compile_outputs, evaluate, merge_asset
from fleetward.model import DesiredObject


@dataclass(frozen=True, slots=True)
class Preview:
    """What one rule makes of the streams of a revision, computed without the store."""

    rule: str
    state: str
    matches: tuple[tuple[str, Mapping[str, str]], ...]  # (stream id, tokens)
    splits: Mapping[str, tuple[Capture, ...]]  # stream id → how its fields split into tokens
    assets: tuple[Mapping[str, Any], ...]  # merged within this rule
    metadata: tuple[tuple[str, Mapping[str, str]], ...]  # (stream id, metadata)
    errors: tuple[str, ...]
    problems: tuple[str, ...]  # conflicts within the rule
    not_matched: int = 0  # streams the rule does not match
    misses: tuple[Miss, ...] = ()  # where the first of them fail, in stream order


@dataclass(frozen=True, slots=True)
class Miss:
    """Where the rule fails a stream: its first expression that does not match, the
    first specification of it that cannot (None when no single one is to blame: the
    field is missing or too long, or text is left over at the end), and why."""

    stream_id: str
    expression: int  # 1-based, in the rule's order
    field: str
    specification: int | None  # 1-based
    reason: str


def first_failure(
    expressions: Sequence[CompiledExpression], stream: Mapping[str, Any]
) -> Miss | None:
    """Where a stream fails the rule, or None when it matches.

    Walks the explanation `--stream` prints (expression by expression, the rule
    needs all) and keeps its first failing expression and the first specification
    that fails in it.
    """
    for number, verdict in enumerate(explain(expressions, stream), 1):
        if verdict.matched:
            continue
        blamed = next((step.index for step in verdict.steps if step.matched is None), None)
        if blamed is None:
            blamed = next((step.index for step in verdict.steps if _rejects(step)), None)
        return Miss(str(stream["id"]), number, verdict.field, blamed, verdict.summary)
    return None


def _rejects(step: Step) -> bool:
    """The specification took text its strict valueMappings do not map."""
    mappings = step.specification.get("valueMappings") or {}
    strict = bool(step.specification.get("strictValueMappings"))
    return strict and bool(mappings) and step.matched not in mappings


def preview(
    rule_spec: Mapping[str, Any],
    rule_name: str,
    streams: Iterable[DesiredObject],
    explain_misses: int | None = None,
) -> Preview:
    """The preview of one rule; streams it does not match are counted, and the first
    `explain_misses` of them (None: all) explained, since explaining a stream costs
    several matches of it."""
    compiled = compile_outputs(rule_spec)
    matches: list[tuple[str, Mapping[str, str]]] = []
    splits: dict[str, tuple[Capture, ...]] = {}
    grouped: dict[str, list[tuple[int, str, Mapping[str, Any]]]] = {}
    metadata: list[tuple[str, Mapping[str, str]]] = []
    errors: list[str] = []
    misses: list[Miss] = []
    not_matched = 0
    for stream in sorted(streams, key=lambda o: o.key):
        result = evaluate(compiled, stream.spec)
        if result is None or not result.matched:
            not_matched += 1
            if explain_misses is None or len(misses) < explain_misses:
                miss = first_failure(compiled.expressions, stream.spec)
                misses.extend([miss] if miss is not None else [])
            errors.extend(result.errors if result is not None else ())
            continue
        stream_id = stream.spec["id"]
        matches.append((stream_id, result.tokens))
        split = captures(compiled.expressions, stream.spec)
        if split is not None:  # None: not matched (a field too long), `errors` says why
            splits[stream_id] = split
        errors.extend(result.errors)
        for k, asset in result.assets:
            grouped.setdefault(asset["id"], []).append((k, stream_id, asset))
        if result.metadata:
            metadata.append((stream_id, result.metadata))
    assets: list[Mapping[str, Any]] = []
    problems: list[str] = []
    for asset_id in sorted(grouped):
        merged = merge_asset(asset_id, ((stream, a) for _, stream, a in grouped[asset_id]))
        if isinstance(merged, Clash):
            problems.append(
                f"Asset/{asset_id}: {merged.field} is {merged.first[0]!r} for stream "
                f"{merged.first[1]} and {merged.second[0]!r} for stream {merged.second[1]}"
            )
        else:
            assets.append(merged)
    return Preview(
        rule_name,
        str(rule_spec.get("state", "Started")),
        tuple(matches),
        splits,
        tuple(assets),
        tuple(metadata),
        tuple(errors),
        tuple(problems),
        not_matched,
        tuple(misses),
    )
