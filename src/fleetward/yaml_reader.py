"""YAML text → plain data, built from the parser's event stream within fixed limits.

ruamel's safe loader composes a node tree by recursion in C (deep nesting kills
the process with SIGSEGV) and constructs whatever the YAML allows: lists and
mappings as keys, `bytes`, `set`, integers too long to print. This module
reads libyaml's events instead (the C parser's state machine keeps its stacks
on the heap) and builds dicts, lists and scalars with an explicit stack, so
every limit is checked when the event that breaks it arrives, at its line and
column, in time linear in the text — and about three times faster than the
node tree plus constructor. The data is what the safe loader gives for the
same text, except that everything outside these rules is refused by name:

- at most MAX_DEPTH nested collections (through aliases too), MAX_NODES nodes
  per file, MAX_SCALAR_CHARS characters per scalar, MAX_ALIAS_NODES nodes
  reached through aliases per document, MAX_ALIAS_CHARS characters of scalars
  reached through aliases per file;
- mapping keys are strings; integers fit in 64 bits;
- tags: `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!timestamp` on
  values of that YAML 1.2 type, `!!map`, `!!seq` and `!` where they fit; no
  other (`!!binary`, `!!set`, `!!omap`, `!!pairs`, application tags);
- YAML 1.2 only: a `%YAML` directive names version 1.2, and a directive after
  a document needs the `...` that ends it (YAML 1.2 §9.2).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.resolver import implicit_resolvers
from ruamel.yaml.util import create_timestamp, timestamp_regexp

try:
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - ruamel.yaml installed without its C extension
    CParser = None

MAX_DEPTH = 64  # nested mappings and lists, aliases expanded
MAX_NODES = 1_000_000  # scalars, collections and aliases in one file
MAX_SCALAR_CHARS = 65_536  # one string (key or value)
MAX_ALIAS_NODES = 10_000  # nodes aliases may expand to, per document (DESIGN §2)
# Characters of scalars (keys and values) aliases may repeat, per file: as much text as a
# file may hold (MAX_FILE_BYTES), so the data of a file is at most about twice its size.
# Per file, not per document: many small documents would each get the whole budget.
MAX_ALIAS_CHARS = 6 * 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

C_PARSER = CParser is not None

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _MERGE = (
    _YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge")
)
_MAP, _SEQ = _YAML + "map", _YAML + "seq"
_NAMED_TAGS = {  # tags refused with a reason of their own
    _YAML + "binary": "binary data has no place in JSON-shaped manifests",
    _YAML + "set": "a set is a mapping of keys to null in YAML, which fleetward does not read",
    _YAML + "omap": "an ordered mapping is a list of one-key mappings in disguise",
    _YAML + "pairs": "a list of pairs is a list of one-key mappings in disguise",
    _MERGE: "a merge key is written as a plain `<<`, not as a tag",
    _YAML + "value": "the value key type is not part of YAML 1.2",
    _YAML + "yaml": "the yaml type is not part of YAML 1.2",
}
_DIRECTIVE_YAML = re.compile(r"%YAML[ \t]+1\.2(?:[ \t]+(?:#.*)?)?\Z")

# YAML 1.2's implicit types (ruamel's own table), by first character of a plain scalar.
_IMPLICIT: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _versions, _tag, _regexp, _firsts in implicit_resolvers:
    if (1, 2) in _versions and _tag != _YAML + "value" and _tag != _YAML + "yaml":
        for _first in _firsts:
            _IMPLICIT.setdefault(_first, []).append((_tag, _regexp))  # type: ignore[arg-type]
_PATTERN = {tag: regexp for resolvers in _IMPLICIT.values() for tag, regexp in resolvers}
_TYPE_NAMES = {
    _INT: "an integer",
    _FLOAT: "a number",
    _BOOL: "a boolean",
    _NULL: "null",
    _TIMESTAMP: "a date",
}


class YamlDataError(Exception):
    """YAML that is not plain manifest data: what, why, how to fix, and where (0-based)."""

    def __init__(
        self,
        mark: Any,
        error: str,
        reason: str,
        resolution: str,
        **parameters: Any,
    ) -> None:
        super().__init__(f"{error}: {reason}")
        self.line: int = mark.line if mark is not None else 0
        self.column: int = mark.column if mark is not None else 0
        self.error = error
        self.reason = reason
        self.resolution = resolution
        self.parameters = parameters


def too_deep(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML nested too deeply",
        f"Documents may nest mappings and lists at most {MAX_DEPTH} levels deep "
        "(aliases count as the data they stand for).",
        "Flatten the document.",
        limit=MAX_DEPTH,
    )


# -- events ------------------------------------------------------------------


def events(text: str) -> Iterator[Any]:
    """libyaml's events for `text` (ruamel's pure-Python parser if the C one is missing)."""
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


# -- scalars -------------------------------------------------------------------


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    digits = digits.lstrip("+-")
    if digits[:2] in ("0b", "0x", "0o"):
        return sign * int(digits[2:], {"0b": 2, "0x": 16, "0o": 8}[digits[:2]])
    return sign * int(digits)


def _to_float(text: str) -> float:
    value = text.replace("_", "").lower()
    sign = -1.0 if value[:1] == "-" else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    return sign * float(value)


def _to_timestamp(text: str) -> dt.date | dt.datetime:
    match = timestamp_regexp.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a YAML timestamp")
    value: dt.date | dt.datetime = create_timestamp(**match.groupdict())
    return value


_CONVERT: dict[str, Callable[[str], Any]] = {
    _INT: _to_int,
    _FLOAT: _to_float,
    _BOOL: lambda text: text.lower() == "true",
    _NULL: lambda text: None,
    _TIMESTAMP: _to_timestamp,
}


def _typed(tag: str, text: str, event: Any) -> Any:
    """The value of a plain scalar resolved to `tag`, or of an explicitly tagged one."""
    if tag == _INT and len(text) > 100:
        raise _int_too_large(text, event)
    try:
        value = _CONVERT[tag](text)
    except (ValueError, OverflowError) as exc:
        raise YamlDataError(
            event.start_mark,
            f"Invalid {_TYPE_NAMES[tag].split()[-1]} {_short(text)!r}",
            f"YAML reads this value as {_TYPE_NAMES[tag]}, and it is not a valid one ({exc}).",
            "Fix the value, or quote it to keep it as text.",
        ) from None
    if tag == _INT and not INT_MIN <= value <= INT_MAX:
        raise _int_too_large(text, event)
    return value


def _int_too_large(text: str, event: Any) -> YamlDataError:
    return YamlDataError(
        event.start_mark,
        "Integer too large",
        f"The integer {_short(text)} ({len(text)} characters) does not fit in 64 bits; "
        "manifests hold integers from -2^63 to 2^63-1 (what JSON readers and the store keep exactly).",
        "Quote it to keep it as text, or use a smaller number.",
        limit=INT_MAX,
    )


def _explicit(tag: str, text: str, event: Any) -> Any:
    """A scalar with a tag: the tag must name a YAML 1.2 type the value really has."""
    if tag in ("!", _STR):
        return text
    if tag in _CONVERT:
        pattern = _PATTERN[tag]
        fits = pattern.match(text) or (tag == _FLOAT and _PATTERN[_INT].match(text))
        if not fits:
            raise YamlDataError(
                event.start_mark,
                f"Value does not match its tag !!{tag[len(_YAML) :]}",
                f"The tag says {_TYPE_NAMES[tag]}, but {_short(text)!r} is not one in YAML 1.2.",
                "Remove the tag (or quote the value to keep it as text), or write a value of that type.",
            )
        if tag == _FLOAT:
            text = str(_typed(_INT, text, event)) if _PATTERN[_INT].match(text) else text
        return _typed(tag, text, event)
    raise _unsupported_tag(tag, event)


def _unsupported_tag(tag: str, event: Any, kind: str = "") -> YamlDataError:
    shown = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
    why = _NAMED_TAGS.get(tag)
    if tag in (_MAP, _SEQ, _STR) or tag in _CONVERT:
        why = f"it does not fit {kind or 'this node'}"
    reason = f"The tag {shown} is not supported" + (f": {why}." if why else ".")
    return YamlDataError(
        event.start_mark,
        "Unsupported YAML tag",
        reason + " Manifests hold plain YAML 1.2 data: strings, numbers, booleans, null, "
        "dates, lists and mappings.",
        "Remove the tag: manifests hold plain YAML data only (no tags that build objects).",
        tag=shown,
    )


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}…{text[-10:]}"


# -- building ------------------------------------------------------------------

_NO_KEY = object()  # a mapping frame waiting for its next key
_MERGE_KEY = object()  # a mapping frame whose next value is a `<<` merge


class _Frame:
    """One open mapping or list."""

    __slots__ = (
        "data", "is_map", "key", "key_mark", "anchor", "size", "height", "chars", "merges", "mark"
    )

    def __init__(self, data: Any, is_map: bool, anchor: str | None, mark: Any) -> None:
        self.data = data
        self.is_map = is_map
        self.key: Any = _NO_KEY
        self.key_mark: Any = None
        self.anchor = anchor
        self.size = 1  # nodes under it, aliases expanded
        self.height = 1  # levels under it, aliases expanded
        self.chars = 0  # characters of the scalars under it, aliases expanded
        self.merges: list[dict[str, Any]] | None = None
        self.mark = mark


class _Anchored:
    __slots__ = ("value", "size", "height", "chars")

    def __init__(self, value: Any, size: int, height: int, chars: int) -> None:
        self.value = value
        self.size = size
        self.height = height
        self.chars = chars


_OPEN = _Anchored(None, 0, 0, 0)  # an anchor whose collection is still open


def load_all(text: str) -> list[Any]:
    """The documents of `text` as plain data (None for an empty document).

    Raises YamlDataError for data outside the limits, and ruamel's
    MarkedYAMLError for text that is not YAML.
    """
    return _Builder(text).run()


class _Builder:
    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: list[str] | None = None  # the text's lines, split on first need

    def run(self) -> list[Any]:
        documents: list[Any] = []
        stack: list[_Frame] = []
        anchors: dict[str, _Anchored] = {}
        root: Any = None
        aliased = 0
        aliased_chars = 0  # per file (MAX_ALIAS_CHARS)
        nodes = 0
        previous_end: Any = None  # the DocumentEndEvent of the document before
        implicit_table = _IMPLICIT
        for event in events(self._text):
            cls = type(event)
            merge = False
            if cls is ScalarEvent:
                text = event.value
                if len(text) > MAX_SCALAR_CHARS:
                    raise YamlDataError(
                        event.start_mark,
                        "YAML scalar too long",
                        f"A string is {len(text):,} characters; the limit is {MAX_SCALAR_CHARS:,}.",
                        "Shorten the value, or keep large data outside the manifests.",
                        limit=MAX_SCALAR_CHARS,
                    )
                tag = event.tag
                value: Any = text
                if tag is not None:
                    value = _explicit(tag, text, event)
                elif event.implicit[0]:  # plain: YAML 1.2's implicit types
                    for resolved, regexp in implicit_table.get(text[:1], ()):
                        if regexp.match(text):
                            if resolved == _MERGE:
                                merge = True
                            else:
                                value = _typed(resolved, text, event)
                            break
                size, height, chars = 1, 0, len(text)
                if event.anchor is not None:
                    anchors[event.anchor] = _Anchored(value, 1, 0, chars)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                is_map = cls is MappingStartEvent
                tag = event.tag
                if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
                    raise _unsupported_tag(tag, event, "a mapping" if is_map else "a list")
                if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                    raise _complex_key(event.start_mark, "a mapping" if is_map else "a list")
                if len(stack) >= MAX_DEPTH:
                    raise too_deep(event.start_mark)
                if event.anchor is not None:
                    anchors[event.anchor] = _OPEN
                stack.append(_Frame({} if is_map else [], is_map, event.anchor, event.start_mark))
                continue
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                frame = stack.pop()
                value = frame.data
                if frame.merges:
                    merged: dict[str, Any] = {}
                    for source in reversed(frame.merges):
                        merged.update(source)
                    merged.update(value)
                    value = merged
                size, height, chars = frame.size, frame.height, frame.chars
                if frame.anchor is not None:
                    anchors[frame.anchor] = _Anchored(value, size, height, chars)
            elif cls is AliasEvent:
                target = anchors.get(event.anchor)
                if target is None or target is _OPEN:
                    raise _bad_alias(event, target is _OPEN)
                value, size, height = target.value, target.size, target.height
                chars = target.chars
                if height:
                    if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                        raise _complex_key(event.start_mark, "an alias of a collection")
                    if len(stack) + height > MAX_DEPTH:
                        raise too_deep(event.start_mark)
                # Every alias counts, of a scalar too: the data goes on to be hashed,
                # encoded and stored as often as it is repeated.
                aliased += size
                if aliased > MAX_ALIAS_NODES:
                    raise YamlDataError(
                        event.start_mark,
                        "YAML aliases expand too far",
                        f"Aliases in this document expand to more than {MAX_ALIAS_NODES:,} "
                        "nodes (a 'billion laughs' document would exhaust memory).",
                        "Write the repeated data out, or reuse it less: an alias may stand "
                        "for a small block only.",
                        limit=MAX_ALIAS_NODES,
                    )
                aliased_chars += chars
                if aliased_chars > MAX_ALIAS_CHARS:
                    raise YamlDataError(
                        event.start_mark,
                        "YAML aliases expand too far",
                        f"Aliases in this file repeat more than {MAX_ALIAS_CHARS:,} characters "
                        "of text, more than a file may hold (a few aliases of long strings "
                        "would make gigabytes to hash and store).",
                        "Write the repeated data out, or reuse it less: aliases may repeat "
                        "short values only.",
                        limit=MAX_ALIAS_CHARS,
                    )
            elif cls is DocumentStartEvent:
                if event.version is not None or event.tags:
                    self._check_directives(event, previous_end)
                anchors = {}
                aliased = 0
                root = None
                continue
            elif cls is DocumentEndEvent:
                documents.append(root)
                previous_end = event
                continue
            else:
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise YamlDataError(
                    event.start_mark,
                    "YAML file has too many nodes",
                    f"A file may hold at most {MAX_NODES:,} scalars, lists and mappings.",
                    "Split the documents over several files.",
                    limit=MAX_NODES,
                )
            if not stack:
                root = value
                continue
            parent = stack[-1]
            parent.size += size
            parent.chars += chars
            if height >= parent.height:
                parent.height = height + 1
            if not parent.is_map:
                parent.data.append(value)
            elif parent.key is _NO_KEY:
                if merge:
                    if parent.merges is not None:
                        raise YamlDataError(
                            event.start_mark,
                            "Duplicate key in mapping",
                            'Found duplicate merge key "<<": a mapping may merge once (list the '
                            "mappings to merge: <<: [*a, *b]).",
                            "Keep one of the two keys: a mapping may hold each key once.",
                        )
                    parent.key = _MERGE_KEY
                    parent.merges = []
                elif type(value) is not str:
                    raise _non_string_key(
                        event.start_mark, value, event.value if cls is ScalarEvent else None
                    )
                else:
                    if value in parent.data:
                        raise _duplicate_key(event, value, parent.mark)
                    parent.key = value
            elif parent.key is _MERGE_KEY:
                parent.merges = _merge_sources(value, event)
                parent.key = _NO_KEY
            else:
                parent.data[parent.key] = value
                parent.key = _NO_KEY
        return documents

    def _check_directives(self, event: Any, previous_end: Any) -> None:
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
        if self._lines is None:  # once per file: per document, many documents are quadratic
            self._lines = self._text.splitlines()
        lines = self._lines[event.start_mark.line : event.end_mark.line]
        for offset, line in enumerate(lines):
            if line.startswith("%YAML") and not _DIRECTIVE_YAML.match(line.rstrip("\r")):
                raise YamlDataError(
                    _Mark(event.start_mark.line + offset, 0),
                    "Unsupported YAML directive",
                    f"{_short(line)!r}: fleetward reads YAML 1.2 (where yes/no/on/off are "
                    "strings and 010 is ten), written '%YAML 1.2' with nothing after it but "
                    "a comment.",
                    "Write '%YAML 1.2', or remove the directive (1.2 is the default).",
                )


class _Mark:
    __slots__ = ("line", "column")

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


def _merge_sources(value: Any, event: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise YamlDataError(
        event.start_mark,
        "Invalid YAML merge",
        "A merge key (<<) takes a mapping or a list of mappings, usually aliases (<<: *base).",
        "Merge a mapping, or write the keys out.",
    )


def _complex_key(mark: Any, what: str) -> YamlDataError:
    return YamlDataError(
        mark,
        "Mapping key is not a string",
        f"This key is {what}; manifests use only strings as keys (JSON has no other keys).",
        "Use a plain string as the key.",
    )


def _non_string_key(mark: Any, value: Any, written: str | None) -> YamlDataError:
    kind = {bool: "a boolean", int: "an integer", float: "a number", type(None): "null"}.get(
        type(value), "a date"
    )
    shown = _short(written if written is not None else str(value))
    return YamlDataError(
        mark,
        "Mapping key is not a string",
        f"YAML reads the key {shown!r} as {kind}; manifests use only strings as keys (JSON "
        'has no other keys, and 1 and "1" would collide).',
        f'Quote the key: "{shown}".',
    )


def _duplicate_key(event: Any, key: str, mapping_mark: Any) -> YamlDataError:
    return YamlDataError(
        event.start_mark,
        "Duplicate key in mapping",
        f'Found duplicate key "{_short(key)}" in the mapping that starts at line '
        f"{mapping_mark.line + 1}, column {mapping_mark.column + 1}.",
        "Keep one of the two keys: a mapping may hold each key once.",
    )


def _bad_alias(event: Any, recursive: bool) -> YamlDataError:
    if recursive:
        return YamlDataError(
            event.start_mark,
            "Recursive YAML alias",
            f"The alias *{event.anchor} refers to a mapping or list that contains it, so the "
            "document would be infinite.",
            "Remove the alias that points back at its own ancestor, or write the data out.",
        )
    return YamlDataError(
        event.start_mark,
        "Undefined YAML alias",
        f"The alias *{event.anchor} names no anchor (&{event.anchor}) earlier in this document.",
        "Define the anchor before the alias, or write the data out.",
    )


# -- positions -----------------------------------------------------------------


class Position:
    """Where a node of a document starts (0-based), and the positions under it.

    `items` holds a mapping's (key, value) pairs or a list's items; a scalar's
    `text` is its value as written. The key index is built on first lookup, so
    locating many errors in one big mapping stays linear.
    """

    __slots__ = ("line", "column", "is_map", "items", "text", "_index")

    def __init__(self, line: int, column: int, is_map: bool, items: list[Any] | None, text: str):
        self.line = line
        self.column = column
        self.is_map = is_map
        self.items = items
        self.text = text
        self._index: dict[str, tuple[Position, Position]] | None = None

    def entry(self, key: str) -> tuple[Position, Position] | None:
        """A mapping's key and value positions for `key` (the first, as written)."""
        if self._index is None:
            self._index = {}
            for pair in self.items or ():
                self._index.setdefault(pair[0].text, pair)
        return self._index.get(key)


