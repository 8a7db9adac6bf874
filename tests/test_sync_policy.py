"""SyncPolicy: the manifest kind, its selectors, its cron windows, and device queries.

Load-time mistakes run the real CLI (`fleetward validate | plan | apply`, in-process
through click's CliRunner: the process boundary is test_bad_input's) over a plain
directory whose good revision is already applied: each must exit 1
with the problem at `manifests/<file>:line:column`, print no traceback, and leave
the state directory as it was. Selectors, windows and queries are pure values and
are tested directly.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support import isolated_env, run_cli

from fleetward.kinds import OBJECT_KINDS, REGISTRY
from fleetward.kinds import sync_policy as sp
from fleetward.kinds.sync_policy import (
    LabelRequirement,
    Schedule,
    Selector,
    SyncPolicySpec,
)
from fleetward.policy import (
    DeviceQuery,
    DeviceQueryError,
    WindowState,
    parse_device_query,
    window_state,
)
from fleetward.policy import windows as policy_windows

UTC = dt.UTC

# -- running the CLI ------------------------------------------------------------------

HEADER = "apiVersion: fleetward/v1\nkind: SyncPolicy\nmetadata:\n  name: nightly\nspec:\n"
# The spec's first line is line 6 of a policy file written with `policy()`.

FLEET = """\
apiVersion: fleetward/v1
kind: Fleet
metadata:
  name: north-yard
  labels: {tier: production}
spec:
  assets:
""" + "".join(f"    - externalAssetId: TRK-{i}\n" for i in range(1, 11))

GOOD_POLICY = """\
  selector:
    kinds: [Fleet]
    matchLabels: {tier: production}
  schedule:
    type: WINDOW
    cron: "0 2 * * *"
    duration: 2h
    timezone: Europe/Berlin
  approval: manual
  maxStopFraction: 0.1
