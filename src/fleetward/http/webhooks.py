"""Webhook deliveries: whether one is signed with the secret, and what it asks for.

GitHub (`X-GitHub-Event`), Gitea and Forgejo (`X-Gitea-Event`, `X-Gogs-Event`)
and GitLab (`X-Gitlab-Event`) name the event in a header and the pushed ref in
the body's `ref`. Only a push to the tracked ref triggers a run; a push to
another branch, a tag push and every other event are acknowledged and ignored.
A redelivery (the same delivery id) is acknowledged without a second run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DELIVERIES_KEPT = 1000  # delivery ids remembered (in memory): redeliveries are recent
_DELIVERY_HEADERS = (
    "x-github-delivery",
    "x-gitea-delivery",
    "x-gogs-delivery",
    "x-gitlab-event-uuid",
)
_EVENT_HEADERS = ("x-github-event", "x-gitea-event", "x-gogs-event", "x-gitlab-event")
_PUSH_EVENTS = frozenset({"push", "push hook"})  # GitHub, Gitea, Forgejo; GitLab
_TAG_EVENTS = frozenset({"tag push hook", "create"})  # GitLab's tag push; Gitea's ref creation
_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_BRANCH = "refs/heads/"
_TAG = "refs/tags/"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as read: the event named, its id, and why it is ignored (None: run)."""

    event: str
    delivery_id: str | None
    ignored: str | None


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None if the request proves it knows the secret; else why not.

    GitHub and Gitea send `X-Hub-Signature-256: sha256=<hex HMAC of the body>`
    (Gitea also `X-Gitea-Signature: <hex>`); GitLab sends the secret itself as
    `X-Gitlab-Token`. Every comparison is constant-time.
    """
    key = secret.encode()
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        given = signature.strip()
        if not given.startswith("sha256="):
            return "X-Hub-Signature-256 must be sha256=<hex digest>."
        # Bytes, not str: compare_digest refuses non-ASCII text (a 500 for any caller).
        if hmac.compare_digest(given.removeprefix("sha256=").lower().encode(), expected.encode()):
            return None
        return "X-Hub-Signature-256 does not match the body signed with the configured secret."
    gitea = headers.get("x-gitea-signature")
    if gitea is not None:
        if hmac.compare_digest(gitea.strip().lower().encode(), expected.encode()):
            return None
        return "X-Gitea-Signature does not match the body signed with the configured secret."
    token = headers.get("x-gitlab-token")
    if token is not None:
        if hmac.compare_digest(token.encode(), key):
            return None
        return "X-Gitlab-Token does not match the configured secret."
    return (
        "The request carries no signature (X-Hub-Signature-256, X-Gitea-Signature or "
        "X-Gitlab-Token)."
    )


def read_delivery(headers: Mapping[str, str], body: bytes, tracked_ref: str) -> Delivery:
    """Read a delivery whose signature was checked; `tracked_ref` is the daemon's --ref.

    A request that names no event is taken as a push (a script's trigger); a push
    whose body names no ref triggers a run (a fetch finds out what changed)."""
    event = next((headers[h] for h in _EVENT_HEADERS if headers.get(h)), "push").strip()
    delivery_id = next((headers[h].strip() for h in _DELIVERY_HEADERS if headers.get(h)), None)
    kind = event.lower()
    if kind == "ping":
        return Delivery(event, delivery_id, "ping event: the webhook is set up")
    if kind in _TAG_EVENTS:
        return Delivery(event, delivery_id, f"{event} event: a tag push moves no branch")
    if kind not in _PUSH_EVENTS:
        return Delivery(event, delivery_id, f"{event} event: only pushes trigger a run")
    payload = _payload(body)
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        return Delivery(event, delivery_id, None)
    return Delivery(event, delivery_id, _ignored_push(ref, payload, tracked_ref))


def _ignored_push(ref: str, payload: Mapping[str, Any], tracked: str) -> str | None:
    """Why a push of `ref` does not concern the tracked ref, or None if it may."""
    if _SHA.fullmatch(tracked):
        return f"push to {ref}: the daemon tracks commit {tracked[:12]}, which no push moves"
    if tracked == "HEAD":
        if ref.startswith(_TAG):
            return f"push to {ref}: a tag push moves no branch"
        default = _default_branch(payload)
        if default is None or ref == _BRANCH + default:
            return None
        return f"push to {ref}: the daemon tracks HEAD, the default branch {default}"
    if ref in (tracked, _BRANCH + tracked, _TAG + tracked):
        return None
    name = ref.removeprefix(_BRANCH)
    if ref.startswith(_BRANCH) and tracked.endswith("/" + name):
        return None  # origin/main, refs/remotes/origin/main: a push to main moves it
    if ref.startswith(_TAG):
        return f"push to {ref}: a tag push; the daemon tracks {tracked}"
    return f"push to {ref}: the daemon tracks {tracked}"


def _default_branch(payload: Mapping[str, Any]) -> str | None:
    """The repository's default branch as the payload says (GitHub/Gitea `repository`,
    GitLab `project`), or None if it does not."""
    for key in ("repository", "project"):
        holder = payload.get(key)
        if isinstance(holder, dict):
            branch = holder.get("default_branch")
            if isinstance(branch, str) and branch:
                return branch
    return None


def _payload(body: bytes) -> dict[str, Any]:
    """The JSON body, also when sent as a form (`payload=…`, GitHub's other content
    type); {} for anything else."""
    text = body.decode("utf-8", errors="replace")
    if text.startswith("payload="):
        text = urllib.parse.parse_qs(text).get("payload", [""])[0]
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SeenDeliveries:
    """Delivery ids already answered, with what they were answered: the newest
    `limit`, in memory (a restart forgets them; a redelivery then runs once more,
    which costs one fetch)."""

    def __init__(self, limit: int = DELIVERIES_KEPT) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, delivery_id: str) -> dict[str, Any] | None:
        """Claim a new id (None), or what the answer to its first delivery added
        (`operation_id` if it queued a run; {} if it was ignored)."""
        with self._lock:
            earlier = self._seen.get(delivery_id)
            if earlier is not None:
                self._seen.move_to_end(delivery_id)
                return earlier
            self._seen[delivery_id] = {}
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            return None

    def answered(self, delivery_id: str, answer: dict[str, Any]) -> None:
        with self._lock:
            if delivery_id in self._seen:
                self._seen[delivery_id] = answer

    def release(self, delivery_id: str) -> None:
        """Forget a claimed id whose delivery was not acted on: a redelivery may act."""
        with self._lock:
            self._seen.pop(delivery_id, None)
