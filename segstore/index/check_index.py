"""``CheckIndex``: verify an index and say exactly what is wrong and what a repair would cost.

After Lucene's ``CheckIndex`` (reliability.md §5.1) and §8 rows 10-15 and 30. ``CheckIndex(...).run()``
returns a :class:`Status`; every :class:`Problem` names the commit, segment, file, component (``commit``,
``catalog``, ``pk``, ``segment_info``, ``field_infos``, ``vectors``, ``graph``, ``quantization``, ``stored``,
``live_docs``, ``doc_values``, ``attributes``, ``derived_source``, ``translog``), the error type, and the
expected and actual values when there are any. Levels:

1. **checksums**: every file of every segment of the last commit is opened through
   :class:`~segstore.codec.framing.FramedInput` (magic, format name, version range, segment id, suffix,
   footer shape, exact length where a metadata file records it) and fully CRC-checked; every catalog value
   of the index (index entry, commit records, primary-key entries) is CRC-checked; the translog is
   inspected (:meth:`Translog.inspect`).
2. **logical checks**: each segment is opened through its codec; document counts (segment info, stored
   fields, commit), live docs against the delete count, ord->doc maps, no NaN/Inf (and no zero vector for
   ``cosinesimil``), field infos and attributes against the mapping, graphs and quantization states load
   and match the vector counts, stored records carry ``_id``/``_version``/``_seq_no`` within the commit's
   ``max_seq_no``, the commit's ``segment_counter`` is above every segment name, and the catalog's
   primary-key map equals the live documents of the segments.
3. **slow checks**: HNSW connectivity per level (hnswlib graphs are reconstructed from the validated blob,
   faiss graphs from faiss's ``hnsw`` arrays), a recall sample of the graph against exact search, and a
   full derived-``_source`` round trip (re-parse the derived source; the masked source and the vectors must
   come back bit for bit).

Each segment ends up ``ok``, ``rebuildable`` (only graph or quantization files are damaged: the canonical
vectors can rebuild them; or only its live-docs file is: the catalog's primary-key map, committed in the same
transaction as the segment list, names every live document; no document is lost) or ``corrupt`` (exorcising
it loses its live documents,
whose ids are taken from the catalog's primary-key map, which stays readable whatever happened to the
segment's files). :attr:`Status.repair_plan` lists the repairs ``segstore repair`` would run.

The check is read-only. It does not take the write lock itself; the ``segstore check`` command does (like
Lucene's CheckIndex), unless told not to.
"""

from __future__ import annotations

import math
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack
import numpy as np

from segstore.codec.framing import CODEC_MAGIC, FOOTER_LENGTH, FOOTER_MAGIC, ID_LENGTH, FramedInput
from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatError,
    IndexNotFoundError,
    SegmentIdMismatchError,
    SegstoreError,
    TruncatedFileError,
)
from segstore.index.catalog import Catalog
from segstore.index.catalog_codec import decode_value, key_repr
from segstore.index.catalog_env import iter_prefix
from segstore.index.file_names import WRITE_LOCK_NAME, from_base36, live_docs_file_name, parse_segment_name
from segstore.index.index_files import IndexFiles
from segstore.index.segment_info import SegmentCommitInfo, SegmentInfo
from segstore.store.fs_directory import FSDirectory

__all__ = [
    "FORMAT_VERSIONS",
    "CheckIndex",
    "FieldStatus",
    "FileReport",
    "IndexLocation",
    "NotADataDirectoryError",
    "Problem",
    "SegmentStatus",
    "Status",
    "component_of",
    "exact_distances",
    "graph_connectivity",
    "graph_rows",
    "inspect_file",
    "inspect_translog_file",
    "iter_translog_ops",
    "locate",
    "read_header",
    "read_pk_map",
    "translog_summary",
]

# ----------------------------------------------------------------------------------------- constants

#: Component of a segment file, by extension.
COMPONENTS = {
    "si": "segment_info", "fnm": "field_infos", "vec": "vectors", "vem": "vectors", "hnsw": "graph",
    "ivf": "graph", "fdt": "stored", "fdx": "stored", "liv": "live_docs", "dvd": "doc_values",
    "dvm": "doc_values", "qst": "quantization",
}
#: Components rebuilt from the canonical vectors without losing a document (``repair --rebuild-graphs``).
REBUILDABLE = frozenset(("graph", "quantization", "live_docs"))
#: Components ``repair --rebuild-graphs`` rebuilds (``live_docs``: ``repair --rebuild-live-docs``).
GRAPH_COMPONENTS = frozenset(("graph", "quantization"))
#: Format name written in the header of each file type of codec ``SegStore1``.
EXPECTED_FORMAT = {
    "si": "SegStore1SegmentInfo", "fnm": "SegStore1FieldInfos", "vec": "SegStore1VectorValuesData",
    "vem": "SegStore1VectorValuesMeta", "hnsw": "SegStore1HnswGraph", "ivf": "SegStore1IvfGraph",
    "fdt": "SegStore1StoredFieldsData", "fdx": "SegStore1StoredFieldsIndex", "liv": "SegStore1LiveDocs",
    "dvd": "SegStore1DocValuesData", "dvm": "SegStore1DocValuesMeta", "qst": "SegStore1QuantizationState",
}


def _format_versions() -> dict[str, tuple[int, int]]:
    """Supported version range of every known format name, read from the format modules themselves."""
    out: dict[str, tuple[int, int]] = {}
    mods = {
        "segment_info_format": ["CODEC_NAME"], "field_infos_format": ["CODEC_NAME"],
        "vector_values_format": ["DATA_CODEC", "META_CODEC"], "graph_format": ["CODEC_NAME"],
        "stored_fields_format": ["DATA_CODEC", "INDEX_CODEC"], "live_docs_format": ["CODEC_NAME"],
        "doc_values_format": ["META_CODEC", "DATA_CODEC"], "quantization_state_format": ["CODEC"],
        "ivf_graph": ["CODEC_NAME"],
    }
    import importlib

    for mod, names in mods.items():
        try:
            m = importlib.import_module(f"segstore_codecs.segstore1.{mod}")
        except Exception:  # noqa: BLE001 - a format module that is missing or broken is just unknown
            continue
        for attr in names:
            name = getattr(m, attr, None)
            if isinstance(name, str):
                out[name] = (int(getattr(m, "VERSION_START", 1)), int(getattr(m, "VERSION_CURRENT", 1)))
    try:
        from segstore.translog import checkpoint as ck

        out[ck.CHECKPOINT_FORMAT] = (ck.VERSION, ck.VERSION)
        out[ck.TLOG_FORMAT] = (ck.VERSION, ck.VERSION)
    except Exception:  # noqa: BLE001 - no translog formats then
        pass
    return out


FORMAT_VERSIONS = _format_versions()


def component_of(file_name: str) -> str:
    ext = file_name.rsplit(".", 1)[-1] if "." in file_name else ""
    return COMPONENTS.get(ext, "other")


def _json_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


# ------------------------------------------------------------------------------------------- reports


@dataclass
class Problem:
    """One thing that is wrong. ``severity`` is ``error`` (the index is not clean) or ``warning``."""

    component: str
    message: str
    error: str = "CorruptIndexError"
    segment: str | None = None
    file: str | None = None
    field: str | None = None
    expected: Any = None
    actual: Any = None
    level: int = 1
    severity: str = "error"
    doc: int | None = None
    doc_id: str | None = None

    @property
    def rebuildable(self) -> bool:
        return self.component in REBUILDABLE

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_value(v) for k, v in asdict(self).items()}
        d["rebuildable"] = self.rebuildable
        return d

    def __str__(self) -> str:
        where = self.file or self.segment or self.component
        extra = ""
        if self.expected is not None or self.actual is not None:
            extra = f" [expected={_json_value(self.expected)} actual={_json_value(self.actual)}]"
        return f"{where} [{self.component}]: {self.error}: {self.message}{extra}"


_EXPECTED_ACTUAL = re.compile(r"expected[^=,;]*=\s*([^\s,;)]+).*?(?:actual|got)[^=,;]*=\s*([^\s,;)]+)")


def problem_from_error(e: BaseException, component: str | None = None, *, segment: str | None = None,
                       level: int = 1, field: str | None = None) -> Problem:
    """A :class:`Problem` from a typed segstore error (or any exception), keeping its expected/actual."""
    file = getattr(e, "file", None)
    if isinstance(file, str):
        file = os.path.basename(file) if os.sep in file and not file.startswith("catalog:") else file
    detail = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
    expected: Any = None
    actual: Any = None
    if isinstance(e, ChecksumMismatchError):
        expected, actual = f"{e.expected:#010x}", f"{e.actual:#010x}"
    elif isinstance(e, SegmentIdMismatchError):
        expected, actual = e.expected, e.actual
    elif isinstance(e, IndexFormatError):
        expected, actual = f"{e.min_version}..{e.max_version}", e.version
    elif isinstance(e, TruncatedFileError) and "length=" in str(detail):
        m = re.search(r"length=(\d+)", str(detail))
        actual = f"length={m.group(1)}" if m else None
    else:
        m = _EXPECTED_ACTUAL.search(str(detail))
        if m:
            expected, actual = m.group(1), m.group(2)
    if component is None:
        component = component_of(file) if isinstance(file, str) else "other"
    if isinstance(e, FileNotFoundError):
        name = os.path.basename(e.filename) if getattr(e, "filename", None) else file
        return Problem(component, f"file is missing: {name}", "MissingFileError", segment, name, field,
                       level=level)
    return Problem(component, str(detail), type(e).__name__, segment, file if isinstance(file, str) else None,
                   field, expected, actual, level)