"""


def policy(spec: str) -> str:
    return HEADER + spec


def fleetward(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    done = run_cli(args, env=isolated_env(home))
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, stream
    return done


class Tree:
    """A plain manifest directory and a state directory beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "tree" / "manifests"
        self.state = root / "state"
        self.home = root / "home"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)

    def write(self, name: str, text: str | None) -> None:
        path = self.manifests / name
        if text is None:
            path.unlink()
        else:
            path.write_text(text, encoding="utf-8")

    def run(self, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        where = ["--no-git", "--source", str(self.root / "tree")]
        state = [] if command == "validate" else ["--state-dir", str(self.state)]
        return fleetward(command, *where, *state, *extra, home=self.home)

    def run_all(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Several commands, one after the other (they only read, or fail before writing)."""
        return [self.run(command, *extra) for command, *extra in commands]

    def state_bytes(self) -> dict[str, bytes]:
        # The parsed-manifest cache is not the store: a refused revision may warm it.
        skip = {"state.lock", "operations.json", "operations.lock", "cache"}
        return {p.name: p.read_bytes() for p in sorted(self.state.iterdir()) if p.name not in skip}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree with a fleet and a good policy, applied once."""
    tree = Tree(tmp_path_factory.mktemp("applied"))
    tree.write("fleet.yaml", FLEET)
    tree.write("policy.yaml", policy(GOOD_POLICY))
    done = tree.run("apply", "--auto-approve")
    assert done.returncode == 0, done.stderr
    return tree.root


@pytest.fixture
def tree(applied: Path, tmp_path: Path) -> Tree:
    shutil.copytree(applied, tmp_path, dirs_exist_ok=True)
    return Tree(tmp_path)


# (spec lines, location "line:column" in policy.yaml, texts the problem must show)
BAD_SPECS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cron-out-of-range": (
        '  schedule: {type: WINDOW, cron: "61 2 * * *", duration: 2h}\n',
        "6:34",
        ("Invalid cron expression", "the maximum value (59)"),
    ),
    "cron-field-count": (
        "  schedule:\n    type: WINDOW\n    cron: 0 2 * *\n    duration: 2h\n",
        "8:11",
        ("Invalid cron expression", "expected 5"),
    ),
    "cron-macro": (
        '  schedule: {type: WINDOW, cron: "@daily", duration: 2h}\n',
        "6:34",
        ("Invalid cron expression", "got 1, expected 5"),
    ),
    "cron-bad-weekday": (
        "  schedule:\n    type: WINDOW\n    cron: 0 2 * * 8\n    duration: 2h\n",
        "8:11",
        ("Invalid cron expression", "0-7 (0 and 7 are Sunday)"),
    ),
    "cron-never-fires": (
        "  schedule:\n    type: WINDOW\n    cron: 0 0 30 2 *\n    duration: 2h\n",
        "8:11",
        ("Cron expression never fires", "30 February"),
    ),
    "unknown-timezone": (
        "  schedule: {timezone: Europe/Berlim}\n",
        "6:24",
        ("Unknown time zone 'Europe/Berlim'", 'Did you mean "Europe/Berlin"?'),
    ),
    "window-without-cron": (
        "  schedule:\n    type: WINDOW\n    duration: 2h\n",
        "7:5",
        ("WINDOW schedule without cron",),
    ),
    "window-without-duration": (
        '  schedule:\n    type: WINDOW\n    cron: "0 2 * * *"\n',
        "7:5",
        ("WINDOW schedule without duration",),
    ),
    "immediate-with-cron": (
        '  schedule:\n    type: IMMEDIATE\n    cron: "0 2 * * *"\n',
        "8:11",
        ("cron on an IMMEDIATE schedule",),
    ),
    "default-immediate-with-duration": (
        "  schedule:\n    duration: 2h\n",
        "7:15",
        ("duration on an IMMEDIATE schedule",),
    ),
    "duration-unreadable": (
        '  schedule: {type: WINDOW, cron: "0 2 * * *", duration: 2 hours}\n',
        "6:57",
        ("Invalid duration", "'2 hours' is not a duration"),
    ),
    "duration-too-long": (
        '  schedule: {type: WINDOW, cron: "0 2 * * *", duration: P8D}\n',
        "6:57",
        ("Duration out of range", "at most 7 days"),
    ),
    "duration-zero": (
        '  schedule: {type: WINDOW, cron: "0 2 * * *", duration: 0m}\n',
        "6:57",
        ("Duration out of range",),
    ),
    "unknown-selector-kind": (
        "  selector:\n    kinds: [Fleet, Flet]\n",
        "7:20",
        ("Unknown manifest kind 'Flet'", 'Did you mean "Fleet"?'),
    ),
    "policy-selects-policies": (
        "  selector:\n    kinds: [SyncPolicy]\n",
        "7:13",
        ("A SyncPolicy cannot select SyncPolicy",),
    ),
    "label-operator": (
        "  selector:\n    matchExpressions:\n      - {key: tier, operator: in, values: [a]}\n",
        "8:31",
        ("Invalid value for spec.selector.matchExpressions[0].operator", 'Did you mean "In"?'),
    ),
    "in-without-values": (
        "  selector:\n    matchExpressions:\n      - key: tier\n        operator: NotIn\n",
        "8:9",
        ("NotIn needs values",),
    ),
    "exists-with-values": (
        (
            "  selector:\n    matchExpressions:\n"
            "      - {key: tier, operator: Exists, values: [production]}\n"
        ),
        "8:39",
        ("Exists takes no values",),
    ),
    "label-value-not-text": (
        "  selector:\n    matchLabels: {tier: 3}\n",
        "7:25",
        ("Invalid value for spec.selector.matchLabels.tier", "Quote the value"),
    ),
    "stop-fraction-above-one": (
        "  maxStopFraction: 1.5\n",
        "6:20",
        ("maxStopFraction out of range", "got 1.5"),
    ),
    "stop-fraction-negative": (
        "  maxStopFraction: -0.1\n",
        "6:20",
        ("maxStopFraction out of range",),
    ),
    "stop-fraction-nan": (  # refused by the YAML reader, before any range check
        "  maxStopFraction: .nan\n",
        "6:20",
        ("Non-finite number '.nan'", "no JSON form", "quote it if a string was meant"),
    ),
    "min-stop-count-negative": (
        "  minStopCount: -1\n",
        "6:17",
        ("minStopCount out of range", "got -1"),
    ),
    "min-stop-count-not-a-count": (
        "  minStopCount: 2.5\n",
        "6:17",
        ("Invalid value for spec.minStopCount",),
    ),
    "misspelt-field": (
        "  maxStopFration: 0.5\n",
        "6:3",
        ('Unknown field "maxStopFration"', 'Did you mean "maxStopFraction"?'),
    ),
    "approval-value": (
        "  approval: manually\n",
        "6:13",
        ("Invalid value for spec.approval", 'Did you mean "manual"?'),
    ),
}


