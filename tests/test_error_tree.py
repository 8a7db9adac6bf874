"""The exception tree: each error's retry role, and refusals that know nothing of HTTP.

Run errors are PermanentError (only a change fixes them) or TemporaryError
(they may pass as they are); the daemon's worker acts on that. Refusals of an
operator's request get their HTTP status from one table in http/, not from
the error.
"""

from __future__ import annotations

import inspect

import pytest

from fleetward import errors
from fleetward.errors import (
    FleetwardError,
    GuardBlocked,
    LockTimeout,
    ManifestError,
    OperationConflict,
    OperationNotFound,
    PermanentError,
    PlanError,
    RequestRefused,
    SourceError,
    StalePlanError,
    StoreError,
    TemporaryError,
    Unavailable,
    UsageError,
)
from fleetward.http.refusals import STATUS_OF_REFUSAL, refusal_status


@pytest.mark.parametrize(
    ("error", "role"),
    [
        (UsageError, PermanentError),
        (ManifestError, PermanentError),
        (PlanError, PermanentError),
        (GuardBlocked, PermanentError),
        (StalePlanError, PermanentError),
        (SourceError, TemporaryError),
        (StoreError, TemporaryError),
        (LockTimeout, TemporaryError),
    ],
)
def test_every_run_error_has_one_retry_role(
    error: type[FleetwardError], role: type[FleetwardError]
) -> None:
    other = TemporaryError if role is PermanentError else PermanentError
    assert issubclass(error, role) and not issubclass(error, other)
    found = error.one("what", "why", "how")
    assert isinstance(found, FleetwardError)
    if isinstance(found, TemporaryError):
        assert found.delay is None  # the backoff decides, unless the error knows better


def test_a_temporary_error_may_say_when_to_retry() -> None:
    problem = SourceError.one("Rate limited", "The server said: retry in 30 s.", "Wait.").problems
    assert SourceError(*problem, delay=30.0).delay == 30.0


@pytest.mark.parametrize(
    ("refusal", "status"),
    [(OperationNotFound, 404), (OperationConflict, 409), (Unavailable, 503)],
)
def test_a_refusal_gets_its_http_status_at_the_edge(
    refusal: type[RequestRefused], status: int
) -> None:
    refused = refusal.one("what", "why", "how", location="path.operationId", operationId="x")
    assert isinstance(refused, FleetwardError)
    assert not issubclass(refusal, PermanentError | TemporaryError)
    assert not hasattr(refused, "status")  # the error knows nothing of HTTP
    assert refused.problem.parameters == {"operationId": "x"}
    assert refusal_status(refused) == status


def test_every_refusal_has_a_status_and_every_error_is_drawn_in_the_tree() -> None:
    refusals = {
        cls
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, RequestRefused) and cls is not RequestRefused
    }
    assert refusals == set(STATUS_OF_REFUSAL)
    classes = [
        name
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, FleetwardError)
    ]
    tree = errors.__doc__ or ""
    branches = [line.split("── ")[-1] for line in tree.splitlines() if "── " in line]
    drawn = {branch.split()[0].split("(")[0] for branch in branches}
    drawn.add("FleetwardError")  # the root, drawn without a branch
    assert [name for name in classes if name not in drawn] == []
