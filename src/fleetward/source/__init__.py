"""Sources: where a revision of manifests comes from (remote Git, local Git, plain directory)."""

from fleetward.source.base import (
    MAX_FILE_BYTES,
    ManifestFile,
    Snapshot,
    Source,
    git_blob_id,
    unknown_revision,
)
from fleetward.source.git_commands import git_env
from fleetward.source.memory import MemorySource
from fleetward.source.opening import open_snapshot, uncommitted_note
from fleetward.source.remote import RemoteMirror
from fleetward.source.urls import is_remote, redact_url, validate_remote_ref, validate_remote_url

__all__ = [
    "MAX_FILE_BYTES",
    "ManifestFile",
    "MemorySource",
    "RemoteMirror",
    "Snapshot",
    "Source",
    "git_blob_id",
    "git_env",
    "is_remote",
    "open_snapshot",
    "redact_url",
    "uncommitted_note",
    "validate_remote_ref",
    "unknown_revision",
    "validate_remote_url",
]
