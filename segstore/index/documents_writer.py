"""``DocumentsWriter``: turns a batch of buffered documents into one new segment.

Documents get doc ids in buffer order. Each vector field present in the batch becomes a field of the
segment with the mapping's parameters as field attributes; its rows are stacked in one numpy call. The
derived-source attributes are computed here, after every document of the segment has been parsed, from
the mapping as it is at flush time (derived-source.md §8 rule 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segstore.codec.base import Codec
from segstore.derived_source.attributes import NESTED_KEY, ROOT_KEY, format_paths
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.operations import BufferedDoc
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_writer import write_segment
from segstore.mapping.mappings import Mappings
from segstore.store.directory import Directory

__all__ = ["flush_documents", "vector_field_infos"]

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
) -> SegmentCommitInfo:
    """Write ``docs`` as segment ``name``."""
    present = {p for d in docs for p in d.vectors}
    dv_present = {p for d in docs for p in d.doc_values}
    field_infos = vector_field_infos(mappings, present, dv_present)
    doc_values: dict[str, tuple[np.ndarray, list]] = {}
    for path in dv_present:
        ids: list[int] = []
        vals: list = []
        for i, d in enumerate(docs):
            got = d.doc_values.get(path)
            if got:
                ids.extend([i] * len(got))
                vals.extend(got)
        doc_values[path] = (np.asarray(ids, dtype=np.int32), vals)
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fi in field_infos.vector_fields():
        docs_with = [(i, d.vectors[fi.name]) for i, d in enumerate(docs) if fi.name in d.vectors]
        rows = np.stack([v for _, v in docs_with]).astype(_DTYPES[fi.vector_data_type], copy=False)
        vectors[fi.name] = (rows, np.fromiter((i for i, _ in docs_with), dtype=np.int32, count=len(docs_with)))
    root = [p for p in derived_paths if mappings.nested_scope(p) is None]
    nested = [p for p in derived_paths if mappings.nested_scope(p) is not None]
    attributes = {}
    if root:
        attributes[ROOT_KEY] = format_paths(root)
    if nested:
        attributes[NESTED_KEY] = format_paths(nested)

    def build_graph(fi: FieldInfo, count: int) -> bool:
        return fi.attributes.get("knn") == "true" and count >= max(1, build_graph_min_vectors)

    return write_segment(codec, directory, name, (d.stored_record() for d in docs), len(docs), field_infos,
                         vectors, build_graph, attributes, {"source": "flush"}, doc_values=doc_values)
