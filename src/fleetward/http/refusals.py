"""The HTTP status of each refusal of an operator's request: the one place it is decided.

Control raises `RequestRefused` errors (errors.py) that know nothing of HTTP;
the API answers them with the status below and the error's problem as the body.
"""

from __future__ import annotations

from fleetward.errors import OperationConflict, OperationNotFound, RequestRefused, Unavailable

STATUS_OF_REFUSAL: dict[type[RequestRefused], int] = {
    OperationNotFound: 404,
    OperationConflict: 409,
    Unavailable: 503,
}


def refusal_status(exc: RequestRefused) -> int:
    """The status for `exc` (the refusals above are siblings: at most one matches)."""
    for refusal, status in STATUS_OF_REFUSAL.items():
        if isinstance(exc, refusal):
            return status
    raise LookupError(f"no HTTP status for {type(exc).__name__}")


__all__ = ["STATUS_OF_REFUSAL", "refusal_status"]