@dataclass
class FileReport:
    """One file as its header and footer describe it (``files`` command, level 1)."""

    name: str
    segment: str | None
    component: str
    size: int | None
    format: str | None = None
    version: int | None = None
    segment_id: str | None = None
    suffix: str | None = None
    stored_crc: str | None = None
    actual_crc: str | None = None
    referenced: bool = True
    problem: Problem | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_value(v) for k, v in asdict(self).items() if k != "problem"}
        d["problem"] = self.problem.to_dict() if self.problem else None
        return d


@dataclass
class FieldStatus:
    """Per vector field of one segment."""

    name: str
    number: int
    dimension: int
    data_type: str
    space_type: str
    vectors: int | None = None
    graph: str | None = None  # library: hnswlib / faiss / faiss_binary / ivf, or None (flat)
    graph_file: str | None = None
    quantization: dict[str, Any] | None = None
    nodes_at_level: list[int] | None = None
    connectedness_at_level: list[str] | None = None
    recall: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_value(v) for k, v in asdict(self).items()}


@dataclass
class SegmentStatus:
    """Lucene's ``Status.SegmentInfoStatus``."""

    name: str
    segment_id: str
    codec: str
    max_doc: int
    del_gen: int
    del_count: int
    files: list[str] = field(default_factory=list)
    size_bytes: int = 0
    diagnostics: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    open_reader_passed: bool | None = None
    fields: list[FieldStatus] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    tests: dict[str, str] = field(default_factory=dict)  # test name -> "OK ..." / "FAILED" / "skipped ..."
    ids_to_lose: list[str] = field(default_factory=list)
    checked: bool = True
    #: level >= 2: live root ids of the segment -> (doc, version, seq_no); None when not read
    live_ids: dict[str, tuple[int, int, int]] | None = field(default=None, repr=False)

    @property
    def num_docs(self) -> int:
        return self.max_doc - self.del_count

    @property
    def status(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        if not errors:
            return "ok"
        return "rebuildable" if all(p.rebuildable for p in errors) else "corrupt"

    @property
    def docs_to_lose(self) -> int:
        return self.num_docs if self.status == "corrupt" else 0

    def needs(self, *components: str) -> bool:
        """True if an error of one of ``components`` was found in this segment."""
        return any(p.severity == "error" and p.component in components for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "segment_id": self.segment_id, "codec": self.codec, "max_doc": self.max_doc,
            "del_gen": self.del_gen, "del_count": self.del_count, "num_docs": self.num_docs,
            "files": list(self.files), "size_bytes": self.size_bytes, "diagnostics": dict(self.diagnostics),
            "attributes": dict(self.attributes), "open_reader_passed": self.open_reader_passed,
            "status": self.status, "docs_to_lose": self.docs_to_lose,
            "ids_to_lose": list(self.ids_to_lose) if self.status == "corrupt" else [],
            "tests": dict(self.tests), "fields": [f.to_dict() for f in self.fields],
            "problems": [p.to_dict() for p in self.problems], "checked": self.checked,
        }


@dataclass
class Status:
    """What :meth:`CheckIndex.run` found (Lucene's ``CheckIndex.Status``)."""

    index: str
    uuid: str
    data_dir: str
    level: int
    generation: int | None = None
    commit: dict[str, Any] | None = None
    segments: list[SegmentStatus] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # index-level: commit, catalog, pk, translog
    translog: dict[str, Any] | None = None
    commit_readable: bool = True
    partial: bool = False  # --segment or --fail-fast: not everything was checked
    unreferenced_files: list[str] = field(default_factory=list)
    pk_entries: int | None = None
    took_seconds: float = 0.0

    def all_problems(self) -> list[Problem]:
        return [*self.problems, *(p for s in self.segments for p in s.problems)]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.all_problems() if p.severity == "error"]

    @property
    def clean(self) -> bool:
        return self.commit_readable and not self.errors

    @property
    def bad_segments(self) -> list[SegmentStatus]:
        return [s for s in self.segments if s.status == "corrupt"]

    @property
    def rebuildable_segments(self) -> list[SegmentStatus]:
        return [s for s in self.segments if s.status == "rebuildable"]

    @property
    def tot_lose_doc_count(self) -> int:
        return sum(s.docs_to_lose for s in self.segments)

    @property
    def translog_ops_to_lose(self) -> int:
        return int((self.translog or {}).get("ops_to_lose") or 0)

    @property
    def repair_plan(self) -> list[dict[str, Any]]:
        """The repairs that would fix what was found, in the order ``segstore repair`` applies them."""
        plan: list[dict[str, Any]] = []
        bad = self.bad_segments
        if bad:
            plan.append({
                "action": "exorcise", "flag": "--exorcise",
                "segments": [s.name for s in bad], "docs_to_lose": self.tot_lose_doc_count,
                "ids_to_lose": sorted(i for s in bad for i in s.ids_to_lose),
                "description": f"drop {len(bad)} corrupt segment(s) from a new commit; "
                               f"{self.tot_lose_doc_count} document(s) would be lost",
            })
        live = [s for s in self.rebuildable_segments if s.needs("live_docs")]
        if live:
            plan.append({
                "action": "rebuild-live-docs", "flag": "--rebuild-live-docs", "segments": [s.name for s in live],
                "docs_to_lose": 0, "ids_to_lose": [],
                "description": f"rewrite the live docs of {len(live)} segment(s) from the primary-key map; no "
                               "document is lost",
            })
        rebuild = [s for s in self.rebuildable_segments if s.needs("graph", "quantization")]
        if rebuild:
            plan.append({
                "action": "rebuild-graphs", "flag": "--rebuild-graphs", "segments": [s.name for s in rebuild],
                "docs_to_lose": 0, "ids_to_lose": [],
                "description": f"rewrite {len(rebuild)} segment(s) with graphs and quantization states rebuilt "
                               "from the stored vectors; no document is lost",
            })
        tl = self.translog or {}
        if tl and not tl.get("clean", True) and tl.get("checkpoint_readable", True):
            trimmed = tl.get("damaged_committed_generations") or []
            plan.append({
                "action": "truncate-translog", "flag": "--truncate-translog",
                "ops_to_lose": self.translog_ops_to_lose, "docs_to_lose": 0, "ids_to_lose": [],
                "description": (f"trim damaged committed generation(s) {trimmed} (nothing lost)" + ("; then " if
                                self.translog_ops_to_lose else "") if trimmed else "")
                + (f"drop the translog from its first bad record on; {self.translog_ops_to_lose} acknowledged "
                   "operation(s) would be lost" if self.translog_ops_to_lose or not trimmed else ""),
            })
        elif tl and not tl.get("checkpoint_readable", True):
            plan.append({
                "action": "truncate-translog", "flag": "--truncate-translog", "docs_to_lose": 0, "ids_to_lose": [],
                "ops_to_lose": None,
                "description": "the translog checkpoint is unreadable: create a new empty translog; every "
                               "uncommitted operation is lost",
            })
        markers = [p.file for p in self.errors if p.error == "CorruptionMarker"]
        if markers:
            plan.append({"action": "remove-markers", "flag": "--yes", "docs_to_lose": 0, "ids_to_lose": [],
                         "description": f"remove corruption marker(s) {', '.join(str(m) for m in markers)} once "
                                        "everything else checks clean"})
        unhandled = [p for p in self.errors if p.segment is None and p.component not in ("translog", "pk")
                     and p.error != "CorruptionMarker"]
        pk = [p for p in self.errors if p.component == "pk"]
        if pk:
            plan.append({"action": "rebuild-pk", "flag": "--rebuild-pk", "docs_to_lose": 0, "ids_to_lose": [],
                         "description": f"rewrite {len(pk)} primary-key entr(ies) from the segments; no document is "
                                        "lost"})
        if unhandled:
            plan.append({"action": "none", "flag": None, "docs_to_lose": 0, "ids_to_lose": [],
                         "description": "no automatic repair for: " + "; ".join(str(p) for p in unhandled[:5])})
        return plan

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "uuid": self.uuid, "data_dir": self.data_dir, "level": self.level,
            "clean": self.clean, "commit_readable": self.commit_readable, "partial": self.partial,
            "generation": self.generation, "commit": _json_value(self.commit),
            "num_segments": len(self.segments), "num_bad_segments": len(self.bad_segments),
            "num_rebuildable_segments": len(self.rebuildable_segments),
            "tot_lose_doc_count": self.tot_lose_doc_count, "translog_ops_to_lose": self.translog_ops_to_lose,
            "segments": [s.to_dict() for s in self.segments],
            "problems": [p.to_dict() for p in self.problems],
            "all_problems": [p.to_dict() for p in self.all_problems()],
            "translog": _json_value(self.translog), "unreferenced_files": list(self.unreferenced_files),
            "pk_entries": self.pk_entries, "repair_plan": self.repair_plan, "took_seconds": self.took_seconds,
        }


# ------------------------------------------------------------------------------------------ locating


class NotADataDirectoryError(SegstoreError):
    """The path is neither a data directory nor an index folder inside one (a usage error)."""


@dataclass(frozen=True)
class IndexLocation:
    """Where an index lives. ``files`` is its :class:`IndexFiles` (directory + translog path)."""

    data_dir: str
    name: str
    uuid: bytes

    @property
    def root(self) -> str:
        return os.path.join(self.data_dir, "indices", self.uuid.hex())

    @property
    def index_dir(self) -> str:
        return os.path.join(self.root, "index")

    @property
    def translog_dir(self) -> str:
        return os.path.join(self.root, "translog")

    def files(self) -> IndexFiles:
        return IndexFiles(FSDirectory(self.index_dir), self.translog_dir)


