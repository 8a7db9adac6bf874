"""Drift: a stored spec edited behind fleetward's back stays visible until reverted."""

from __future__ import annotations

import json
from pathlib import Path

from fleetward.applying import apply_plan
from fleetward.pipeline import SourceOptions, make_plan, resolve
from fleetward.planning import PlanOptions
from fleetward.store import STATE_FILE, TinyDBStore

FLEET = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {{name: yard}}
spec:
  prune: {prune}
  assets:
{assets}"""


def _manifests(root: Path, ids: list[str], prune: str = "stop") -> SourceOptions:
    (root / "manifests").mkdir(exist_ok=True)
    assets = "".join(
        f"    - externalAssetId: {i}\n      attributes: {{model: FH16}}\n" for i in ids
    )
    (root / "manifests" / "yard.yaml").write_text(FLEET.format(prune=prune, assets=assets))
    return SourceOptions(source=str(root), no_git=True)


def _apply(root: Path, store: TinyDBStore, ids: list[str], prune: str = "stop"):  # type: ignore[no-untyped-def]
    plan = make_plan(
        resolve(_manifests(root, ids, prune)), store.read(), PlanOptions(allow_mass_stop=True)
    )
    with store.lock(5):
        apply_plan(plan, store, "2026-01-01T00:00:00Z", str(store.state_dir))
    return plan


def _tamper(store: TinyDBStore, key: str, edit) -> None:  # type: ignore[no-untyped-def]
    path = store.state_dir / STATE_FILE
    data = json.loads(path.read_text())
    doc = next(d for d in data["objects"].values() if d["key"] == key)
    edit(doc["spec"])
    path.write_text(json.dumps(data))


def test_stopping_a_drifted_asset_keeps_the_drift_visible(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "state")
    _apply(tmp_path, store, ["A-1", "A-2", "A-3", "A-4", "A-5"])
    _tamper(store, "Asset/A-5", lambda spec: spec.update(hacked=True))
    plan = _apply(tmp_path, store, ["A-1", "A-2", "A-3", "A-4"])
    assert [(c.address, c.action.value) for c in plan.changes] == [("Asset/A-5", "stop")]
    stopped = store.read().objects["Asset/A-5"]  # type: ignore[index]
    assert stopped.state.value == "stopped"
    assert stopped.drifted, "the tampered spec must not become the applied truth"


def test_drift_that_drops_the_id_is_repaired_under_prune_forbid(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "state")
    _apply(tmp_path, store, ["A-1", "A-2"], prune="forbid")
    _tamper(store, "Asset/A-2", lambda spec: spec.pop("externalAssetId"))
    plan = make_plan(
        resolve(_manifests(tmp_path, ["A-1", "A-2"], "forbid")), store.read(), PlanOptions()
    )
    assert plan.errors == ()
    (change,) = plan.changes
    assert (change.address, change.action.value, change.reason) == ("Asset/A-2", "update", "drift")
