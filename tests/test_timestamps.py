"""One time module: the clock, and instants as fleetward writes and reads them.

Every instant in files, API bodies and log lines is UTC ISO 8601 with `Z`, to the
second; task date-times keep milliseconds when they have any, JSON log lines
always. No other module reads the clock or formats an instant by hand.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from pathlib import Path

import pytest

import fleetward
from fleetward.daemon.logs import JSONFormatter, TextFormatter
from fleetward.kinds.tasks import end_time
from fleetward.timestamps import UTC, Precision, from_epoch, now, now_iso, parse_iso, to_iso

BERLIN = dt.timezone(dt.timedelta(hours=2))
SRC = Path(fleetward.__file__).resolve().parent


@pytest.mark.parametrize(
    ("moment", "precision", "text"),
    [
        (dt.datetime(2030, 1, 1, 22, 0, 0, tzinfo=UTC), "seconds", "2030-01-01T22:00:00Z"),
        (dt.datetime(2030, 1, 2, 0, 0, 0, tzinfo=BERLIN), "seconds", "2030-01-01T22:00:00Z"),
        (dt.datetime(2030, 1, 1, 22, 0, 0, 987654, tzinfo=UTC), "seconds", "2030-01-01T22:00:00Z"),
        (dt.datetime(2030, 1, 1, 22, 0, 0, tzinfo=UTC), "milliseconds", "2030-01-01T22:00:00.000Z"),
        (
            dt.datetime(2030, 1, 1, 22, 0, 0, 987654, tzinfo=UTC),
            "milliseconds",
            "2030-01-01T22:00:00.987Z",
        ),
        (dt.datetime(2030, 1, 1, 22, 0, 0, tzinfo=UTC), "auto", "2030-01-01T22:00:00Z"),
        (dt.datetime(2030, 1, 1, 22, 0, 0, 5000, tzinfo=UTC), "auto", "2030-01-01T22:00:00.005Z"),
        (dt.datetime(999, 1, 1, tzinfo=UTC), "seconds", "0999-01-01T00:00:00Z"),
    ],
)
def test_to_iso_writes_utc_with_z(moment: dt.datetime, precision: Precision, text: str) -> None:
    assert to_iso(moment, precision) == text


def test_none_stays_none() -> None:
    assert to_iso(None) is None
    assert from_epoch(None) is None


@pytest.mark.parametrize(
    "text", ["2030-01-01T22:00:00Z", "2030-01-01T23:00:00+01:00", "2030-01-01T22:00:00"]
)
def test_parse_iso_reads_what_fleetward_writes_and_takes_no_zone_as_utc(text: str) -> None:
    moment = parse_iso(text)
    assert moment == dt.datetime(2030, 1, 1, 22, tzinfo=UTC)
    assert to_iso(moment) == "2030-01-01T22:00:00Z"


def test_parse_iso_refuses_what_is_no_instant() -> None:
    with pytest.raises(ValueError):
        parse_iso("tomorrow")


def test_now_is_aware_utc_and_now_iso_is_its_text() -> None:
    before = now()
    text = now_iso()
    assert before.tzinfo is UTC
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    assert parse_iso(text) >= before.replace(microsecond=0)


def test_from_epoch() -> None:
    assert to_iso(from_epoch(0)) == "1970-01-01T00:00:00Z"


def test_log_lines_and_task_times_keep_their_formats() -> None:
    record = logging.LogRecord("fleetward", logging.INFO, __file__, 1, "reconcile", None, None)
    record.created = 1_900_000_000.25
    assert TextFormatter().format(record).startswith("2030-03-17T17:46:40Z info reconcile")
    assert json.loads(JSONFormatter().format(record))["time"] == "2030-03-17T17:46:40.250Z"
    assert end_time("2025-04-30T07:30:00Z", 90) == "2025-04-30T09:00:00Z"
    assert end_time("2025-04-30T07:30:00.250Z", 1.5) == "2025-04-30T07:31:30.250Z"


# What may read the clock or turn an instant into text by hand: this module only.
_BY_HAND = re.compile(r"datetime\.now\(|\.strftime\(|isoformat\(timespec=|\.fromtimestamp\(")


def test_no_other_module_reads_the_clock_or_formats_an_instant_by_hand() -> None:
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "timestamps.py"
        for n, line in enumerate(io.StringIO(path.read_text(encoding="utf-8")), 1)
        if _BY_HAND.search(line)
    ]
    assert found == []