def _is_data_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "catalog", "data.mdb"))


def find_data_dir(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(data_dir, index uuid hex or None)`` for a data directory or for an index folder inside one
    (``<data>/indices/<uuid>``, or its ``index``/``translog`` sub-folder). Never creates anything."""
    p = os.path.abspath(os.fspath(path))
    if not os.path.isdir(p):
        raise NotADataDirectoryError(f"[{path}] is not a directory")
    if _is_data_dir(p):
        return p, None
    q = p
    if os.path.basename(q) in ("index", "translog"):
        q = os.path.dirname(q)
    uuid_hex = os.path.basename(q)
    parent = os.path.dirname(q)
    if re.fullmatch(r"[0-9a-f]{32}", uuid_hex) and os.path.basename(parent) == "indices":
        data = os.path.dirname(parent)
        if _is_data_dir(data):
            return data, uuid_hex
    raise NotADataDirectoryError(
        f"[{path}] is not a segstore data directory (no catalog/data.mdb) nor an index folder "
        "(<data>/indices/<uuid>) inside one")


def locate(catalog: Catalog, data_dir: str, names: Iterable[str] | None = None,
           uuid_hex: str | None = None) -> list[IndexLocation]:
    """The indices to work on: ``names`` (each must exist), else the one whose folder was given, else all."""
    all_names = catalog.list_indices()
    wanted = list(names or [])
    if not wanted and uuid_hex is not None:
        for n in all_names:
            meta = catalog.get_index(n)
            if meta is not None and meta["uuid"].hex() == uuid_hex:
                wanted = [n]
                break
        else:
            raise NotADataDirectoryError(f"no index with uuid {uuid_hex} in the catalog of [{data_dir}]")
    out = []
    for n in wanted or all_names:
        meta = catalog.get_index(n)
        if meta is None:
            raise IndexNotFoundError(n)
        out.append(IndexLocation(data_dir, n, meta["uuid"]))
    return out


# --------------------------------------------------------------------------------------- file checks


def _peek_header(buf: memoryview) -> dict[str, Any] | None:
    """Lenient parse of a framing header (for reports about damaged files); None if not even the magic."""
    n = len(buf)
    if n < 5:
        return None
    (magic,) = struct.unpack_from(">I", buf, 0)
    if magic != CODEC_MAGIC:
        return None
    nlen = buf[4]
    pos = 5 + nlen
    out: dict[str, Any] = {"format": bytes(buf[5:pos]).decode("ascii", "replace")}
    if pos + 4 + ID_LENGTH + 1 > n:
        return out
    out["version"] = struct.unpack_from(">I", buf, pos)[0]
    pos += 4
    out["segment_id"] = bytes(buf[pos:pos + ID_LENGTH]).hex()
    pos += ID_LENGTH
    slen = buf[pos]
    out["suffix"] = bytes(buf[pos + 1:pos + 1 + slen]).decode("ascii", "replace")
    out["data_offset"] = pos + 1 + slen
    return out


def read_header(path: str) -> dict[str, Any] | None:
    """Lenient header of the file at ``path`` (format, version, segment_id, suffix); None if unframed."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    return _peek_header(memoryview(head))


def _peek_footer(buf: memoryview) -> int | None:
    n = len(buf)
    if n < FOOTER_LENGTH:
        return None
    magic, algo, crc = struct.unpack_from(">IIQ", buf, n - FOOTER_LENGTH)
    return int(crc) if magic == FOOTER_MAGIC and algo == 0 and not crc >> 32 else None


def expected_suffix(file_name: str) -> str:
    """The header suffix a segment file must carry: ``_3_f1.hnsw`` -> ``f1``, ``_3_2.liv`` -> ``2``."""
    stem = file_name.split(".", 1)[0]
    seg = parse_segment_name(file_name)
    return stem[len(seg) + 1:] if len(stem) > len(seg) else ""


def inspect_file(directory: FSDirectory, name: str, *, segment: str | None = None,
                 expected_id: bytes | None = None, verify: bool = True, expected_length: int | None = None,
                 referenced: bool = True) -> FileReport:
    """Header, footer and (``verify``) full CRC of one segment file, through ``FramedInput``."""
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    component = COMPONENTS.get(ext, "other")
    try:
        seg = segment or parse_segment_name(name)
    except ValueError:
        seg = None
    rep = FileReport(name, seg, component, None, referenced=referenced)
    try:
        rep.size = directory.file_length(name)
    except FileNotFoundError:
        rep.problem = Problem(component, f"file is missing: {name}", "MissingFileError", seg, name)
        return rep
    try:
        inp = directory.open_input(name)
    except OSError as e:
        rep.problem = Problem(component, f"cannot open: {e}", "StorageIOError", seg, name)
        return rep
    buf = inp.buffer
    peek = _peek_header(buf) or {}
    rep.format, rep.version = peek.get("format"), peek.get("version")
    rep.segment_id, rep.suffix = peek.get("segment_id"), peek.get("suffix")
    crc = _peek_footer(buf)
    rep.stored_crc = None if crc is None else f"{crc:#010x}"
    if verify and len(buf) >= 8:
        rep.actual_crc = f"{zlib.crc32(buf[:len(buf) - 8]):#010x}"
    fmt = EXPECTED_FORMAT.get(ext) or peek.get("format") or "?"
    vmin, vmax = FORMAT_VERSIONS.get(fmt, (0, 2**32 - 1))
    try:
        suffix = expected_suffix(name) if seg else (peek.get("suffix") or "")
        framed = FramedInput(directory, name, fmt, vmin, vmax, expected_id, suffix,
                             verify_checksum=verify, expected_length=expected_length)
        framed.close()
    except (CorruptIndexError, IndexFormatError) as e:
        rep.problem = problem_from_error(e, component, segment=seg)
        rep.problem.file = name
        if rep.problem.actual is None and rep.problem.error == "TruncatedFileError":
            rep.problem.actual = f"length={rep.size}"
    finally:
        inp.close()
    return rep


def inspect_translog_file(folder: str, name: str) -> FileReport:
    """Header (and for checkpoints, footer + CRC) of a translog file."""
    path = os.path.join(folder, name)
    rep = FileReport(name, None, "translog", os.path.getsize(path))
    with open(path, "rb") as fh:
        data = fh.read(1 << 16) if name.endswith(".tlog") else fh.read()
    buf = memoryview(data)
    peek = _peek_header(buf) or {}
    rep.format, rep.version, rep.segment_id = peek.get("format"), peek.get("version"), peek.get("segment_id")
    rep.suffix = peek.get("suffix")
    if name.endswith(".ckp"):
        crc = _peek_footer(buf)
        rep.stored_crc = None if crc is None else f"{crc:#010x}"
        rep.actual_crc = f"{zlib.crc32(buf[:len(buf) - 8]):#010x}" if len(buf) >= 8 else None
        if rep.stored_crc != rep.actual_crc:
            rep.problem = Problem("translog", "checkpoint checksum mismatch", "ChecksumMismatchError",
                                  file=name, expected=rep.stored_crc, actual=rep.actual_crc)
    elif "data_offset" in peek:
        off = peek["data_offset"]
        if len(buf) >= off + 4:
            (stored,) = struct.unpack_from(">I", buf, off)
            rep.stored_crc = f"{stored:#010x}"
            rep.actual_crc = f"{zlib.crc32(buf[:off]):#010x}"  # the header CRC; records carry their own
    return rep


# ------------------------------------------------------------------------------------ graph analysis


def _bfs(neighbours: np.ndarray, start: int, members: np.ndarray) -> int:
    """Nodes of ``members`` reachable from ``start`` over the (n, width) neighbour matrix (-1 = none)."""
    if start < 0 or not members[start]:
        return 0
    seen = np.zeros(neighbours.shape[0], dtype=bool)
    seen[start] = True
    frontier = np.array([start], dtype=np.int64)
    while frontier.size:
        nb = neighbours[frontier].ravel()
        nb = nb[nb >= 0]
        nb = np.unique(nb[members[nb]])
        nb = nb[~seen[nb]]
        seen[nb] = True
        frontier = nb
    return int(seen.sum())


def _levels_report(levels: np.ndarray, per_level: list[np.ndarray], entry: int) -> tuple[list[int], list[str],
                                                                                         list[str]]:
    """``(nodes at level, "reachable/total" per level, structural errors)``: ``levels[i]`` is the top level
    of node i, ``per_level[l]`` the (n, width) neighbour matrix of level l."""
    nodes, conn, errors = [], [], []
    for lvl, nbrs in enumerate(per_level):
        members = levels >= lvl
        total = int(members.sum())
        if total == 0:
            break
        used = nbrs[members].ravel()
        used = used[used >= 0]
        if used.size and not members[used].all():
            errors.append(f"level {lvl}: a neighbour lives below level {lvl}")
        nodes.append(total)
        conn.append(f"{_bfs(nbrs, entry, members)}/{total}")
    return nodes, conn, errors


def hnswlib_levels(blob: memoryview, count: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """``(top level per ordinal, neighbour matrices per level in ordinals, entry ordinal)`` of an hnswlib
    blob that already passed :func:`validate_hnswlib_blob` (internal ids are mapped back to labels)."""
    from segstore_codecs.segstore1.hnswlib_blob import BLOB_HEADER

    (_off0, _max_el, _cur, size_per, label_off, _data_off, max_level, entry, max_m, max_m0, _m, _mult,
     _efc) = BLOB_HEADER.unpack_from(blob, 0)
    base = BLOB_HEADER.size
    links0 = max_m0 * 4 + 4
    level0 = np.frombuffer(blob, np.uint8, count * size_per, base).reshape(count, size_per)
    counts0 = (level0[:, 0:4].copy().view("<u4")[:, 0] & 0xFFFF).astype(np.int64)
    neigh0 = level0[:, 4:links0].copy().view("<u4").astype(np.int64)
    labels = level0[:, label_off:label_off + 8].copy().view("<u8")[:, 0].astype(np.int64)
    neigh0[np.arange(neigh0.shape[1])[None, :] >= counts0[:, None]] = -1
    size_links = max_m * 4 + 4
    pos = base + count * size_per
    top = np.zeros(count, dtype=np.int64)
    upper: list[np.ndarray] = [np.full((count, max_m), -1, dtype=np.int64) for _ in range(max_level)]
    for i in range(count):
        (size,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if size:
            lv = size // size_links
            block = np.frombuffer(blob, np.uint8, size, pos).reshape(lv, size_links).copy()
            cnt = (block[:, 0:4].view("<u4")[:, 0] & 0xFFFF).astype(np.int64)
            nb = block[:, 4:].view("<u4").astype(np.int64)
            nb[np.arange(nb.shape[1])[None, :] >= cnt[:, None]] = -1
            for j in range(lv):
                upper[j][i] = nb[j]
            top[i] = lv
            pos += size
    # internal id -> label (ordinal)
    def relabel(m: np.ndarray) -> np.ndarray:
        out = np.full_like(m, -1)
        out[labels] = np.where(m >= 0, labels[np.maximum(m, 0)], -1)
        return out

    levels_by_label = np.zeros(count, dtype=np.int64)
    levels_by_label[labels] = top
    return levels_by_label, [relabel(neigh0), *(relabel(u) for u in upper)], int(labels[entry]) if count else -1


def faiss_levels(index: Any) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The same from a loaded faiss ``IndexHNSW*``/``IndexBinaryHNSW`` (its ``hnsw`` arrays)."""
    import faiss

    hnsw = index.hnsw
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64)  # 1 + top level
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    n = levels.shape[0]
    per_level = []
    for lvl in range(int(levels.max()) if n else 0):
        width = int(cum[lvl + 1] - cum[lvl])
        m = np.full((n, width), -1, dtype=np.int64)
        members = np.flatnonzero(levels > lvl)
        if members.size:
            idx = offsets[members][:, None] + cum[lvl] + np.arange(width)[None, :]
            m[members] = neighbors[idx]
        per_level.append(m)
    return levels - 1, per_level, int(hnsw.entry_point)


def graph_connectivity(levels: np.ndarray, per_level: list[np.ndarray], entry: int) -> tuple[list[int], list[str],
                                                                                              list[str]]:
    return _levels_report(levels, per_level, entry)


def graph_rows(leaf: Any, fi: Any) -> tuple[np.ndarray, Any]:
    """The rows a field's graph was built over and the field describing them (the field itself, or for a
    quantized float field the codes as :func:`graph_field` describes them)."""
    from segstore.quantization.state import graph_field, quantizer_for

    values = leaf.vector_values(fi.name)
    rows = values.vectors
    if fi.vector_data_type == "float" and quantizer_for(fi.attributes, fi.vector_space_type) is not None:
        qv = leaf.quantized(fi.name)
        if qv is not None:
            kind = qv.state.kind
            rows = qv.codes.view(np.int8) if kind == "sq7" else (
                qv.codes.astype(np.float32) if kind == "fp16" else qv.codes)
    return rows, graph_field(fi)


def exact_distances(queries: np.ndarray, rows: np.ndarray, gf: Any) -> np.ndarray:
    """Exact distances of the graph format (smaller is nearer) for the graph field ``gf``."""
    space, dt = gf.vector_space_type, gf.vector_data_type
    if dt == "binary" or space == "hamming":
        q = np.asarray(queries, dtype=np.uint8)
        r = np.asarray(rows, dtype=np.uint8)
        return np.stack([np.unpackbits(np.bitwise_xor(r, qi), axis=-1).sum(axis=-1) for qi in q]).astype(
            np.float64)
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(rows, dtype=np.float64)
    if space == "cosinesimil":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        rn = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-30)
        return 1.0 - qn @ rn.T
    if space == "innerproduct":
        return 1.0 - q @ r.T
    return (q * q).sum(1)[:, None] - 2 * q @ r.T + (r * r).sum(1)[None, :]


# ----------------------------------------------------------------------------------------- CheckIndex

ProgressFn = Callable[[int, int, str], None]


class _FailFast(Exception):
    pass


class CheckIndex:
    """Checks one index of a data directory. ``run()`` never raises for damage it can describe.

    ``segments`` restricts the per-segment checks (the primary-key check is then skipped, like Lucene's
    ``-segment``). ``fail_fast`` stops at the first error. ``threads`` checks segments in parallel.
    ``progress(done, total, what)`` is called after each segment.
    """

    def __init__(self, catalog: Catalog, location: IndexLocation, *, level: int = 1,
                 segments: Iterable[str] | None = None, fail_fast: bool = False, threads: int = 1,
                 progress: ProgressFn | None = None, recall_queries: int = 20, min_recall: float = 0.5,
                 round_trip_limit: int | None = None) -> None:
        if level not in (1, 2, 3):
            raise ValueError(f"level must be 1, 2 or 3, got {level}")
        self.catalog = catalog
        self.location = location
        self.level = level
        self.only = set(segments or ())
        self.fail_fast = fail_fast
        self.threads = max(1, int(threads))
        self.progress = progress
        self.recall_queries = recall_queries
        self.min_recall = min_recall
        self.round_trip_limit = round_trip_limit
        self.directory = FSDirectory(location.index_dir) if os.path.isdir(location.index_dir) else None
        self._settings: Any = None
        self._mappings: Any = None
        self._stop = False

    # -- helpers

    def _add(self, target: list[Problem], p: Problem) -> None:
        if p.file is not None and any(q.file == p.file and q.error == p.error and q.message == p.message
                                      for q in target):
            return  # the same damage seen by two checks
        target.append(p)
        if self.fail_fast and p.severity == "error":
            self._stop = True
            raise _FailFast()

    def _metadata(self, status: Status) -> None:
        meta = self.catalog.get_index(self.location.name) or {}
        try:
            self._settings, self._mappings = IndexFiles.parse_metadata(meta)
        except Exception as e:  # noqa: BLE001 - a bad mapping is reported, the file checks still run
            self._add(status.problems, Problem("catalog", f"index metadata does not parse: {e}",
                                               type(e).__name__, file=f"catalog:indices/{self.location.name}",
                                               level=2))

    # -- entry point

    def run(self) -> Status:
        t0 = time.monotonic()
        loc = self.location
        status = Status(loc.name, loc.uuid.hex(), loc.data_dir, self.level, partial=bool(self.only))
        try:
            self._run(status)
        except _FailFast:
            status.partial = True
        status.took_seconds = round(time.monotonic() - t0, 3)
        return status

    def _run(self, status: Status) -> None:
        loc = self.location
        where = f"catalog:commits/{loc.uuid.hex()}"
        try:
            record = self.catalog.latest_commit(loc.uuid)
        except SegstoreError as e:
            status.commit_readable = False
            self._add(status.problems, problem_from_error(e, "commit"))
            return
        if record is None:
            status.commit_readable = False
            self._add(status.problems, Problem("commit", "the index has no commit point", file=where))
            return
        status.generation = int(record.get("generation", 0))
        status.commit = {k: v for k, v in record.items() if k != "segments"}
        status.commit["segment_count"] = len(record.get("segments") or [])
        self._metadata(status)
        if self.directory is None:
            self._add(status.problems, Problem("commit", f"index folder is missing: {loc.index_dir}",
                                               "MissingFileError", file=loc.index_dir))
            return
        entries = list(record.get("segments") or [])
        for s in entries:
            status.segments.append(SegmentStatus(
                s["name"], bytes(s["id"]).hex(), s["codec"], int(s["max_doc"]), int(s["del_gen"]),
                int(s["del_count"]), checked=not self.only or s["name"] in self.only))
        self._check_catalog(status)
        self._check_translog(status, record)
        work = [(st, s) for st, s in zip(status.segments, entries) if st.checked]
        done = 0
        total = len(work)

        def one(item: tuple[SegmentStatus, dict[str, Any]]) -> None:
            st, s = item
            if self._stop:
                return
            try:
                self._check_segment(st, s, record)
            except _FailFast:
                raise
            except Exception as e:  # noqa: BLE001 - an unexpected failure is a finding, not a crash
                self._add(st.problems, problem_from_error(e, segment=st.name, level=self.level))

        if self.threads > 1 and total > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                for _ in pool.map(one, work):
                    done += 1
                    if self.progress:
                        self.progress(done, total, "segments")
        else:
            for item in work:
                one(item)
                done += 1
                if self.progress:
                    self.progress(done, total, item[0].name)
        referenced = {WRITE_LOCK_NAME}
        for st in status.segments:
            referenced.update(st.files)
        status.unreferenced_files = [f for f in self.directory.list_all() if f not in referenced]
        for f in status.unreferenced_files:
            if f.startswith("corrupted_"):
                self._add(status.problems, Problem("commit", "corruption marker present", "CorruptionMarker",
                                                   file=f))
        self._lost_ids(status)
        if self.level >= 2 and not self.only:
            self._check_commit_record(status, record)
            self._check_pk(status)

    # -- catalog

    def _check_catalog(self, status: Status) -> None:
        loc = self.location
        uuid = loc.uuid
        for gen in self.catalog.list_commits(uuid):
            try:
                self.catalog.get_commit(uuid, gen)
            except SegstoreError as e:
                sev = "error" if gen == status.generation else "warning"
                p = problem_from_error(e, "commit")
                p.severity = sev
                self._add(status.problems, p)

        self._pk_values, bad = read_pk_map(self.catalog, uuid)
        status.pk_entries = len(self._pk_values) + len(bad)
        for doc_id, err in bad.items():
            p = problem_from_error(err, "pk")
            p.doc_id = doc_id
            self._add(status.problems, p)

    # -- translog

    def _check_translog(self, status: Status, record: dict[str, Any]) -> None:
        from segstore.translog import Translog

        loc = self.location
        if not os.path.isdir(loc.translog_dir):
            status.translog = {"clean": False, "checkpoint_readable": False, "error": "translog folder is missing"}
            self._add(status.problems, Problem("translog", "translog folder is missing", "MissingFileError",
                                               file=loc.translog_dir))
            return
        report = Translog.inspect(loc.translog_dir)
        summary = translog_summary(report, record)
        status.translog = summary
        if not summary["clean"]:
            first = report.get("first_bad") or {}
            gen = next((g for g in report.get("generations") or [] if g.get("generation") == first.get("generation")),
                       {})
            acked = (gen.get("checkpoint") or {}).get("offset")
            self._add(status.problems, Problem(
                "translog", str(first.get("error") or report.get("error") or "translog is damaged"),
                "TranslogCorruptedError", file=first.get("file") or "translog.ckp",
                expected=None if acked is None else f"records valid up to the checkpointed offset {acked}",
                actual=None if first.get("offset") is None else f"first bad record at offset {first['offset']}"))
        ckp = report.get("checkpoint") or {}
        tl_uuid = record.get("translog_uuid")
        if ckp and isinstance(tl_uuid, (bytes, bytearray)):
            got = ckp.get("translog_uuid")
            if isinstance(got, (bytes, bytearray)):
                got = bytes(got).hex()
            if got is not None and got != bytes(tl_uuid).hex():
                self._add(status.problems, Problem("translog", "translog belongs to another index",
                                                   "TranslogCorruptedError", file="translog.ckp",
                                                   expected=bytes(tl_uuid).hex(), actual=got))

    # -- segments

    def _segment_files(self, st: SegmentStatus) -> list[str]:
        assert self.directory is not None
        out = []
        for f in self.directory.list_all():
            try:
                if parse_segment_name(f) == st.name:
                    out.append(f)
            except ValueError:
                continue
        return out

    def _check_segment(self, st: SegmentStatus, entry: dict[str, Any], record: dict[str, Any]) -> None:
        from segstore.index.segment_reader import read_segment_info

        assert self.directory is not None
        seg_id = bytes(entry["id"])
        info: SegmentInfo | None = None
        try:
            info = read_segment_info(self.directory, st.name, seg_id, st.codec)
        except (SegstoreError, FileNotFoundError, KeyError, OSError) as e:
            p = problem_from_error(e, "segment_info", segment=st.name)
            if isinstance(e, FileNotFoundError) or (isinstance(e, OSError) and not isinstance(e, SegstoreError)):
                p = Problem("segment_info", f"file is missing: {st.name}.si", "MissingFileError", st.name,
                            f"{st.name}.si")
            elif p.actual is None and p.error == "TruncatedFileError":
                p.actual = f"length={self.directory.file_length(f'{st.name}.si')}"
            self._add(st.problems, p)
            st.tests["segment info"] = "FAILED"
        if info is not None:
            st.files = list(info.files)
            st.diagnostics = dict(info.diagnostics)
            st.attributes = dict(info.attributes)
            if info.max_doc != st.max_doc:
                self._add(st.problems, Problem("segment_info", "max_doc in the commit differs from the segment info",
                                               segment=st.name, file=f"{st.name}.si", expected=st.max_doc,
                                               actual=info.max_doc))
            else:
                st.tests["segment info"] = "OK"
        else:
            st.files = sorted(f for f in self._segment_files(st) if not f.endswith(".liv"))
        sci = SegmentCommitInfo(info, st.del_gen, st.del_count) if info is not None else None
        liv = live_docs_file_name(st.name, st.del_gen) if st.del_gen else None
        if liv and liv not in st.files:
            st.files.append(liv)
        # level 1: every file's framing and CRC
        lengths = self._expected_lengths(st, seg_id) if info is not None else {}
        bad = 0
        for f in st.files:
            if f == f"{st.name}.si":
                if info is not None:
                    st.size_bytes += self.directory.file_length(f)
                continue  # fully verified (or reported) by read_segment_info
            rep = inspect_file(self.directory, f, segment=st.name, expected_id=seg_id,
                               expected_length=lengths.get(f))
            st.size_bytes += rep.size or 0
            if rep.problem is not None:
                bad += 1
                self._add(st.problems, rep.problem)
        st.tests["checksums"] = f"OK [{len(st.files)} files]" if not bad else f"FAILED [{bad} of {len(st.files)} files]"
        if bad and info is not None:
            self._name_fields(st, info)
        if self.level < 2 or sci is None:
            return
        non_rebuildable = [p for p in st.problems if not p.rebuildable]
        if non_rebuildable:
            st.tests["open reader"] = "skipped (files damaged)"
            return
        if st.needs("live_docs"):  # check the rest with every doc live; the live docs are reported already
            st.tests["live docs"] = "FAILED (rebuildable from the primary-key map)"
            self._check_segment_logic(st, SegmentCommitInfo(sci.info, 0, 0), record, live_docs=False)
            st.live_ids = None
            return
        self._check_segment_logic(st, sci, record)

    def _name_fields(self, st: SegmentStatus, info: SegmentInfo) -> None:
        """Give per-field file problems (``_3_f1.hnsw``) their field name, when the field infos read."""
        from segstore.codec.registry import codec_for_name

        assert self.directory is not None
        try:
            fis = codec_for_name(info.codec).field_infos_format.read(self.directory, info)
        except Exception:  # noqa: BLE001 - a damaged .fnm is reported on its own
            return
        for p in st.problems:
            m = re.search(r"_f(\d+)\.[a-z]+$", p.file or "")
            if m and p.field is None:
                fi = fis.by_number(int(m.group(1)))
                p.field = fi.name if fi is not None else None

    def _expected_lengths(self, st: SegmentStatus, seg_id: bytes) -> dict[str, int]:
        """Exact lengths that small metadata files record for big data files (.vec, .fdt, .dvd)."""
        assert self.directory is not None
        out: dict[str, int] = {}
        for meta, data, key, fmt in ((f"{st.name}.vem", f"{st.name}.vec", "vec_length", "SegStore1VectorValuesMeta"),
                                     (f"{st.name}.dvm", f"{st.name}.dvd", "dvd_length", "SegStore1DocValuesMeta")):
            if meta not in st.files:
                continue
            try:
                vmin, vmax = FORMAT_VERSIONS.get(fmt, (1, 1))
                with FramedInput(self.directory, meta, fmt, vmin, vmax, seg_id, verify_checksum=True) as inp:
                    doc = msgpack.unpackb(inp.payload, raw=False, strict_map_key=False)
                if isinstance(doc, dict) and isinstance(doc.get(key), int):
                    out[data] = int(doc[key])
            except Exception:  # noqa: BLE001 - the metadata file reports its own damage
                pass
        fdx = f"{st.name}.fdx"
        if fdx in st.files:
            try:
                vmin, vmax = FORMAT_VERSIONS.get("SegStore1StoredFieldsIndex", (1, 1))
                with FramedInput(self.directory, fdx, "SegStore1StoredFieldsIndex", vmin, vmax, seg_id,
                                 verify_checksum=True) as inp:
                    _n, _b, fdt_length = struct.unpack_from(">IIQ", inp.payload, 0)
                out[f"{st.name}.fdt"] = int(fdt_length)
            except Exception:  # noqa: BLE001 - the .fdx reports its own damage
                pass
        return out

    # -- level 2 and 3 of one segment

    def _check_segment_logic(self, st: SegmentStatus, sci: SegmentCommitInfo, record: dict[str, Any], *,
                             live_docs: bool = True) -> None:
        from segstore.index.segment_reader import SegmentReader

        assert self.directory is not None
        try:
            leaf = SegmentReader(self.directory, sci)
        except (SegstoreError, OSError, ValueError, KeyError) as e:
            st.open_reader_passed = False
            st.tests["open reader"] = "FAILED"
            self._add(st.problems, problem_from_error(e, segment=st.name, level=2))
            return
        st.open_reader_passed = True
        st.tests["open reader"] = "OK"
        try:
            if live_docs:
                self._check_live_docs(st, leaf)
            ids = self._check_stored(st, leaf, record, dup_check=live_docs)
            self._check_fields(st, leaf)
            self._check_doc_values(st, leaf)
            st.live_ids = ids
            if self.level >= 3:
                self._check_round_trip(st, leaf)
        finally:
            leaf.dec_ref()

    def _check_live_docs(self, st: SegmentStatus, leaf: Any) -> None:
        live = leaf.live
        if live is None:
            if st.del_count:
                self._add(st.problems, Problem("live_docs", "the commit counts deletes but names no live docs file",
                                               segment=st.name, expected=0, actual=st.del_count, level=2))
                return
            st.tests["live docs"] = "OK [no deletions]"
            return
        deleted = int(live.shape[0] - np.count_nonzero(live))
        if live.shape[0] != st.max_doc or deleted != st.del_count:
            self._add(st.problems, Problem("live_docs", "live docs disagree with the commit's delete count",
                                           segment=st.name, file=sci_liv(st), expected=st.del_count, actual=deleted,
                                           level=2))
            st.tests["live docs"] = "FAILED"
            return
        st.tests["live docs"] = f"OK [{deleted} deleted docs]"

    def _check_stored(self, st: SegmentStatus, leaf: Any, record: dict[str, Any], *,
                      dup_check: bool = True) -> dict[str, tuple[int, int, int]]:
        """Every stored record decodes; returns the live roots' ``id -> (doc, version, seq_no)``."""
        fdt = f"{st.name}.fdt"
        roots = leaf.roots
        root_set = None if roots is None else set(roots.tolist())
        max_seq = int(record.get("max_seq_no", -1))
        live = leaf.live
        ids: dict[str, tuple[int, int, int]] = {}
        n_bad = 0
        try:
            for doc, raw in enumerate(leaf.core.stored.raw_documents(range(st.max_doc))):
                head = msgpack.unpackb(raw, raw=False, strict_map_key=False)
                is_root = root_set is None or doc in root_set
                if not isinstance(head, dict):
                    raise CorruptIndexError(f"doc {doc}: stored record is not a map", fdt)
                if not is_root:
                    if "_nested_path" not in head:
                        self._add(st.problems, Problem("stored", "nested child record has no _nested_path",
                                                       segment=st.name, file=fdt, doc=doc, level=2))
                        n_bad += 1
                    continue
                doc_id, version, seq_no = head.get("_id"), head.get("_version"), head.get("_seq_no")
                if not isinstance(doc_id, str) or not isinstance(version, int) or not isinstance(seq_no, int):
                    self._add(st.problems, Problem("stored", "root record lacks _id/_version/_seq_no",
                                                   segment=st.name, file=fdt, doc=doc, level=2,
                                                   actual={k: head.get(k) for k in ("_id", "_version", "_seq_no")}))
                    n_bad += 1
                    continue
                if seq_no > max_seq:
                    self._add(st.problems, Problem("stored", "seq_no above the commit's max_seq_no", segment=st.name,
                                                   file=fdt, doc=doc, doc_id=doc_id, expected=f"<= {max_seq}",
                                                   actual=seq_no, level=2))
                if live is None or live[doc]:
                    if doc_id in ids and dup_check:
                        self._add(st.problems, Problem("stored", f"id [{doc_id}] is live twice in the segment",
                                                       segment=st.name, file=fdt, doc=doc, doc_id=doc_id,
                                                       expected=ids[doc_id][0], actual=doc, level=2))
                    ids[doc_id] = (doc, version, seq_no)
        except _FailFast:
            raise
        except (SegstoreError, ValueError, msgpack.UnpackException) as e:
            self._add(st.problems, problem_from_error(e, "stored", segment=st.name, level=2))
            st.tests["stored fields"] = "FAILED"
            return ids
        st.tests["stored fields"] = (f"OK [{st.max_doc} docs, {len(ids)} live ids]" if not n_bad
                                     else f"FAILED [{n_bad} bad records]")
        return ids

    def _check_fields(self, st: SegmentStatus, leaf: Any) -> None:
        from segstore.derived_source.attributes import derived_paths
        from segstore.quantization.state import quantizer_for

        fis = leaf.field_infos
        mappings, settings = self._mappings, self._settings
        graph_fields = set(leaf.core.graphs.fields())
        total_vectors = 0
        n_graphs = 0
        for fi in fis.vector_fields():
            fs = FieldStatus(fi.name, fi.number, fi.vector_dimension, fi.vector_data_type, fi.vector_space_type)
            st.fields.append(fs)
            values = leaf.vector_values(fi.name)
            vem = f"{st.name}.vem"
            vec = f"{st.name}.vec"
            if values is None:
                self._add(st.problems, Problem("vectors", "vector field has no entry in the vector metadata",
                                               segment=st.name, file=vem, field=fi.name, level=2))
                continue
            fs.vectors = values.size
            total_vectors += values.size
            o2d = np.asarray(values.ord_to_doc, dtype=np.int64)
            if values.size > st.max_doc or (values.size and not (
                    o2d[0] >= 0 and o2d[-1] < st.max_doc and bool(np.all(o2d[1:] > o2d[:-1])))):
                self._add(st.problems, Problem("vectors", "ord->doc map is not strictly increasing within "
                                               "[0, max_doc)", segment=st.name, file=vec, field=fi.name, level=2))
            if fi.vector_data_type == "float" and values.size:
                chunk = max(1, (1 << 22) // max(1, fi.vector_dimension))
                for start in range(0, values.size, chunk):
                    block = values.vectors[start:start + chunk]
                    finite = np.isfinite(block).all(axis=1)
                    if not finite.all():
                        bad = start + int(np.flatnonzero(~finite)[0])
                        self._add(st.problems, Problem("vectors", "vector holds NaN or Inf", segment=st.name,
                                                       file=vec, field=fi.name, doc=int(o2d[bad]),
                                                       expected="finite", actual=str(values.vectors[bad].tolist()),
                                                       level=2))
                        break
                    if fi.vector_space_type == "cosinesimil":
                        zero = ~(np.abs(block) > 0).any(axis=1)
                        if zero.any():
                            bad = start + int(np.flatnonzero(zero)[0])
                            self._add(st.problems, Problem("vectors", "zero vector in a cosinesimil field",
                                                           segment=st.name, file=vec, field=fi.name,
                                                           doc=int(o2d[bad]), expected="norm > 0", actual=0.0,
                                                           level=2))
                            break
            # attributes against the mapping
            if mappings is not None:
                fm = mappings.vector_fields.get(fi.name)
                if fm is None:
                    self._add(st.problems, Problem("attributes", "vector field is not in the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name, level=2))
                elif getattr(fm, "dimension", None) is not None:
                    want = (fm.dimension, fm.data_type, fm.space_type)
                    got = (fi.vector_dimension, fi.vector_data_type, fi.vector_space_type)
                    if want != got:
                        self._add(st.problems, Problem(
                            "attributes", "vector parameters differ from the mapping "
                            "(dimension, data_type, space_type)", segment=st.name, file=f"{st.name}.fnm",
                            field=fi.name, expected=list(want), actual=list(got), level=2))
                    try:
                        mapped_attrs = fm.field_attributes()
                    except Exception:  # noqa: BLE001 - an unexpected mapping shape only skips this comparison
                        mapped_attrs = {}
                    diff = {k: (mapped_attrs[k], v) for k, v in fi.attributes.items()
                            if k in mapped_attrs and mapped_attrs[k] != v and not k.endswith(".user")}
                    if diff:
                        self._add(st.problems, Problem(
                            "attributes", "field attributes differ from the mapping", segment=st.name,
                            file=f"{st.name}.fnm", field=fi.name,
                            expected={k: a for k, (a, _b) in diff.items()},
                            actual={k: b for k, (_a, b) in diff.items()}, level=2))
            # graph
            graph_file = next((f for f in st.files if f.startswith(f"{st.name}_f{fi.number}.")
                               and f.rsplit(".", 1)[-1] in ("hnsw", "ivf")), None)
            fs.graph_file = graph_file
            q = quantizer_for(fi.attributes, fi.vector_space_type) if fi.vector_data_type == "float" else None
            if q is not None:
                try:
                    qv = leaf.quantized(fi.name)
                except (SegstoreError, OSError, ValueError) as e:
                    self._add(st.problems, problem_from_error(e, "quantization", segment=st.name, level=2,
                                                              field=fi.name))
                    qv = None
                    fs.quantization = {"kind": q[0], "bits": q[1], "state": "unreadable"}
                else:
                    if qv is None:
                        if values.size:
                            self._add(st.problems, Problem("quantization", "quantized field has no state file",
                                                           "MissingFileError", st.name,
                                                           f"{st.name}_f{fi.number}.qst", fi.name, level=2))
                        fs.quantization = {"kind": q[0], "bits": q[1], "state": "missing"}
                    else:
                        rows = int(qv.codes.shape[0])
                        width = int(qv.codes.nbytes // rows) if rows else qv.state.code_width
                        fs.quantization = {"kind": qv.state.kind, "bits": qv.state.bits, "codes": rows,
                                           "code_width": width, "state": "ok"}
                        if rows != values.size or width != qv.state.code_width:
                            self._add(st.problems, Problem(
                                "quantization", "quantized codes do not match the vectors",
                                segment=st.name, file=f"{st.name}_f{fi.number}.qst", field=fi.name,
                                expected=[values.size, qv.state.code_width], actual=[rows, width], level=2))
            if fi.name in graph_fields and any(p.file == graph_file for p in st.problems):
                fs.graph = "unreadable"
            elif fi.name in graph_fields:
                try:
                    graph = leaf.graph(fi.name)
                except (SegstoreError, OSError, ValueError, RuntimeError) as e:
                    p = problem_from_error(e, "graph", segment=st.name, level=2, field=fi.name)
                    if p.file is None:
                        p.file = graph_file
                    self._add(st.problems, p)
                    continue
                n_graphs += 1
                fs.graph = _graph_kind(graph)
                count = getattr(graph, "count", None)
                if count is not None and count != values.size:
                    self._add(st.problems, Problem("graph", "graph size differs from the vector count",
                                                   segment=st.name, file=graph_file, field=fi.name,
                                                   expected=values.size, actual=count, level=2))
                if self.level >= 3:
                    self._check_graph(st, leaf, fi, fs, graph, graph_file)
            elif fi.attributes.get("knn") == "true" and settings is not None and values.size >= max(
                    1, settings.approximate_threshold):
                self._add(st.problems, Problem("graph", "k-NN field has no graph: searches of this segment are exact",
                                               "MissingGraph", st.name, None, fi.name, level=2, severity="warning"))
        root, nested = derived_paths(st.attributes)
        if mappings is not None:
            for path in [p for p in (*root, *nested) if p]:
                if path not in mappings.vector_fields:
                    self._add(st.problems, Problem("attributes", "derived-source path is not a mapped vector field",
                                                   segment=st.name, file=f"{st.name}.si", field=path, level=2))
        if settings is not None and not settings.derived_source and any(p for p in (*root, *nested)):
            self._add(st.problems, Problem("attributes", "segment derives vectors but the index setting "
                                           "index.knn.derived_source.enabled is false", segment=st.name,
                                           file=f"{st.name}.si", expected=[], actual=[*root, *nested], level=2))
        if mappings is not None:
            dv_fields = mappings.doc_value_fields
            for fi in fis:
                if fi.has_vectors or fi.name == "_root" or "doc_values" not in fi.attributes:
                    continue
                mapped = dv_fields.get(fi.name)
                if mapped is None:
                    self._add(st.problems, Problem("attributes", "doc-values field is not in the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name, level=2,
                                                   severity="warning"))
                elif fi.attributes.get("type") not in (None, mapped[1]):
                    self._add(st.problems, Problem("attributes", "doc-values field type differs from the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name,
                                                   expected=mapped[1], actual=fi.attributes.get("type"), level=2))
        st.tests["vectors"] = f"OK [{len(st.fields)} fields, {total_vectors} vectors]" if not any(
            p.component == "vectors" for p in st.problems) else "FAILED"
        st.tests["graphs"] = f"OK [{n_graphs} graphs]" if not any(
            p.component in GRAPH_COMPONENTS and p.severity == "error" for p in st.problems) else "FAILED"

    def _check_doc_values(self, st: SegmentStatus, leaf: Any) -> None:
        roots = leaf.roots
        if roots is None:
            st.tests["doc values"] = f"OK [{len(leaf.core.doc_values.fields())} fields]"
            return
        r = np.asarray(roots, dtype=np.int64)
        ok = r.size > 0 and bool(np.all(r[1:] > r[:-1])) and r[0] >= 0 and r[-1] == st.max_doc - 1
        if not ok:
            self._add(st.problems, Problem("doc_values", "_root doc values are not strictly increasing and ending "
                                           "at max_doc - 1", segment=st.name, file=f"{st.name}.dvd",
                                           expected=st.max_doc - 1, actual=int(r[-1]) if r.size else None, level=2))
            st.tests["doc values"] = "FAILED"
            return
        st.tests["doc values"] = f"OK [{len(leaf.core.doc_values.fields())} fields, {r.size} roots]"

    # -- level 3

    def _check_graph(self, st: SegmentStatus, leaf: Any, fi: Any, fs: FieldStatus, graph: Any,
                     graph_file: str | None) -> None:
        levels = per_level = None
        entry = -1
        try:
            kind = fs.graph
            if kind == "hnswlib" and graph_file:
                blob, meta = _hnswlib_blob(self.directory, graph_file, st, fi)
                levels, per_level, entry = hnswlib_levels(blob, int(meta["count"]))
            elif kind in ("faiss", "faiss_binary"):
                levels, per_level, entry = faiss_levels(graph.index)
        except (SegstoreError, ValueError, struct.error) as e:
            self._add(st.problems, problem_from_error(e, "graph", segment=st.name, level=3, field=fi.name))
            return
        if levels is not None and per_level is not None:
            nodes, conn, errors = graph_connectivity(levels, per_level, entry)
            fs.nodes_at_level, fs.connectedness_at_level = nodes, conn
            for msg in errors:
                self._add(st.problems, Problem("graph", msg, segment=st.name, file=graph_file, field=fi.name,
                                               level=3))
            for lvl, c in enumerate(conn):
                reach, total = (int(x) for x in c.split("/"))
                if reach < total:
                    self._add(st.problems, Problem(
                        "graph", f"level {lvl}: {total - reach} node(s) unreachable from the entry point",
                        "DisconnectedGraph", st.name, graph_file, fi.name, expected=total, actual=reach, level=3,
                        severity="warning" if reach >= 0.99 * total else "error"))
        # recall sample against exact search over the rows the graph was built on
        try:
            rows, gf = graph_rows(leaf, fi)
        except (SegstoreError, OSError, ValueError) as e:
            self._add(st.problems, problem_from_error(e, "quantization", segment=st.name, level=3, field=fi.name))
            return
        n = int(rows.shape[0])
        if n == 0:
            return
        k = min(10, n)
        rng = np.random.default_rng(0)
        picks = rng.choice(n, size=min(self.recall_queries, n), replace=False)
        queries = rows[picks]
        if np.asarray(rows).dtype.kind == "f":
            partners = rows[rng.choice(n, size=len(picks))]
            queries = ((np.asarray(queries, np.float32) + np.asarray(partners, np.float32)) / 2).astype(np.float32)
        ef = max(100, int(fi.attributes.get("hnsw.ef_search", "100") or 100), k)
        try:
            ords, _d = graph.search(queries, k, ef)
        except Exception as e:  # noqa: BLE001 - any search failure is a graph finding
            self._add(st.problems, problem_from_error(e, "graph", segment=st.name, level=3, field=fi.name))
            return
        exact = exact_distances(queries, rows, gf)
        kth = np.sort(exact, axis=1)[:, k - 1]
        hits = 0
        for row in range(len(picks)):
            got = np.asarray(ords[row], dtype=np.int64)
            got = got[(got >= 0) & (got < n)]
            d = exact[row, got]
            hits += int((d <= kth[row] + 1e-6 * max(1.0, abs(float(kth[row]))) + 1e-9).sum())
        recall = hits / (k * len(picks))
        fs.recall = round(recall, 4)
        if recall < self.min_recall:
            self._add(st.problems, Problem("graph", f"recall {recall:.3f} of a {len(picks)}-query sample is below "
                                           f"{self.min_recall}", "LowRecall", st.name, graph_file, fi.name,
                                           expected=f">= {self.min_recall}", actual=round(recall, 4), level=3))

    def _check_round_trip(self, st: SegmentStatus, leaf: Any) -> None:
        """Derived ``_source`` -> document parser -> masked source and vectors equal to what is stored."""
        from segstore.derived_source.attributes import derived_paths
        from segstore.errors import ValidationError
        from segstore.mapping.document_parser import DocumentParser

        if self._mappings is None:
            return
        root, nested = derived_paths(st.attributes)
        paths = [p for p in (*root, *nested) if p]
        parser = DocumentParser(self._mappings, paths)
        live = leaf.live
        docs = [int(d) for d in (leaf.roots if leaf.roots is not None else range(st.max_doc))
                if live is None or live[int(d)]]
        if self.round_trip_limit is not None:
            docs = docs[: self.round_trip_limit]
        fdt = f"{st.name}.fdt"
        n_bad = checked = 0
        for start in range(0, len(docs), 256):
            batch = docs[start:start + 256]
            pairs, stored, metas = [], [], []
            for doc in batch:
                rec = leaf.stored_document(doc)
                raw = rec.get("_source")
                if raw is None:
                    continue
                try:
                    derived = leaf.source(doc, rec)
                except SegstoreError as e:
                    self._add(st.problems, problem_from_error(e, "derived_source", segment=st.name, level=3))
                    n_bad += 1
                    continue
                pairs.append((str(rec.get("_id")), derived))
                stored.append(msgpack.unpackb(raw, raw=False, strict_map_key=False))
                metas.append(doc)
            for (doc_id, _src), want, doc, parsed in zip(pairs, stored, metas, parser.parse(pairs)):
                checked += 1
                if isinstance(parsed, ValidationError):
                    self._add(st.problems, Problem("derived_source", f"derived _source does not parse: {parsed}",
                                                   type(parsed).__name__, st.name, fdt, doc=doc, doc_id=doc_id,
                                                   level=3))
                    n_bad += 1
                    continue
                if parsed.stored_source != want:
                    self._add(st.problems, Problem("derived_source", "re-masked derived _source differs from the "
                                                   "stored _source", segment=st.name, file=fdt, doc=doc,
                                                   doc_id=doc_id, expected=want, actual=parsed.stored_source,
                                                   level=3))
                    n_bad += 1
                    continue
                for path in root:
                    values = leaf.vector_values(path)
                    if values is None or not path:
                        continue
                    o = int(values.doc_to_ord(np.array([doc]))[0])
                    got = parsed.vectors.get(path)
                    want_v = None if o < 0 else values.vectors[o]
                    if not _same_vector(got, want_v, leaf.field_infos.get(path)):
                        self._add(st.problems, Problem("derived_source", "vector re-parsed from the derived _source "
                                                       "differs from the stored vector", segment=st.name,
                                                       file=f"{st.name}.vec", field=path, doc=doc, doc_id=doc_id,
                                                       level=3))
                        n_bad += 1
                        break
            if n_bad and self.fail_fast:
                break
        st.tests["derived source"] = f"OK [{checked} docs round-tripped]" if not n_bad else f"FAILED [{n_bad}]"

    # -- index level

    def _check_commit_record(self, status: Status, record: dict[str, Any]) -> None:
        counter = int(record.get("segment_counter", 0))
        where = f"catalog:commits/{self.location.uuid.hex()}/{status.generation}"
        for st in status.segments:
            try:
                n = from_base36(st.name[1:])
            except ValueError:
                continue
            if n >= counter:
                self._add(status.problems, Problem("commit", "segment_counter is not above every segment name "
                                                   "(the next flush would reuse a name)", file=where,
                                                   segment=st.name, expected=f"> {n}", actual=counter, level=2))

    def _check_pk(self, status: Status) -> None:
        """The catalog's primary-key map must be exactly the live roots of the segments."""
        expected: dict[str, tuple[str, int, int, int]] = {}
        complete = True
        for st in status.segments:
            ids = st.live_ids
            if ids is None:
                complete = False
                continue
            for doc_id, (doc, version, seq_no) in ids.items():
                prev = expected.get(doc_id)
                if prev is not None:
                    self._add(status.problems, Problem("pk", f"id [{doc_id}] is live in two segments",
                                                       doc_id=doc_id, segment=st.name, expected=list(prev[:2]),
                                                       actual=[st.name, doc], level=2))
                    continue
                expected[doc_id] = (st.name, doc, version, seq_no)
        actual = getattr(self, "_pk_values", {})  # entries that decoded (the others were reported at level 1)
        seg_ok = {st.name for st in status.segments if st.live_ids is not None}
        where = f"catalog:pk/{self.location.uuid.hex()}"
        mismatches = 0
        for doc_id, value in actual.items():
            want = expected.get(doc_id)
            if want is None:
                if not complete and value and value[0] not in seg_ok:
                    continue  # its segment could not be read: reported there
                self._add(status.problems, Problem("pk", "primary-key entry points to no live document",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=None,
                                                   actual=list(value), level=2))
                mismatches += 1
            elif [str(want[0]), int(want[1]), int(want[2]), int(want[3])] != [str(value[0]), int(value[1]),
                                                                               int(value[2]), int(value[3])]:
                self._add(status.problems, Problem("pk", "primary-key entry disagrees with the segments",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=list(want),
                                                   actual=list(value), level=2))
                mismatches += 1
        for doc_id, want in expected.items():
            if doc_id not in actual:
                self._add(status.problems, Problem("pk", "live document has no primary-key entry",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=list(want),
                                                   actual=None, level=2))
                mismatches += 1

    def _lost_ids(self, status: Status) -> None:
        """Ids that exorcising each corrupt segment would lose, from the catalog's primary-key map."""
        bad = {s.name: s for s in status.segments if s.status == "corrupt"}
        if not bad:
            return
        for doc_id, value in getattr(self, "_pk_values", {}).items():
            if value and value[0] in bad:
                bad[value[0]].ids_to_lose.append(doc_id)
        for s in bad.values():
            s.ids_to_lose.sort()


def read_pk_map(catalog: Catalog, uuid: bytes) -> tuple[dict[str, tuple[Any, ...]], dict[str, SegstoreError]]:
    """Every primary-key entry of the index decoded on its own: ``(values by id, errors by id)`` (unlike
    ``Catalog.pk_items``, one damaged entry does not hide the others)."""

    def raw(txn: Any, dbs: Any) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in iter_prefix(txn, dbs["pk"], uuid)]

    items = catalog._read(raw)
    values: dict[str, tuple[Any, ...]] = {}
    bad: dict[str, SegstoreError] = {}
    for k, v in items:
        doc_id = k[16:].decode("utf-8", "replace")
        try:
            value = decode_value(v, key_repr("pk", k))
            if not (isinstance(value, list) and len(value) == 4):
                raise CorruptIndexError(f"pk value must be [segment, doc, version, seq_no], got {value!r}",
                                        key_repr("pk", k))
            values[doc_id] = tuple(value)
        except SegstoreError as e:
            bad[doc_id] = e
    return values, bad


def _same_vector(got: Any, want: Any, fi: Any) -> bool:
    """Bit-exact, except for fields the parser L2-normalises (faiss ``cosinesimil``): float32 normalisation
    is not idempotent, so re-parsing a derived unit vector may move components by an ulp (see the report)."""
    if got is None or want is None:
        return got is None and want is None
    a, b = np.asarray(got), np.asarray(want)
    if a.tobytes() == b.tobytes():
        return True
    normalised = (fi is not None and fi.vector_data_type == "float" and fi.vector_space_type == "cosinesimil"
                  and fi.attributes.get("engine", "faiss") == "faiss")
    return bool(normalised and a.shape == b.shape and np.max(np.abs(a.astype(np.float64) - b)) <= 4.8e-7)


def sci_liv(st: SegmentStatus) -> str | None:
    return live_docs_file_name(st.name, st.del_gen) if st.del_gen else None


def _graph_kind(graph: Any) -> str:
    name = type(graph).__name__
    if name == "HnswGraph":
        return "hnswlib"
    if name == "FaissGraph":
        layout = getattr(graph, "layout", None)
        return getattr(layout, "library", "faiss")
    if "Ivf" in name:
        return "ivf"
    return name


def _hnswlib_blob(directory: Any, name: str, st: SegmentStatus, fi: Any) -> tuple[memoryview, dict[str, Any]]:
    from segstore_codecs.segstore1.hnswlib_blob import validate_hnswlib_blob

    vmin, vmax = FORMAT_VERSIONS.get("SegStore1HnswGraph", (1, 2))
    inp = FramedInput(directory, name, "SegStore1HnswGraph", vmin, vmax, bytes.fromhex(st.segment_id),
                      f"f{fi.number}", verify_checksum=True)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(inp.payload[:4096])
    meta = dict(unpacker.unpack())
    blob = inp.payload[unpacker.tell():]
    meta.setdefault("library", "hnswlib")
    validate_hnswlib_blob(blob, meta, name)
    return blob, meta


# --------------------------------------------------------------------------------------- translog


def _acked(gen: dict[str, Any]) -> int:
    ckp = gen.get("checkpoint") or {}
    return int(ckp["num_ops"]) if "num_ops" in ckp else int(gen.get("operations") or 0)


def translog_summary(report: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    """:meth:`Translog.inspect` plus what the commit says: uncommitted operations, and for a damaged
    translog how many operations truncation would drop (and how many of those the commit already holds)."""
    ckp = report.get("checkpoint")
    committed_gen = int((record or {}).get("translog_generation", 0) or 0)
    gens = report.get("generations") or []
    out: dict[str, Any] = {
        "path": report.get("path"), "clean": bool(report.get("clean")), "checkpoint_readable": ckp is not None,
        "error": report.get("error"), "checkpoint": ckp, "first_bad": report.get("first_bad"),
        "committed_generation": committed_gen, "generations": gens,
        "stray_files": report.get("stray_files") or [],
        # acknowledged operations (the checkpoints' counts; records that no longer verify included)
        "operations": sum(_acked(g) for g in gens),
        "uncommitted_operations": sum(_acked(g) for g in gens if int(g.get("generation", 0)) >= committed_gen),
        "unreadable_operations": sum(_acked(g) - int(g.get("operations") or 0) for g in gens),
    }
    first = report.get("first_bad")
    if first and ckp is not None:
        # Generations below the commit's translog generation hold only committed operations (a crash between
        # the catalog commit and the translog trim leaves them behind): damage there costs nothing, the repair
        # trims them. Damage at or above it loses every operation from the first bad record on.
        out["damaged_committed_generations"] = [int(g["generation"]) for g in gens if g.get("error")
                                                and int(g.get("generation", 0)) < committed_gen]
        bad_gen = next((int(g["generation"]) for g in gens if g.get("error")
                        and int(g.get("generation", 0)) >= committed_gen), None)
        lost = 0
        for g in gens:
            gen = int(g.get("generation", 0))
            if bad_gen is None or gen < bad_gen:
                continue
            gckp = g.get("checkpoint") or {}
            n = int(gckp.get("num_ops", g.get("operations") or 0)) if gckp else int(g.get("operations") or 0)
            if gen == bad_gen and g.get("first_bad_offset") not in (None, 0) and gckp:
                n = max(0, n - int(g.get("operations") or 0))
            lost += n
        out["ops_to_lose"] = lost
    return out


def iter_translog_ops(translog_dir: str, min_generation: int) -> Iterator[dict[str, Any]]:
    """Read-only: the acknowledged operations of generations >= ``min_generation``, in order (for dry runs
    and reports; raises :class:`TranslogCorruptedError` on damage)."""
    from segstore.translog.checkpoint import (
        CHECKPOINT_NAME,
        Checkpoint,
        ckp_name,
        iter_records,
        read_tlog_header,
        tlog_name,
    )

    ckp = Checkpoint.read(os.path.join(translog_dir, CHECKPOINT_NAME))
    for g in range(max(min_generation, ckp.min_translog_generation), ckp.generation + 1):
        gckp = ckp if g == ckp.generation else Checkpoint.read(os.path.join(translog_dir, ckp_name(g)))
        path = os.path.join(translog_dir, tlog_name(g))
        with open(path, "rb") as fh:
            start = read_tlog_header(fh, path, ckp.translog_uuid, g)
            for _off, op in iter_records(fh, path, start, gckp.offset):
                yield op
