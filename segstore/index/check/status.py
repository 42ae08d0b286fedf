"""The report types of CheckIndex: :class:`Problem` (one finding), :class:`FileReport` (one file's header
and footer), :class:`FieldStatus`, :class:`SegmentStatus` and :class:`Status` (Lucene's
``CheckIndex.Status``), and :meth:`Status.repair_plan`, the repairs ``segstore repair`` would run.

Every type has ``to_dict()``: the JSON shape of ``segstore check --json`` (bytes as hex, numpy values as
Python values, non-finite floats as strings).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segstore.errors import (
    ChecksumMismatchError,
    IndexFormatError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.index.check.formats import REBUILDABLE, component_of

__all__ = [
    "FieldStatus",
    "FileReport",
    "Problem",
    "SegmentStatus",
    "Status",
    "problem_from_error",
]


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
