"""The read path of the inspection commands: the segments of one commit, each opened on its own.

None of the inspection commands (``info``, ``segments``, ``files``, ``doc``, ``dump``, ``stats``,
``warmup``) takes the write lock or writes a byte: they read the last commit (``segments --commit N``: an
older stored generation) straight from the files, so they also work next to a running writer or server and
on a damaged index (a segment that does not open is shown with its error, the others normally).

:func:`open_segments` yields the commit record and a :class:`SegmentHandle` per segment;
:func:`segment_rows` describes each segment (``_cat/segments`` columns, per vector field details read from
the graph and quantization-state headers, bytes per file type); :func:`translog_summary_of` summarises the
index's translog. The graph meta (``.hnsw``) is the msgpack map right after the file header; the
quantization-state meta (``.qst``) is ``Length:u32, msgpack map[Length]`` there.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
from segstore_tools.progress import UsageError

__all__ = ["SegmentHandle", "open_segments", "segment_files", "segment_rows", "translog_summary_of"]


@dataclass
class SegmentHandle:
    """One segment of a commit: its commit entry, and its info / reader when they open (else ``error``)."""

    entry: dict[str, Any]
    info: Any = None
    leaf: Any = None
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.entry["name"])


@contextlib.contextmanager
def open_segments(catalog: Any, loc: Any, generation: int | None = None,
                  open_readers: bool = True) -> Iterator[tuple[dict[str, Any], list[SegmentHandle]]]:
    """``(commit record, segments)`` of the last commit (or ``generation``), each opened on its own."""
    from segstore.errors import SegstoreError
    from segstore.index.segment_info import SegmentCommitInfo
    from segstore.index.segment_reader import SegmentReader, read_segment_info
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid) if generation is None else catalog.get_commit(loc.uuid, generation)
    if record is None:
        stored = catalog.list_commits(loc.uuid)
        raise UsageError(f"index [{loc.name}] has no commit generation {generation} (stored: {stored})")
    handles = [SegmentHandle(dict(e)) for e in record.get("segments") or []]
    directory = FSDirectory(loc.index_dir) if os.path.isdir(loc.index_dir) else None
    try:
        for h in handles:
            if directory is None:
                h.error = f"index folder is missing: {loc.index_dir}"
                continue
            try:
                h.info = read_segment_info(directory, h.name, bytes(h.entry["id"]), h.entry["codec"])
                if open_readers:
                    sci = SegmentCommitInfo(h.info, int(h.entry["del_gen"]), int(h.entry["del_count"]))
                    h.leaf = SegmentReader(directory, sci)
            except (SegstoreError, OSError, ValueError, KeyError) as e:
                h.error = f"{type(e).__name__}: {e}"
        yield record, handles
    finally:
        for h in handles:
            if h.leaf is not None:
                h.leaf.dec_ref()


def _file_size(loc: Any, name: str) -> int | None:
    try:
        return os.path.getsize(os.path.join(loc.index_dir, name))
    except OSError:
        return None


def segment_files(h: SegmentHandle) -> list[str]:
    from segstore.index.file_names import live_docs_file_name

    files = list(h.info.files) if h.info is not None else []
    if int(h.entry.get("del_gen", 0)):
        files.append(live_docs_file_name(h.name, int(h.entry["del_gen"])))
    return files


def _framed_meta(path: str, *, length_prefixed: bool = False) -> dict[str, Any] | None:
    """The msgpack map right after a file's header (graph meta; ``length_prefixed``: .qst meta)."""
    from segstore.index.check import read_header

    head = read_header(path)
    if not head or "data_offset" not in head:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(head["data_offset"])
            data = fh.read(8192)
        if length_prefixed:
            (n,) = struct.unpack_from(">I", data, 0)
            meta = msgpack.unpackb(data[4:4 + n], raw=False)
        else:
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(data)
            meta = unpacker.unpack()
        return meta if isinstance(meta, dict) else None
    except Exception:  # noqa: BLE001 - a damaged header is reported by check, not here
        return None


