"""YAML text → plain data, built from the parser's event stream within fixed limits.

ruamel's safe loader composes a node tree by recursion in C (deep nesting kills
the process with SIGSEGV) and constructs whatever the YAML allows: lists and
mappings as keys, `bytes`, `set`, integers too long to print. This package
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
  a document needs the `...` that ends it (YAML 1.2 §9.2); what libyaml reads
  although YAML 1.2 forbids it (comments touching a token, unindented lines of
  a flow collection or quoted string, `-` alone in a flow collection) is an
  error too.

Modules: `errors` (limits, YamlDataError), `syntax` (the event stream and the
rules libyaml skips), `scalars` (implicit types and tags), `building` (events →
data), `positions` (events → where each node starts, for error locations).
"""

from fleetward.yaml_reader.building import load_all
from fleetward.yaml_reader.errors import (
    INT_MAX,
    INT_MIN,
    MAX_ALIAS_CHARS,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SCALAR_CHARS,
    YamlDataError,
    too_deep,
)
from fleetward.yaml_reader.positions import Position, compose_all, position
from fleetward.yaml_reader.syntax import C_PARSER, events

__all__ = [
    "C_PARSER",
    "INT_MAX",
    "INT_MIN",
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SCALAR_CHARS",
    "Position",
    "YamlDataError",
    "compose_all",
    "events",
    "load_all",
    "position",
    "too_deep",
]