def _reported(stderr: str) -> list[str]:
    """The rendered problems, one text block each (starting at its `Error:` line)."""
    blocks: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("Error: "):
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


THROUGH_APPLY = frozenset(sorted(BAD_SPECS)[::6])


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_policy_is_a_located_error_and_changes_nothing(case: str, tree: Tree) -> None:
    spec, where, says = BAD_SPECS[case]
    tree.write("policy.yaml", policy(spec))
    before = tree.state_bytes()
    location = f"--> manifests/policy.yaml:{where}"
    # Every case through validate; plan and apply share its loading and checks, so a
    # few cases (one per check family) run them too: the module stays fast in CI.
    commands: list[tuple[str, ...]] = [("validate",)]
    if case in THROUGH_APPLY:
        commands += [("plan",), ("apply", "--auto-approve")]
    for (command, *_), done in zip(commands, tree.run_all(*commands), strict=True):
        assert done.returncode == 1, f"{command}: exit {done.returncode}\n{done.stderr}"
        blocks = _reported(done.stderr)
        assert len(blocks) == 1, done.stderr
        (block,) = blocks
        assert location in block, f"{command}: expected {location}\n{done.stderr}"
        for text in says:
            assert text in block, f"{command}: {text!r} missing\n{done.stderr}"
        assert "Reason: " in block and "Resolution: " in block
    assert tree.state_bytes() == before


def test_every_mistake_in_one_file_is_reported_at_once(tree: Tree) -> None:
    spec = (
        "  selector:\n    kinds: [Flet]\n"
        "  schedule:\n    type: WINDOW\n    timezone: Mars/Olympus\n"
        "  maxStopFraction: 2\n"
    )
    tree.write("policy.yaml", policy(spec))
    done = tree.run("validate")
    assert done.returncode == 1
    assert [b.splitlines()[0] for b in _reported(done.stderr)] == [
        "Error: Unknown manifest kind 'Flet'",
        "Error: WINDOW schedule without cron",
        "Error: WINDOW schedule without duration",
        "Error: Unknown time zone 'Mars/Olympus'",
        "Error: maxStopFraction out of range",
    ]


# -- the kind: plan, apply, remove ---------------------------------------------------------


