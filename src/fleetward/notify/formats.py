"""Each target type's HTTP request for an event: path, headers and body, as its docs say.

- webhook: the event's JSON body, signed `X-Hub-Signature-256: sha256=<hex
  HMAC-SHA256 of the body>` (the scheme `POST /v0/webhook` accepts);
- slack: `{"text": …}` (Slack, Mattermost and Rocket.Chat incoming webhooks);
- github: `POST {base}/repos/{owner}/{repo}/statuses/{sha}`, `Authorization: Bearer`;
- gitlab: `POST {base}/api/v4/projects/{id}/statuses/{sha}`, `PRIVATE-TOKEN`;
- gitea (and Forgejo): `POST {base}/api/v1/repos/{owner}/{repo}/statuses/{sha}`,
  `Authorization: token`.

Every request carries the event's id as `Idempotency-Key` and
`X-Fleetward-Event-Id`: a redelivery after a crash is recognisable.
Pure functions: the sender does the I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetward import __version__
from fleetward.notify.settings import Target

DESCRIPTION_LIMIT = 140  # GitHub refuses longer commit status descriptions
SLACK_ERRORS = 3  # errors quoted in a chat message

# Event type → commit status state, per provider (GitLab says "failed").
_STATES = {
    "planning": "pending",
    "held": "pending",
    "test": "pending",
    "applied": "success",
    "recovered": "success",
    "failed": "failure",
    "rejected": "failure",
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One HTTP request to make."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


def request_for(target: Target, event: Mapping[str, Any]) -> Outgoing | None:
    """The request telling `target` about `event`; None when there is nothing to say
    (a commit status for an event without a Git commit)."""
    headers = {
        "User-Agent": f"fleetward/{__version__}",
        "Content-Type": "application/json",
        "Idempotency-Key": str(event["id"]),
        "X-Fleetward-Event-Id": str(event["id"]),
        "X-Fleetward-Event": str(event["type"]),
    }
    kind = target.settings.type
    if kind == "webhook":
        return _webhook(target, event, headers)
    if kind == "slack":
        body = _json({"text": chat_text(event)})
        assert target.url is not None
        return Outgoing("POST", target.url.value, headers, body)
    return _commit_status(target, event, headers)


def _webhook(target: Target, event: Mapping[str, Any], headers: dict[str, str]) -> Outgoing:
    body = _json(event)
    if target.secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + sign(target.secret.value, body)
    assert target.url is not None
    return Outgoing("POST", target.url.value, headers, body)


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` under `secret`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def commit_state(kind: str) -> str | None:
    """The commit status state (`pending`, `success`, `failure`) event type `kind` sets;
    None for an event a commit status does not tell."""
    return _STATES.get(kind)


def _commit_status(
    target: Target, event: Mapping[str, Any], headers: dict[str, str]
) -> Outgoing | None:
    revision = event.get("revision") or {}
    if revision.get("kind") != "git" or event["type"] not in _STATES:
        return None
    settings = target.settings
    sha = urllib.parse.quote(str(revision["id"]), safe="")
    state = _STATES[str(event["type"])]
    description = _description(event)
    token = target.secret.value if target.secret is not None else ""
    base = (settings.base_url or "").rstrip("/")
    body: dict[str, Any]
    if settings.type == "github":
        base = base or "https://api.github.com"
        url = f"{base}/repos/{settings.repository}/statuses/{sha}"
        headers["Authorization"] = f"Bearer {token}"
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
        body = {"state": state, "description": description, "context": settings.context}
    elif settings.type == "gitlab":
        base = base or "https://gitlab.com"
        project = urllib.parse.quote(str(settings.project), safe="")
        url = f"{base}/api/v4/projects/{project}/statuses/{sha}"
        headers["PRIVATE-TOKEN"] = token
        state = "failed" if state == "failure" else state
        body = {"state": state, "description": description, "name": settings.context}
    else:
        url = f"{base}/api/v1/repos/{settings.repository}/statuses/{sha}"
        headers["Authorization"] = f"token {token}"
        body = {"state": state, "description": description, "context": settings.context}
    if settings.target_url:
        body["target_url"] = settings.target_url
    return Outgoing("POST", url, headers, _json(body))


def _description(event: Mapping[str, Any]) -> str:
    """The one line a commit status shows: what happened, held documents named."""
    text = str(event.get("summary") or event["type"])
    if len(text) > DESCRIPTION_LIMIT:
        text = text[: DESCRIPTION_LIMIT - 1] + "…"
    return text


def chat_text(event: Mapping[str, Any]) -> str:
    """A short chat message: what happened to which revision, counts, first errors."""
    source = event.get("source") or {}
    where = source.get("url") or ""
    ref = source.get("ref")
    lines = [f"*fleetward* {event['type']}: {event.get('summary', '')}"]
    if where:
        lines.append(f"source: {where}" + (f" ({ref})" if ref else ""))
    counts = event.get("counts")
    if counts:
        lines.append("changes: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    errors = event.get("errors") or []
    for error in errors[:SLACK_ERRORS]:
        at = f"{error['location']}: " if error.get("location") else ""
        lines.append(f"• {at}{error['error']}")
    more = int(event.get("errorCount") or 0) - SLACK_ERRORS
    if more > 0:
        lines.append(f"… and {more} more errors")
    for held in event.get("held") or []:
        if held.get("approveUrl"):
            lines.append(f"approve: POST {held['approveUrl']}")
    objects = event.get("objects") or []
    if objects:
        lines.append("objects: " + ", ".join(objects[:10]))
    return "\n".join(lines)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = ["Outgoing", "chat_text", "commit_state", "request_for", "sign"]
