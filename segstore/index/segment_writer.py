"""Writes one complete segment through a codec; shared by flushes and merges.

Order: stored fields, vector values, graphs (built from the vector values just written), field infos, and
last the segment info, which lists every file. Nothing references the segment until the writer publishes it
in its segment list, so a failure at any step only has to remove what was already written: every format
writer is aborted and every published file deleted before the error propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from segstore.codec.base import Codec, VectorValues
from segstore.quantization.state import graph_field, quantizer_for, train
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.file_names import segment_file_name
from segstore.index.segment_info import SegmentCommitInfo, SegmentInfo, new_segment_id
from segstore.index.write_state import SegmentWriteState
from segstore.store.directory import Directory

__all__ = ["write_segment", "SEGSTORE_VERSION"]

SEGSTORE_VERSION = "0.1.0"


def write_segment(
    codec: Codec,
    directory: Directory,
    name: str,
    records: Iterable[dict[str, Any] | bytes],
    num_docs: int,
    field_infos: FieldInfos,
    vectors: dict[str, tuple[np.ndarray, np.ndarray]],
    build_graph: Callable[[FieldInfo, int], bool],
    attributes: dict[str, str],
    diagnostics: dict[str, str],
    timings: dict[str, float] | None = None,
    doc_values: dict[str, tuple[np.ndarray, Any]] | None = None,
    graph_sources: dict[str, list[tuple[Any, np.ndarray]]] | None = None,
    prebuilt_graph: Callable[[FieldInfo, int], Any] | None = None,
) -> SegmentCommitInfo:
    """Write segment ``name`` and return its commit info (generation 0, no deletes).

    ``records`` are stored-field documents (dicts) or raw records copied from another segment (bytes);
    ``vectors`` maps a field name to ``(rows, doc ids)``; ``doc_values`` maps a doc-values field to
    ``(doc ids, values)`` (one entry per value). ``timings`` (optional) receives seconds spent
    per step, for benchmarks. ``prebuilt_graph(field, count)`` (flushes) returns the graph an incremental
    builder grew while the documents were buffered, or None to build it here.
    """
    info = SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=num_docs, codec=codec.name,
                       attributes=dict(attributes),
                       diagnostics={"segstore.version": SEGSTORE_VERSION, "timestamp": f"{time.time():.3f}",
                                    **diagnostics})
    state = SegmentWriteState(directory, info, field_infos)
    published: list[str] = []
    t = timings if timings is not None else {}
    stored = codec.stored_fields_format.fields_writer(state)
    vec_writer = None
    graph_writer = None
    dv_writer = None
    state_files: list[str] = []
    try:
        t0 = time.perf_counter()
        count = 0
        for rec in records:
            if isinstance(rec, (bytes, bytearray, memoryview)):
                stored.write_raw(bytes(rec))
            else:
                stored.write_document(rec)
            count += 1
        stored.finish(count)
        t["stored_fields"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        vec_writer = codec.vector_values_format.fields_writer(state)
        for fi in field_infos.vector_fields():
            rows, docs = vectors[fi.name]
            vec_writer.add_field(fi, rows, docs)
        vec_writer.finish()
        t["vector_values"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        graph_writer = codec.graph_format.fields_writer(state)
        for fi in field_infos.vector_fields():
            rows, docs = vectors[fi.name]
            if rows.shape[0] == 0:
                continue
            graph_rows = rows
            q = quantizer_for(fi.attributes, fi.vector_space_type) if fi.vector_data_type == "float" else None
            if q is not None:
                # Quantization state is trained on this segment's own vectors, at flush and at merge.
                qstate = train(q[0], q[1], rows, normalize=fi.vector_space_type == "cosinesimil",
                               clip=fi.attributes.get("encoder.clip") == "true")
                codes = qstate.encode(rows)
                state_files.append(codec.quantization_state_format.write(directory, info, fi, qstate, codes))
                # fp16: the graph gets the fp16 codes themselves (clipped when the encoder clips), so the
                # graph's stored values are exactly the state's codes
                graph_rows = codes.view(np.int8) if qstate.kind == "sq7" else (
                    codes.astype(np.float32) if qstate.kind == "fp16" else codes)
            if build_graph(fi, rows.shape[0]):
                gf = graph_field(fi)
                values = VectorValues(fi.name, gf.vector_dimension, gf.vector_data_type, graph_rows, docs)
                sources = (graph_sources or {}).get(fi.name)  # merges: (input graph, keep mask) per input
                prebuilt = prebuilt_graph(fi, rows.shape[0]) if prebuilt_graph is not None and q is None else None
                if sources is not None and q is None and hasattr(graph_writer, "merge_field"):
                    graph_writer.merge_field(fi, values, sources)  # IVF: inverted lists concatenated
                elif prebuilt is not None:
                    graph_writer.add_field(fi, values, prebuilt=prebuilt)
                else:
                    graph_writer.add_field(fi, values)
        graph_writer.finish()
        state.files.update(state_files)
        t["graph"] = time.perf_counter() - t0

        dv_writer = codec.doc_values_format.fields_writer(state)
        for fi in field_infos:
            kind = fi.attributes.get("doc_values")
            if kind is None or doc_values is None or fi.name not in doc_values:
                continue
            docs, values = doc_values[fi.name]
            if kind == "sorted_set":
                dv_writer.add_keyword(fi.name, docs, list(values))
            else:
                dv_writer.add_numeric(fi.name, docs, np.asarray(values))
        dv_writer.finish()

        fnm = codec.field_infos_format.write(directory, info, field_infos)
        published.append(fnm)
        state.files.add(fnm)
        si_name = segment_file_name(name, "", "si")
        info.files = sorted(state.files | {si_name})
        published.append(codec.segment_info_format.write(directory, info))
    except BaseException:
        for w in (stored, vec_writer, graph_writer, dv_writer):
            if w is not None:
                try:
                    w.abort()
                except Exception:  # noqa: BLE001 - the original error matters more
                    pass
        for f in set(state.files) | set(published) | set(state_files):
            try:
                directory.delete_file(f)
            except (FileNotFoundError, OSError):
                pass
        raise
    return SegmentCommitInfo(info)
