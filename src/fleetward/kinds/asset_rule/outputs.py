"""Asset-rule outputs: one rule × one stream → rendered assets and metadata. Pure.

A rule is compiled once (`compile_outputs`: its expressions and a renderer per
output template) and evaluated per stream (`evaluate`); rendered assets that resolve
to one id merge field by field (`merge_asset`), or clash. The pass over a whole
revision — which streams, merging across rules, conflicts, Stopped rules — is
`generation`'s.

Matching is memoised by (rule spec hash, stream spec hash) and merged assets by
what they were merged from, so a daemon's re-plan after one stream changes
matches that stream only. The memo (`RuleMemo`) is an entry of the caller's
`KindCaches` and keeps only what the last revision used; no result depends on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from fleetward.kinds.asset_rule.matching import (
    CompiledExpression,
    compile_rule,
    match,
    render,
    too_long,
)
from fleetward.model import (
    DesiredObject,
)

ASSET_ID = re.compile(r"^[^\s/]{1,253}$")
MERGED_FIELDS = ("name", "assetTypeId", "description", "status")


@dataclass(frozen=True, slots=True)
class StreamResult:
    """What one rule makes of one stream."""

    tokens: Mapping[str, str]
    assets: tuple[tuple[int, Mapping[str, Any]], ...]  # (output index, rendered asset)
    metadata: Mapping[str, str]
    metadata_output: int | None  # the first Metadata output (to locate conflicts)
    errors: tuple[str, ...]
    matched: bool = True  # False: not matched, for a reason `errors` gives (a field too long)


class RuleMemo:
    """Matches and merged objects of the last revision (see the module docstring)."""

    def __init__(self) -> None:
        self.rules: dict[str, CompiledRule] = {}
        # rule spec hash → stream spec hash → result, for the streams the rule matched
        self.results: dict[str, dict[str, StreamResult]] = {}
        # rule spec hash → spec hashes of the streams it does not match
        self.misses: dict[str, set[str]] = {}
        self.objects: dict[tuple[Any, ...], DesiredObject] = {}

    def matcher(
        self, previous: RuleMemo, rule_hash: str, compiled: CompiledRule
    ) -> Callable[[DesiredObject], StreamResult | None]:
        """`evaluate` for one rule over streams: from `previous` when it knows the pair,
        remembered in self. The rule's tables are looked up once, not once per stream."""
        self.rules[rule_hash] = compiled
        fresh = self.results.setdefault(rule_hash, {})
        missed = self.misses.setdefault(rule_hash, set())
        known = previous.results.get(rule_hash, {})
        known_misses: AbstractSet[str] = previous.misses.get(rule_hash, frozenset())

        def match(stream: DesiredObject) -> StreamResult | None:
            stream_hash = stream.spec_hash
            result = known.get(stream_hash)
            if result is None and stream_hash not in known_misses:
                result = evaluate(compiled, stream.spec)
            if result is None:
                missed.add(stream_hash)
            else:
                fresh[stream_hash] = result
            return result

        return match

    def recaller(self, rule: DesiredObject) -> Callable[[DesiredObject], StreamResult | None]:
        """What `rule` makes of a stream, as this memo's revision matched it: its result,
        None for a stream it missed, `evaluate` for one it never saw. Remembers nothing."""
        compiled = self.rules.get(rule.spec_hash) or compile_outputs(rule.spec)
        known = self.results.get(rule.spec_hash, {})
        missed: AbstractSet[str] = self.misses.get(rule.spec_hash, frozenset())

        def recall(stream: DesiredObject) -> StreamResult | None:
            if stream.spec_hash in missed:
                return None
            return known.get(stream.spec_hash) or evaluate(compiled, stream.spec)

        return recall


