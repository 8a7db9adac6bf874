"""The daemon's HTTP API, fuzzed from its own /openapi.json (schemathesis).

One running daemon (real git, real HTTP, the API token configured) answers
every generated request — schema-valid ones and deliberately invalid ones —
and every answer must be documented: no 5xx, only the status codes, content
types and bodies the document declares, invalid data refused with a 4xx,
and the bearer token enforced where `security` says so.

Not checked: that every schema-valid request is *accepted*
(`positive_data_acceptance`). The API has rules a schema cannot say — a
window must end in the future and after its start, a `NotIn` label
expression needs values, a kind must exist — and answers them with a
located 400, which is what test_control_http.py checks.

Bounded (`max_examples` per operation) so the module runs in well under 30 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from daemon_support import DaemonProcess, module_daemon
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

TOKEN = "token-of-the-fuzzer"
SECRET = "secret-of-the-webhook"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # schemathesis speaks `requests`, which would send loopback traffic to a proxy from
    # the environment.
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.lower().endswith("_proxy"):
                patch.delenv(name)
        with module_daemon(
            tmp_path_factory.mktemp("fuzz"), api_token=TOKEN, webhook_secret=SECRET
        ) as daemon:
            yield daemon


@pytest.fixture(scope="module")
def api_schema(daemon: DaemonProcess) -> Any:
    return schemathesis.openapi.from_url(daemon.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: Any, daemon: DaemonProcess
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[positive_data_acceptance],
        timeout=10,
    )
    daemon.alive()  # and nothing it was sent took the daemon down
