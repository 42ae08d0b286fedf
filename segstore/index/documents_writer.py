"""``DocumentsWriter``: turns a batch of buffered documents into one new segment.

Documents get doc ids in buffer order. Each vector field present in the batch becomes a field of the
segment with the mapping's parameters as field attributes; its rows are stacked in one numpy call. The
derived-source attributes are computed here, after every document of the segment has been parsed, from
the mapping as it is at flush time (derived-source.md §8 rule 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segstore.codec.base import Codec
from segstore.derived_source.attributes import NESTED_KEY, ROOT_KEY, format_paths
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.operations import BufferedDoc
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_writer import write_segment
from segstore.mapping.mappings import Mappings
from segstore.store.directory import Directory

__all__ = ["flush_documents", "vector_field_infos", "root_doc_ids", "ROOT_FIELD"]

ROOT_FIELD = "_root"  # doc values marking root documents; absent when a segment has no nested documents


def root_doc_ids(docs: Sequence[BufferedDoc]) -> list[int]:
    """Doc id of each document's root in a segment made of ``docs`` (children precede their root)."""
    out, next_id = [], 0
    for d in docs:
        next_id += len(d.children)
        out.append(next_id)
        next_id += 1
    return out

_DTYPES = {"float": np.float32, "byte": np.int8, "binary": np.uint8}


def vector_field_infos(mappings: Mappings, present: set[str], dv_present: set[str] = frozenset()) -> FieldInfos:
    """Field infos for the mapped vector fields in ``present`` (numbered in mapping order), then the
    doc-values fields in ``dv_present``."""
    infos = []
    for path, fm in mappings.vector_fields.items():
        if path in present:
            dimension = fm.require_dimension()  # a model field: "Model ID '<id>' is not created."
            assert fm.space_type is not None
            infos.append(FieldInfo(path, len(infos), dimension, fm.data_type, fm.space_type,
                                   fm.field_attributes()))
    for path, (_, ftype) in mappings.doc_value_fields.items():
        if path in dv_present:
            kind = "sorted_set" if ftype in ("keyword", "constant_keyword", "ip") else "numeric"
            infos.append(FieldInfo(path, len(infos), attributes={"doc_values": kind, "type": ftype}))
    return FieldInfos(infos)


def flush_documents(
    codec: Codec,
    directory: Directory,
    name: str,
    docs: Sequence[BufferedDoc],
    mappings: Mappings,
    derived_paths: Sequence[str],
    build_graph_min_vectors: int,
    prebuilt_graph: Callable[[FieldInfo, int], Any] | None = None,
    grown_rows: Callable[[str], np.ndarray | None] | None = None,
) -> SegmentCommitInfo:
    """Write ``docs`` as segment ``name``. ``prebuilt_graph`` and ``grown_rows`` hand out the graphs grown
    while the documents were buffered and the rows they were grown from
    (:class:`~segstore.index.buffered_graphs.BufferedGraphs`)."""
    roots = root_doc_ids(docs)
    max_doc = roots[-1] + 1 if roots else 0
    has_children = max_doc != len(docs)
    present = {p for d in docs for p in d.vectors} | {p for d in docs for _, v in d.children for p in v}
    dv_present = {p for d in docs for p in d.doc_values}
    field_infos = vector_field_infos(mappings, present, dv_present)
    if has_children:
        field_infos = FieldInfos(list(field_infos) + [FieldInfo(ROOT_FIELD, len(field_infos),
                                                               attributes={"doc_values": "numeric"})])
    doc_values: dict[str, tuple[np.ndarray, list]] = {}
    for path in dv_present:
        ids: list[int] = []
        vals: list = []
        for root, d in zip(roots, docs):
            got = d.doc_values.get(path)
            if got:
                ids.extend([root] * len(got))
                vals.extend(got)
        doc_values[path] = (np.asarray(ids, dtype=np.int32), vals)
    if has_children:
        doc_values[ROOT_FIELD] = (np.asarray(roots, dtype=np.int32), [1] * len(roots))
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fi in field_infos.vector_fields():
        grown = grown_rows(fi.name) if grown_rows is not None and not has_children else None
        if grown is not None:  # a root-level field whose rows were stacked bulk by bulk as they arrived
            ids = np.fromiter((i for i, d in enumerate(docs) if fi.name in d.vectors), dtype=np.int32)
            if ids.shape[0] == grown.shape[0]:
                vectors[fi.name] = (grown.astype(_DTYPES[fi.vector_data_type], copy=False), ids)
                continue
        with_field: list[tuple[int, np.ndarray]] = []
        for root, d in zip(roots, docs):
            if d.children:
                first = root - len(d.children)
                with_field.extend((first + c, vecs[fi.name]) for c, (_, vecs) in enumerate(d.children)
                                  if fi.name in vecs)
            if fi.name in d.vectors:
                with_field.append((root, d.vectors[fi.name]))
        rows = np.stack([v for _, v in with_field]).astype(_DTYPES[fi.vector_data_type], copy=False)
        vectors[fi.name] = (rows, np.fromiter((i for i, _ in with_field), dtype=np.int32, count=len(with_field)))

    def records() -> list:
        out: list = []
        for d in docs:
            out.extend({"_nested_path": path} for path, _ in d.children)
            out.append(d.stored_record())
        return out
    root = [p for p in derived_paths if mappings.nested_scope(p) is None]
    nested = [p for p in derived_paths if mappings.nested_scope(p) is not None]
    attributes = {}
    if root:
        attributes[ROOT_KEY] = format_paths(root)
    if nested:
        attributes[NESTED_KEY] = format_paths(nested)

    def build_graph(fi: FieldInfo, count: int) -> bool:
        return fi.attributes.get("knn") == "true" and count >= max(1, build_graph_min_vectors)

    return write_segment(codec, directory, name, records(), max_doc, field_infos,
                         vectors, build_graph, attributes, {"source": "flush"}, doc_values=doc_values,
                         prebuilt_graph=prebuilt_graph)
