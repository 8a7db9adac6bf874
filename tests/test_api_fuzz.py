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

schemathesis is driven through its plain Python API (a Hypothesis strategy
per operation, `@given` inside the test), not through its pytest plugin:
the plugin rewrites pytest internals (`Function._nodeid`) and broke on
pytest 9.2, while strategies and `call_and_validate` do not touch pytest.
The plugin is switched off for the whole suite (`-p no:schemathesis` in
pyproject.toml). One test per operation of the document, so a failure
names the operation.

Bounded (`max_examples` per operation) so the module runs in well under 30 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from daemon_support import DaemonProcess, module_daemon
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from fleetward.http.openapi import OPENAPI

TOKEN = "token-of-the-fuzzer"
SECRET = "secret-of-the-webhook"
MAX_EXAMPLES = 25
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Every operation the daemon documents, as (METHOD, path): the document is a constant of
# the package, so the test ids exist before the daemon does.
OPERATIONS = [
    (method.upper(), path)
    for path, item in OPENAPI["paths"].items()
    for method in item
    if method in HTTP_METHODS
]


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
    """The document as the daemon serves it (not the constant): what a client sees."""
    return schemathesis.openapi.from_url(daemon.url + "/openapi.json")


def test_the_served_document_is_the_one_the_operations_come_from(daemon: DaemonProcess) -> None:
    assert daemon.get("/openapi.json").json() == json.loads(json.dumps(OPENAPI))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_documented_and_none_is_a_server_error(
    method: str, path: str, api_schema: Any, daemon: DaemonProcess
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answer_is_documented(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKEN}"},
            excluded_checks=[positive_data_acceptance],
            timeout=10,
        )
        daemon.alive()  # and nothing it was sent took the daemon down

    answer_is_documented()
