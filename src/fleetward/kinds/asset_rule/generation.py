"""Asset-rule generation: a revision's AssetRules × its streams → assets and metadata.

Runs once per revision over the whole desired state (`KindPlugin.generate`).
Streams that resolve to one asset id — from one rule or several — merge into
one asset; two different values for one field of one asset are an error
naming both rules. An asset a Fleet declares wins over a generated one, and an
asset a Stopped rule made stays as stored (`frozen_assets`).

What one rule makes of one stream, and the memo of it, are `outputs`'. Conflicting
outputs come back as data (`Generated.conflicts`): whether they fail the revision
is the caller's choice, not this module's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as default
from typing import Any

from fleetward.errors import Problem
from fleetward.kinds.asset_rule.matching import STREAM_FIELDS
from fleetward.kinds.asset_rule.outputs import (
    Clash,
    RuleMemo,
    StreamResult,
    compile_outputs,
    merge_asset,
)
from fleetward.kinds.base import Document, Generated, KindCaches
from fleetward.kinds.problems import did_you_mean
from fleetward.model import (
    DesiredObject,
    ObjectKey,
    Origin,
    object_key,
    spec_hash,
)

MAX_ERRORS_KEPT = 10  # per-stream errors kept in a rule's ErrorInfo


@dataclass(frozen=True, slots=True)
class RuleInput:
    name: str
    path: str
    document: Document
    obj: DesiredObject  # the AssetRule object (normalised spec)

    @property
    def owner(self) -> str:
        return self.obj.key

    def origin(self, *yaml_path: str | int) -> Origin:
        return Origin(self.path, self.document.index, ("spec", *yaml_path))


@dataclass
class _Progress:
    """One rule's run over the revision's streams (its ExecutionProgress)."""

    matched: int = 0
    errors: int = 0
    error_list: list[str] = default(default_factory=list)
    assets: set[str] = default(default_factory=set)
    overridden: set[str] = default(default_factory=set)
    metadata: int = 0
    metadata_hashes: list[str] = default(default_factory=list)


def generate(
    documents: tuple[tuple[str, Document], ...],
    objects: Mapping[ObjectKey, DesiredObject],
    locate: Callable[[Origin], str],
    caches: KindCaches,
) -> Generated | None:
    """The assets and stream metadata the revision's rules make of its streams, each
    rule's ExecutionProgress, and the conflicts between outputs (left out)."""
    rules = sorted(
        (
            RuleInput(doc.name, path, doc, objects[object_key("AssetRule", doc.name)])
            for path, doc in documents
            if doc.kind == "AssetRule"
        ),
        key=lambda r: r.name,
    )
    if not rules:
        return None
    # In desire's order (files by path, streams in file order): deterministic, and no sort.
    streams = [o for o in objects.values() if o.kind == "Stream"]
    problems = list(_unknown_fields(rules, streams, locate))
    if problems:
        return Generated({}, tuple(problems))
    previous, memo = caches.entry(RuleMemo), RuleMemo()
    caches.replace(memo)
    out: dict[ObjectKey, DesiredObject] = {}
    contributions: dict[str, list[tuple[RuleInput, int, str, str, Mapping[str, Any]]]] = {}
    metadata_by_stream: dict[str, list[tuple[RuleInput, StreamResult]]] = {}
    progress: dict[str, _Progress] = {}
    frozen: dict[str, set[str]] = {}  # asset id → Stopped rules that produce it
    for rule in rules:
        rule_hash = rule.obj.spec_hash
        compiled = previous.rules.get(rule_hash) or compile_outputs(rule.obj.spec)
        match = memo.matcher(previous, rule_hash, compiled)
        if rule.obj.spec["state"] == "Stopped":
            # Generates nothing new; what it made stays (see `removal`), and so do the
            # assets it made with other rules: they are frozen as stored.
            for stream in streams:
                result = match(stream)
                for _, asset in result.assets if result is not None else ():
                    frozen.setdefault(asset["id"], set()).add(rule.owner)
            continue
        state = progress[rule.name] = _Progress()
        for stream in streams:
            result = match(stream)
            if result is None:
                continue
            if result.errors:
                state.errors += len(result.errors)
                state.error_list.extend(result.errors[: MAX_ERRORS_KEPT - len(state.error_list)])
            if not result.matched:
                continue
            state.matched += 1
            stream_id = stream.spec["id"]
            for k, asset in result.assets:
                contributions.setdefault(asset["id"], []).append(
                    (rule, k, stream_id, stream.spec_hash, asset)
                )
            if result.metadata:
                metadata_by_stream.setdefault(stream_id, []).append((rule, result))
    conflicts: list[Problem] = []
    for asset_id in sorted(contributions):
        parts = contributions[asset_id]
        key = object_key("Asset", asset_id)
        declared = objects.get(key)
        rule_owners = sorted({r.owner for r, *_ in parts})
        if declared is not None:
            # A Fleet's asset wins over a generated one; the plan says so.
            for r, *_ in parts:
                progress[r.name].overridden.add(asset_id)
            note = (
                f"declared in {declared.owner}, overrides rule output of {', '.join(rule_owners)}"
            )
            out[key] = replace(declared, note=note)
            continue
        if asset_id in frozen:
            # A Stopped rule made it with these: it stays as stored (`frozen_assets`).
            continue
        obj = _asset_object(asset_id, parts, previous, memo, conflicts, locate)
        if obj is None:
            continue
        out[key] = obj
        for r, *_ in parts:
            progress[r.name].assets.add(asset_id)
    for stream_id in sorted(metadata_by_stream):
        for obj in _metadata_objects(stream_id, metadata_by_stream[stream_id], conflicts, locate):
            out[obj.key] = obj
            made = progress[obj.owner.split("/", 1)[1]]
            made.metadata += 1
            made.metadata_hashes.append(obj.spec_hash)
    for rule in rules:
        ran = progress.get(rule.name)
        if ran is None:
            continue  # a stopped rule keeps the progress of its last run
        out[rule.obj.key] = replace(rule.obj, derived_status=_progress(ran, out))
    return Generated(out, conflicts=tuple(conflicts))


