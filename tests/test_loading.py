"""Loading: located errors, the blob-id cache, empty documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetward.errors import ManifestError
from fleetward.loading import DocumentCache, load
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
