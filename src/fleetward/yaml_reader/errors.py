"""The reader's limits, and the errors it raises for YAML outside fleetward's rules."""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64  # nested mappings and lists, aliases expanded
MAX_NODES = 1_000_000  # scalars, collections and aliases in one file
MAX_SCALAR_CHARS = 65_536  # one string (key or value)
MAX_ALIAS_NODES = 10_000  # nodes aliases may expand to, per document (DESIGN §2)
# Characters of scalars (keys and values) aliases may repeat, per file: as much text as a
# file may hold (MAX_FILE_BYTES), so the data of a file is at most about twice its size.
# Per file, not per document: many small documents would each get the whole budget.
MAX_ALIAS_CHARS = 6 * 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


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


class Mark:
    """A 0-based line and column, where an event's own marks do not point."""

    __slots__ = ("column", "line")

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


def short(text: str) -> str:
    """`text` cut to fit in one line of an error message."""
    return text if len(text) <= 40 else f"{text[:20]}…{text[-10:]}"


def too_deep(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML nested too deeply",
        f"Documents may nest mappings and lists at most {MAX_DEPTH} levels deep "
        "(aliases count as the data they stand for).",
        "Flatten the document.",
        limit=MAX_DEPTH,
    )


def too_long(mark: Any, length: int) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML scalar too long",
        f"A string is {length:,} characters; the limit is {MAX_SCALAR_CHARS:,}.",
        "Shorten the value, or keep large data outside the manifests.",
        limit=MAX_SCALAR_CHARS,
    )


def too_many_nodes(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML file has too many nodes",
        f"A file may hold at most {MAX_NODES:,} scalars, lists and mappings.",
        "Split the documents over several files.",
        limit=MAX_NODES,
    )


def aliases_too_many_nodes(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML aliases expand too far",
        f"Aliases in this document expand to more than {MAX_ALIAS_NODES:,} "
        "nodes (a 'billion laughs' document would exhaust memory).",
        "Write the repeated data out, or reuse it less: an alias may stand for a small block only.",
        limit=MAX_ALIAS_NODES,
    )


def aliases_too_many_chars(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "YAML aliases expand too far",
        f"Aliases in this file repeat more than {MAX_ALIAS_CHARS:,} characters "
        "of text, more than a file may hold (a few aliases of long strings "
        "would make gigabytes to hash and store).",
        "Write the repeated data out, or reuse it less: aliases may repeat short values only.",
        limit=MAX_ALIAS_CHARS,
    )


def merge_twice(mark: Any) -> YamlDataError:
    return YamlDataError(
        mark,
        "Duplicate key in mapping",
        'Found duplicate merge key "<<": a mapping may merge once (list the '
        "mappings to merge: <<: [*a, *b]).",
        "Keep one of the two keys: a mapping may hold each key once.",
    )


def merge_sources(value: Any, event: Any) -> list[dict[str, Any]]:
    """The mappings a `<<` merge key's value stands for."""
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


def complex_key(mark: Any, what: str) -> YamlDataError:
    return YamlDataError(
        mark,
        "Mapping key is not a string",
        f"This key is {what}; manifests use only strings as keys (JSON has no other keys).",
        "Use a plain string as the key.",
    )


def non_string_key(mark: Any, value: Any, written: str | None) -> YamlDataError:
    kind = {bool: "a boolean", int: "an integer", float: "a number", type(None): "null"}.get(
        type(value), "a date"
    )
    shown = short(written if written is not None else str(value))
    return YamlDataError(
        mark,
        "Mapping key is not a string",
        f"YAML reads the key {shown!r} as {kind}; manifests use only strings as keys (JSON "
        'has no other keys, and 1 and "1" would collide).',
        f'Quote the key: "{shown}".',
    )


def duplicate_key(event: Any, key: str, mapping_mark: Any) -> YamlDataError:
    return YamlDataError(
        event.start_mark,
        "Duplicate key in mapping",
        f'Found duplicate key "{short(key)}" in the mapping that starts at line '
        f"{mapping_mark.line + 1}, column {mapping_mark.column + 1}.",
        "Keep one of the two keys: a mapping may hold each key once.",
    )


def bad_alias(event: Any, recursive: bool) -> YamlDataError:
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
