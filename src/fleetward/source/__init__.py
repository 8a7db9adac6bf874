"""Sources: where a revision of manifests comes from (local Git, plain directory)."""

from fleetward.source.base import MAX_FILE_BYTES, ManifestFile, Snapshot, git_blob_id
from fleetward.source.opening import open_snapshot

__all__ = ["MAX_FILE_BYTES", "ManifestFile", "Snapshot", "git_blob_id", "open_snapshot"]
