"""Fleet (seed 000, batchAssetState): the complete set of active assets of one fleet.

Each asset becomes `Asset/<externalAssetId>`; an asset that leaves every fleet
is stopped, never deleted; `prune: forbid` and per-asset `expect:` are the
seed's safety checks (*Invalid batch fleet size*, *Failed batch validation*).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from fleetward.errors import Problem
from fleetward.kinds.base import (
    Document,
    KindPlugin,
    ObjectKind,
    PlanContext,
    Strict,
    canonical_uuid,
    declare,
    jsonable,
)
from fleetward.model import Action, DesiredObject, ObjectState

ExternalAssetId = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^\s/]+$")
]
SeedOperation = Literal["CREATE", "UPDATE", "STOP", "NOTHING"]

SEED_OPERATION = {
    Action.CREATE: "CREATE",
    Action.UPDATE: "UPDATE",
    Action.STOP: "STOP",
    Action.NOOP: "NOTHING",
}


class AssetSpec(Strict):
    externalAssetId: ExternalAssetId
    # The asset's UUID, for tasks that reference it by {id}; derived from externalAssetId
    # (kinds.base.derived_id) when omitted.
    id: str | None = None
    name: str | None = None
    type: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    expect: SeedOperation | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        return None if value is None else canonical_uuid(value)

    @field_validator("attributes")
    @classmethod
    def _json_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        return jsonable(value)  # type: ignore[no-any-return]


class FleetSpec(Strict):
    description: str | None = None
    prune: Literal["stop", "forbid"] = "stop"
    assets: list[AssetSpec] = Field(default_factory=list)


ASSET = ObjectKind(
    name="Asset",
    id_field="externalAssetId",
    on_removal=Action.STOP,
    removal_reason="fleet member removed",
)


def asset_spec(asset: AssetSpec) -> dict[str, Any]:
    """The stored form of an asset: what Git owns, without the plan-time `expect`."""
    optional = {"id": asset.id, "name": asset.name, "type": asset.type}
    return {
        "externalAssetId": asset.externalAssetId,
        **{k: v for k, v in optional.items() if v is not None},
        "attributes": asset.attributes,
        "labels": asset.labels,
    }


class FleetPlugin(KindPlugin):
    kind = "Fleet"
    spec_model = FleetSpec
    object_kinds = (ASSET,)

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        for i, asset in enumerate(document.spec.assets):
            yield declare(
                "Asset",
                asset.externalAssetId,
                asset_spec(asset),
                document,
                path,
                ("spec", "assets", i),
                labels=asset.labels,
                expect=asset.expect,
            )

    def check_plan(self, context: PlanContext) -> Iterable[Problem]:
        fleets = {d.address: d for _, d in context.documents if d.kind == self.kind}
        yield from _fleet_size(context, fleets)
        yield from _expectations(context, fleets)

    def claims(self, raw_spec: Any) -> Iterable[str]:
        """The assets an invalid fleet still names: a valid fleet declaring one of them
        is held with it (which of the two owns the asset is undecided)."""
        assets = raw_spec.get("assets") if isinstance(raw_spec, dict) else None
        for asset in assets if isinstance(assets, list) else ():
            ident = asset.get("externalAssetId") if isinstance(asset, dict) else None
            if isinstance(ident, str) and ident:
                yield f"Asset/{ident}"


def _fleet_size(context: PlanContext, fleets: dict[str, Document]) -> Iterable[Problem]:
    """prune: forbid — the manifest must list every active asset of the fleet."""
    forbid = {a for a, d in fleets.items() if d.spec.prune == "forbid"}
    if not forbid:
        return
    missing: dict[str, list[str]] = {}
    unmapped: dict[str, list[str]] = {}
    for key, stored in context.stored.items():
        if stored.kind != "Asset" or stored.owner not in forbid:
            continue
        if stored.state is not ObjectState.ACTIVE:
            continue
        # A stored asset still matched by its key (e.g. its spec drifted) is mapped.
        if not stored.spec.get("externalAssetId") and key not in context.desired:
            unmapped.setdefault(stored.owner, []).append(key)
        else:
            change = context.changes.get(key)
            if change is not None and change.action is Action.STOP:
                missing.setdefault(stored.owner, []).append(key)
    for owner in sorted(set(missing) | set(unmapped)):
        reasons = []
        if unmapped.get(owner):
            reasons.append(
                f"{len(unmapped[owner])} stored asset(s) of the fleet have no externalAssetId, "
                f"so they cannot be matched to the manifest: {', '.join(sorted(unmapped[owner])[:10])}"
            )
        if missing.get(owner):
            reasons.append(
                f"{len(missing[owner])} active asset(s) of the fleet are missing from the manifest: "
                f"{', '.join(sorted(missing[owner])[:10])}"
            )
        yield Problem(
            "Invalid batch fleet size",
            f"{owner} has prune: forbid, and its manifest does not list every active asset: "
            + "; ".join(reasons)
            + ".",
            "List every active asset of the fleet in its manifest (give stored assets an "
            "externalAssetId), or set spec.prune: stop to let fleetward stop the missing ones.",
            location=owner,
            parameters={
                "fleet": owner,
                "missingAssets": sorted(missing.get(owner, [])),
                "assetsWithoutExternalAssetId": sorted(unmapped.get(owner, [])),
            },
        )


def _expectations(context: PlanContext, fleets: dict[str, Document]) -> Iterable[Problem]:
    """expect: — each asset's declared operation must equal the computed one."""
    invalid: dict[str, list[dict[str, Any]]] = {}
    for key, desired in context.desired.items():
        if desired.expect is None or desired.owner not in fleets:
            continue
        change = context.changes.get(key)
        computed = SEED_OPERATION[change.action if change else Action.NOOP]
        if computed == desired.expect:
            continue
        errors = [f"expected operation {desired.expect}, but the computed operation is {computed}"]
        if desired.expect == "STOP":
            errors.append(
                "an asset listed in a fleet is active; remove it from the manifest to stop it"
            )
        elif desired.expect in ("UPDATE", "NOTHING") and computed == "CREATE":
            errors.append(
                f"no asset exists with externalAssetId {desired.spec['externalAssetId']!r}"
            )
        invalid.setdefault(desired.owner, []).append(
            {
                "externalAssetId": desired.spec["externalAssetId"],
                "operation": desired.expect,
                "computedOperation": computed,
                "isValid": False,
                "errors": errors,
            }
        )
    for owner in sorted(invalid):
        items = sorted(invalid[owner], key=lambda item: item["externalAssetId"])
        lines = "; ".join(f"{i['externalAssetId']}: {i['errors'][0]}" for i in items[:10])
        yield Problem(
            "Failed batch validation",
            f"{len(items)} item(s) of {owner} have isValid=false: {lines}.",
            "Fix each listed item: change its expect: to the computed operation, or change the "
            "asset (or the store) so the computed operation is the one you expect.",
            location=owner,
            parameters={"fleet": owner, "items": items},
        )


PLUGIN = FleetPlugin()
