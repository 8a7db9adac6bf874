"""`fleetward rules preview`: what one AssetRule makes of a revision's streams. Pure.

The same matching and merging as the plan (`rule_outputs`), for one rule and
without the store; conflicts within the rule are reported as text, not raised.
Each matched stream comes with the split that matched it: per token, the text
taken from the field and the value it gave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetward.kinds.rule_matching import Capture, captures
from fleetward.kinds.rule_outputs import Clash, compile_outputs, evaluate, merge_asset
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


def preview(
    rule_spec: Mapping[str, Any], rule_name: str, streams: Iterable[DesiredObject]
) -> Preview:
    compiled = compile_outputs(rule_spec)
    matches: list[tuple[str, Mapping[str, str]]] = []
    splits: dict[str, tuple[Capture, ...]] = {}
    grouped: dict[str, list[tuple[int, str, Mapping[str, Any]]]] = {}
    metadata: list[tuple[str, Mapping[str, str]]] = []
    errors: list[str] = []
    for stream in sorted(streams, key=lambda o: o.key):
        result = evaluate(compiled, stream.spec)
        if result is None:
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
    )
