"""Workflow bodies as JSON APIs write them: nulls, lower-case countries, odd config keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetward.errors import ManifestError
from fleetward.pipeline import SourceOptions, resolve

BODY = """\
apiVersion: fleetward/v1
kind: Workflow
metadata: {{name: billing}}
spec:
  country: {country}
  rescue: {rescue}
  steps:
    - name: send
      action: asset.update
      config: {config}
      next: {next}
"""


def _spec(tmp_path: Path, **fields: str) -> dict:  # type: ignore[type-arg]
    values = {"country": "ES", "rescue": "[]", "config": "{}", "next": "[]", **fields}
    (tmp_path / "manifests").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "w.yaml").write_text(BODY.format(**values))
    desired = resolve(SourceOptions(source=str(tmp_path), no_git=True))
    return dict(desired.objects["Workflow/billing"].spec)  # type: ignore[index]


def test_nulls_read_as_empty(tmp_path: Path) -> None:
    as_null = _spec(tmp_path, rescue="null", config="null", next="null")
    assert as_null == _spec(tmp_path)


def test_country_is_case_insensitive_and_stored_upper_case(tmp_path: Path) -> None:
    assert _spec(tmp_path, country="es") == _spec(tmp_path, country="ES")
    assert _spec(tmp_path, country="es")["country"] == "ES"


def test_non_string_key_in_a_config_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        _spec(tmp_path, config="{attributes: {deep: {1: x}}}")
    (problem,) = info.value.problems
    assert problem.error == "Mapping key is not a string"
    assert problem.location == "manifests/w.yaml:10:36"  # the key itself