def _field_rows(loc: Any, h: SegmentHandle) -> list[dict[str, Any]]:
    from segstore.derived_source.attributes import derived_paths

    if h.leaf is None:
        return []
    root, nested = derived_paths(h.info.attributes)
    files = set(segment_files(h))
    rows = []
    for fi in h.leaf.field_infos.vector_fields():
        values = h.leaf.vector_values(fi.name)
        a = fi.attributes
        graph = graph_file = None
        graph_bytes = 0
        for ext in ("hnsw", "ivf"):
            name = f"{h.name}_f{fi.number}.{ext}"
            if name in files:
                graph_file = name
                graph_bytes = _file_size(loc, name) or 0
                meta = _framed_meta(os.path.join(loc.index_dir, name))
                graph = "ivf" if ext == "ivf" else ((meta or {}).get("library") or "hnswlib" if meta else "unreadable")
        qfile = f"{h.name}_f{fi.number}.qst"
        quant = None
        if qfile in files:
            meta = _framed_meta(os.path.join(loc.index_dir, qfile), length_prefixed=True) or {}
            quant = {"file": qfile, "kind": meta.get("kind"), "bits": meta.get("bits"), "codes": meta.get("count"),
                     "code_width": meta.get("code_width"), "bytes": _file_size(loc, qfile)}
        rows.append({
            "field": fi.name, "number": fi.number, "vectors": None if values is None else values.size,
            "dimension": fi.vector_dimension, "data_type": fi.vector_data_type, "space_type": fi.vector_space_type,
            "knn": a.get("knn"), "engine": a.get("engine"), "method": a.get("method"),
            "m": a.get("hnsw.m"), "ef_construction": a.get("hnsw.ef_construction"),
            "graph": graph, "graph_file": graph_file, "graph_bytes": graph_bytes,
            "compression": a.get("compression"), "mode": a.get("mode"), "encoder": a.get("encoder"),
            "quantization": quant,
            "derived": "root" if fi.name in root else "nested" if fi.name in nested else None,
        })
    return rows


def segment_rows(loc: Any, record: dict[str, Any], handles: list[SegmentHandle], *,
                 with_files: bool = False) -> list[dict[str, Any]]:
    """``_cat/segments`` rows plus the per-field and per-file-type details."""
    from segstore.derived_source.attributes import derived_paths
    from segstore.index.check import COMPONENTS, inspect_file
    from segstore.index.file_names import from_base36
    from segstore.store import FSDirectory

    out = []
    for h in handles:
        e = h.entry
        files = segment_files(h)
        by_ext: dict[str, int] = {}
        size = 0
        for f in files:
            n = _file_size(loc, f) or 0
            size += n
            ext = f.rsplit(".", 1)[-1]
            by_ext[ext] = by_ext.get(ext, 0) + n
        diag = dict(h.info.diagnostics) if h.info is not None else {}
        root, nested = derived_paths(h.info.attributes) if h.info is not None else ([], [])
        try:
            generation = from_base36(h.name[1:])
        except ValueError:
            generation = None
        row: dict[str, Any] = {
            "index": loc.name, "shard": 0, "prirep": "p", "segment": h.name, "generation": generation,
            "docs.count": int(e["max_doc"]) - int(e["del_count"]), "docs.deleted": int(e["del_count"]),
            "max_doc": int(e["max_doc"]), "size": size, "size.memory": 0, "committed": True, "searchable": True,
            "version": diag.get("segstore.version"), "compound": False, "codec": e.get("codec"),
            "segment_id": bytes(e["id"]).hex(), "del_gen": int(e["del_gen"]), "source": diag.get("source"),
            "merged_from": diag.get("merged_from"), "timestamp": diag.get("timestamp"),
            "derived_paths": {"root": [p for p in root if p], "nested": [p for p in nested if p]},
            "bytes_by_type": dict(sorted(by_ext.items())),
            "bytes_by_component": _by_component(by_ext, COMPONENTS),
            "fields": _field_rows(loc, h), "error": h.error,
        }
        if with_files:
            directory = FSDirectory(loc.index_dir) if os.path.isdir(loc.index_dir) else None
            reps = []
            for f in files:
                if directory is None:
                    break
                rep = inspect_file(directory, f, segment=h.name, expected_id=bytes(e["id"]), verify=False)
                reps.append({"file": f, "size": rep.size, "crc": rep.stored_crc, "format": rep.format,
                             "version": rep.version,
                             "problem": None if rep.problem is None else str(rep.problem)})
            row["files"] = reps
        out.append(row)
    return out


def _by_component(by_ext: dict[str, int], components: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ext, n in by_ext.items():
        c = components.get(ext, "other")
        out[c] = out.get(c, 0) + n
    return dict(sorted(out.items()))


def translog_summary_of(loc: Any, record: dict[str, Any] | None) -> dict[str, Any]:
    from segstore.index.check import translog_summary
    from segstore.translog import Translog

    if not os.path.isdir(loc.translog_dir):
        return {"clean": False, "error": "translog folder is missing"}
    summary = translog_summary(Translog.inspect(loc.translog_dir), record)
    summary["size_in_bytes"] = sum(int(g.get("size") or 0) for g in summary.get("generations") or [])
    return summary
