"""`schema [--kind K] [--out DIR]`: the JSON Schema of manifest documents, for editors and CI."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from fleetward.cli import output
from fleetward.errors import UsageError, os_error
from fleetward.kinds import REGISTRY
from fleetward.schema import kind_schema, manifest_schema

COMBINED_FILE = "manifest.schema.json"


@click.command("schema")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only documents of this kind (repeatable). Default: one schema for every kind.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Write one file per kind (<Kind>.schema.json) and {COMBINED_FILE} into this directory.",
)
def schema_command(kinds: tuple[str, ...], out: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of manifest documents.

    Generated from the models fleetward validates with: every spelling the loader
    reads is allowed, every field it refuses is refused. Point an editor at it
    (README, "Editor support") to see a misspelt field while typing.
    """
    for kind in kinds:
        if kind not in REGISTRY:
            known = ", ".join(REGISTRY)
            raise UsageError.one(
                f"Unknown kind {kind!r}",
                f"fleetward knows the kinds {known}.",
                "Pass one of them with --kind, or leave --kind out for every kind.",
                location="--kind",
            )
    if out is None:
        if len(kinds) > 1:
            raise UsageError.one(
                "Several --kind need --out",
                "Without --out the schema is printed, and one output holds one schema.",
                "Give one --kind, or --out DIR for a file per kind.",
                location="--kind",
            )
        output.print_json(kind_schema(kinds[0]) if kinds else manifest_schema())
        return
    files = {f"{kind}.schema.json": kind_schema(kind) for kind in kinds or REGISTRY}
    files[COMBINED_FILE] = manifest_schema()
    for name, schema in files.items():
        _write(out / name, schema)
    output.stderr.print(f"Wrote {len(files)} schema files to {out}.")


def _write(path: Path, schema: dict[str, Any]) -> None:
    """Write atomically: an editor reading the file never sees half of it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(schema, handle, indent=2, ensure_ascii=False)
                handle.write("\n")
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise os_error(
            exc,
            UsageError,
            f"Cannot write the schema to {path}",
            "Pass --out with a directory this user can write.",
            path.parent,
        ) from None
