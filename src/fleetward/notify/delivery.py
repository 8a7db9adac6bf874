"""Delivery: one sender thread per target, taking its events from the outbox in order.

A sender sends the oldest entry of its target and removes it from the outbox
only once it is delivered (2xx) or given up: a receiver that is down holds
back that target's later events, so each arrives once and in order. A failed
attempt waits an exponential backoff with jitter (`backoff` doubling up to
`maxBackoff`), or what a 429/503 `Retry-After` asks; after `attempts` tries, or
at once for a 4xx that a retry cannot fix, the entry is dropped and counted.
Requests to one target are at least its rate limit's interval apart.

Nothing here runs on a reconcile's thread: the reporter only adds to the
outbox and wakes the sender.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from fleetward.notify.formats import Outgoing, request_for
from fleetward.notify.settings import Target, redact
from fleetward.store import OutboxEntry, Store
from fleetward.timestamps import now_iso

logger = logging.getLogger(__name__)
# httpx logs every request's URL at INFO: a Slack URL (or a webhook URL with a token in
# its query) is a secret. Deliveries are logged here, by target name.
logging.getLogger("httpx").setLevel(logging.WARNING)

RETRY_AFTER_CAP = 3600.0  # seconds: a Retry-After asking for more is taken as this
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_ANSWER_QUOTED = 500  # characters of a receiver's answer kept in an error


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one request got: the status (None: no answer), the receiver's answer text,
    its Retry-After in seconds, or why it could not be sent."""

    status: int | None
    answer: str = ""
    retry_after: float | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in _RETRYABLE

    def describe(self) -> str:
        if self.status is None:
            return self.error
        answer = self.answer.strip().replace("\n", " ")[:_ANSWER_QUOTED]
        return f"HTTP {self.status}" + (f": {answer}" if answer else "")


def send(client: httpx.Client, target: Target, outgoing: Outgoing) -> Attempt:
    """Make one request; every failure is an Attempt, never an exception."""
    try:
        response = client.request(
            outgoing.method, outgoing.url, headers=dict(outgoing.headers), content=outgoing.body
        )
    except httpx.TimeoutException:
        return Attempt(None, error=f"no answer within {target.settings.timeout:g}s")
    except httpx.HTTPError as exc:
        why = redact(str(exc) or type(exc).__name__, target.secrets)
        return Attempt(None, error=f"cannot connect: {why}")
    return Attempt(
        response.status_code,
        redact(response.text, target.secrets),
        retry_after(response.headers.get("retry-after")),
    )


def retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), RETRY_AFTER_CAP)


@dataclass
class TargetStats:
    """Counts and the last outcome of one target, for metrics and summary.json."""

    kind: str
    delivered: int = 0
    failed: int = 0  # attempts that failed (each retry counts)
    dropped: int = 0  # events given up
    last_error: str | None = None
    last_error_at: str | None = None
    last_delivered_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "delivered": self.delivered,
            "failedAttempts": self.failed,
            "dropped": self.dropped,
            "lastDeliveredAt": self.last_delivered_at,
            "lastError": (
                {"message": self.last_error, "at": self.last_error_at}
                if self.last_error is not None
                else None
            ),
        }


@dataclass
class HeadAttempts:
    """The attempts made on a target's head entry. Shared by the senders of one target
    across reloads and changed under its send lock: a reload does not give an event
    being retried its attempts afresh."""

    entry_id: str | None = None
    attempts: int = 0

    def add(self, entry_id: str) -> int:
        """Count one more attempt on `entry_id` (a new head starts at 1); the count."""
        if entry_id != self.entry_id:
            self.entry_id, self.attempts = entry_id, 0
        self.attempts += 1
        return self.attempts

    def clear(self) -> None:
        self.entry_id, self.attempts = None, 0


@dataclass
class Sender:
    """The thread delivering one target's entries (see the module docstring)."""

    target: Target
    store: Store
    stats: TargetStats
    send_lock: threading.Lock  # one send of this target's head at a time, across reloads
    head: HeadAttempts = field(default_factory=HeadAttempts)  # shared across reloads too
    on_change: Callable[[], None] = lambda: None  # an outcome worth showing in status
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _next_at: float = 0.0  # monotonic time the rate limit lets the next request go

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"fleetward-notify-{self.target.name}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self.wake.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        settings = self.target.settings
        with httpx.Client(timeout=settings.timeout, follow_redirects=False) as client:
            while not self.stop.is_set():
                try:
                    self._step(client)
                except Exception:  # the outbox unreadable: keep the thread, try later
                    logger.exception("notification target %s: delivery failed", self.target.name)
                    self.stop.wait(max(1.0, settings.backoff))

    def _step(self, client: httpx.Client) -> None:
        """Try the head entry once; after a failed try, wait before the next."""
        self.wake.clear()
        with self.send_lock:
            head = self.store.outbox_pending(self.target.name, limit=1)
        if not head:
            self.wake.wait(timeout=5.0)
            return
        self._pace()
        if self.stop.is_set():
            return
        with self.send_lock:
            entry = self.store.outbox_pending(self.target.name, limit=1)
            if entry != head:
                return  # a reload's other sender got there first
            attempt = self._deliver(client, entry[0])
            attempts = self.head.add(entry[0].entry_id)
            done = attempt is None or attempt.delivered or not attempt.retryable
            if not done and attempts >= self.target.settings.attempts:
                done = True
            if done:
                self.store.outbox_remove({entry[0].entry_id})
                self.head.clear()
        if attempt is not None:
            self._record(entry[0], attempt, attempts, done)
        if done:
            return
        assert attempt is not None
        self.stop.wait(self._delay(attempts, attempt))

    def _pace(self) -> None:
        wait = self._next_at - time.monotonic()
        if wait > 0:
            self.stop.wait(wait)
        self._next_at = time.monotonic() + self.target.settings.min_interval

    def _deliver(self, client: httpx.Client, entry: OutboxEntry) -> Attempt | None:
        outgoing = request_for(self.target, entry.event)
        if outgoing is None:
            return None  # nothing this target can say about it (no Git commit)
        return send(client, self.target, outgoing)

    def _delay(self, attempts: int, attempt: Attempt) -> float:
        if attempt.retry_after is not None:
            return attempt.retry_after
        settings = self.target.settings
        ceiling = min(settings.max_backoff, settings.backoff * 2.0 ** (attempts - 1))
        return ceiling * random.uniform(0.5, 1.0)  # jitter: receivers back up together

    def _record(self, entry: OutboxEntry, attempt: Attempt, attempts: int, done: bool) -> None:
        stats = self.stats
        event = entry.event
        fields = {
            "target": self.target.name,
            "event": event.get("type"),
            "eventId": event.get("id"),
            "attempt": attempts,
        }
        if attempt.delivered:
            stats.delivered += 1
            stats.last_delivered_at = now_iso()
            logger.info("notification delivered", extra={"fields": fields})
        else:
            stats.failed += 1
            stats.last_error = attempt.describe()
            stats.last_error_at = now_iso()
            if done:
                stats.dropped += 1
            logger.warning(
                "notification dropped after %d attempts: %s"
                if done
                else "notification attempt %d failed: %s",
                attempts,
                stats.last_error,
                extra={"fields": fields},
            )
        self.on_change()


__all__ = ["Attempt", "HeadAttempts", "Sender", "TargetStats", "retry_after", "send"]