def test_a_policy_plans_as_a_create_and_its_removal_deletes_it(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.write("fleet.yaml", FLEET)
    tree.write("policy.yaml", policy(GOOD_POLICY))
    shown = tree.run("plan")
    assert shown.returncode == 0, shown.stderr
    assert any(
        line.strip().startswith("+ SyncPolicy/nightly") for line in shown.stdout.splitlines()
    ), shown.stdout
    assert tree.run("apply", "--auto-approve").returncode == 0

    state = json.loads((tree.state / "state.json").read_text())
    (stored,) = [o for o in _objects(state) if o["key"] == "SyncPolicy/nightly"]
    # Stored camelCase, as written, and valid again when read back.
    assert stored["spec"]["maxStopFraction"] == 0.1
    assert stored["spec"]["selector"]["matchLabels"] == {"tier": "production"}
    assert stored["spec"]["schedule"]["cron"] == "0 2 * * *"
    assert SyncPolicySpec.model_validate(stored["spec"]).schedule.seconds == 7200

    tree.write("policy.yaml", None)
    # Deleting the only policy is 100 % of the SyncPolicy objects, but one object is
    # under the mass-stop floor: no --allow-mass-stop needed (policies never govern
    # policies, so no policy's maxStopFraction applies to them).
    removal = tree.run("plan", "--json")
    assert removal.returncode == 0, removal.stderr
    changes = {c["address"]: c["action"] for c in json.loads(removal.stdout)["changes"]}
    assert changes == {"SyncPolicy/nightly": "delete"}
    assert json.loads(removal.stdout)["guards"] == []
    assert tree.run("apply", "--auto-approve").returncode == 0
    state = json.loads((tree.state / "state.json").read_text())
    assert "SyncPolicy/nightly" not in {o["key"] for o in _objects(state)}


def _objects(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    objects = state["objects"]
    return list(objects.values()) if isinstance(objects, dict) else list(objects)


def test_the_kind_is_registered_last_and_owns_one_object_kind() -> None:
    assert list(REGISTRY)[-1] == "SyncPolicy"
    assert OBJECT_KINDS["SyncPolicy"].on_removal.value == "delete"


# -- selectors over documents ------------------------------------------------------------

PROD = {"tier": "production", "region": "north"}


def req(key: str, operator: str, *values: str) -> LabelRequirement:
    return LabelRequirement.model_validate(
        {"key": key, "operator": operator, "values": list(values)}
    )


@pytest.mark.parametrize(
    ("selector", "kind", "name", "labels", "picked"),
    [
        (Selector(), "TaskBatch", "anything", {}, True),
        (Selector(), "Fleet", "north-yard", None, True),
        (Selector(kinds=["Fleet"]), "Fleet", "north-yard", PROD, True),
        (Selector(kinds=["Fleet"]), "AssetRule", "north-yard", PROD, False),
        (Selector(names=["prod-*"]), "Fleet", "prod-east", {}, True),
        (Selector(names=["prod-*"]), "Fleet", "staging-east", {}, False),
        (Selector(names=["prod-?", "edge"]), "Fleet", "edge", {}, True),
        (Selector(names=["prod-*"]), "Fleet", "PROD-east", {}, False),  # case-sensitive
        (Selector(matchLabels={"tier": "production"}), "Fleet", "a", PROD, True),
        (Selector(matchLabels={"tier": "staging"}), "Fleet", "a", PROD, False),
        (
            Selector(matchExpressions=[req("tier", "In", "production", "x")]),
            "Fleet",
            "a",
            PROD,
            True,
        ),
        (Selector(matchExpressions=[req("tier", "In", "x")]), "Fleet", "a", PROD, False),
        (Selector(matchExpressions=[req("tier", "In", "x")]), "Fleet", "a", {}, False),
        (Selector(matchExpressions=[req("tier", "NotIn", "x")]), "Fleet", "a", PROD, True),
        (
            Selector(matchExpressions=[req("tier", "NotIn", "production")]),
            "Fleet",
            "a",
            PROD,
            False,
        ),
        (Selector(matchExpressions=[req("tier", "NotIn", "production")]), "Fleet", "a", {}, True),
        (Selector(matchExpressions=[req("region", "Exists")]), "Fleet", "a", PROD, True),
        (Selector(matchExpressions=[req("zone", "Exists")]), "Fleet", "a", PROD, False),
        (Selector(matchExpressions=[req("zone", "DoesNotExist")]), "Fleet", "a", PROD, True),
        (Selector(matchExpressions=[req("tier", "DoesNotExist")]), "Fleet", "a", PROD, False),
        # Every condition must hold (AND), also across kinds, names and labels.
        (
            Selector(kinds=["Fleet"], names=["north-*"], matchLabels={"region": "north"}),
            "Fleet",
            "north-yard",
            PROD,
            True,
        ),
        (
            Selector(kinds=["Fleet"], names=["north-*"], matchLabels={"region": "south"}),
            "Fleet",
            "north-yard",
            PROD,
            False,
        ),
        # Labels unknown (the document left Git): label conditions count as satisfied,
        # kinds and names still decide.
        (Selector(matchLabels={"tier": "staging"}), "Fleet", "a", None, True),
        (Selector(matchExpressions=[req("tier", "In", "x")]), "Fleet", "a", None, True),
        (Selector(kinds=["Workflow"], matchLabels={"t": "x"}), "Fleet", "a", None, False),
        (Selector(names=["b*"], matchLabels={"t": "x"}), "Fleet", "a", None, False),
    ],
)
def test_selector_matches(
    selector: Selector, kind: str, name: str, labels: dict[str, str] | None, picked: bool
) -> None:
    assert selector.matches(kind, name, labels) is picked


def test_selector_kinds_are_the_manifest_kinds_but_not_syncpolicy() -> None:
    kinds = [
        "Fleet",
        "AssetRule",
        "TaskBatch",
        "Workflow",
        "StreamSet",
        "Field",
        "TaskType",
        "User",
    ]
    assert Selector(kinds=kinds).kinds == kinds
    for bad in (["SyncPolicy"], ["Asset"], ["fleet"]):
        with pytest.raises(ValidationError):
            Selector(kinds=bad)


def test_spec_defaults() -> None:
    spec = SyncPolicySpec()
    assert (spec.approval, spec.maxStopFraction, spec.suspend) == ("auto", 0.2, False)
    assert spec.schedule.type == "IMMEDIATE" and spec.selector == Selector()
    assert SyncPolicySpec(maxStopFraction=0).maxStopFraction == 0.0
    assert SyncPolicySpec(maxStopFraction=1).maxStopFraction == 1.0


# -- schedules ----------------------------------------------------------------------


def window(cron: str, duration: str, timezone: str = "UTC") -> Schedule:
    return Schedule(type="WINDOW", cron=cron, duration=duration, timezone=timezone)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("2h", 7200),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("PT2H", 7200),
        ("PT1H30M", 5400),
        ("P1DT1H", 90000),
        ("7d", 604800),
        ("P7D", 604800),
        ("2", 2),  # a bare number is seconds, as everywhere else (fleetward.durations)
        ("2 h", 7200),
        ("1s", 1),
    ],
)
def test_durations(duration: str, seconds: float) -> None:
    assert window("0 2 * * *", duration).seconds == seconds