def _progress(state: _Progress, out: Mapping[ObjectKey, DesiredObject]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for asset_id in sorted(state.assets):
        digest.update(out[object_key("Asset", asset_id)].spec_hash.encode())
    for metadata_hash in state.metadata_hashes:
        digest.update(metadata_hash.encode())
    error_info: dict[str, Any] = {"errorCount": state.errors}
    if state.error_list:
        error_info["errors"] = list(state.error_list)
    return {
        "executionProgress": {
            "state": "Completed",
            "errorInfo": error_info,
            "streamsMatched": state.matched,
            "assetsProduced": len(state.assets),
            "assetsOverridden": len(state.overridden),
            "metadataProduced": state.metadata,
            "outputsHash": digest.hexdigest()[:16],
        }
    }


def _asset_object(
    asset_id: str,
    parts: list[tuple[RuleInput, int, str, str, Mapping[str, Any]]],
    previous: RuleMemo,
    memo: RuleMemo,
    conflicts: list[Problem],
    locate: Callable[[Origin], str],
) -> DesiredObject | None:
    # Everything that flows into the object: the rules' specs and names (the owner, the
    # note), their labels, where they are (the origin) and the streams.
    signature = tuple(
        (
            r.obj.spec_hash,
            r.name,
            tuple(sorted((r.document.metadata.labels or {}).items())),
            r.path,
            r.document.index,
            k,
            h,
        )
        for r, k, _, h, _ in parts
    )
    memo_key = ("Asset", asset_id, signature)
    known = previous.objects.get(memo_key)
    if known is not None:
        memo.objects[memo_key] = known
        return known
    merged = _merge(asset_id, parts, locate)
    if isinstance(merged, Problem):
        conflicts.append(merged)
        return None
    rules = sorted({r.name for r, *_ in parts})
    owner_rule = next(r for r, *_ in parts if r.name == rules[0])
    first_output = next(k for r, k, *_ in parts if r is owner_rule)
    note = (
        "rule output"
        if len(rules) == 1
        else f"rule output of {len(rules)} rules: {', '.join(rules)}"
    )
    obj = DesiredObject(
        key=object_key("Asset", asset_id),
        kind="Asset",
        spec=merged,
        spec_hash=spec_hash(merged),
        owner=owner_rule.owner,
        origin=owner_rule.origin("outputs", first_output),
        labels=owner_rule.document.metadata.labels,
        note=note,
    )
    memo.objects[memo_key] = obj
    return obj


def _merge(
    asset_id: str,
    parts: list[tuple[RuleInput, int, str, str, Mapping[str, Any]]],
    locate: Callable[[Origin], str],
) -> dict[str, Any] | Problem:
    merged = merge_asset(asset_id, (((r, k, s), asset) for r, k, s, _, asset in parts))
    if isinstance(merged, Clash):
        (a_value, (a_rule, a_out, a_stream)), (b_value, (b_rule, b_out, b_stream)) = (
            merged.first,
            merged.second,
        )
        return _conflict(
            asset_id,
            merged.field,
            (a_value, a_rule, a_out, a_stream),
            (b_value, b_rule, b_out, b_stream),
            locate,
        )
    return merged


def _conflict(
    asset_id: str,
    field: str,
    first: tuple[Any, RuleInput, int, str],
    second: tuple[Any, RuleInput, int, str],
    locate: Callable[[Origin], str],
) -> Problem:
    a_value, a_rule, _, a_stream = first
    b_value, b_rule, b_out, b_stream = second
    there = locate(a_rule.origin("outputs", first[2], "value", field.split("[", 1)[0]))
    if a_rule.name == b_rule.name:
        reason = (
            f"{a_rule.owner} gives Asset/{asset_id} {field} = {a_value!r} for stream {a_stream} "
            f"and {b_value!r} for stream {b_stream}. Streams that resolve to one asset must "
            "agree on every field; only streamReferences and metadata with different ids add up."
        )
        resolution = (
            "Use in that field only tokens the streams share, or put the token that differs "
            "into the asset id (or into the id of a stream reference or metadata item)."
        )
    else:
        reason = (
            f"{a_rule.owner} (at {there}) gives Asset/{asset_id} {field} = {a_value!r} (stream "
            f"{a_stream}) and {b_rule.owner} gives it {b_value!r} (stream {b_stream}). Rules "
            "that produce one asset must agree on every field they both set."
        )
        resolution = (
            f"Make {a_rule.owner} and {b_rule.owner} agree on {field}, leave it to one of "
            "them, or give their assets different ids."
        )
    return Problem(
        f"Conflicting rule outputs for Asset/{asset_id}",
        reason,
        resolution,
        location=locate(b_rule.origin("outputs", b_out, "value", field.split("[", 1)[0])),
        parameters={
            "address": f"Asset/{asset_id}",
            "field": field,
            "rules": sorted({a_rule.owner, b_rule.owner}),
            "streams": sorted({a_stream, b_stream}),
        },
    )


def _metadata_objects(
    stream_id: str,
    results: list[tuple[RuleInput, StreamResult]],
    conflicts: list[Problem],
    locate: Callable[[Origin], str],
) -> Iterable[DesiredObject]:
    """`StreamMetadata/<stream>/<rule>`: one object per rule; rules must agree per key."""
    seen: dict[str, tuple[str, RuleInput]] = {}
    for rule, result in results:
        for key, value in result.metadata.items():
            first = seen.setdefault(key, (value, rule))
            if first[0] != value:
                conflicts.append(
                    Problem(
                        f"Conflicting rule outputs for the metadata of stream {stream_id}",
                        f"{first[1].owner} sets metadata {key!r} to {first[0]!r} and "
                        f"{rule.owner} sets it to {value!r}.",
                        f"Make {first[1].owner} and {rule.owner} agree on {key!r}, or leave the "
                        "key to one of them.",
                        location=locate(rule.origin("outputs", result.metadata_output or 0)),
                        parameters={
                            "stream": stream_id,
                            "key": key,
                            "rules": sorted({first[1].owner, rule.owner}),
                        },
                    )
                )
        spec = {
            "id": f"{stream_id}/{rule.name}",
            "streamId": stream_id,
            "rule": rule.name,
            "metadata": dict(sorted(result.metadata.items())),
        }
        yield DesiredObject(
            key=object_key("StreamMetadata", f"{stream_id}/{rule.name}"),
            kind="StreamMetadata",
            spec=spec,
            spec_hash=spec_hash(spec),
            owner=rule.owner,
            origin=rule.origin("outputs", result.metadata_output or 0),
            labels=rule.document.metadata.labels,
            note="rule output",
        )


def _unknown_fields(
    rules: list[RuleInput], streams: list[DesiredObject], locate: Callable[[Origin], str]
) -> Iterable[Problem]:
    """An expression's field is Id, Name, Description or a metadata key some stream has.

    Checked for Started rules only: a Stopped rule matches nothing, so its fields may
    name keys the streams no longer have."""
    rules = [r for r in rules if r.obj.spec["state"] != "Stopped"]
    wanted = {e["field"] for r in rules for e in r.obj.spec["expressions"]} - set(STREAM_FIELDS)
    found: set[str] = set()
    for stream in streams:  # usually ends early: every wanted key is found
        if found == wanted:
            break
        metadata = stream.spec.get("metadata")
        if metadata:
            found.update(k for k in wanted if k in metadata)
    if found == wanted:
        return
    keys = sorted({k for stream in streams for k in stream.spec.get("metadata", ())})
    for rule in rules:
        for i, expression in enumerate(rule.obj.spec["expressions"]):
            field = expression["field"]
            if field in STREAM_FIELDS or field in found:
                continue
            yield Problem(
                f"Unknown stream field {field!r}",
                f"An expression matches Id, Name, Description or a metadata key, and no "
                f"stream has metadata {field!r}"
                + (f" (the streams' metadata keys are {', '.join(keys[:20])})." if keys else "."),
                did_you_mean(
                    field,
                    [*STREAM_FIELDS, *keys],
                    "Use Id, Name, Description or a metadata key of the streams.",
                ),
                location=locate(rule.origin("expressions", i, "field")),
                parameters={"field": field, "rule": rule.owner},
            )


class FrozenAssets:
    """The last desired state `frozen_assets` answered for, and its answer."""

    def __init__(self) -> None:
        self.desired: Mapping[ObjectKey, DesiredObject] | None = None
        self.frozen: dict[str, list[str]] = {}


def frozen_assets(
    desired: Mapping[ObjectKey, DesiredObject], caches: KindCaches
) -> Mapping[str, list[str]]:
    """Asset id → the Stopped rules that produce it from the revision's streams.

    Such an asset is not generated (`generate`), so a Stopped rule's part of an asset it
    merged with a running rule stays as stored. Computed once per desired state, kept in
    `caches` (removal asks once per object no longer desired), from the matches the
    revision's `generate` left in the caches' RuleMemo.
    """
    known_answer = caches.entry(FrozenAssets)
    if known_answer.desired is desired:
        return known_answer.frozen
    last = caches.entry(RuleMemo)
    stopped = [
        o for o in desired.values() if o.kind == "AssetRule" and o.spec.get("state") == "Stopped"
    ]
    frozen: dict[str, list[str]] = {}
    if stopped:
        streams = [o for o in desired.values() if o.kind == "Stream"]
        for rule in sorted(stopped, key=lambda o: o.key):
            recall = last.recaller(rule)
            for stream in streams:
                result = recall(stream)
                for _, asset in result.assets if result is not None else ():
                    owners = frozen.setdefault(asset["id"], [])
                    if rule.key not in owners:
                        owners.append(rule.key)
    known_answer.desired, known_answer.frozen = desired, frozen
    return frozen