Renderer = Callable[[Mapping[str, str]], Any]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its expressions and, per output, a renderer of its template."""

    spec: Mapping[str, Any]
    expressions: tuple[CompiledExpression, ...]
    outputs: tuple[tuple[int, str, Renderer, str], ...]  # (index, field, renderer, id template)


def compile_outputs(spec: Mapping[str, Any]) -> CompiledRule:
    outputs = tuple(
        (
            k,
            output["field"],
            _renderer(output["value"]),
            output["value"].get("id", "") if output["field"] == "Asset" else "",
        )
        for k, output in enumerate(spec["outputs"])
    )
    return CompiledRule(spec, compile_rule(spec), outputs)


def _renderer(value: Any) -> Renderer:
    """A function of the tokens that renders `value`; parts without placeholders are
    returned as they are (shared, read-only), so rendering costs only the templates."""
    if isinstance(value, str):
        if "{" not in value and "}" not in value:
            return lambda tokens: value
        return lambda tokens: render(value, tokens)
    if isinstance(value, dict):
        parts = [(_renderer(k), _renderer(v)) for k, v in value.items()]
        if not _templated(value):
            return lambda tokens: value
        return lambda tokens: {k(tokens): v(tokens) for k, v in parts}
    if isinstance(value, list):
        items = [_renderer(v) for v in value]
        if not _templated(value):
            return lambda tokens: value
        return lambda tokens: [f(tokens) for f in items]
    return lambda tokens: value


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{" in value or "}" in value
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def evaluate(rule: CompiledRule, stream: Mapping[str, Any]) -> StreamResult | None:
    """Match one stream and render the rule's outputs for it (None: no match)."""
    why = too_long(rule.expressions, stream)
    if why is not None:
        return StreamResult({}, (), {}, None, (why,), matched=False)
    tokens = match(rule.expressions, stream)
    if tokens is None:
        return None
    assets: list[tuple[int, Mapping[str, Any]]] = []
    metadata: dict[str, str] = {}
    metadata_output = None
    errors: list[str] = []
    for k, output_field, renderer, id_template in rule.outputs:
        rendered = renderer(tokens)
        if output_field == "Asset":
            if not ASSET_ID.match(rendered["id"]):
                errors.append(
                    f"stream {stream['id']}: asset id {rendered['id']!r} (from "
                    f"{id_template!r}) is empty, too long, or has whitespace or '/'"
                )
                continue
            assets.append((k, rendered))
        else:
            metadata_output = k if metadata_output is None else metadata_output
            metadata.update(rendered)
    return StreamResult(tokens, tuple(assets), metadata, metadata_output, tuple(errors))


@dataclass(frozen=True, slots=True)
class Clash:
    """Two contributions that give one field of one asset different values."""

    field: str
    first: tuple[Any, Any]  # (value, who: a contribution's tag)
    second: tuple[Any, Any]


def merge_asset(
    asset_id: str, parts: Iterable[tuple[Any, Mapping[str, Any]]]
) -> dict[str, Any] | Clash:
    """One asset from every (tag, rendered asset) that resolves to it: scalar fields and
    `status` must agree; `metadata` and `streamReferences` add up by item id."""
    fields: dict[str, tuple[Any, Any]] = {}
    keyed: dict[str, dict[str, tuple[Any, Any]]] = {"metadata": {}, "streamReferences": {}}
    for tag, asset in parts:
        for name in MERGED_FIELDS:
            if name in asset:
                first = fields.setdefault(name, (asset[name], tag))
                if first[0] != asset[name]:
                    return Clash(name, first, (asset[name], tag))
        for list_name, items in keyed.items():
            for item in asset.get(list_name, ()):
                first = items.setdefault(item["id"], (item, tag))
                if first[0] != item:
                    return Clash(f"{list_name}[{item['id']}]", first, (item, tag))
    # Keyed like every Asset (a Fleet's too): `Asset/<externalAssetId>`.
    spec: dict[str, Any] = {"externalAssetId": asset_id}
    for name in MERGED_FIELDS[:-1]:
        if name in fields:
            spec[name] = fields[name][0]
    for list_name, items in keyed.items():
        if items:
            spec[list_name] = [items[i][0] for i in sorted(items)]
    if "status" in fields:
        spec["status"] = fields["status"][0]
    return spec
