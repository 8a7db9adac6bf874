"""What happens to a rule's outputs when they are no longer desired. Pure.

A running rule stops the assets (and removes the stream metadata) it no longer
produces; a Stopped rule keeps what it made; a deleted rule stops its assets
unless `keepOldAssets` and removes its metadata unless `keepOldMetadata`, and
what it keeps is left alone from then on. Called by planning through
`KindPlugin.removal` for every object an AssetRule owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetward.kinds.asset_rule.outputs import frozen_assets
from fleetward.kinds.base import Removal
from fleetward.model import Action, DesiredObject, ObjectKey, ObjectState, StoredObject, object_key


def removal(
    have: StoredObject,
    desired: Mapping[ObjectKey, DesiredObject],
    stored: Mapping[ObjectKey, StoredObject],
) -> Removal | None:
    """What happens to a rule's outputs (and the rule) when they are no longer desired."""
    rule_name = have.owner.split("/", 1)[1]
    rule_key = object_key("AssetRule", rule_name)
    if have.kind == "AssetRule":
        return _rule_removal(have, stored)
    if have.kind not in ("Asset", "StreamMetadata"):
        return None
    action = Action.STOP if have.kind == "Asset" else Action.DELETE
    rule = desired.get(rule_key)
    if rule is not None:
        if rule.spec.get("state") == "Stopped":
            return Removal(None, "rule stopped: keeps what it made")
        if have.kind == "Asset":
            stoppers = frozen_assets(desired).get(str(have.spec.get("externalAssetId")))
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


_OWNED: tuple[Mapping[ObjectKey, StoredObject], dict[tuple[str, str], int]] | None = None


def owned_counts(stored: Mapping[ObjectKey, StoredObject]) -> Mapping[tuple[str, str], int]:
    """(owner, kind) → active objects, counted in one pass over the store; the last
    store's counts are remembered (every deleted rule asks)."""
    global _OWNED
    if _OWNED is not None and _OWNED[0] is stored:
        return _OWNED[1]
    counts: dict[tuple[str, str], int] = {}
    for o in stored.values():
        if o.state is ObjectState.ACTIVE and o.owner.startswith("AssetRule/"):
            counts[o.owner, o.kind] = counts.get((o.owner, o.kind), 0) + 1
    _OWNED = (stored, counts)
    return counts


def _rule_removal(have: StoredObject, stored: Mapping[ObjectKey, StoredObject]) -> Removal:
    kept: list[str] = []
    counts = owned_counts(stored)
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
