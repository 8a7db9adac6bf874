"""Load: manifest files → validated documents, with `file:line:column` on every error.

Files are read by `yaml_reader`, which builds plain data from libyaml's events
within fixed limits (no positions kept). Only when a file has an error is it
composed again, from the same events, into a node tree that knows lines and
columns. Results are cached by blob id, so an unchanged file is never parsed twice.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from fleetward.errors import ManifestError, Problem, UsageError
from fleetward.kinds import API_VERSION, REGISTRY, Document, Metadata
from fleetward.kinds.base import DataProblems
from fleetward.kinds.problems import (
    PathProblem,
    YamlPath,
    describe,
    did_you_mean,
    missing_field,
    unknown_field,
    validation_problems,
)
from fleetward.model import BlobId, Failure, Origin, Revision
from fleetward.progress import SILENT, Phase, Watch
from fleetward.source import MAX_FILE_BYTES, ManifestFile, Snapshot
from fleetward.source.base import is_manifest_name
from fleetward.yaml_reader import (
    C_PARSER,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    Position,
    YamlDataError,
    compose_all,
    load_all,
    position,
)

logger = logging.getLogger(__name__)

_ENVELOPE_FIELDS = ("apiVersion", "kind", "metadata", "spec")


if not C_PARSER:  # pragma: no cover - depends on how ruamel.yaml was installed
    logger.warning(
        "ruamel.yaml's C parser is not installed; loading runs about 5x slower "
        "(install ruamel.yaml[oldlibyaml])"
    )


@dataclass(frozen=True, slots=True)
class LoadedFile:
    file: ManifestFile
    documents: tuple[Document, ...]


@dataclass(frozen=True, slots=True)
class Manifests:
    """Every valid document of one revision, file by file."""

    revision: Revision
    files: tuple[LoadedFile, ...]
    # A tolerant load's problems, each with the file and document it belongs to
    # (failure isolation holds those documents); always empty otherwise.
    failures: tuple[Failure, ...] = ()
    # A tolerant load's problems as a strict load raises them, in the same order.
    problems: tuple[Problem, ...] = ()

    def documents(self) -> Iterable[tuple[str, Document]]:
        for loaded in self.files:
            for doc in loaded.documents:
                yield loaded.file.path, doc


@dataclass(frozen=True, slots=True)
class _Located:
    """A problem found in a file, located by line and column but not yet by path
    (results are cached by blob id, and one blob may sit at several paths)."""

    line: int  # 1-based
    column: int  # 1-based
    problem: Problem
    snippet: str | None
    # The document it belongs to ("Fleet/north"); None when the file cannot be read
    # at all, or the document does not say its kind and name.
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


# A file's valid documents and its problems; a file with any problem is not applied
# unless failure isolation is on, which applies its valid documents.
_FileResult = tuple[Document | _Located, ...]


class DocumentCache:
    """Parsed and validated results by blob id; a daemon keeps one for its whole life."""

    def __init__(self) -> None:
        self._results: dict[BlobId, _FileResult] = {}
        # Data files (a StreamSet's CSV) parsed by a kind: (kind, blob id) → parsed value.
        self._data: dict[tuple[str, BlobId], Any] = {}
        # Documents joined with their data file: (manifest blob, document index, data blob).
        self._joined: dict[tuple[BlobId, int, BlobId], Document] = {}
        # Raw content of files a Locator keeps for plan-stage error reports (TaskBatches).
        self._content: dict[BlobId, bytes] = {}
        self.hits = 0
        self.misses = 0

    def get(self, blob_id: BlobId) -> _FileResult | None:
        result = self._results.get(blob_id)
        if result is not None:
            self.hits += 1
        return result

    def peek(self, blob_id: BlobId) -> _FileResult:
        """A result just put, without counting a hit."""
        return self._results[blob_id]

    def put(self, blob_id: BlobId, result: _FileResult) -> None:
        self.misses += 1
        self._results[blob_id] = result

    def retain(self, blob_ids: Iterable[BlobId]) -> None:
        """Forget every blob not in `blob_ids` (files that left the tree)."""
        keep = set(blob_ids)
        for blob_id in [b for b in self._results if b not in keep]:
            del self._results[blob_id]
        for data_key in [k for k in self._data if k[1] not in keep]:
            del self._data[data_key]
        for joined in [k for k in self._joined if k[0] not in keep or k[2] not in keep]:
            del self._joined[joined]
        for blob_id in [b for b in self._content if b not in keep]:
            del self._content[blob_id]

    def content(self, blob_id: BlobId) -> bytes | None:
        """The raw content of a file kept for a Locator, if it is kept."""
        return self._content.get(blob_id)

    def keep_content(self, blob_id: BlobId, content: bytes) -> None:
        self._content[blob_id] = content

    def data(self, kind: str, blob_id: BlobId, parse: Callable[[], Any]) -> Any:
        """A data file parsed by `kind`, parsed at most once per blob."""
        key = (kind, blob_id)
        if key not in self._data:
            self._data[key] = parse()
        return self._data[key]

    def joined(self, key: tuple[BlobId, int, BlobId], join: Callable[[], Document]) -> Document:
        """A document joined with its data file: the same object while neither changes,
        so later stages memoise its expansion by identity."""
        found = self._joined.get(key)
        if found is None:
            found = self._joined[key] = join()
        return found


def load(
    snapshot: Snapshot,
    cache: DocumentCache | None = None,
    watch: Watch = SILENT,
    tolerate: bool = False,
) -> Manifests:
    """Parse and validate every manifest file of a snapshot; raise every error at once.

    `watch` counts the files read and parsed here (those the cache has are not),
    and its checkpoint is called before each file is parsed: whatever it raises
    ends the load there (a stopping daemon must not parse 30,000 assets first).
    With `tolerate` (failure isolation), nothing is raised: the valid documents are
    returned, and every problem as a `Failure` naming its file and document.
    """
    cache = cache if cache is not None else DocumentCache()
    results: dict[str, _FileResult] = {}
    todo: dict[BlobId, ManifestFile] = {}  # one parse per blob, whatever its paths
    # Snapshots also list data files (CSV); only manifests are parsed as YAML.
    manifest_files = [f for f in snapshot.files if is_manifest_name(f.path)]
    for f in manifest_files:
        cached = cache.get(f.blob_id)
        if cached is not None:
            results[f.path] = cached
        elif f.size > MAX_FILE_BYTES:
            results[f.path] = (_too_large(f),)
        else:
            todo.setdefault(f.blob_id, f)
    watch.start(Phase.READING, len(todo))
    for f, content in snapshot.read(todo.values()):
        watch.checkpoint()
        cache.put(f.blob_id, load_file(content))
        watch.advance()
    for f in manifest_files:
        if f.path not in results:
            results[f.path] = cache.peek(f.blob_id)
    problems = list(snapshot.problems) + [
        item.at(path)
        for path, result in results.items()
        for item in result
        if isinstance(item, _Located)
    ]
    joined = _DataJoin(snapshot, cache, problems, tolerate)
    files = tuple(LoadedFile(f, joined.documents(f, results[f.path])) for f in manifest_files)
    if not tolerate:
        if problems:
            raise ManifestError(*problems)
        return Manifests(snapshot.revision, files)
    return _tolerated(snapshot, results, joined, files)


def _tolerated(
    snapshot: Snapshot,
    results: dict[str, _FileResult],
    joined: _DataJoin,
    files: tuple[LoadedFile, ...],
) -> Manifests:
    """A tolerant load's result: the documents that loaded whole, and every problem
    attributed to its file and document (a listing problem, to the path it names)."""
    failures = [Failure(p, _listed_path(snapshot, p)) for p in snapshot.problems]
    for path, result in results.items():
        failures.extend(
            Failure(item.at(path), path, item.address, item.claims)
            for item in result
            if isinstance(item, _Located)
        )
    failures.extend(joined.failed)
    broken = {(f.path, f.address) for f in joined.failed}
    kept = tuple(
        LoadedFile(
            loaded.file,
            tuple(d for d in loaded.documents if (loaded.file.path, d.address) not in broken),
        )
        for loaded in files
    )
    return Manifests(snapshot.revision, kept, tuple(failures), tuple(joined.problems))


def _listed_path(snapshot: Snapshot, problem: Problem) -> str | None:
    """The manifest file a listing problem is about (a symlink out of the repository)."""
    where = (problem.location or "").split(":", 1)[0]
    return where if where and is_manifest_name(where) else None


class _DataJoin:
    """Joins documents that name a data file of the same revision (a StreamSet's CSV)
    with that file, parsed by their kind and cached by the data file's blob id."""

    def __init__(
        self,
        snapshot: Snapshot,
        cache: DocumentCache,
        problems: list[Problem],
        tolerate: bool = False,
    ) -> None:
        self._snapshot = snapshot
        self._cache = cache
        self._problems = problems
        # Whether the valid documents of a file with problems are joined too (a tolerant
        # load applies them); otherwise such a file's problems are all that is reported.
        self._tolerate = tolerate
        self._by_path = {f.path: f for f in snapshot.files}
        self._locator: Locator | None = None
        # Problems of data files, attributed to the documents that read them.
        self.failed: list[Failure] = []
        self._beside_others = False  # joining the valid documents of a file with problems

    @property
    def problems(self) -> list[Problem]:
        """Every problem a strict load reports, in its order."""
        return self._problems

    def documents(self, f: ManifestFile, result: _FileResult) -> tuple[Document, ...]:
        valid = tuple(d for d in result if isinstance(d, Document))
        self._beside_others = len(valid) < len(result)
        if self._beside_others and not self._tolerate:
            return ()
        return tuple(self._join(f, doc) for doc in valid)

    def _fail(self, f: ManifestFile, doc: Document, problem: Problem) -> None:
        if not self._beside_others:  # a strict load never joins such documents
            self._problems.append(problem)
        self.failed.append(Failure(problem, f.path, doc.address))

    def _join(self, f: ManifestFile, doc: Document) -> Document:
        plugin = REGISTRY[doc.kind]
        named = plugin.data_file(doc)
        if named is None:
            return doc
        where, relative = named
        data_path = posixpath.normpath(posixpath.join(posixpath.dirname(f.path), relative))
        data = self._by_path.get(data_path)
        if data is None or is_manifest_name(data_path):
            self._fail(f, doc, self._missing(f, doc, where, relative, data_path))
            return doc
        if data.size > MAX_FILE_BYTES:
            self._fail(f, doc, _too_large(data).at(data.path))
            return doc

        def parse() -> Any:
            _, content = next(iter(self._snapshot.read([data])))
            return plugin.parse_data(content)

        parsed = self._cache.data(doc.kind, data.blob_id, parse)
        if isinstance(parsed, DataProblems):
            for line, column, p in parsed.problems:
                at = f"{data.path}:{line}:{column}"
                self._fail(f, doc, Problem(p.error, p.reason, p.resolution, at, p.parameters))
            return doc
        return self._cache.joined(
            (f.blob_id, doc.index, data.blob_id), lambda: plugin.with_data(doc, parsed)
        )

    def _missing(
        self, f: ManifestFile, doc: Document, where: YamlPath, relative: str, data_path: str
    ) -> Problem:
        if self._locator is None:
            self._locator = Locator(self._snapshot)
        return Problem(
            f"Data file {relative!r} not found",
            f"{doc.address} reads {relative!r} (relative to {f.path}), i.e. {data_path!r}, and "
            "no such .csv file is under the manifest path at this revision.",
            "Commit the file under the manifest path (data files are read from the same "
            "revision as the manifests), or fix the path.",
            location=self._locator(Origin(f.path, doc.index, where)),
            parameters={"path": data_path},
        )


def load_file(content: bytes) -> _FileResult:
    """Documents of one file, or the problems that keep it from loading."""
    text, problem = _decode(content)
    if problem is not None:
        return (problem,)
    raw_documents, problem = _read_yaml(text)
    if problem is not None:
        return (problem,)
    documents: list[Document] = []
    pending: list[tuple[int, YamlPath, bool, Problem]] = []
    addresses: dict[int, tuple[str | None, tuple[str, ...]]] = {}
    for index, raw in enumerate(raw_documents):
        if raw is None:
            continue  # an empty document (or only comments) contributes nothing
        bad = _check_shape(raw)
        if bad is not None:
            pending.append((index, (), False, bad))
            addresses[index] = (None, ())
            continue
        doc_problems = _validate(raw, index, documents)
        pending.extend((index, path, is_key, p) for path, is_key, p in doc_problems)
        if doc_problems:
            addresses[index] = _address_of(raw)
    if pending:
        located = _locate_all(text, pending)
        return (
            *documents,
            *(
                dataclasses.replace(
                    item, address=addresses[index][0], claims=addresses[index][1]
                )
                for item, (index, *_) in zip(located, pending)
            ),
        )
    return tuple(documents)


def _address_of(raw: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """The address an invalid document says it has ("Fleet/north"), when it names a known
    kind and a name, and the object keys its raw spec would declare: failure isolation
    holds what that document applied before, and whatever collides with it."""
    kind, metadata = raw.get("kind"), raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not (isinstance(kind, str) and kind in REGISTRY and isinstance(name, str) and name):
        return None, ()
    try:
        claims = tuple(REGISTRY[kind].claims(raw.get("spec")))
    except (TypeError, ValueError, AttributeError, KeyError):  # unvalidated data: best effort
        claims = ()
    return f"{kind}/{name}", claims


def load_other(content: bytes, path: str, check: Callable[[Any], list[PathProblem]]) -> Any:
    """One YAML document that is not a manifest (a config file), checked by `check`.

    Returns the parsed value, or raises UsageError with each problem at
    `path:line:column`, located the same way as manifest errors.
    """
    text, problem = _decode(content)
    located: tuple[_Located, ...] = (problem,) if problem is not None else ()
    raw: Any = None
    if not located:
        documents, problem = _read_yaml(text)
        if problem is not None:
            located = (problem,)
        elif len(documents) > 1:
            located = (
                _at(
                    text,
                    1,
                    1,
                    "Several YAML documents",
                    f"This file holds {len(documents)} documents ('---'); it must hold one.",
                    "Keep one document.",
                ),
            )
        elif documents:
            raw = documents[0]
    if not located:
        pending = [(0, yaml_path, is_key, p) for yaml_path, is_key, p in check(raw)]
        # In the order of the file, whatever order `check` found them in.
        located = (
            tuple(sorted(_locate_all(text, pending), key=lambda item: (item.line, item.column)))
            if pending
            else ()
        )
    if located:
        raise UsageError(*(item.at(path) for item in located))
    return raw


# -- decoding and parsing ----------------------------------------------------


def _read_yaml(text: str) -> tuple[list[Any], _Located | None]:
    """The documents of a file as plain data, or the first problem that stops reading it."""
    try:
        return load_all(text), None
    except YamlDataError as exc:
        return [], _at(
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
        return [], _at(text, 1, 1, "Invalid YAML", str(exc).strip(), "Fix the YAML syntax.")


# Byte-order marks YAML allows besides UTF-8's; UTF-32's before UTF-16's (a prefix of it).
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _decode(content: bytes) -> tuple[str, _Located | None]:
    for bom, encoding in _OTHER_BOMS:
        if content.startswith(bom):
            return "", _Located(
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
        return "", _Located(
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
        return "", _Located(
            line,
            column,
            Problem(
                "File is not valid UTF-8",
                f"Byte 0x{content[exc.start]:02x} at offset {exc.start} cannot be decoded as UTF-8.",
                "Save the file as UTF-8 (YAML files must be UTF-8 text).",
            ),
            None,
        )


def _yaml_problem(exc: MarkedYAMLError, text: str) -> _Located:
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
    return _at(text, line, column, error, reason[:1].upper() + reason[1:], resolution)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return ""


def _check_shape(raw: Any) -> Problem | None:
    """A document must be a mapping (the reader has bounded its size and aliases)."""
    if not isinstance(raw, dict):
        return Problem(
            "Document is not a mapping",
            f"A manifest document is a mapping with apiVersion, kind, metadata and spec; "
            f"this one is {describe(raw)}.",
            "Write the document as a mapping, or remove it (an empty document is allowed).",
        )
    return None


# -- validation ----------------------------------------------------------------


def _validate(raw: dict[str, Any], index: int, out: list[Document]) -> list[PathProblem]:
    problems: list[PathProblem] = []
    for key in raw:
        if key not in _ENVELOPE_FIELDS:
            problems.append(
                ((key,), True, unknown_field(str(key), "a manifest document", _ENVELOPE_FIELDS))
            )
    for key in _ENVELOPE_FIELDS:
        if key not in raw:
            problems.append(
                ((), False, missing_field(key, "the document", _ENVELOPE_EXAMPLES[key]))
            )
    if "apiVersion" in raw and raw["apiVersion"] != API_VERSION:
        problems.append(
            (
                ("apiVersion",),
                False,
                Problem(
                    f"Unsupported apiVersion {raw['apiVersion']!r}",
                    f"This version of fleetward reads apiVersion {API_VERSION!r}.",
                    f"Set apiVersion: {API_VERSION}.",
                ),
            )
        )
    kind = raw.get("kind")
    plugin = REGISTRY.get(kind) if isinstance(kind, str) else None
    if "kind" in raw and plugin is None:
        known = sorted(REGISTRY)
        problems.append(
            (
                ("kind",),
                False,
                Problem(
                    f"Unknown kind {kind!r}",
                    f"fleetward knows the kinds {', '.join(known)}.",
                    did_you_mean(str(kind), known, "Use one of the known kinds."),
                    parameters={"kind": kind, "known": known},
                ),
            )
        )
    metadata = None
    if "metadata" in raw:
        try:
            metadata = Metadata.model_validate(raw["metadata"])
        except ValidationError as exc:
            problems.extend(validation_problems(exc, ("metadata",), Metadata, "metadata"))
    spec = None
    if plugin is not None and "spec" in raw:
        try:
            spec = plugin.spec_adapter.validate_python(raw["spec"])
        except ValidationError as exc:
            problems.extend(plugin.schema_problems(exc, ("spec",), raw["spec"]))
    if not problems and plugin is not None and metadata is not None:
        document = Document(plugin.kind, metadata, spec, index)
        problems.extend(plugin.check(document))
        if not problems:
            out.append(document)
    return problems


_ENVELOPE_EXAMPLES = {
    "apiVersion": API_VERSION,
    "kind": "Fleet",
    "metadata": "{name: north-yard}",
    "spec": "{...}",
}


def _too_large(f: ManifestFile) -> _Located:
    return _Located(
        1,
        1,
        Problem(
            "Manifest file too large",
            f"The file is {f.size / 1024 / 1024:.1f} MiB; the limit is "
            f"{MAX_FILE_BYTES // 1024 // 1024} MiB per file (the bulk-task API's limit).",
            "Split the documents over several files.",
            parameters={"size": f.size, "limit": MAX_FILE_BYTES},
        ),
        None,
    )


# -- locating ------------------------------------------------------------------


def _at(
    text: str,
    line: int,
    column: int,
    error: str,
    reason: str,
    resolution: str,
    parameters: dict[str, Any] | None = None,
) -> _Located:
    snippet = _snippet(text.splitlines(), line, column)
    return _Located(line, column, Problem(error, reason, resolution, parameters=parameters or {}), snippet)


def _snippet(lines: list[str], line: int, column: int) -> str | None:
    """The source line and a caret; `lines` is the file split once (a file may have many)."""
    if not 0 < line <= len(lines):
        return None
    source = lines[line - 1].replace("\t", "→")
    if len(source) > 120:
        return None
    return f"{line:>4} | {source}\n     | {' ' * (column - 1)}^"


def _locate_all(
    text: str, pending: list[tuple[int, YamlPath, bool, Problem]]
) -> tuple[_Located, ...]:
    """Find line and column of each problem by composing the file with positions."""
    try:
        roots = compose_all(text)
    except (YAMLError, YamlDataError):  # the data was read; positions are a bonus
        roots = []
    out = []
    lines = text.splitlines()
    for index, path, is_key, problem in pending:
        node = roots[index] if index < len(roots) else None
        line, column = position(node, path, is_key) if node is not None else (0, 0)
        out.append(_Located(line + 1, column + 1, problem, _snippet(lines, line + 1, column + 1)))
    return tuple(out)


class Locator:
    """`file:line:column` of declarations, for error reports only.

    Each file is read and composed (the slow, position-keeping parse) at most
    once per revision, however many of its objects are reported.
    """

    def __init__(self, snapshot: Snapshot, cache: DocumentCache | None = None) -> None:
        self._snapshot = snapshot
        self._cache = cache  # a daemon's: kept files are read once per blob, not per run
        self._roots: dict[str, list[Position]] = {}
        self._kept: dict[str, bytes] = {}

    def retain(self, paths: Iterable[str]) -> None:
        """Read these files now, so they can be located after the snapshot is closed
        (the plan stage reports a TaskBatch's items at their line and column)."""
        wanted = set(paths) - self._kept.keys()
        files = []
        for f in self._snapshot.files:
            if f.path not in wanted:
                continue
            kept = self._cache.content(f.blob_id) if self._cache is not None else None
            if kept is None:
                files.append(f)
            else:
                self._kept[f.path] = kept
        for f, content in self._snapshot.read(files):
            self._kept[f.path] = content
            if self._cache is not None:
                self._cache.keep_content(f.blob_id, content)

    def __call__(self, origin: Origin) -> str:
        if origin.document < 0:
            # A row of a data file (a CSV stream): yaml_path holds (line, column).
            return f"{origin.path}:{origin.yaml_path[0]}:{origin.yaml_path[1]}"
        roots = self._roots.get(origin.path)
        if roots is None:
            roots = self._roots[origin.path] = self._compose(origin.path)
        if origin.document >= len(roots):
            return origin.path
        line, column = position(roots[origin.document], origin.yaml_path, False)
        return f"{origin.path}:{line + 1}:{column + 1}"

    def _compose(self, path: str) -> list[Position]:
        content = self._kept.get(path)
        if content is None:
            f = next((f for f in self._snapshot.files if f.path == path), None)
            if f is None:
                return []
            _, content = next(iter(self._snapshot.read([f])))
        text, _ = _decode(content)
        try:
            return compose_all(text)
        except (YAMLError, YamlDataError):
            return []
