"""``SegmentMerger``: merges segments into one new segment, dropping deleted documents.

Per format (style rule 5: merges read raw, never through the injecting view):

* stored fields: the raw records of live documents are copied as bytes, so masked ``_source`` stays masked
  and is never parsed; only each record's outer map is decoded to learn its ``_id``, ``_version`` and
  ``_seq_no`` for the primary-key map;
* vector values: live rows concatenated in the new doc order;
* graphs: rebuilt from the merged vector values (hnswlib graphs cannot be concatenated);
* field infos: the union of the inputs' fields, which must agree on vector parameters;
* attributes: the union of the inputs' derived-source paths.

The doc map of input ``i`` sends an old doc id to its new id, or -1 if it was deleted.

Fields missing from some inputs are fine (only the inputs that have a field contribute rows). A quantized
field's state is never copied from an input: ``write_segment`` retrains it from the merged full-precision
vectors, so inputs whose states differ merge into one consistent state. ``check_abort`` (optional) is called
every :data:`ABORT_CHECK_INTERVAL` copied documents and between steps; it raises to abort the merge, and
``write_segment`` then removes everything written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from segstore.codec.base import Codec
from segstore.derived_source.attributes import NESTED_KEY, ROOT_KEY, format_paths, union_attributes
from segstore.derived_source.mask import mask_source
from segstore.errors import IllegalArgumentError
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_reader import SegmentReader
from segstore.index.segment_writer import write_segment
from segstore.store.directory import Directory

__all__ = ["SegmentMerger", "MergeResult", "ABORT_CHECK_INTERVAL"]

ABORT_CHECK_INTERVAL = 512


@dataclass
class MergeResult:
    commit_info: SegmentCommitInfo
    doc_maps: list[np.ndarray]
    ids: list[str | None]  # None for nested child records (they have no _id)
    versions: list[int]
    seq_nos: list[int]
    timings: dict[str, float] = field(default_factory=dict)


def merge_field_infos(readers: list[SegmentReader]) -> FieldInfos:
    """Union of fields; the first definition of a name wins and later ones must agree with it."""
    merged: dict[str, FieldInfo] = {}
    for r in readers:
        for fi in r.field_infos:
            prev = merged.get(fi.name)
            if prev is None:
                merged[fi.name] = FieldInfo(fi.name, len(merged), fi.vector_dimension, fi.vector_data_type,
                                            fi.vector_space_type, dict(fi.attributes))
            elif (prev.vector_dimension, prev.vector_data_type, prev.vector_space_type) != (
                    fi.vector_dimension, fi.vector_data_type, fi.vector_space_type):
                raise IllegalArgumentError(
                    f'cannot change field "{fi.name}" from vector dimension={prev.vector_dimension}, '
                    f"data type={prev.vector_data_type}, space={prev.vector_space_type} to inconsistent "
                    f"vector dimension={fi.vector_dimension}, data type={fi.vector_data_type}, "
                    f"space={fi.vector_space_type}")
    return FieldInfos(list(merged.values()))


class SegmentMerger:
    """Merges ``readers`` (each at the live-docs generation it was opened with) into segment ``name``."""

    def __init__(
        self,
        codec: Codec,
        directory: Directory,
        readers: list[SegmentReader],
        name: str,
        build_graph: Callable[[FieldInfo, int], bool],
        *,
        check_abort: Callable[[], None] | None = None,
        derived: tuple[Sequence[str], Sequence[str]] = ((), ()),
    ) -> None:
        self.codec = codec
        self.directory = directory
        self.readers = readers
        self.name = name
        self.build_graph = build_graph
        self.check_abort = check_abort or (lambda: None)
        # (root-scope, nested-scope) derived paths of the index now: legacy inputs are re-masked with them
        self.derived = (list(derived[0]), list(derived[1]))

    def doc_maps(self) -> list[np.ndarray]:
        maps, base = [], 0
        for r in self.readers:
            live = np.ones(r.max_doc, dtype=bool) if r.live is None else np.asarray(r.live, dtype=bool)
            new_ids = np.cumsum(live, dtype=np.int64) - 1 + base
            maps.append(np.where(live, new_ids, -1))
            base += int(live.sum())
        return maps

    def merge(self) -> MergeResult:
        # Verify every input byte first: a merge re-checksums what it copies, so damage it did not detect
        # would become permanent, valid-looking data (Lucene's format merges call checkIntegrity too).
        for r in self.readers:
            self.check_abort()
            r.check_integrity()
        maps = self.doc_maps()
        num_docs = sum(int((m >= 0).sum()) for m in maps)
        field_infos = merge_field_infos(self.readers)
        vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        graph_sources: dict[str, list[tuple[Any, np.ndarray]]] = {}  # IVF fields: (input graph, keep)
        for fi in field_infos.vector_fields():
            self.check_abort()
            rows, docs = [], []
            sources: list[tuple[Any, np.ndarray]] = []
            for r, m in zip(self.readers, maps):
                values = r.vector_values(fi.name)
                if values is None or values.size == 0:
                    continue
                new_docs = m[values.ord_to_doc]
                keep = new_docs >= 0
                rows.append(values.vectors[keep])
                docs.append(new_docs[keep])
                sources.append((r.graph(fi.name) if fi.attributes.get("model_id") else None, keep))
            if fi.attributes.get("model_id") and sources:
                graph_sources[fi.name] = sources  # IVF graphs are merged by concatenating inverted lists
            width = fi.vector_dimension // 8 if fi.vector_data_type == "binary" else fi.vector_dimension
            dtype = {"float": np.float32, "byte": np.int8, "binary": np.uint8}[fi.vector_data_type]
            vectors[fi.name] = (
                np.concatenate(rows) if rows else np.zeros((0, width), dtype=dtype),
                np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, dtype=np.int32),
            )
        doc_values: dict[str, tuple[np.ndarray, object]] = {}
        for fi in field_infos:
            if fi.name == "_root":
                # Roots of inputs without nested documents are all their (live) docs.
                parts = []
                for r, m in zip(self.readers, maps):
                    roots = r.roots if r.roots is not None else np.arange(r.max_doc)
                    new_ids = m[roots]
                    parts.append(new_ids[new_ids >= 0])
                merged_roots = np.concatenate(parts).astype(np.int32)
                doc_values["_root"] = (merged_roots, np.ones(merged_roots.shape[0], dtype=np.int64))
                continue
            if fi.attributes.get("doc_values") is None:
                continue
            d_parts, v_parts = [], []
            for r, m in zip(self.readers, maps):
                dv = r.core.doc_values.get(fi.name)
                if dv is None:
                    continue
                new_docs = m[dv.docs]
                keep = new_docs >= 0
                d_parts.append(new_docs[keep])
                vals = dv.values[keep]
                v_parts.append(np.asarray(dv.terms, dtype=object)[vals] if dv.terms is not None else vals)
            if d_parts:
                docs_all = np.concatenate(d_parts).astype(np.int32)
                vals_all = np.concatenate(v_parts)
                doc_values[fi.name] = (docs_all, vals_all.tolist() if vals_all.dtype == object else vals_all)
        ids: list[str | None] = []
        versions: list[int] = []
        seq_nos: list[int] = []

        # Inputs of a read-only legacy codec (SegStore0, filter-based derived source) hand out injected
        # records; they are masked again with the index's derived paths, which migrates them (§3.3, §4).
        legacy = [not r.core.codec.writable for r in self.readers]
        mask_paths = [*self.derived[0], *self.derived[1]]

        def records() -> Iterator[bytes]:
            check = self.check_abort
            for r, m, remask in zip(self.readers, maps, legacy):
                live_docs = np.flatnonzero(m >= 0)
                for raw in r.core.stored.raw_documents(live_docs.tolist()):
                    if len(ids) % ABORT_CHECK_INTERVAL == 0:
                        check()
                    head: dict[str, Any] = msgpack.unpackb(raw, raw=False)
                    ids.append(head.get("_id"))  # nested child records have no id
                    versions.append(int(head.get("_version", 1)))
                    seq_nos.append(int(head.get("_seq_no", -1)))
                    if remask and mask_paths and isinstance(head.get("_source"), bytes):
                        raw = _remask(head, mask_paths)
                    yield raw

        attributes = [r.commit_info.info.attributes for r in self.readers]
        if any(legacy):
            attributes.append({ROOT_KEY: format_paths(self.derived[0]), NESTED_KEY: format_paths(self.derived[1])})
        timings: dict[str, float] = {}
        info = write_segment(
            self.codec, self.directory, self.name, records(), num_docs, field_infos, vectors, self.build_graph,
            attributes=union_attributes(attributes),
            diagnostics={"source": "merge", "merged_from": ",".join(r.name for r in self.readers)},
            timings=timings, doc_values=doc_values, graph_sources=graph_sources,
        )
        return MergeResult(info, maps, ids, versions, seq_nos, timings)


def _remask(record: dict[str, Any], paths: list[str]) -> bytes:
    """A legacy reader's (injected) record with its ``_source`` masked; a non-map source passes as is."""
    source = msgpack.unpackb(record["_source"], raw=False, strict_map_key=False)
    if isinstance(source, dict):
        record = {**record, "_source": msgpack.packb(mask_source(source, paths), use_bin_type=True)}
    return msgpack.packb(record, use_bin_type=True)  # type: ignore[no-any-return]