def compose_all(text: str) -> list[Position]:
    """One position tree per document, for `file:line:column` of errors only.

    Built from the same events as `load_all` (so document indexes agree), by
    an explicit stack: no recursion, and none of the round-trip loader's
    comment handling (which fails on some valid comments, yaml-test-suite P94K).
    """
    roots: list[Position] = []
    stack: list[Position] = []
    pending: list[Position | None] = []  # per open mapping: its key awaiting a value
    anchors: dict[str, Position] = {}
    for event in events(text):
        cls = type(event)
        if cls is ScalarEvent or cls is AliasEvent:
            mark = event.start_mark
            if cls is AliasEvent:
                node = anchors.get(event.anchor) or Position(mark.line, mark.column, False, None, "")
            else:
                node = Position(mark.line, mark.column, False, None, event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = node
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            mark = event.start_mark
            node = Position(mark.line, mark.column, cls is MappingStartEvent, [], "")
            if event.anchor is not None:
                anchors[event.anchor] = node
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            stack.pop()
            pending.pop()
            continue
        elif cls is DocumentStartEvent:
            anchors = {}
            continue
        else:
            continue
        if not stack:
            roots.append(node)
        else:
            parent = stack[-1]
            items = parent.items
            assert items is not None
            if not parent.is_map:
                items.append(node)
            elif pending[-1] is None:
                pending[-1] = node
            else:
                items.append((pending[-1], node))
                pending[-1] = None
        if cls is MappingStartEvent or cls is SequenceStartEvent:
            stack.append(node)
            pending.append(None)
    return roots


def position(root: Position, path: tuple[str | int, ...], is_key: bool) -> tuple[int, int]:
    """0-based line/column of the deepest node on `path` (the key itself if `is_key`).

    A collection reached at the end of the path is shown at its key, where the
    reader looks for it; a path that leaves the tree stops at the last node found.
    """
    node, at = root, (root.line, root.column)
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if node.is_map:
            pair = node.entry(str(part))
            if pair is None:
                break
            key, value = pair
            if last and (is_key or value.items is not None):
                return key.line, key.column
            node, at = value, (value.line, value.column)
        elif node.items is not None and isinstance(part, int) and 0 <= part < len(node.items):
            node = node.items[part]
            at = (node.line, node.column)
        else:
            break
    return at
