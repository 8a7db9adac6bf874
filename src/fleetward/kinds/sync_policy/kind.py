"""SyncPolicy (seed 001): how and when the objects of selected documents converge.

A document becomes `SyncPolicy/<name>`. The spec's parts are modules of their own:
`selectors` (which documents), `schedule` (IMMEDIATE or cron WINDOWs); which policy
governs a change and whether its window is open are the engine's (`fleetward.policy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ValidationError

from fleetward.kinds.base import Document, KindPlugin, ObjectKind, Strict, declare
from fleetward.kinds.problems import PathProblem, YamlPath
from fleetward.kinds.sync_policy.schedule import Schedule
from fleetward.kinds.sync_policy.selectors import Selector
from fleetward.kinds.sync_policy.wording import located_problems, spec_error
from fleetward.model import Action, DesiredObject


def _max_stop_fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise spec_error(
            "maxStopFraction out of range",
            f"maxStopFraction is the share of the selected objects one plan may stop or "
            f"delete, between 0.0 and 1.0 (0.2 = 20%); got {value}.",
            "Use a number from 0.0 (never stop) to 1.0 (no limit).",
        )
    return value


def _min_stop_count(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise spec_error(
            "minStopCount out of range",
            "minStopCount is how many stopped or deleted objects a plan needs before the "
            f"maxStopFraction guard judges it, 0 or more; got {value}.",
            "Use 0 (the fraction applies to every plan) or a positive count; leave it out "
            "for the daemon's --min-stop-count.",
        )
    return value


class SyncPolicySpec(Strict):
    selector: Selector = Selector()
    schedule: Schedule = Schedule()
    approval: Literal["auto", "manual"] = "auto"
    maxStopFraction: Annotated[float, AfterValidator(_max_stop_fraction)] = 0.2
    # None: the --min-stop-count of the command or daemon that plans.
    minStopCount: Annotated[int | None, AfterValidator(_min_stop_count)] = None
    suspend: bool = False
    # Failure isolation for the documents it selects: an invalid one is held back at
    # its last applied version while the rest of the revision applies. None (unset) is
    # off, and leaves the stored spec as it was before the field existed.
    isolateFailures: bool | None = None


SYNC_POLICY = ObjectKind(
    name="SyncPolicy",
    id_field="metadata.name",
    on_removal=Action.DELETE,
    removal_reason="policy removed from manifests",
)


class SyncPolicyPlugin(KindPlugin):
    kind = "SyncPolicy"
    spec_model = SyncPolicySpec
    object_kinds = (SYNC_POLICY,)

    def schema_problems(
        self, exc: ValidationError, prefix: YamlPath, raw: Any
    ) -> list[PathProblem]:
        return located_problems(exc, prefix, SyncPolicySpec, "a SyncPolicy spec")

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        spec: SyncPolicySpec = document.spec
        yield declare(
            "SyncPolicy", document.name, spec.model_dump(exclude_none=True), document, path
        )


PLUGIN = SyncPolicyPlugin()
