"""Load: manifest files → validated documents, with `file:line:column` on every error.

Files are read by `yaml_reader`, which builds plain data from libyaml's events
within fixed limits (no positions kept). Only when a file has an error is it
composed again, from the same events, into a node tree that knows lines and
columns. Results are cached by blob id, so an unchanged file is never parsed twice.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import YAMLError

from fleetward.document_cache import DocumentCache, FileResult
from fleetward.errors import ManifestError, Problem, UsageError
from fleetward.kinds import REGISTRY, Document
from fleetward.kinds.base import DataProblems
from fleetward.kinds.problems import PathProblem, YamlPath
from fleetward.manifest_schema import check_shape, validate_document
from fleetward.manifest_syntax import Located, at, decode, read_yaml, snippet
from fleetward.model import BlobId, Failure, Origin, Revision
from fleetward.progress import SILENT, Phase, Watch
from fleetward.source import MAX_FILE_BYTES, ManifestFile, Snapshot
from fleetward.source.base import is_manifest_name
from fleetward.yaml_reader import C_PARSER, Position, YamlDataError, compose_all, position

__all__ = [
    "DocumentCache",
    "LoadedFile",
    "Locator",
    "Manifests",
    "load",
    "load_file",
    "load_other",
]

logger = logging.getLogger(__name__)


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
    results: dict[str, FileResult] = {}
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
        if isinstance(item, Located)
    ]
    joined = _DataJoin(snapshot, cache, problems, tolerate)
    files = tuple(LoadedFile(f, joined.documents(f, results[f.path])) for f in manifest_files)
    cache.settle()
    if not tolerate:
        if problems:
            raise ManifestError(*problems)
        return Manifests(snapshot.revision, files)
    return _tolerated(snapshot, results, joined, files)


def _tolerated(
    snapshot: Snapshot,
    results: dict[str, FileResult],
    joined: _DataJoin,
    files: tuple[LoadedFile, ...],
) -> Manifests:
    """A tolerant load's result: the documents that loaded whole, and every problem
    attributed to its file and document (a listing problem, to the path it names)."""
    failures = [Failure(p, _listed_path(p)) for p in snapshot.problems]
    for path, result in results.items():
        failures.extend(
            Failure(item.at(path), path, item.address, item.claims)
            for item in result
            if isinstance(item, Located)
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


def _listed_path(problem: Problem) -> str | None:
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

    def documents(self, f: ManifestFile, result: FileResult) -> tuple[Document, ...]:
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


def load_file(content: bytes) -> FileResult:
    """The valid documents of one file and the problems of the others (a problem that
    keeps the whole file from loading, alone); a strict load applies none of a file
    with problems, failure isolation applies its valid documents."""
    text, problem = decode(content)
    if problem is not None:
        return (problem,)
    raw_documents, problem = read_yaml(text)
    if problem is not None:
        return (problem,)
    documents: list[Document] = []
    pending: list[tuple[int, YamlPath, bool, Problem]] = []
    addresses: dict[int, tuple[str | None, tuple[str, ...]]] = {}
    for index, raw in enumerate(raw_documents):
        if raw is None:
            continue  # an empty document (or only comments) contributes nothing
        bad = check_shape(raw)
        if bad is not None:
            pending.append((index, (), False, bad))
            addresses[index] = (None, ())
            continue
        doc_problems = validate_document(raw, index, documents)
        pending.extend((index, path, is_key, p) for path, is_key, p in doc_problems)
        if doc_problems:
            addresses[index] = _address_of(raw)
    if pending:
        located = _locate_all(text, pending)
        return (
            *documents,
            *(
                dataclasses.replace(item, address=addresses[index][0], claims=addresses[index][1])
                for item, (index, *_) in zip(located, pending, strict=True)
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
    text, problem = decode(content)
    located: tuple[Located, ...] = (problem,) if problem is not None else ()
    raw: Any = None
    if not located:
        documents, problem = read_yaml(text)
        if problem is not None:
            located = (problem,)
        elif len(documents) > 1:
            located = (
                at(
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


def _too_large(f: ManifestFile) -> Located:
    return Located(
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


def _locate_all(
    text: str, pending: list[tuple[int, YamlPath, bool, Problem]]
) -> tuple[Located, ...]:
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
        out.append(Located(line + 1, column + 1, problem, snippet(lines, line + 1, column + 1)))
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
        text, _ = decode(content)
        try:
            return compose_all(text)
        except (YAMLError, YamlDataError):
            return []
