"""Prometheus metrics of DESIGN §7, computed at scrape time from the last run.

Everything but the duration histogram is a custom collector over `Health`, so
no value outlives the run that set it (no stale gauges), and nothing carries
an object id as a label. The registry is the daemon's own, with the process
and platform collectors (RSS, open fds, CPU) beside ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleetward import __version__
from fleetward.kinds import KIND_ORDER, OBJECT_KINDS
from fleetward.model import Action, ObjectState
from fleetward.observe.health import Health
from fleetward.operations import OperationState
from fleetward.policy import window_state
from fleetward.reporting import Reporter
from fleetward.runs import PHASES, RunReport
from fleetward.timestamps import now

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Runs take milliseconds (a warm no-op) to tens of seconds (a cold 100k-object plan).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics(Reporter):
    """The daemon's registry; as a `Reporter` it times every finished run's phases."""

    def __init__(self, health: Health) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double every counter for no use here
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.durations = Histogram(
            "fleetward_reconcile_duration_seconds",
            "Time spent in each phase of a reconcile (fetch, load, desire, plan, apply).",
            ["phase"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        for phase in PHASES:  # every phase present from the start, at zero
            self.durations.labels(phase)
        self.registry.register(_HealthCollector(health))

    def run_finished(self, report: RunReport) -> None:
        self.observe(report.phases)

    def observe(self, phases: Mapping[str, float]) -> None:
        for phase, seconds in phases.items():
            self.durations.labels(phase).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _HealthCollector(Collector):
    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterable[Metric]:
        h = self.health
        with h._lock:
            totals = dict(h.reconcile_total)
            counts = h.counts
            fetch_failures = h.fetch_failures_total
            last_success = h.last_success_at
            operations = dict(h.operations_by_state)
            manifest_errors = h.manifest_errors
            unverified = h.unverified_revisions_total
            held_documents = len(h.held_documents)
            planned = h.planned

        reconciles = CounterMetricFamily(
            "fleetward_reconcile",
            "Reconciles run, by result (success, failure, cancelled, timeout).",
            labels=["result"],
        )
        for result in ("success", "failure", "cancelled", "timeout"):
            reconciles.add_metric([result], totals.get(result, 0))
        yield reconciles

        objects = GaugeMetricFamily(
            "fleetward_objects",
            "Objects in the store after the last run, by kind and state.",
            labels=["kind", "state"],
        )
        kinds = sorted(set(OBJECT_KINDS) | {k for k, _ in counts.objects}, key=_kind_order)
        for kind in kinds:
            for state in ObjectState:
                objects.add_metric([kind, state.value], counts.objects.get((kind, state.value), 0))
        yield objects

        changes = GaugeMetricFamily(
            "fleetward_plan_changes",
            "Changes in the last plan, by action.",
            labels=["action"],
        )
        for action in Action:
            if action is not Action.NOOP:
                changes.add_metric([action.value], counts.changes.get(action.value, 0))
        yield changes

        yield GaugeMetricFamily(
            "fleetward_drift_objects",
            "Objects whose stored spec was changed outside fleetward and is not yet reverted.",
            value=counts.drift,
        )
        yield GaugeMetricFamily(
            "fleetward_manifest_errors",
            "Manifest errors in the revision the last run read (0 when it was valid).",
            value=manifest_errors,
        )
        yield GaugeMetricFamily(
            "fleetward_held_documents",
            "Documents failure isolation holds back at their last applied version in the "
            "revision the last plan read (0 when none, or isolation is off).",
            value=held_documents,
        )
        yield CounterMetricFamily(
            "fleetward_source_fetch_failures",
            "Runs that could not read the source (fetch, clone or open failed).",
            value=fetch_failures,
        )
        yield CounterMetricFamily(
            "fleetward_unverified_revisions",
            "Revisions refused by --verify-signatures (unsigned, untrusted key, bad "
            "signature, expired or revoked key), each counted once.",
            value=unverified,
        )
        yield GaugeMetricFamily(
            "fleetward_last_success_timestamp_seconds",
            "Unix time of the last successful reconcile (0 before the first).",
            value=last_success or 0.0,
        )
        ops = GaugeMetricFamily(
            "fleetward_operations",
            "Operations kept in the operation log, by state.",
            labels=["state"],
        )
        for op_state in OperationState:
            ops.add_metric([op_state.name], operations.get(op_state.name, 0))
        yield ops
        yield from _policy_metrics(planned)
        yield GaugeMetricFamily(
            "fleetward_leader",
            "1 while this daemon leads (fetches, plans and applies); 0 on a standby replica.",
            value=1 if h.role == "leader" else 0,
        )
        info = GaugeMetricFamily(
            "fleetward_build_info", "fleetward's version (always 1).", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info


def _policy_metrics(last: RunReport | None) -> Iterable[Metric]:
    """Windows, held changes and suspension: labels bounded by the number of SyncPolicies."""
    policies = last.policies if last is not None else {}
    window = GaugeMetricFamily(
        "fleetward_window_open",
        "1 while a WINDOW SyncPolicy's window is open, else 0 (policies of the last revision read).",
        labels=["policy"],
    )
    at = now()
    for name, policy in sorted(policies.items()):
        if policy.windowed:
            window.add_metric([name], 1 if window_state(policy.spec.schedule, at).open else 0)
    yield window
    held = GaugeMetricFamily(
        "fleetward_held_changes",
        "Changes of the last plan not applied, by the SyncPolicy holding them "
        '(policy="" for the daemon\'s own suspension).',
        labels=["policy"],
    )
    decision = last.decision if last is not None else None
    if decision is not None:
        for part in decision.held:
            held.add_metric([part.policy or ""], len(part.changes))
    yield held
    yield GaugeMetricFamily(
        "fleetward_suspended",
        "1 while the daemon is suspended (fleetward suspend): it plans but applies nothing.",
        value=1 if last is not None and last.suspension is not None else 0,
    )


def _kind_order(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.get(kind, len(KIND_ORDER)), kind)
