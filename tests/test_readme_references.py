"""The READMEs stand on their own: every document they name is in the repository.

A reader of a fresh clone has README.md and what it points to, nothing else:
a reference to a design note or a section of one that is not shipped is a
dead end, so the facts and targets the READMEs rely on are written in them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted(
    [ROOT / "README.md", *ROOT.glob("*/README.md"), *ROOT.glob("examples/*/README.md")]
)
DOCUMENT = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b")
SECTION = re.compile(r"[A-Z][A-Za-z]*(?:\.md)?`? *§ *\d+")


def _ids() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in READMES]


@pytest.mark.parametrize("readme", READMES, ids=_ids())
def test_every_document_a_readme_names_is_in_the_repository(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    missing = sorted(
        {
            name
            for name in DOCUMENT.findall(text)
            if not (readme.parent / name).exists() and not (ROOT / name).exists()
        }
    )
    assert missing == [], f"{readme.relative_to(ROOT)} names documents not in the repository"


@pytest.mark.parametrize("readme", READMES, ids=_ids())
def test_no_readme_cites_a_section_of_an_absent_document(readme: Path) -> None:
    assert SECTION.findall(readme.read_text(encoding="utf-8")) == []


def test_the_benchmark_targets_are_written_down_next_to_the_benchmarks() -> None:
    targets = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    for script in sorted(p.name for p in (ROOT / "bench").glob("bench_*.py")):
        assert f"`{script}`" in targets, script
