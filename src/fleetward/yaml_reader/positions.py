"""Where each node of a document starts, for the `file:line:column` of errors."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from fleetward.yaml_reader.syntax import events


class Position:
    """Where a node of a document starts (0-based), and the positions under it.

    `items` holds a mapping's (key, value) pairs or a list's items; a scalar's
    `text` is its value as written. The key index is built on first lookup, so
    locating many errors in one big mapping stays linear.
    """

    __slots__ = ("_index", "column", "is_map", "items", "line", "text")

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
                node = anchors.get(event.anchor) or Position(
                    mark.line, mark.column, False, None, ""
                )
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
