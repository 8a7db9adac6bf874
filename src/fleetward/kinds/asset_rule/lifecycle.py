"""What happens to a rule's outputs when they are no longer desired. Pure.

A running rule stops the assets (and removes the stream metadata) it no longer
produces; a Stopped rule keeps what it made; a deleted rule stops its assets
unless `keepOldAssets` and removes its metadata unless `keepOldMetadata`, and
what it keeps is left alone from then on. Called by planning through
`KindPlugin.removal` for every object an AssetRule owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetward.kinds.asset_rule.generation import frozen_assets
from fleetward.kinds.base import KindCaches, Removal
from fleetward.model import Action, DesiredObject, ObjectKey, ObjectState, StoredObject, object_key


def removal(
    have: StoredObject,
    desired: Mapping[ObjectKey, DesiredObject],
    stored: Mapping[ObjectKey, StoredObject],
    caches: KindCaches,
) -> Removal | None:
    """What happens to a rule's outputs (and the rule) when they are no longer desired;
    what the answers share is computed once into `caches`."""
    rule_name = have.owner.split("/", 1)[1]
    rule_key = object_key("AssetRule", rule_name)
    if have.kind == "AssetRule":
        return _rule_removal(have, stored, caches)
    if have.kind not in ("Asset", "StreamMetadata"):
        return None
    action = Action.STOP if have.kind == "Asset" else Action.DELETE
    rule = desired.get(rule_key)
    if rule is not None:
        if rule.spec.get("state") == "Stopped":
            return Removal(None, "rule stopped: keeps what it made")
        if have.kind == "Asset":
            stoppers = frozen_assets(desired, caches).get(str(have.spec.get("externalAssetId")))
            if stoppers:
                return Removal(None, f"kept as stored: made with {', '.join(stoppers)} (Stopped)")
        return Removal(action, f"no longer produced by {have.owner}")
    had = stored.get(rule_key)
    if had is None:
        return Removal(None, "released when its rule was deleted")
    keep = had.spec.get("keepOldAssets" if have.kind == "Asset" else "keepOldMetadata")
    if keep:
        return Removal(None, "kept: its rule was deleted with keepOld*")
    return Removal(action, f"{have.owner} deleted")


class OwnedCounts:
    """The last store `owned_counts` counted, and its counts."""

    def __init__(self) -> None:
        self.stored: Mapping[ObjectKey, StoredObject] | None = None
        self.counts: dict[tuple[str, str], int] = {}


def owned_counts(
    stored: Mapping[ObjectKey, StoredObject], caches: KindCaches
) -> Mapping[tuple[str, str], int]:
    """(owner, kind) → active objects, counted in one pass over the store; the store's
    counts are kept in `caches` (every deleted rule asks)."""
    known = caches.entry(OwnedCounts)
    if known.stored is stored:
        return known.counts
    counts: dict[tuple[str, str], int] = {}
    for o in stored.values():
        if o.state is ObjectState.ACTIVE and o.owner.startswith("AssetRule/"):
            counts[o.owner, o.kind] = counts.get((o.owner, o.kind), 0) + 1
    known.stored, known.counts = stored, counts
    return counts


def _rule_removal(
    have: StoredObject, stored: Mapping[ObjectKey, StoredObject], caches: KindCaches
) -> Removal:
    kept: list[str] = []
    counts = owned_counts(stored, caches)
    assets = counts.get((have.key, "Asset"), 0)
    metadata = counts.get((have.key, "StreamMetadata"), 0)
    if assets:
        kept.append(
            f"keepOldAssets: {assets} asset(s) kept"
            if have.spec.get("keepOldAssets")
            else f"{assets} asset(s) stopped"
        )
    if metadata:
        kept.append(
            f"keepOldMetadata: {metadata} stream metadata kept"
            if have.spec.get("keepOldMetadata")
            else f"{metadata} stream metadata removed"
        )
    reason = "rule removed from manifests" + (f" ({'; '.join(kept)})" if kept else "")
    return Removal(Action.DELETE, reason)
