"""Loading: located errors, the blob-id cache, empty documents."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from unittest import mock

import pytest

from fleetward.desire import desire
from fleetward.errors import ManifestError
from fleetward.kinds import REGISTRY, Document
from fleetward.loading import DocumentCache, load
from fleetward.model import DesiredObject
from fleetward.progress import Watch
from fleetward.source import open_snapshot

FLEET = """\
apiVersion: fleetward/v1
kind: Fleet
metadata:
  name: north
spec:
  assets:
    - externalAssetId: A-1
      name: first
    - externalAssetId: A-2
      attributes:
        model: FH16
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _load(root: Path, cache: DocumentCache | None = None):  # type: ignore[no-untyped-def]
    with open_snapshot(str(root), path="manifests", no_git=True) as snapshot:
        return load(snapshot, cache)


@pytest.mark.parametrize(
    ("broken", "location", "error"),
    [
        (
            FLEET.replace("      name: first", "      name: 12"),
            "a.yaml:8:13",
            "Invalid value for spec.assets[0].name",
        ),
        (
            FLEET.replace("        model: FH16", "        model: FH16\n      colour: red"),
            "a.yaml:12:7",
            'Unknown field "colour"',
        ),
        (
            FLEET.replace("    - externalAssetId: A-2\n", "    - name: nameless\n"),
            "a.yaml:9:7",
            'Missing required field "externalAssetId"',
        ),
        (
            FLEET.replace("  name: north", "  name: North"),
            "a.yaml:4:9",
            "Invalid metadata.name 'North'",
        ),
        (FLEET.replace("kind: Fleet", "kind: Fleets"), "a.yaml:2:7", "Unknown kind 'Fleets'"),
        (FLEET + "---\n- just\n- a list\n", "a.yaml:13:1", "Document is not a mapping"),
        (
            FLEET.replace("spec:", "spec:\n  prune: never"),
            "a.yaml:6:10",
            "Invalid value for spec.prune",
        ),
    ],
)
def test_validation_errors_point_at_the_offending_node(
    tmp_path: Path, broken: str, location: str, error: str
) -> None:
    _write(tmp_path, {"a.yaml": broken})
    with pytest.raises(ManifestError) as info:
        _load(tmp_path)
    (problem,) = info.value.problems
    assert problem.error == error
    assert problem.location == "manifests/" + location


def test_all_errors_of_a_revision_are_reported_together(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": FLEET.replace("name: first", "nmae: first"), "b.yaml": "a: [1,\n"})
    with pytest.raises(ManifestError) as info:
        _load(tmp_path)
    assert sorted(p.location.split(":")[0] for p in info.value.problems) == [
        "manifests/a.yaml",
        "manifests/b.yaml",
    ]


def test_empty_and_comment_only_files_contribute_nothing(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "a.yaml": FLEET,
            "empty.yaml": "",
            "comments.yml": "# nothing yet\n---\n# still nothing\n",
        },
    )
    manifests = _load(tmp_path)
    assert [(path, doc.address) for path, doc in manifests.documents()] == [
        ("manifests/a.yaml", "Fleet/north")
    ]


def test_unchanged_blobs_are_not_parsed_again(tmp_path: Path) -> None:
    _write(
        tmp_path, {"a.yaml": FLEET, "b.yaml": FLEET.replace("north", "south").replace("A-", "B-")}
    )
    cache = DocumentCache()
    _load(tmp_path, cache)
    assert (cache.misses, cache.hits) == (2, 0)
    _write(tmp_path, {"b.yaml": FLEET.replace("north", "south").replace("A-", "C-")})
    _load(tmp_path, cache)
    assert (cache.misses, cache.hits) == (3, 1), "only the changed file is parsed again"


def test_yaml_dates_in_attributes_become_iso_strings(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": FLEET.replace("model: FH16", "commissioned: 2019-05-14")})
    ((_, doc),) = list(_load(tmp_path).documents())
    assert doc.spec.assets[1].attributes == {"commissioned": "2019-05-14"}


# -- stopping a long load -------------------------------------------------------------------


class _Stop(Exception):
    pass


class _Stopper(Watch):
    def __init__(self, checkpoint: Callable[[], None]) -> None:
        self.checkpoint = checkpoint  # type: ignore[method-assign]


def _stop_after(n: int) -> tuple[list[int], Watch]:
    """A watch whose checkpoint lets `n` calls through and raises at the next one; the
    calls made."""
    calls: list[int] = []

    def checkpoint() -> None:
        calls.append(len(calls))
        if len(calls) > n:
            raise _Stop()

    return calls, _Stopper(checkpoint)


def _fleets(root: Path, count: int) -> None:
    _write(
        root,
        {
            f"f{i:02}.yaml": FLEET.replace("north", f"n{i}").replace("A-", f"A{i}-")
            for i in range(count)
        },
    )


def test_a_checkpoint_stops_the_load_between_files_and_nothing_after_is_parsed(
    tmp_path: Path,
) -> None:
    _fleets(tmp_path, 10)
    cache = DocumentCache()
    calls, checkpoint = _stop_after(3)
    with open_snapshot(str(tmp_path), path="manifests", no_git=True) as snapshot:
        with pytest.raises(_Stop):
            load(snapshot, cache, checkpoint)
        parsed = [f for f in snapshot.files if cache.get(f.blob_id) is not None]
    assert len(calls) == 4  # one call per file, up to the one that stopped it
    assert len(parsed) == 3  # the files before the stop, and no other


def test_a_checkpoint_stops_the_expansion_between_documents(tmp_path: Path) -> None:
    _fleets(tmp_path, 10)
    manifests = _load(tmp_path)
    expanded: list[str] = []
    fleet = REGISTRY["Fleet"]
    original = fleet.expand

    def counting(doc: Document, path: str) -> Iterable[DesiredObject]:
        expanded.append(path)
        return original(doc, path)

    calls, checkpoint = _stop_after(4)
    with mock.patch.object(fleet, "expand", counting), pytest.raises(_Stop):
        desire(manifests.revision, manifests.documents(), str, None, checkpoint)
    assert len(calls) == 5
    assert len(expanded) == 4  # the documents before the stop, and no other
