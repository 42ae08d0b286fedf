"""``SegmentReader``: one segment opened through the codec that wrote it.

The per-segment format readers (field infos, stored fields, vector values, graphs) live in
``SegmentCoreReaders`` and are shared by every ``SegmentReader`` of that segment, whatever its live-docs
generation: a delete only opens a new bitset, never the segment again. Both are reference counted; the core
holds references on the segment's files and each reader on its ``.liv`` file, so files outlive a merge
until the last reader using them closes.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from segstore.codec.base import Codec, GraphReader, KnnGraph, StoredFieldsReader, VectorValues, VectorValuesReader
from segstore.codec.registry import codec_for_name
from segstore.derived_source.attributes import derived_paths
from segstore.derived_source.mask import inject_source
from segstore.errors import CorruptIndexError
from segstore.floats import shortest_float32_list
from segstore.index.field_infos import FieldInfos
from segstore.index.file_deleter import IndexFileDeleter
from segstore.index.ref_counted import RefCounted
from segstore.index.segment_info import SegmentCommitInfo, SegmentInfo
from segstore.index.write_state import SegmentReadState
from segstore.store.directory import Directory

__all__ = ["SegmentCoreReaders", "SegmentReader", "read_segment_info", "vector_to_json"]


def read_segment_info(directory: Directory, name: str, segment_id: bytes, codec_name: str) -> SegmentInfo:
    """Read a segment's ``.si`` through the codec the commit says wrote it."""
    return codec_for_name(codec_name).segment_info_format.read(directory, name, segment_id)


def vector_to_json(data_type: str, row: np.ndarray) -> list[Any]:
    """A stored vector as ``_source`` shows it: float32 shortest decimals, or signed ints for byte/binary."""
    if data_type == "float":
        return shortest_float32_list(row)
    return row.view(np.int8).astype(np.int64).tolist()  # type: ignore[no-any-return]


class SegmentCoreReaders(RefCounted):
    """The shared, generation-independent readers of one segment."""

    def __init__(self, directory: Directory, info: SegmentInfo, deleter: IndexFileDeleter | None) -> None:
        self.directory = directory
        self.info = info
        self.codec: Codec = codec_for_name(info.codec)
        self._deleter = deleter
        super().__init__(f"segment {info.name}")
        self._quantized: dict[str, Any] = {}
        if deleter is not None:
            deleter.inc_ref(info.files)
        try:
            self.field_infos: FieldInfos = self.codec.field_infos_format.read(directory, info)
            state = SegmentReadState(directory, info, self.field_infos)
            self.stored: StoredFieldsReader = self.codec.stored_fields_format.fields_reader(state)
            self.vectors: VectorValuesReader = self.codec.vector_values_format.fields_reader(state)
            self.graphs: GraphReader = self.codec.graph_format.fields_reader(state)
            self.doc_values = self.codec.doc_values_format.fields_reader(state)
        except BaseException:
            if deleter is not None:
                deleter.dec_ref(info.files)
            raise
        root_dv = self.doc_values.get("_root")
        self.roots: np.ndarray | None = None if root_dv is None else np.asarray(root_dv.docs, dtype=np.int64)
        root, nested = derived_paths(info.attributes)
        # Only paths with vector values in this segment are injected (derived-source.md §1.6 step 1).
        self.derived_root = [p for p in root if p and self.field_infos.get(p) is not None]
        self.derived_nested = [p for p in nested if p and self.field_infos.get(p) is not None]

    def quantized(self, field: str) -> Any:
        with self._lock:
            if field not in self._quantized:
                fi = self.field_infos.get(field)
                self._quantized[field] = None if fi is None else \
                    self.codec.quantization_state_format.read(self.directory, self.info, fi)
            return self._quantized[field]

    def _release(self) -> None:
        for r in (self.doc_values, self.graphs, self.vectors, self.stored,
                  *(q for q in self._quantized.values() if q is not None)):
            r.close()
        if self._deleter is not None:
            self._deleter.dec_ref(self.info.files)


