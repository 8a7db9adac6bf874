"""One duration grammar everywhere a user writes a duration.

A SyncPolicy window, the daemon's duration flags and FLEETWARD_* variables, its
config file, the CLI's --lock-timeout and the HTTP API's arguments.timeout all
read `1h30m`, `500ms`, `PT2H` and a bare number of seconds alike; where a place
needs a narrower range it refuses with a range message, never "not a duration".
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from daemon_support import (  # noqa: F401  (ws_fixture: a pytest fixture)
    DaemonProcess,
    Workspace,
    http,
    module_daemon,
    summary_of,
    ws_fixture,
)
from pydantic import ValidationError

from fleetward.durations import FORMS, check_range, format_duration, parse_duration
from fleetward.kinds.sync_policy import Schedule

# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1m30s", 90),
        ("1s500ms", 1.5),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400),
        ("1h 30m", 5400),
        ("30 s", 30),
        (" 10m ", 600),
        ("30", 30),
        ("1.5", 1.5),
        ("0", 0),
        ("PT2H", 7200),
        ("PT1H30M", 5400),
        ("P1DT1H", 90000),
        ("p7d", 604800),
        ("PT0.5S", 0.5),
        (45, 45),
        (2.5, 2.5),
        (0, 0),
        ("2 hours", None),
        ("2H", None),
        ("5min", None),
        ("30m1h", None),
        ("1h1h", None),
        ("1h-30m", None),
        ("-1h", None),
        ("", None),
        ("h", None),
        ("P", None),
        ("PT", None),
        ("1e3", None),
        (-5, None),
        (True, None),
        (None, None),
        ([30], None),
        (math.nan, None),
        (math.inf, None),
        (10**400, None),
        ("9" * 400 + "s", None),
    ],
)
def test_the_grammar(text: Any, seconds: float | None) -> None:
    if seconds is not None:
        assert parse_duration(text) == pytest.approx(seconds)
        return
    with pytest.raises(ValueError, match="duration|negative|number") as refused:
        parse_duration(text)
    assert len(str(refused.value)) < 160  # a huge input is not quoted back whole
    if isinstance(text, str) and len(text) < 20:
        assert FORMS in str(refused.value)


def test_a_range_check_is_its_own_message() -> None:
    assert check_range("10m", 600, minimum=1) == 600
    with pytest.raises(ValueError, match=r"'500ms' is too short: at least 1s"):
        check_range("500ms", 0.5, minimum=1)
    with pytest.raises(ValueError, match=r"'P8D' is too long: at most 7d"):
        check_range("P8D", 8 * 86400, maximum=7 * 86400)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5400, "1h30m"), (0.5, "500ms"), (60, "1m"), (0, "0s"), (90061, "1d1h1m1s")],
)
def test_format_duration_writes_what_the_grammar_reads(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# -- every entry point: 1h30m and 500ms ------------------------------------------------------


def test_a_sync_policy_window_reads_1h30m_and_refuses_500ms_as_out_of_range() -> None:
    def window(duration: str) -> Schedule:
        return Schedule(type="WINDOW", cron="0 2 * * *", duration=duration)

    assert window("1h30m").seconds == 5400
    with pytest.raises(ValidationError) as refused:
        window("500ms")
    (error,) = refused.value.errors()
    assert error["ctx"]["error"] == "Duration out of range"
    assert "'500ms' is too short: at least 1s" in error["ctx"]["reason"]


DAEMON_DURATIONS = ("--interval", "--git-timeout", "--ready-max-age", "--operation-timeout")


def test_the_daemon_flags_and_variables_read_1h30m(ws: Workspace) -> None:
    repo, _ = ws.repo()
    flags = [arg for flag in DAEMON_DURATIONS for arg in (flag, "1h30m")]
    done = ws.fleetward(
        "daemon", "--once", "--source", str(repo.root), "--state-dir", "state", *flags,
        env={"FLEETWARD_LOCK_TIMEOUT": "1h30m"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert summary_of(ws.path("state"))["daemon"]["interval"] == 5400


@pytest.mark.parametrize("flag", DAEMON_DURATIONS)
def test_the_daemon_refuses_500ms_where_a_second_is_the_least_that_works(
    ws: Workspace, flag: str
) -> None:
    done = ws.fleetward("daemon", "--once", "--state-dir", "state", flag, "500ms")
    assert done.returncode == 2, done.stderr
    assert "'500ms' is too short: at least 1s" in done.stderr
    assert "Traceback" not in done.stderr
    assert not ws.path("state").exists()


def test_the_lock_timeout_reads_500ms_and_1h30m(ws: Workspace) -> None:
    repo, _ = ws.repo()
    for value in ("500ms", "1h30m"):
        done = ws.fleetward(
            "plan", "--source", str(repo.root), "--state-dir", "state", "--lock-timeout", value
        )
        assert done.returncode == 0, done.stderr


def test_the_config_file_reads_1h30m_and_refuses_500ms_with_the_range_message(
    ws: Workspace,
) -> None:
    repo, _ = ws.repo()
    good = ws.path("good.yaml")
    good.write_text(
        f"source: {repo.root}\nstate-dir: state\nonce: true\n"
        "interval: 1h30m\ngit-timeout: 1h30m\nready-max-age: 1h30m\n"
        "operation-timeout: 1h30m\nlock-timeout: 500ms\n"
    )
    done = ws.fleetward("daemon", "--config", str(good))
    assert done.returncode == 0, done.stderr
    assert summary_of(ws.path("state"))["daemon"]["interval"] == 5400

    bad = ws.path("bad.yaml")
    bad.write_text("state-dir: state-bad\noperation-timeout: 500ms\n")
    done = ws.fleetward("daemon", "--once", "--config", str(bad))
    assert done.returncode == 1, done.stderr
    assert "bad.yaml:2:20" in done.stderr
    assert "'500ms' is too short: at least 1s" in done.stderr
    assert not ws.path("state-bad").exists()


TOKEN = "token-of-the-operator"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with module_daemon(tmp_path_factory.mktemp("durations"), api_token=TOKEN) as daemon:
        yield daemon


@pytest.mark.parametrize(("timeout", "seconds"), [("1h30m", 5400), ("500ms", 0.5), ("PT2H", 7200)])
def test_the_http_timeout_argument_reads_the_same_grammar(
    api: DaemonProcess, timeout: str, seconds: float
) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    end = start + dt.timedelta(hours=2)
    body = {
        "operation_type": "CONVERGE",
        "schedule_type": "WINDOW",  # tomorrow: the operation waits, and its timeout is kept
        "schedule_args": {"start": start.isoformat(), "end": end.isoformat()},
        "arguments": {"timeout": timeout},
    }
    reply = http(
        "POST",
        api.url + "/v0/operations/",
        body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert reply.status == 201, reply.text
    assert reply.json()["content"]["arguments"]["timeout"] == seconds


def test_the_http_timeout_refuses_what_is_no_duration(api: DaemonProcess) -> None:
    body = {"operation_type": "CONVERGE", "arguments": {"timeout": "2 hours"}}
    reply = http(
        "POST",
        api.url + "/v0/operations/",
        body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert reply.status == 400, reply.text
    assert "1h30m" in reply.text


@pytest.mark.parametrize("maximum", [7 * 24 * 3600.0, 1.0, 90.0, 1.5 * 86400])
def test_every_text_the_bounded_pattern_allows_the_grammar_reads_within_the_bound(
    maximum: float,
) -> None:
    """The HTTP schema states `bounded_pattern`: a text it allows is never refused."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from fleetward.durations import bounded_pattern

    pattern = bounded_pattern(maximum)

    @given(st.from_regex(re.compile(pattern), fullmatch=True))
    @settings(max_examples=300, deadline=None)
    def read_within_the_bound(text: str) -> None:
        assert 0 < parse_duration(text) <= maximum, text

    read_within_the_bound()
    assert not re.fullmatch(pattern, "0") and not re.fullmatch(pattern, "0.0s")


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("1h30m", True), ("1d12h", True), ("PT2H", True), ("P1DT12H", True), ("pt1h30m", True),
        ("500ms", True), ("0.5 h", True), (" 90s ", True), ("168h", True), ("7d", True),
        ("6d23h59m59s999ms", True), ("604800", True),
        ("169h", False), ("7d1s", False), ("P8D", False), ("604801", False), ("0s", False),
        ("P1DT", False), ("2 hours", False), ("30m1h", False),
    ],
)  # fmt: skip
def test_the_http_timeout_pattern_is_the_grammar_within_seven_days(
    text: str, allowed: bool
) -> None:
    import re

    from fleetward.http.contract import TIMEOUT_PATTERN

    assert bool(re.fullmatch(TIMEOUT_PATTERN, text)) is allowed