@pytest.mark.parametrize(
    "duration", ["", "h", "PT", "P", "-1h", "1h-30m", "8d", "0s", "PT0.5S", "500ms", "2H"]
)
def test_bad_durations(duration: str) -> None:
    with pytest.raises(ValidationError):
        window("0 2 * * *", duration)


def test_describe() -> None:
    assert Schedule().describe() == "IMMEDIATE"
    assert Schedule().seconds is None
    nightly = window("0 2 * * *", "2h", "Europe/Berlin")
    assert nightly.describe() == "WINDOW 0 2 * * * for 2h (Europe/Berlin)"
    assert window("0 2 * * *", "PT90M").describe() == "WINDOW 0 2 * * * for 1h30m (UTC)"


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),  # crontab: Monday to Friday (APScheduler 3 would shift it)
        ("0", "sun"),
        ("7", "sun"),
        ("6,0", "sun,sat"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("SAT,sun", "sun,sat"),
        ("1-5/2", "mon,wed,fri"),
    ],
)
def test_crontab_weekdays_mean_what_crontab_says(field: str, weekdays: str) -> None:
    assert sp.crontab_weekdays(field) == weekdays


def test_weekday_numbers_follow_crontab_in_windows() -> None:
    """`1-5` is Monday to Friday: Saturday 2025-06-07 has no window, Monday 06-09 has."""
    workdays = window("0 2 * * 1-5", "1h")
    saturday = dt.datetime(2025, 6, 7, 2, 30, tzinfo=UTC)
    assert window_state(workdays, saturday) == WindowState(
        False, dt.datetime(2025, 6, 9, 2, tzinfo=UTC), dt.datetime(2025, 6, 9, 3, tzinfo=UTC)
    )
    assert window_state(workdays, dt.datetime(2025, 6, 9, 2, 30, tzinfo=UTC)).open


# -- windows ------------------------------------------------------------------------


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


NIGHTLY = window("0 2 * * *", "2h")


def test_immediate_is_always_open() -> None:
    assert window_state(Schedule(), at("2025-01-01T00:00")) == WindowState(True, None, None)


@pytest.mark.parametrize(
    ("now", "state"),
    [
        ("2025-06-01T01:59:59", (False, "2025-06-01T02:00", "2025-06-01T04:00")),
        ("2025-06-01T02:00", (True, "2025-06-01T02:00", "2025-06-01T04:00")),  # inclusive start
        ("2025-06-01T03:59:59.999999", (True, "2025-06-01T02:00", "2025-06-01T04:00")),
        ("2025-06-01T04:00", (False, "2025-06-02T02:00", "2025-06-02T04:00")),  # exclusive end
        ("2025-06-01T12:00", (False, "2025-06-02T02:00", "2025-06-02T04:00")),
    ],
)
def test_window_is_half_open(now: str, state: tuple[bool, str, str]) -> None:
    is_open, opens, closes = state
    assert window_state(NIGHTLY, at(now)) == WindowState(is_open, at(opens), at(closes))


