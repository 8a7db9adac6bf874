"""Plain data from libyaml's events, built with an explicit stack within the limits."""

from __future__ import annotations

from typing import Any

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

from fleetward.yaml_reader.errors import (
    MAX_ALIAS_CHARS,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SCALAR_CHARS,
    aliases_too_many_chars,
    aliases_too_many_nodes,
    bad_alias,
    complex_key,
    duplicate_key,
    merge_sources,
    merge_twice,
    non_string_key,
    too_deep,
    too_long,
    too_many_nodes,
)
from fleetward.yaml_reader.scalars import (
    IMPLICIT,
    MAP,
    MERGE,
    SEQ,
    explicit,
    typed,
    unsupported_tag,
)
from fleetward.yaml_reader.syntax import (
    QUOTED,
    check_block_scalar,
    check_directives,
    check_flow_dash,
    check_indented,
    events,
)

_NO_KEY = object()  # a mapping frame waiting for its next key
_MERGE_KEY = object()  # a mapping frame whose next value is a `<<` merge


class _Frame:
    """One open mapping or list."""

    __slots__ = (
        "anchor",
        "chars",
        "data",
        "flow",
        "height",
        "is_map",
        "key",
        "mark",
        "merges",
        "opened",
        "size",
    )

    def __init__(self, data: Any, is_map: bool, anchor: str | None, event: Any) -> None:
        self.data = data
        self.is_map = is_map
        self.flow = bool(event.flow_style)
        self.key: Any = _NO_KEY
        self.anchor = anchor
        self.size = 1  # nodes under it, aliases expanded
        self.height = 1  # levels under it, aliases expanded
        self.chars = 0  # characters of the scalars under it, aliases expanded
        self.merges: list[dict[str, Any]] | None = None
        self.mark = event.start_mark
        self.opened = event.end_mark  # a block collection's: where its first entry starts

    def indent(self, text: str) -> int:
        """A block collection's indentation: the column of its keys or of its `-`."""
        mark = self.opened
        base = 1 if text.startswith("\ufeff") else 0
        if not self.is_map and text[base + mark.index : base + mark.index + 1] != "-":
            return int(mark.column) - 1  # a list not indented under its key: after its `-`
        return int(mark.column)


class _Anchored:
    __slots__ = ("chars", "height", "size", "value")

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

    def lines(self) -> list[str]:
        """The text's lines, split once per file: per document, many are quadratic."""
        if self._lines is None:
            self._lines = self._text.splitlines()
        return self._lines

    def run(self) -> list[Any]:
        documents: list[Any] = []
        stack: list[_Frame] = []
        anchors: dict[str, _Anchored] = {}
        root: Any = None
        aliased = 0
        aliased_chars = 0  # per file (MAX_ALIAS_CHARS)
        nodes = 0
        previous_end: Any = None  # the DocumentEndEvent of the document before
        implicit_table = IMPLICIT
        for event in events(self._text):
            cls = type(event)
            merge = False
            if cls is ScalarEvent:
                text = event.value
                if len(text) > MAX_SCALAR_CHARS:
                    raise too_long(event.start_mark, len(text))
                tag = event.tag
                value: Any = text
                if event.style:
                    self._check_styled(event, stack)
                if tag is not None:
                    value = explicit(tag, text, event)
                elif event.implicit[0]:  # plain: YAML 1.2's implicit types
                    if text == "-" and stack and stack[-1].flow:
                        check_flow_dash(event, self._text)
                    for resolved, regexp in implicit_table.get(text[:1], ()):
                        if regexp.match(text):
                            if resolved == MERGE:
                                merge = True
                            else:
                                value = typed(resolved, text, event)
                            break
                size, height, chars = 1, 0, len(text)
                if event.anchor is not None:
                    anchors[event.anchor] = _Anchored(value, 1, 0, chars)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                is_map = cls is MappingStartEvent
                tag = event.tag
                if tag is not None and tag != "!" and tag != (MAP if is_map else SEQ):
                    raise unsupported_tag(tag, event, "a mapping" if is_map else "a list")
                if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                    raise complex_key(event.start_mark, "a mapping" if is_map else "a list")
                if len(stack) >= MAX_DEPTH:
                    raise too_deep(event.start_mark)
                if event.anchor is not None:
                    anchors[event.anchor] = _OPEN
                stack.append(_Frame({} if is_map else [], is_map, event.anchor, event))
                continue
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                frame = stack.pop()
                if frame.flow and stack and not stack[-1].flow:
                    what = "flow mapping" if frame.is_map else "flow list"
                    indent = stack[-1].indent(self._text)
                    check_indented(frame.mark, event.end_mark, self._text, indent, what)
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
                    raise bad_alias(event, target is _OPEN)
                value, size, height = target.value, target.size, target.height
                chars = target.chars
                if height:
                    if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                        raise complex_key(event.start_mark, "an alias of a collection")
                    if len(stack) + height > MAX_DEPTH:
                        raise too_deep(event.start_mark)
                # Every alias counts, of a scalar too: the data goes on to be hashed,
                # encoded and stored as often as it is repeated.
                aliased += size
                if aliased > MAX_ALIAS_NODES:
                    raise aliases_too_many_nodes(event.start_mark)
                aliased_chars += chars
                if aliased_chars > MAX_ALIAS_CHARS:
                    raise aliases_too_many_chars(event.start_mark)
            elif cls is DocumentStartEvent:
                if event.version is not None or event.tags:
                    check_directives(event, previous_end, self.lines)
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
                raise too_many_nodes(event.start_mark)
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
                        raise merge_twice(event.start_mark)
                    parent.key = _MERGE_KEY
                    parent.merges = []
                elif type(value) is not str:
                    raise non_string_key(
                        event.start_mark, value, event.value if cls is ScalarEvent else None
                    )
                else:
                    if value in parent.data:
                        raise duplicate_key(event, value, parent.mark)
                    parent.key = value
            elif parent.key is _MERGE_KEY:
                parent.merges = merge_sources(value, event)
                parent.key = _NO_KEY
            else:
                parent.data[parent.key] = value
                parent.key = _NO_KEY
        return documents

    def _check_styled(self, event: Any, stack: list[_Frame]) -> None:
        """The rules libyaml skips for block scalars and quoted strings in a block."""
        style = event.style
        if style == "|" or style == ">":
            indent = stack[-1].indent(self._text) if stack else -1
            check_block_scalar(event, self._text, indent)
        elif stack and not stack[-1].flow and event.start_mark.line != event.end_mark.line:
            indent = stack[-1].indent(self._text)
            check_indented(event.start_mark, event.end_mark, self._text, indent, QUOTED)
