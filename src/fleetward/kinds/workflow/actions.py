"""The workflow actions fleetward knows, each with the schema of its `config`.

A workflow step names an action; an action outside this registry is an error,
and a step's `config` must satisfy its action's model. Adding an action is one
model plus one registry line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter

from fleetward.kinds.base import EmailAddress, Strict

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/$.?#][^\s]*$")]
_ISO_DURATION = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


def _iso_duration(value: str) -> str:
    if not _ISO_DURATION.match(value):
        raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT5M, PT1H30M or P1D")
    return value


# ISO 8601 durations of days, hours, minutes and seconds: P1D, PT5M, PT1H30M, PT0.5S.
IsoDuration = Annotated[str, AfterValidator(_iso_duration)]


class EmailSend(Strict):
    """Send the document by email; without `to`, to the document's own contact."""

    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    subject: str | None = None
    template: str | None = None
    attachPdf: bool = True


class WebhookPost(Strict):
    """POST the document (JSON) to a URL."""

    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    timeoutSeconds: int = Field(default=30, ge=1, le=300)


class Log(Strict):
    """Write a line to the job's log."""

    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


class Sleep(Strict):
    """Wait before the next step."""

    duration: IsoDuration


class Fail(Strict):
    """End the step with status KO (and an optional code for `next` edges)."""

    reason: str
    code: str | None = None


class AssetUpdate(Strict):
    """Change attributes or labels of the asset the document is about."""

    assetId: str | None = None  # default: the document's asset
    attributes: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class TaskCreate(Strict):
    """Open a task of a TaskType on the document's asset."""

    taskType: str
    description: str | None = None
    priority: Literal["LOW", "MEDIUM", "HIGH", "URGENT"] = "MEDIUM"
    dueIn: IsoDuration | None = None
    assigneeIds: list[str] = Field(default_factory=list)


class DocumentValidate(Strict):
    """Check the document against its schema (the workflow's `schema` by default)."""

    strict: bool = True


class DocumentSign(Strict):
    """Sign the document with a key held by the signing service."""

    keyId: str | None = None
    timestamp: bool = True


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    config: TypeAdapter[Any]
    model: type[Strict]
    summary: str


def _action(name: str, model: type[Strict]) -> Action:
    return Action(name, TypeAdapter(model), model, (model.__doc__ or "").strip())


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("document.validate", DocumentValidate),
        _action("document.sign", DocumentSign),
        _action("email.send", EmailSend),
        _action("webhook.post", WebhookPost),
        _action("log", Log),
        _action("sleep", Sleep),
        _action("fail", Fail),
        _action("asset.update", AssetUpdate),
        _action("task.create", TaskCreate),
    )
}