def test_answers_are_utc_whatever_zone_now_is_given_in() -> None:
    now = dt.datetime(2025, 6, 1, 4, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 02:30 UTC
    state = window_state(NIGHTLY, now)
    assert state.open and state.opens_at == at("2025-06-01T02:00")
    assert state.opens_at is not None and state.opens_at.tzinfo is UTC


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_state(NIGHTLY, dt.datetime(2025, 6, 1, 2, 30))


def test_time_zones() -> None:
    """02:00 in Berlin is 00:00 UTC in summer and 01:00 UTC in winter; in New York 06:00/07:00."""
    berlin = window("0 2 * * *", "2h", "Europe/Berlin")
    assert window_state(berlin, at("2025-07-01T00:30")) == WindowState(
        True, at("2025-07-01T00:00"), at("2025-07-01T02:00")
    )
    assert window_state(berlin, at("2025-01-15T00:30")) == WindowState(
        False, at("2025-01-15T01:00"), at("2025-01-15T03:00")
    )
    new_york = window("0 2 * * *", "30m", "America/New_York")
    assert window_state(new_york, at("2025-07-01T06:10")).open
    assert not window_state(new_york, at("2025-01-15T06:10")).open
    assert window_state(new_york, at("2025-01-15T07:10")).open


def test_every_minute_with_a_longer_window_is_always_open() -> None:
    """Overlapping windows: open from the earliest covering fire time to the latest + duration."""
    every_minute = window("* * * * *", "5m")
    assert window_state(every_minute, at("2025-06-01T10:02:30")) == WindowState(
        True, at("2025-06-01T09:58"), at("2025-06-01T10:07")
    )
    assert window_state(every_minute, at("2025-06-01T10:02")) == WindowState(
        True, at("2025-06-01T09:58"), at("2025-06-01T10:07")
    )
    short = window("* * * * *", "30s")
    assert window_state(short, at("2025-06-01T10:02:29")).open
    assert window_state(short, at("2025-06-01T10:02:30")) == WindowState(
        False, at("2025-06-01T10:03"), at("2025-06-01T10:03:30")
    )
    week = window("* * * * *", "7d")
    assert window_state(week, at("2025-06-01T10:00:30")) == WindowState(
        True, at("2025-05-25T10:01"), at("2025-06-08T10:00")
    )


def test_overlapping_daily_windows() -> None:
    """Every 6 hours for 8 hours: at 07:00 both the 00:00 and 06:00 windows cover now."""
    overlapping = window("0 */6 * * *", "8h")
    assert window_state(overlapping, at("2025-06-01T07:00")) == WindowState(
        True, at("2025-06-01T00:00"), at("2025-06-01T14:00")
    )
    assert window_state(overlapping, at("2025-06-01T05:00")) == WindowState(
        True,
        at("2025-06-01T00:00"),
        at("2025-06-01T08:00"),  # 18:00's closed at 02:00
    )


def test_monthly_and_leap_day_windows() -> None:
    monthly = window("0 0 1 * *", "1d")
    assert window_state(monthly, at("2025-02-15T00:00")) == WindowState(
        False, at("2025-03-01T00:00"), at("2025-03-02T00:00")
    )
    leap = window("0 0 29 2 *", "1h")
    assert window_state(leap, at("2025-03-01T00:00")).opens_at == at("2028-02-29T00:00")


def test_a_cron_that_never_fires_is_closed_for_good_without_hanging() -> None:
    """Validation refuses 30 February; a schedule built around it is closed, never opening."""
    with pytest.raises(ValidationError, match="names no date that exists"):
        window("0 0 30 2 *", "1h")
    never = Schedule.model_construct(type="WINDOW", cron="0 0 30 2 *", duration="1h")
    assert window_state(never, at("2025-01-01T00:00")) == WindowState(False, None, None)


# The DST nights, Europe/Berlin, a window at 02:30 for 30 minutes.
#
# Autumn, 2025-10-26: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice — at 00:30 UTC
# (CEST) and at 01:30 UTC (CET). Decided: the window opens both times (what APScheduler
# reports), 00:30–01:00 and 01:30–02:00 UTC: a window is a permission to converge, so
# opening twice does no harm, and skipping either would make that night's answer depend
# on where one asks from.
#
# Spring, 2025-03-30: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist. Decided: no
# window that night (as APScheduler answers when asked from after the gap; asked from
# before it, it names a fire time that is not 02:30 on any clock, which we skip). The next
# window opens 2025-03-31 02:30 CEST = 00:30 UTC.
DST = window("30 2 * * *", "30m", "Europe/Berlin")
AUTUMN = [
    ("2025-10-25T23:59", False, "2025-10-26T00:30", "2025-10-26T01:00"),
    ("2025-10-26T00:30", True, "2025-10-26T00:30", "2025-10-26T01:00"),
    ("2025-10-26T00:59:59", True, "2025-10-26T00:30", "2025-10-26T01:00"),
    ("2025-10-26T01:00", False, "2025-10-26T01:30", "2025-10-26T02:00"),
    ("2025-10-26T01:29:59", False, "2025-10-26T01:30", "2025-10-26T02:00"),
    ("2025-10-26T01:30", True, "2025-10-26T01:30", "2025-10-26T02:00"),
    ("2025-10-26T02:00", False, "2025-10-27T01:30", "2025-10-27T02:00"),
]
SPRING = [
    ("2025-03-29T01:30", True, "2025-03-29T01:30", "2025-03-29T02:00"),  # 02:30 CET
    ("2025-03-29T23:00", False, "2025-03-31T00:30", "2025-03-31T01:00"),
    ("2025-03-30T00:59", False, "2025-03-31T00:30", "2025-03-31T01:00"),
    ("2025-03-30T01:00", False, "2025-03-31T00:30", "2025-03-31T01:00"),  # 03:00 CEST
    ("2025-03-30T01:30", False, "2025-03-31T00:30", "2025-03-31T01:00"),
    ("2025-03-31T00:30", True, "2025-03-31T00:30", "2025-03-31T01:00"),
]


@pytest.mark.parametrize(("now", "is_open", "opens", "closes"), AUTUMN + SPRING)
def test_dst_nights_in_berlin(now: str, is_open: bool, opens: str, closes: str) -> None:
    assert window_state(DST, at(now)) == WindowState(is_open, at(opens), at(closes))


@pytest.mark.parametrize(
    ("start", "cron"),
    [
        ("2025-10-25T22:00", "30 2 * * *"),
        ("2025-10-25T22:00", "*/15 * * * *"),
        ("2025-10-25T22:00", "0 2,3 * * *"),
        ("2025-03-29T22:00", "30 2 * * *"),
        ("2025-03-29T22:00", "0,30 2,3 * * *"),
    ],
)
def test_dst_nights_are_monotonic_and_sane(start: str, cron: str) -> None:
    """Minute by minute through each change-over night: a window is open exactly between its
    bounds, the bounds never go back in time, and every opening is a real wall time."""
    schedule = window(cron, "20m", "Europe/Berlin")
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    now, previous = at(start), None
    for _ in range(6 * 60):
        state = window_state(schedule, now)
        assert state.opens_at is not None and state.closes_at is not None
        assert state.closes_at - state.opens_at >= dt.timedelta(minutes=20)
        assert (state.opens_at <= now < state.closes_at) is state.open
        if not state.open:
            assert state.opens_at > now
        wall = state.opens_at.astimezone(berlin)
        minutes = cron.split()[0]
        allowed = range(0, 60, 15) if minutes == "*/15" else [int(m) for m in minutes.split(",")]
        assert wall.minute in allowed and wall.second == 0
        assert wall.astimezone(UTC).astimezone(berlin).replace(tzinfo=None) == wall.replace(
            tzinfo=None
        )
        if previous is not None:
            assert state.opens_at >= previous.opens_at  # type: ignore[operator]
        previous, now = state, now + dt.timedelta(minutes=1)


class _Lying:
    """A trigger that answers once with a fire time before the instant asked from."""

    def __init__(self, real: Any) -> None:
        self.real, self.lied = real, False

    def get_next_fire_time(self, previous: Any, now: dt.datetime) -> dt.datetime | None:
        if not self.lied:
            self.lied = True
            return now - dt.timedelta(hours=1)
        return self.real.get_next_fire_time(previous, now)  # type: ignore[no-any-return]


def test_a_fire_time_before_the_instant_asked_from_is_never_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = sp.cron_trigger("0 2 * * *", "UTC")
    monkeypatch.setattr(policy_windows, "cron_trigger", lambda cron, zone: _Lying(real))
    assert window_state(NIGHTLY, at("2025-06-01T12:00")) == WindowState(
        False, at("2025-06-02T02:00"), at("2025-06-02T04:00")
    )


# -- device queries ----------------------------------------------------------------

TRUCK = {
    "externalAssetId": "TRK-1",
    "attributes": {"make": "Volvo", "year": 2022, "tonnes": 40.0, "electric": False},
}


def test_empty_query_matches_everything() -> None:
    query = parse_device_query({})
    assert query == DeviceQuery() == parse_device_query(None)
    assert query.matches("Asset", "TRK-1", {}, TRUCK)
    assert query.matches("Workflow", "inspection-report", {"team": "x"}, {})


@pytest.mark.parametrize(
    ("body", "kind", "ident", "picked"),
    [
        ({"kinds": ["Asset"]}, "Asset", "TRK-1", True),
        ({"kinds": ["Asset"]}, "Task", "TRK-1", False),
        ({"kinds": ["Asset", "Task"]}, "Task", "t-1", True),
        ({"names": ["TRK-*"]}, "Asset", "TRK-1", True),
        ({"names": ["TRK-*"]}, "Asset", "VAN-1", False),
        ({"matchLabels": {"class": "heavy"}}, "Asset", "TRK-1", True),
        ({"matchLabels": {"class": "light"}}, "Asset", "TRK-1", False),
        (
            {"matchExpressions": [{"key": "class", "operator": "NotIn", "values": ["light"]}]},
            "Asset",
            "TRK-1",
            True,
        ),
        ({"matchExpressions": [{"key": "depot", "operator": "Exists"}]}, "Asset", "TRK-1", False),
        ({"attributes": {"make": "Volvo"}}, "Asset", "TRK-1", True),
        ({"attributes": {"make": "Scania"}}, "Asset", "TRK-1", False),
        ({"attributes": {"make": ["Scania", "Volvo"]}}, "Asset", "TRK-1", True),
        ({"attributes": {"year": 2022}}, "Asset", "TRK-1", True),
        ({"attributes": {"year": 2022.0}}, "Asset", "TRK-1", True),  # numbers by value
        ({"attributes": {"tonnes": 40}}, "Asset", "TRK-1", True),
        ({"attributes": {"year": "2022"}}, "Asset", "TRK-1", False),  # text is not a number
        ({"attributes": {"year": [2020, 2021]}}, "Asset", "TRK-1", False),
        ({"attributes": {"year": [2021, 2022]}}, "Asset", "TRK-1", True),
        ({"attributes": {"electric": False}}, "Asset", "TRK-1", True),
        ({"attributes": {"electric": 0}}, "Asset", "TRK-1", False),  # a boolean is not 0
        ({"attributes": {"year": True}}, "Asset", "TRK-1", False),
        ({"attributes": {"colour": "red"}}, "Asset", "TRK-1", False),  # no such attribute
        (
            {"kinds": ["Asset"], "names": ["TRK-*"], "attributes": {"make": "Volvo"}},
            "Asset",
            "TRK-1",
            True,
        ),
        (
            {"kinds": ["Asset"], "names": ["VAN-*"], "attributes": {"make": "Volvo"}},
            "Asset",
            "TRK-1",
            False,
        ),
    ],
)
def test_device_query_matches(body: dict[str, Any], kind: str, ident: str, picked: bool) -> None:
    query = parse_device_query(body)
    assert query.matches(kind, ident, {"class": "heavy"}, TRUCK) is picked


def test_an_object_without_attributes_never_matches_attributes() -> None:
    query = parse_device_query({"attributes": {"make": "Volvo"}})
    assert not query.matches("Workflow", "w", {}, {"name": "w"})
    assert not query.matches("Asset", "x", {}, {"attributes": None})
    assert parse_device_query({"attributes": {}}).matches("Workflow", "w", {}, {})


@pytest.mark.parametrize(
    ("body", "location", "says"),
    [
        ({"kind": ["Asset"]}, "operation_device_query.kind", 'Did you mean "kinds"?'),
        ({"matchLabel": {}}, "operation_device_query.matchLabel", 'Did you mean "matchLabels"?'),
        ({"kinds": ["Assets"]}, "operation_device_query.kinds[0]", 'Did you mean "Asset"?'),
        ({"kinds": ["Asset", "Fleet"]}, "operation_device_query.kinds[1]", "StreamMetadata"),
        ({"kinds": "Asset"}, "operation_device_query.kinds", "valid list"),
        ({"names": [1]}, "operation_device_query.names[0]", "valid string"),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "operation_device_query.matchExpressions[0].values",
            "In needs values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Has"}]},
            "operation_device_query.matchExpressions[0].operator",
            "DoesNotExist",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "valuse": []}]},
            "operation_device_query.matchExpressions[0].valuse",
            'Did you mean "values"?',
        ),
        ([], "operation_device_query", "must be a JSON object"),
        ("kinds=Asset", "operation_device_query", "must be a JSON object"),
    ],
)
def test_device_query_errors(body: Any, location: str, says: str) -> None:
    with pytest.raises(DeviceQueryError) as raised:
        parse_device_query(body)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.location == location
    assert says in error.message
    assert error.problem.location == location and error.problem.resolution
