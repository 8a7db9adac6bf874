"""StreamSet (seed 002): the data streams that exist, declared inline or in a CSV file.

Each stream becomes `Stream/<id>` (ids unique across every set); AssetRules
match them. A set's `spec.csv` names a CSV file of the same revision, relative
to the manifest; the loader reads it, and its rows are parsed here (by blob id).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from fleetward.errors import Problem
from fleetward.kinds.base import (
    DataProblems,
    Document,
    KindPlugin,
    ObjectKind,
    Strict,
    declare,
)
from fleetward.kinds.problems import YamlPath, did_you_mean
from fleetward.model import Action, DesiredObject, Origin, object_key, spec_hash

StreamId = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^\s/]+$")]
STREAM_ID_RULE = "a stream id is 1–253 characters without whitespace or '/'"
CSV_COLUMNS = ("id", "name", "description")
METADATA_PREFIX = "metadata."


class StreamSpec(Strict):
    id: StreamId
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


# A stream read from a CSV row: (its line, its stored spec). Plain values, not models:
# a 100,000-row file is parsed into these in well under a second.
CsvRow = tuple[int, dict[str, Any]]
_BAD_ID_CHARACTER = re.compile(r"[\s/]")


class StreamSetSpec(Strict):
    description: str | None = None
    streams: list[StreamSpec] = Field(default_factory=list)
    csv: Annotated[str, StringConstraints(min_length=1, pattern=r"\.csv$")] | None = None
    # Filled by the loader from `csv` (never written in a manifest: see `with_data`).
    rows: tuple[Any, ...] = Field(default=(), exclude=True)

    @field_validator("rows", mode="before")
    @classmethod
    def _no_rows(cls, value: Any) -> Any:
        if value:
            raise ValueError("rows are read from the csv file; list streams under `streams`")
        return value


def stream_spec(stream: StreamSpec) -> dict[str, Any]:
    """The stored form of a stream."""
    out: dict[str, Any] = {"id": stream.id}
    if stream.name is not None:
        out["name"] = stream.name
    if stream.description is not None:
        out["description"] = stream.description
    out["metadata"] = dict(stream.metadata)
    return out


STREAM = ObjectKind(
    name="Stream",
    id_field="id",
    on_removal=Action.DELETE,
    removal_reason="stream removed from manifests",
)


class StreamSetPlugin(KindPlugin):
    kind = "StreamSet"
    spec_model = StreamSetSpec
    object_kinds = (STREAM,)

    def data_file(self, document: Document) -> tuple[YamlPath, str] | None:
        spec: StreamSetSpec = document.spec
        return (("spec", "csv"), spec.csv) if spec.csv else None

    def parse_data(self, content: bytes) -> tuple[CsvRow, ...] | DataProblems:
        return parse_csv(content)

    def with_data(self, document: Document, parsed: Any) -> Document:
        spec: StreamSetSpec = document.spec
        # model_copy skips validation: rows were validated while parsing the CSV.
        return replace(document, spec=spec.model_copy(update={"rows": parsed}))

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        spec: StreamSetSpec = document.spec
        for i, stream in enumerate(spec.streams):
            yield declare(
                "Stream", stream.id, stream_spec(stream), document, path, ("spec", "streams", i)
            )
        if spec.rows:
            csv_path = _csv_path(path, spec.csv or "")
            for line, body in spec.rows:
                yield DesiredObject(
                    key=object_key("Stream", body["id"]),
                    kind="Stream",
                    spec=body,
                    spec_hash=spec_hash(body),
                    owner=document.address,
                    # document -1: a data-file row, located by (line, column).
                    origin=Origin(csv_path, -1, (line, 1)),
                    labels=document.metadata.labels,
                )


def _csv_path(manifest_path: str, relative: str) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(manifest_path), relative))


def parse_csv(content: bytes) -> tuple[CsvRow, ...] | DataProblems:
    """Rows of a stream CSV: a header row naming the columns, then one stream per row.

    Columns: `id` (required), `name`, `description`, and `metadata.<key>` for each
    metadata key (an empty cell leaves the key out).
    """
    problems: list[tuple[int, int, Problem]] = []
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        return DataProblems(
            (
                (
                    line,
                    1,
                    Problem(
                        "CSV file is not valid UTF-8",
                        f"Byte 0x{content[exc.start]:02x} at offset {exc.start} cannot be decoded.",
                        "Save the file as UTF-8.",
                    ),
                ),
            )
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return DataProblems(((1, 1, _csv_syntax(exc)),))
    if header is None:
        return DataProblems(
            (
                (
                    1,
                    1,
                    Problem(
                        "CSV file is empty",
                        "A stream CSV starts with a header row.",
                        "Add a header row, e.g. id,name,description,metadata.site.",
                    ),
                ),
            )
        )
    header = [h.strip() for h in header]
    for column, name in enumerate(header, 1):
        if name not in CSV_COLUMNS and not (
            name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX)
        ):
            problems.append(
                (
                    1,
                    column,
                    Problem(
                        f"Unknown CSV column {name!r}",
                        "A stream CSV has the columns id, name, description and "
                        "metadata.<key> (one per metadata key).",
                        did_you_mean(
                            name,
                            CSV_COLUMNS,
                            "Rename the column, or prefix a metadata key with 'metadata.'.",
                        ),
                        parameters={"column": name},
                    ),
                )
            )
    repeated = sorted({h for h in header if header.count(h) > 1})
    for name in repeated:
        problems.append(
            (
                1,
                header.index(name, header.index(name) + 1) + 1,
                Problem(
                    f"Duplicate CSV column {name!r}",
                    "Each column may appear once in the header.",
                    "Remove or rename one of the two columns.",
                ),
            )
        )
    if "id" not in header:
        problems.append(
            (
                1,
                1,
                Problem(
                    'Missing CSV column "id"',
                    f"The header row names {', '.join(header) or '(nothing)'}; every stream "
                    "needs an id.",
                    "Add an id column to the header row (and an id to every row).",
                    parameters={"column": "id"},
                ),
            )
        )
    if problems:
        return DataProblems(tuple(problems))
    rows: list[CsvRow] = []
    first_line: dict[str, int] = {}
    id_at = header.index("id")
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if len(cells) != len(header):
                problems.append(
                    (
                        line,
                        1,
                        Problem(
                            f"CSV row has {len(cells)} field(s), the header {len(header)}",
                            f"Every row has one field per header column ({', '.join(header)}).",
                            "Add the missing fields (empty ones as ,,) or remove the extra ones; "
                            'quote a value that contains a comma ("a,b").',
                            parameters={"fields": len(cells), "columns": len(header)},
                        ),
                    )
                )
                continue
            stream_id = cells[id_at].strip()
            problem = _row_problem(stream_id, first_line)
            if problem is not None:
                problems.append((line, _column_offset(cells, id_at), problem))
                continue
            first_line[stream_id] = line
            rows.append((line, _row_stream(header, cells, stream_id)))
    except csv.Error as exc:
        problems.append((reader.line_num, 1, _csv_syntax(exc)))
    return DataProblems(tuple(problems)) if problems else tuple(rows)


def _row_problem(stream_id: str, first_line: dict[str, int]) -> Problem | None:
    if not stream_id or len(stream_id) > 253 or _BAD_ID_CHARACTER.search(stream_id):
        return Problem(
            f"Invalid stream id {stream_id!r}",
            f"The id column is required, and {STREAM_ID_RULE}.",
            "Give the row a valid id.",
            parameters={"id": stream_id},
        )
    if stream_id in first_line:
        return Problem(
            f"Duplicate stream id {stream_id!r}",
            f"Stream {stream_id!r} is already listed at line {first_line[stream_id]} of this "
            "file. Stream ids are unique across all stream sets.",
            "Remove one of the two rows, or give one another id.",
            parameters={"id": stream_id, "firstLine": first_line[stream_id]},
        )
    return None


def _column_offset(cells: list[str], index: int) -> int:
    """1-based column of field `index` in an unquoted row (close enough when quoted)."""
    return sum(len(c) + 1 for c in cells[:index]) + 1


def _row_stream(header: list[str], cells: list[str], stream_id: str) -> dict[str, Any]:
    """The stored spec of a CSV stream (the shape `stream_spec` gives an inline one)."""
    values = dict(zip(header, cells, strict=True))
    out: dict[str, Any] = {"id": stream_id}
    if values.get("name"):
        out["name"] = values["name"]
    if values.get("description"):
        out["description"] = values["description"]
    out["metadata"] = {
        name[len(METADATA_PREFIX) :]: value
        for name, value in values.items()
        if name.startswith(METADATA_PREFIX) and value != ""
    }
    return out


def _csv_syntax(exc: csv.Error) -> Problem:
    return Problem(
        "Invalid CSV",
        f"{str(exc)[:1].upper()}{str(exc)[1:]}.",
        "Fix the quoting of this row (a quoted field ends with a quote, and quotes inside it "
        'are doubled: "a ""b"" c").',
    )


PLUGIN = StreamSetPlugin()
