"""Manifest text → plain data, or a problem located at line and column.

Decoding (UTF-8, with or without a byte-order mark) and libyaml's reading are
where a file can fail before any schema applies; each failure becomes a
`Located` problem, which the loader caches with the blob and places at a path
later (one blob may sit at several paths).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from fleetward.errors import Problem
from fleetward.yaml_reader import YamlDataError, load_all


@dataclass(frozen=True, slots=True)
class Located:
    """A problem found in a file, located by line and column but not yet by path
    (results are cached by blob id, and one blob may sit at several paths)."""

    line: int  # 1-based
    column: int  # 1-based
    problem: Problem
    snippet: str | None
    # The document it belongs to ("Fleet/north"), for failure isolation; None when the
    # file cannot be read at all, or the document does not say its kind and name.
    address: str | None = None
    # The object keys the invalid document would declare (its kind's `claims`).
    claims: tuple[str, ...] = ()

    def at(self, path: str) -> Problem:
        p = self.problem
        return Problem(
            p.error,
            p.reason,
            p.resolution,
            f"{path}:{self.line}:{self.column}",
            p.parameters,
            self.snippet,
        )


def read_yaml(text: str) -> tuple[list[Any], Located | None]:
    """The documents of a file as plain data, or the first problem that stops reading it."""
    try:
        return load_all(text), None
    except YamlDataError as exc:
        return [], at(
            text,
            exc.line + 1,
            exc.column + 1,
            exc.error,
            exc.reason,
            exc.resolution,
            exc.parameters,
        )
    except MarkedYAMLError as exc:
        return [], _yaml_problem(exc, text)
    except YAMLError as exc:  # the reader's errors (control characters) carry no mark
        return [], at(text, 1, 1, "Invalid YAML", str(exc).strip(), "Fix the YAML syntax.")


# Byte-order marks YAML allows besides UTF-8's; UTF-32's before UTF-16's (a prefix of it).
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode(content: bytes) -> tuple[str, Located | None]:
    for bom, encoding in _OTHER_BOMS:
        if content.startswith(bom):
            return "", Located(
                1,
                1,
                Problem(
                    f"File is {encoding} text",
                    f"The file starts with a {encoding} byte-order mark; fleetward reads "
                    "manifests as UTF-8 (with or without a byte-order mark), like Git's diffs.",
                    "Save the file as UTF-8.",
                    parameters={"encoding": encoding},
                ),
                None,
            )
    if b"\0" in content[:8192]:
        return "", Located(
            1,
            1,
            Problem(
                "Not a text file",
                "The file is named .yaml/.yml but holds binary data (it contains NUL bytes).",
                "Remove the file from the manifest path, or rename it to another extension.",
            ),
            None,
        )
    try:
        return content.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = content[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return "", Located(
            line,
            column,
            Problem(
                "File is not valid UTF-8",
                f"Byte 0x{content[exc.start]:02x} at offset {exc.start} cannot be decoded as UTF-8.",
                "Save the file as UTF-8 (YAML files must be UTF-8 text).",
            ),
            None,
        )


def _yaml_problem(exc: MarkedYAMLError, text: str) -> Located:
    problem_text = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    opened = exc.context_mark
    mark = exc.problem_mark or opened
    if opened is not None and "end of stream" in problem_text:
        # "Unexpected end of stream" points past the last line; where the unclosed
        # quote or bracket opened is what the user has to look at.
        mark = opened
    elif (
        context
        and opened is not None
        and mark is not None
        and (opened.line, opened.column)
        != (
            mark.line,
            mark.column,
        )
    ):
        context += f" that starts at line {opened.line + 1}, column {opened.column + 1}"
    line = mark.line + 1 if mark else 1
    column = mark.column + 1 if mark else 1
    error, resolution = "Invalid YAML", "Fix the YAML syntax at this position."
    if "cannot start any token" in problem_text and _char_at(text, line, column) == "\t":
        error = "Tab character in indentation"
        problem_text = "YAML does not allow tabs for indentation."
        context = ""
        resolution = "Indent with spaces instead of tabs."
    elif "unknown directive name" in problem_text:
        error = "Unsupported YAML directive"
        problem_text = "fleetward reads the %YAML 1.2 and %TAG directives only"
        context = ""
        resolution = "Remove the directive."
    elif "end of stream" in problem_text:
        resolution = "Close the quote or bracket that opens here."
    elif "mapping values are not allowed" in problem_text:
        resolution = 'Quote a value that contains ": " (e.g. name: "a: b"), or fix the indentation.'
    reason = problem_text if not context else f"{context}: {problem_text}"
    return at(text, line, column, error, reason[:1].upper() + reason[1:], resolution)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return ""


def at(
    text: str,
    line: int,
    column: int,
    error: str,
    reason: str,
    resolution: str,
    parameters: dict[str, Any] | None = None,
) -> Located:
    """A problem at `line`:`column` (1-based) of `text`, with the line and a caret."""
    shown = snippet(text.splitlines(), line, column)
    return Located(
        line, column, Problem(error, reason, resolution, parameters=parameters or {}), shown
    )


def snippet(lines: list[str], line: int, column: int) -> str | None:
    """The source line and a caret; `lines` is the file split once (a file may have many)."""
    if not 0 < line <= len(lines):
        return None
    source = lines[line - 1].replace("\t", "→")
    if len(source) > 120:
        return None
    return f"{line:>4} | {source}\n     | {' ' * (column - 1)}^"