class SegmentReader(RefCounted):
    """A segment at one live-docs generation. Doc ids are segment-local."""

    def __init__(
        self,
        directory: Directory,
        commit_info: SegmentCommitInfo,
        deleter: IndexFileDeleter | None = None,
        core: SegmentCoreReaders | None = None,
        live: np.ndarray | None = None,
    ) -> None:
        self.commit_info = commit_info
        self.directory = directory
        self._deleter = deleter
        if core is None:
            core = SegmentCoreReaders(directory, commit_info.info, deleter)
        else:
            core.inc_ref()
        self.core = core
        super().__init__(f"segment reader {commit_info.info.name}")
        self._live_ords: dict[str, np.ndarray] = {}
        try:
            if live is None and commit_info.del_gen:
                live = core.codec.live_docs_format.read(
                    directory, commit_info.info, commit_info.del_gen, commit_info.del_count)
            self.live = live  # None = every doc is live
            if deleter is not None and commit_info.live_docs_file:
                deleter.inc_ref([commit_info.live_docs_file])
        except BaseException:
            core.dec_ref()
            raise

    # -- identity and counts

    @property
    def name(self) -> str:
        return self.commit_info.info.name

    @property
    def max_doc(self) -> int:
        return self.commit_info.info.max_doc

    @property
    def num_docs(self) -> int:
        return self.commit_info.num_docs

    @property
    def field_infos(self) -> FieldInfos:
        return self.core.field_infos

    def is_live(self, doc: int) -> bool:
        return self.live is None or bool(self.live[doc])

    @property
    def roots(self) -> np.ndarray | None:
        """Sorted doc ids of root documents, or None when the segment has no nested documents (then every
        document is a root)."""
        return self.core.roots

    def root_mask(self) -> np.ndarray | None:
        roots = self.core.roots
        if roots is None:
            return None
        mask = np.zeros(self.max_doc, dtype=bool)
        mask[roots] = True
        return mask

    def block_start(self, root: int) -> int:
        """First doc of ``root``'s block: the doc after the previous root (exact, never a guess)."""
        roots = self.core.roots
        if roots is None:
            return root
        i = int(np.searchsorted(roots, root))
        return int(roots[i - 1]) + 1 if i > 0 else 0

    def parents(self, docs: np.ndarray) -> np.ndarray:
        """The root of each doc (a root is its own parent)."""
        roots = self.core.roots
        if roots is None:
            return np.asarray(docs, dtype=np.int64)
        return roots[np.searchsorted(roots, docs)].astype(np.int64)

    def live_ords(self, field: str) -> np.ndarray | None:
        """Per-ordinal liveness of ``field``'s vectors (None when no doc is deleted); cached per reader."""
        if self.live is None:
            return None
        cached = self._live_ords.get(field)
        if cached is None:
            values = self.core.vectors.get(field)
            cached = self.live[values.ord_to_doc] if values is not None else np.zeros(0, dtype=bool)
            self._live_ords[field] = cached
        return cached

    # -- data

    def vector_values(self, field: str) -> VectorValues | None:
        return self.core.vectors.get(field)

    def graph(self, field: str) -> KnnGraph | None:
        return self.core.graphs.get(field)

    def quantized(self, field: str) -> Any:
        """The field's quantization state and codes (``QuantizedValues``), or None if not quantized."""
        return self.core.quantized(field)

    def stored_document(self, doc: int) -> dict[str, Any]:
        """The raw stored record (``_source`` still masked msgpack bytes)."""
        return self.core.stored.document(doc)

    def source(self, doc: int, record: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """``_source`` of ``doc`` with derived vectors injected back; None when no source is stored."""
        record = record if record is not None else self.core.stored.document(doc)
        raw = record.get("_source")
        if raw is None:
            return None
        source = msgpack.unpackb(raw, raw=False)
        if not (self.core.derived_root or self.core.derived_nested) or not isinstance(source, dict):
            return source  # type: ignore[no-any-return]
        suppliers = {}
        start = self.block_start(doc)
        for path in self.core.derived_nested:
            # Children's vectors are handed out in block order to the non-null masked occurrences: the k-th
            # occurrence in source order is the k-th child of the block that has a vector (derived-source §2.3).
            values = self.core.vectors.get(path)
            fi = self.core.field_infos.get(path)
            assert fi is not None
            if values is None:
                rows: list[Any] = []
            else:
                lo, hi = np.searchsorted(values.ord_to_doc, [start, doc])
                rows = [vector_to_json(fi.vector_data_type, values.vectors[o]) for o in range(int(lo), int(hi))]
            suppliers[path] = (lambda rows=rows: iter(rows))
        for path in self.core.derived_root:
            values = self.core.vectors.get(path)
            fi = self.core.field_infos.get(path)
            assert fi is not None
            ords = values.doc_to_ord(np.array([doc])) if values is not None else np.array([-1])
            row = [vector_to_json(fi.vector_data_type, values.vectors[ords[0]])] if ords[0] >= 0 else []
            suppliers[path] = (lambda row=row: iter(row))
        try:
            return inject_source(source, suppliers)
        except LookupError as e:
            raise CorruptIndexError(f"doc {doc}: {e}", f"{self.name} stored fields") from e

    # -- lifecycle

    def _release(self) -> None:
        if self._deleter is not None and self.commit_info.live_docs_file:
            self._deleter.dec_ref([self.commit_info.live_docs_file])
        self.core.dec_ref()

    def with_live_docs(self, commit_info: SegmentCommitInfo, live: np.ndarray | None) -> "SegmentReader":
        """A reader of the same segment at a newer live-docs generation, sharing the core."""
        return SegmentReader(self.directory, commit_info, self._deleter, core=self.core, live=live)

    def check_integrity(self) -> None:
        """Full CRC of every file of the segment."""
        self.core.stored.check_integrity()
        self.core.vectors.check_integrity()
        self.core.graphs.check_integrity()
        self.core.doc_values.check_integrity()
        for fi in self.core.field_infos.vector_fields():
            qv = self.core.quantized(fi.name)  # quantization states and codes (.qst): full CRC on open
            if qv is not None and qv._framed is not None:
                qv._framed.check_integrity()
