"""`rules preview NAME [--stream ID]`: what an AssetRule makes of the streams, store untouched."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.options import scratch_source_options
from fleetward.desire import DesiredState
from fleetward.errors import UsageError
from fleetward.kinds.asset_rule import (
    ExpressionVerdict,
    Preview,
    compile_outputs,
    compile_rule,
    describe_specification,
    describe_split,
    evaluate,
    explain,
    match,
    preview,
)
from fleetward.kinds.problems import did_you_mean
from fleetward.model import DesiredObject, ObjectKey
from fleetward.pipeline import SourceOptions, resolve
from fleetward.rendering import Line

MAX_SHOWN = 50  # matches and assets listed on a terminal; --json carries every one
MAX_EXPLAINED = 1000  # streams not matched that --json explains (each costs a few matches)


@click.group("rules")
def rules_group() -> None:
    """Inspect AssetRules (never writes)."""


@rules_group.command("preview")
@click.argument("name")
@scratch_source_options
@click.option(
    "--stream",
    "stream_id",
    metavar="ID",
    help="Explain, specification by specification, why this stream does or does not match "
    "(default: the rule's exampleStreamId).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the preview as JSON.")
@click.pass_context
def preview_command(
    ctx: click.Context, name: str, sources: SourceOptions, stream_id: str | None, as_json: bool
) -> None:
    """Show which streams rule NAME matches at --ref, the tokens captured, and the assets and
    stream metadata that would result. Reads the revision only: the store is not touched."""
    ctx.meta["json_output"] = as_json
    with tempfile.TemporaryDirectory(prefix="fleetward-preview-") as scratch:  # a remote's clone
        # Conflicts are shown, not raised: previewing is for them.
        desired = resolve(replace(sources, cache_root=scratch), keep_conflicts=True)
    rule = _rule(desired, name)
    streams = [o for o in desired.objects.values() if o.kind == "Stream"]
    explained = MAX_EXPLAINED if as_json else MAX_SHOWN
    result = preview(rule.spec, name, streams, explain_misses=explained)
    involved = tuple(
        f"{c.error}: {c.reason} (at {c.location})"
        for c in desired.conflicts
        if rule.key in (c.parameters or {}).get("rules", ())
    )
    result = replace(result, problems=(*result.problems, *involved))
    example = stream_id or rule.spec.get("exampleStreamId")
    stream = _stream(desired, example, explicit=stream_id is not None) if example else None
    verdicts = explain(compile_rule(rule.spec), stream.spec) if stream is not None else None
    placed = {
        asset["externalAssetId"]: desired.objects.get(
            ObjectKey(f"Asset/{asset['externalAssetId']}")
        )
        for asset in result.assets
    }
    if as_json:
        output.print_json(_as_json(result, rule, stream, verdicts, placed))
        return
    output.print_lines(_lines(result, rule, placed))
    if stream is not None and verdicts is not None:
        output.print_lines(_explanation(rule, stream, verdicts))


def _rule(desired: DesiredState, name: str) -> DesiredObject:
    rule = desired.objects.get(ObjectKey(f"AssetRule/{name}"))
    if rule is None:
        known = sorted(k.split("/", 1)[1] for k in desired.objects if k.startswith("AssetRule/"))
        raise UsageError.one(
            f"No asset rule named {name!r} at revision {desired.revision.short}",
            f"The AssetRules declared there are: {', '.join(known) or '(none)'}.",
            did_you_mean(name, known, "Give the metadata.name of an AssetRule document."),
            location=f"AssetRule/{name}",
        )
    return rule


def _stream(desired: DesiredState, stream_id: str, explicit: bool) -> DesiredObject | None:
    stream = desired.objects.get(ObjectKey(f"Stream/{stream_id}"))
    if stream is None and explicit:
        known = sorted(k.split("/", 1)[1] for k in desired.objects if k.startswith("Stream/"))
        raise UsageError.one(
            f"No stream {stream_id!r} at revision {desired.revision.short}",
            f"No StreamSet declares a stream with id {stream_id!r} ({len(known)} stream(s) "
            "are declared).",
            did_you_mean(stream_id, known, "Give the id of a declared stream."),
            location=f"Stream/{stream_id}",
        )
    return stream


def _lines(
    result: Preview, rule: DesiredObject, placed: Mapping[str, DesiredObject | None]
) -> Iterable[Line]:
    yield "header", f"AssetRule/{result.rule} ({result.state})"
    if result.state == "Stopped":
        yield (
            "dim",
            "  The rule is Stopped: applying generates nothing new (this is what it would).",
        )
    yield "", ""
    yield "header", f"Streams matched: {len(result.matches)}"
    for stream_id, _ in result.matches[:MAX_SHOWN]:
        yield "", f"  {stream_id}  {describe_split(result.splits.get(stream_id, ()))}"
    if len(result.matches) > MAX_SHOWN:
        yield "dim", f"  … and {len(result.matches) - MAX_SHOWN} more (--json lists them all)"
    if result.not_matched:
        yield "", ""
        yield "header", f"Streams not matched: {result.not_matched}"
        for miss in result.misses:
            where = f"expression {miss.expression} ({miss.field})"
            yield "dim", f"  {miss.stream_id}  {where}: {miss.reason}"
        if result.not_matched > len(result.misses):
            more = result.not_matched - len(result.misses)
            yield "dim", f"  … and {more} more (--json lists up to {MAX_EXPLAINED})"
    yield "", ""
    yield "header", f"Assets: {len(result.assets)}"
    for asset in result.assets[:MAX_SHOWN]:
        refs = [r["streamId"] for r in asset.get("streamReferences", ())]
        where = _placement(rule, placed.get(asset["externalAssetId"]))
        yield (
            "create",
            f"  Asset/{asset['externalAssetId']}  {asset.get('name', '')}  streams: {', '.join(refs)}{where}",
        )
    if len(result.assets) > MAX_SHOWN:
        yield "dim", f"  … and {len(result.assets) - MAX_SHOWN} more (--json lists them all)"
    if result.metadata:
        yield "", ""
        yield "header", f"Stream metadata: {len(result.metadata)} stream(s)"
        for stream_id, metadata in result.metadata[:MAX_SHOWN]:
            yield "", f"  {stream_id}  {json.dumps(dict(metadata), ensure_ascii=False)}"
    for problem in result.problems:
        yield "error", f"  Conflict: {problem}"
    if result.errors:
        yield "", ""
        yield "error", f"Errors: {len(result.errors)}"
        for error in result.errors[:MAX_SHOWN]:
            yield "error", f"  {error}"


def _placement(rule: DesiredObject, obj: DesiredObject | None) -> str:
    if obj is None:
        return ""
    if obj.owner.startswith("AssetRule/"):
        return "" if obj.owner == rule.key and obj.note == "rule output" else f"  ({obj.note})"
    return f"  (overridden: {obj.owner} declares it)"


def _explanation(
    rule: DesiredObject, stream: DesiredObject, verdicts: tuple[ExpressionVerdict, ...]
) -> Iterable[Line]:
    yield "", ""
    tokens = match(compile_rule(rule.spec), stream.spec)
    verdict = "matches" if tokens is not None else "does not match"
    yield "header", f"Stream {stream.spec['id']} {verdict}:"
    for i, v in enumerate(verdicts, 1):
        value = "(absent)" if v.value is None else repr(v.value)
        yield "kind", f"  expression {i}: {v.field} = {value}"
        for step in v.steps:
            text = "—" if step.matched is None else repr(step.matched)
            style = "" if step.matched is not None and "rejected" not in step.note else "error"
            yield (
                style,
                f"    {step.index}. {describe_specification(step.specification)}: {text}  {step.note}",
            )
        yield ("ok" if v.matched else "error"), f"    → {v.summary}"
    if tokens is not None:
        result = evaluate(compile_outputs(rule.spec), stream.spec)
        assert result is not None
        yield "", "  tokens: " + ", ".join(f"{k}={v!r}" for k, v in tokens.items())
        for _, asset in result.assets:
            yield "create", f"  → Asset/{asset['id']}"
        if result.metadata:
            yield "create", f"  → metadata {json.dumps(dict(result.metadata), ensure_ascii=False)}"


def _asset_json(spec: Mapping[str, Any], placed: DesiredObject | None) -> dict[str, Any]:
    """An asset the rule makes, with where it lands in the revision (owner, note)."""
    return {
        "spec": spec,
        "owner": placed.owner if placed is not None else None,
        "note": placed.note if placed is not None else None,
    }


def _as_json(
    result: Preview,
    rule: DesiredObject,
    stream: DesiredObject | None,
    verdicts: tuple[ExpressionVerdict, ...] | None,
    placed: Mapping[str, DesiredObject | None],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": result.rule,
        "state": result.state,
        "streamsMatched": len(result.matches),
        "matches": [
            {
                "streamId": s,
                "tokens": dict(t),
                "split": [
                    {"field": c.field, "token": c.token, "text": c.text, "value": c.value}
                    for c in result.splits.get(s, ())
                ],
            }
            for s, t in result.matches
        ],
        "assets": [_asset_json(a, placed.get(a["externalAssetId"])) for a in result.assets],
        "metadata": [{"streamId": s, "metadata": dict(m)} for s, m in result.metadata],
        "errors": list(result.errors),
        "conflicts": list(result.problems),
        "streamsNotMatched": result.not_matched,
        "unmatched": [  # the first MAX_EXPLAINED
            {
                "streamId": m.stream_id,
                "expression": m.expression,
                "field": m.field,
                "specification": m.specification,
                "reason": m.reason,
            }
            for m in result.misses
        ],
    }
    if stream is not None and verdicts is not None:
        tokens = match(compile_rule(rule.spec), stream.spec)
        out["explain"] = {
            "streamId": stream.spec["id"],
            "matches": tokens is not None,
            "tokens": tokens,
            "expressions": [
                {
                    "field": v.field,
                    "value": v.value,
                    "matches": v.matched,
                    "summary": v.summary,
                    "specifications": [
                        {
                            "index": s.index,
                            "specification": dict(s.specification),
                            "matched": s.matched,
                            "note": s.note,
                        }
                        for s in v.steps
                    ],
                }
                for v in verdicts
            ],
        }
    return out
