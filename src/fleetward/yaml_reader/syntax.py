"""libyaml's events, and the YAML 1.2 rules libyaml does not enforce.

libyaml reads YAML 1.1 and is lenient where the YAML test suite is not: it
takes a `#` that touches the token before it for a comment (`"a"#x`, `[a]#x`,
`[a,#x`, `>#x`), a lone `-` in a flow collection for a string (`[-]`), lines
of a flow collection or quoted string that are not indented under the block
that holds them, and a block scalar whose leading empty lines have more spaces
than its first line. Other readers refuse these documents or read them
differently, so fleetward refuses them too, each at its line and column: the
comments by a scan of the event stream's gaps (only when the text has a `#`
touching something at all), the rest where the builder meets the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ruamel.yaml import YAML

from fleetward.yaml_reader.errors import Mark, YamlDataError, short

try:
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - ruamel.yaml installed without its C extension
    CParser = None

C_PARSER = CParser is not None

# libyaml's line breaks (YAML 1.1's: NEL, LS and PS too), so that line numbers agree.
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
# A `#` right after something that is not white space: a comment only if no node holds it.
_TOUCHING_HASH = re.compile(r"(?<=[^ \t\r\n\x85\u2028\u2029\ufeff])#")
# A block scalar's properties and header: indicator, then indentation and chomping.
_BLOCK_HEADER = re.compile(
    r"(?:(?:!<[^>]*>|[!&][^ \t\r\n\x85\u2028\u2029]*)[ \t\r\n\x85\u2028\u2029]+)*"
    r"[|>](?P<indicators>[1-9][+-]?|[+-][1-9]?)?"
)
QUOTED = "quoted string"
_DIRECTIVE_YAML = re.compile(r"%YAML[ \t]+1\.2(?:[ \t]+(?:#.*)?)?\Z")


def events(text: str) -> Iterator[Any]:
    """libyaml's events for `text` (ruamel's pure-Python parser if the C one is missing),
    refusing comments that touch the token before them."""
    stream = _parse(text)
    if "#" in text:
        first = _TOUCHING_HASH.search(text)
        if first is not None:
            return _no_touching_comments(stream, text, first.start())
    return stream


def _parse(text: str) -> Iterator[Any]:
    if CParser is None:  # pragma: no cover - exercised only without ruamel.yaml.clib
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = CParser(text)
    try:
        get = parser.get_event
        while (event := get()) is not None:
            yield event
    finally:
        parser.dispose()


def _no_touching_comments(stream: Iterator[Any], text: str, first: int) -> Iterator[Any]:
    """The events, checking that each `#` right after a non-blank character lies inside
    an event's span (a scalar, an alias, a node's properties): one in a gap between
    events is a comment that touches the token before it."""
    base = 1 if text.startswith("\ufeff") else 0  # libyaml's indexes skip the BOM
    hashes = [m.start() - base for m in _TOUCHING_HASH.finditer(text, first)]
    i, count = 0, len(hashes)
    for event in stream:
        if i < count:
            if hashes[i] < event.start_mark.index:
                raise _touching_comment(text, hashes[i] + base)
            end = event.end_mark.index
            while i < count and hashes[i] < end:
                i += 1
        yield event
    if i < count:
        raise _touching_comment(text, hashes[i] + base)


def _touching_comment(text: str, index: int) -> YamlDataError:
    before = text[index - 1]
    return YamlDataError(
        mark_at(text, index),
        "Invalid YAML",
        f"A comment starts right after {before!r}: in YAML a '#' starts a comment only "
        "after a space, a tab or the start of a line (YAML 1.2 §6.6); other YAML readers "
        "refuse this line.",
        "Put a space before the '#', or quote the value if the '#' belongs to it.",
    )


def mark_at(text: str, index: int) -> Mark:
    """The line and column of the character at `index` of `text`."""
    start = text.startswith("\ufeff")
    line, line_start = 0, int(start)
    for match in _BREAK.finditer(text, 0, index):
        line, line_start = line + 1, match.end()
    return Mark(line, index - line_start)


# -- checks the builder runs where it meets a node ----------------------------------------


def check_flow_dash(event: Any, text: str) -> None:
    """A plain `-` in a flow collection is `-` followed by `,`, `]` or `}`: YAML reads a
    `-` that is not followed by a character of the string as an indicator, never text
    (`[-]` and `[a, -]` are errors; `{-: a}` is the string `-`)."""
    base = 1 if text.startswith("\ufeff") else 0
    after = text[base + event.end_mark.index : base + event.end_mark.index + 1]
    if after != ":":
        raise YamlDataError(
            event.start_mark,
            "Invalid YAML",
            "A lone '-' in a flow collection ([...] or {...}) is a block list indicator "
            "where lists cannot start, not a string (YAML 1.2 §7.3.3).",
            'Quote it ("-") if it is meant as text.',
        )


def check_block_scalar(event: Any, text: str, block_indent: int) -> None:
    """A block scalar's header (`|`, `>`, `>-`, `|2`, ...) ends in white space, and
    without an indentation indicator its leading empty lines have no more spaces than
    its first line with text (YAML 1.2 §8.1.1): libyaml checks neither."""
    base = 1 if text.startswith("\ufeff") else 0
    start = base + event.start_mark.index
    header = _BLOCK_HEADER.match(text, start)
    if header is None:  # pragma: no cover - libyaml reported a block scalar here
        return
    if text[header.end() : header.end() + 1] == "#":  # libyaml refuses any other character
        raise _touching_comment(text, header.end())
    if header.group("indicators") and any(c.isdigit() for c in header.group("indicators")):
        return
    _check_leading_empty_lines(text, header.end(), block_indent)


def _check_leading_empty_lines(text: str, header_end: int, block_indent: int) -> None:
    line_break = _BREAK.search(text, header_end)
    if line_break is None:
        return
    widest, position = 0, line_break.end()
    while position < len(text):
        end = _BREAK.search(text, position)
        line = text[position : end.start() if end else len(text)]
        spaces = len(line) - len(line.lstrip(" "))
        if spaces < len(line):  # the first line with more than spaces
            if widest > spaces > block_indent:
                raise YamlDataError(
                    mark_at(text, position),
                    "Invalid YAML",
                    f"This block scalar's first lines hold only spaces, up to {widest} of "
                    f"them, more than the {spaces} before its first text; YAML 1.2 (§8.1.1.1) "
                    "makes that an error, as the scalar's indentation is ambiguous.",
                    "Remove the trailing spaces from the empty lines, or give the indentation "
                    "after the indicator (e.g. '|2').",
                )
            return
        widest = max(widest, spaces)
        if end is None:
            return
        position = end.end()


def check_indented(start: Any, end: Any, text: str, block_indent: int, what: str) -> None:
    """Each line after the first of a flow collection or quoted string inside a block
    mapping or list starts with more spaces than that block's own indentation (tabs are
    no indentation); libyaml takes `key: [a,\\nb]` and `key: "a\\nb"` anyway. Empty lines
    may sit anywhere, and so may comment lines between a flow collection's entries and a
    line that starts with its closing bracket: YAML 1.2 wants that indented too, but JSON
    written into YAML puts it under the key (`spec: {` ... `}`), and libyaml and most
    readers take that."""
    if start.line == end.line:
        return
    base = 1 if text.startswith("\ufeff") else 0
    needed = block_indent + 1
    flow = what != QUOTED
    lines = _BREAK.split(text[base + start.index : base + end.index])
    for offset, line in enumerate(lines[1:], 1):
        content = line.lstrip(" \t")
        if not content or (flow and content[0] in "#]}"):
            continue
        spaces = len(line) - len(line.lstrip(" "))
        if spaces < needed:
            raise YamlDataError(
                Mark(start.line + offset, spaces),
                "Invalid YAML",
                f"This line of a {what} that starts on line {start.line + 1} is indented "
                f"{spaces} spaces; inside a block mapping or list at column {needed}, the "
                f"lines of a value must be indented at least {needed} (YAML 1.2 §6.1; tabs "
                "do not count), or other YAML readers refuse the document.",
                f"Indent the line by at least {needed} space{'s' if needed > 1 else ''}.",
            )


def check_directives(event: Any, previous_end: Any, lines: Callable[[], list[str]]) -> None:
    """What libyaml lets through: `%YAML 1.1`, text after the version, and a
    directive right after a document that no `...` ended."""
    if previous_end is not None and not previous_end.explicit:
        raise YamlDataError(
            event.start_mark,
            "YAML directive without a document end marker",
            "A %YAML or %TAG directive after a document must follow a '...' line that "
            "ends the document before (YAML 1.2 §9.2).",
            "Put '...' on the line before the directive, or remove the directive.",
        )
    if event.version is None:
        return
    for offset, line in enumerate(lines()[event.start_mark.line : event.end_mark.line]):
        if line.startswith("%YAML") and not _DIRECTIVE_YAML.match(line.rstrip("\r")):
            raise YamlDataError(
                Mark(event.start_mark.line + offset, 0),
                "Unsupported YAML directive",
                f"{short(line)!r}: fleetward reads YAML 1.2 (where yes/no/on/off are "
                "strings and 010 is ten), written '%YAML 1.2' with nothing after it but "
                "a comment.",
                "Write '%YAML 1.2', or remove the directive (1.2 is the default).",
            )
