"""The codec contract: a ``Codec`` is a named bundle of formats; a format is a factory of a segment-bound
writer and reader (Lucene's ``Codec`` / ``*Format``).

Concrete formats live in the ``segstore_codecs`` package (``codecs/`` in the source tree), one package per
codec generation. Nothing in ``segstore`` itself knows a byte layout.

Lifecycle rules every writer follows: ``finish()`` publishes the writer's files and records their names in
``state.files``; ``abort()`` before ``finish()`` leaves no file behind; ``abort()`` after a successful
``finish()`` does nothing (the files then belong to the segment, and whoever owns ``state.files`` deletes
them if the segment is abandoned). Both are idempotent. Readers are
opened once per segment, are safe for concurrent readers, and ``close()`` is idempotent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segstore.codec.doc_values import DocValuesFormat
from segstore.codec.fields_reader import FieldsReader
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store.directory import Directory

__all__ = [
    "Codec",
    "FilterCodec",
    "FieldInfosFormat",
    "SegmentInfoFormat",
    "VectorValues",
    "VectorValuesFormat",
    "VectorValuesWriter",
    "VectorValuesReader",
    "KnnGraph",
    "GraphFormat",
    "GraphWriter",
    "GraphReader",
    "StoredFieldsFormat",
    "StoredFieldsWriter",
    "StoredFieldsReader",
    "LiveDocsFormat",
]


# ------------------------------------------------------------------------------------------ metadata


class SegmentInfoFormat(ABC):
    """Persists :class:`SegmentInfo` (``.si``)."""

    name: str

    @abstractmethod
    def write(self, directory: Directory, info: SegmentInfo) -> str:
        """Publish the segment info file and return its name. ``info.files`` must already list every file of
        the segment, the ``.si`` itself included (the segment writer adds it before calling)."""

    @abstractmethod
    def read(self, directory: Directory, segment: str, segment_id: bytes) -> SegmentInfo:
        """Read and fully verify the segment info of ``segment``; its header must carry ``segment_id``."""


class FieldInfosFormat(ABC):
    """Persists :class:`FieldInfos` (``.fnm``)."""

    name: str

    @abstractmethod
    def write(self, directory: Directory, info: SegmentInfo, field_infos: FieldInfos) -> str:
        """Publish the field infos file and return its name."""

    @abstractmethod
    def read(self, directory: Directory, info: SegmentInfo) -> FieldInfos:
        """Read and fully verify the field infos of the segment."""


# -------------------------------------------------------------------------------------- vector values


@dataclass(frozen=True)
class VectorValues:
    """One field's vectors in a segment, in ordinal order.

    ``vectors`` has shape ``(size, width)``: float32 with width = dimension for ``float``, int8 with width =
    dimension for ``byte``, uint8 with width = dimension/8 for ``binary`` (packed bits, MSB first). The array
    is read-only and usually a view on a memory map. ``ord_to_doc[i]`` is the doc id of row ``i``; doc ids
    are strictly increasing.
    """

    field: str
    dimension: int
    data_type: str
    vectors: np.ndarray
    ord_to_doc: np.ndarray

    @property
    def size(self) -> int:
        return int(self.ord_to_doc.shape[0])

    def doc_to_ord(self, docs: np.ndarray) -> np.ndarray:
        """Ordinals of ``docs`` (int64 array); -1 where a doc has no vector."""
        docs = np.asarray(docs, dtype=np.int64)
        pos = np.searchsorted(self.ord_to_doc, docs)
        pos_c = np.minimum(pos, max(self.size - 1, 0))
        hit = (pos < self.size) & (self.ord_to_doc[pos_c] == docs) if self.size else np.zeros(docs.shape, bool)
        return np.where(hit, pos, -1)


class VectorValuesWriter(ABC):
    """Writes all vector fields of one segment."""

    @abstractmethod
    def add_field(self, field: FieldInfo, vectors: np.ndarray, docs: np.ndarray) -> None:
        """Buffer one field: ``vectors[i]`` belongs to ``docs[i]``; ``docs`` strictly increasing int32."""

    @abstractmethod
    def finish(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class VectorValuesReader(FieldsReader[VectorValues]):
    """Reads the vector fields of one segment. Cheap checks on open; full CRC in ``check_integrity``."""


class VectorValuesFormat(ABC):
    """Canonical vector storage. Graphs and quantized codes are always derivable from it."""

    name: str

    @abstractmethod
    def fields_writer(self, state: SegmentWriteState) -> VectorValuesWriter: ...

    @abstractmethod
    def fields_reader(self, state: SegmentReadState) -> VectorValuesReader: ...


# ---------------------------------------------------------------------------------------------- graph


class KnnGraph(ABC):
    """A loaded approximate-nearest-neighbour structure over one field's vectors; labels are ordinals."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, ef: int, accept: Callable[[int], bool] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ords, distances)`` of shape ``(len(queries), k')`` with k' <= k, nearest first.
        Distances are the format's raw distances, smaller is nearer (see the format's docstring for their
        meaning). ``accept`` restricts the result to some ordinals: a callable on an ordinal, or a bool
        array of shape ``(count,)`` over ordinals (preferred: no Python call per ordinal)."""

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        """The ordinals of up to ``k`` nearest neighbours of one already-validated canonical ``query`` (1-D),
        nearest first, with no filter: the single-query hot path, which formats may serve more cheaply."""
        return self.search(query[None, :], k, ef)[0][0]

    @abstractmethod
    def memory_bytes(self) -> int:
        """Bytes this graph holds in memory."""


class GraphWriter(ABC):
    """Builds and writes the graphs of one segment."""

    @abstractmethod
    def add_field(self, field: FieldInfo, values: VectorValues, prebuilt: Any = None) -> None:
        """Build the graph of ``field`` from its canonical vectors; ``finish()`` publishes it. ``prebuilt`` is
        a graph an :class:`IncrementalGraphBuilder` of this format already built over exactly ``values``
        (labels = ordinals), written instead of building a new one."""

    @abstractmethod
    def finish(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class GraphReader(FieldsReader[KnnGraph]):
    """Opens graphs lazily; the CRC is verified before any byte reaches the native library."""


class IncrementalGraphBuilder(ABC):
    """Builds one field's graph while its documents are still buffered, the way Lucene's indexing chain grows
    an on-heap HNSW graph as vectors arrive, so that a flush only has to write it. Rows get ordinals in the
    order they are added; the work runs off the caller's thread."""

    @abstractmethod
    def add(self, rows: np.ndarray) -> None:
        """Queue canonical ``rows`` [n, dimension]; they take the next n ordinals. Returns at once."""

    @abstractmethod
    def finish(self, count: int) -> Any:
        """Wait for every queued row and return the graph for :meth:`GraphWriter.add_field`'s ``prebuilt``,
        or None when the builder failed or holds other than ``count`` rows (the flush then builds it)."""

    @abstractmethod
    def abort(self) -> None:
        """Stop and drop the graph (idempotent)."""


class GraphFormat(ABC):
    name: str

    @abstractmethod
    def fields_writer(self, state: SegmentWriteState) -> GraphWriter: ...

    @abstractmethod
    def fields_reader(self, state: SegmentReadState) -> GraphReader: ...

    def incremental_builder(self, field: FieldInfo) -> IncrementalGraphBuilder | None:
        """A builder for ``field``'s graph while documents are buffered, or None (the default) when this
        format builds the field's graph only at flush (e.g. graphs over quantized codes, which need the
        whole segment to train)."""
        return None


# -------------------------------------------------------------------------------------- stored fields


class StoredFieldsWriter(ABC):
    """Writes one stored record per document, in doc id order."""

    @abstractmethod
    def write_document(self, fields: dict[str, Any]) -> None:
        """Append the next document (msgpack-able values; ``bytes`` values are kept as bytes)."""

    @abstractmethod
    def write_raw(self, raw: bytes) -> None:
        """Append the next document as the exact bytes a reader's ``raw_document`` returned (merge copy)."""

    @abstractmethod
    def finish(self, num_docs: int) -> None:
        """Publish; ``num_docs`` must equal the number of documents written."""

    @abstractmethod
    def abort(self) -> None: ...


class StoredFieldsReader(ABC):
    @abstractmethod
    def document(self, doc: int) -> dict[str, Any]: ...

    @abstractmethod
    def raw_document(self, doc: int) -> bytes: ...

    @abstractmethod
    def raw_documents(self, docs: Iterable[int]) -> Iterable[bytes]:
        """Raw records of ``docs`` (ascending), decompressing each block once."""

    @abstractmethod
    def check_integrity(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class StoredFieldsFormat(ABC):
    name: str

    @abstractmethod
    def fields_writer(self, state: SegmentWriteState) -> StoredFieldsWriter: ...

    @abstractmethod
    def fields_reader(self, state: SegmentReadState) -> StoredFieldsReader: ...


# ------------------------------------------------------------------------------------------ live docs


class LiveDocsFormat(ABC):
    """One file per delete generation: the segment's live bitset at that generation."""

    name: str

    @abstractmethod
    def write(self, directory: Directory, info: SegmentInfo, live: np.ndarray, del_count: int, gen: int) -> str:
        """Publish ``live`` (bool array of length ``max_doc``) as generation ``gen``; return the file name."""

    @abstractmethod
    def read(self, directory: Directory, info: SegmentInfo, gen: int, del_count: int) -> np.ndarray:
        """Read generation ``gen`` (read-only bool array); the count of False must equal ``del_count``."""


# ---------------------------------------------------------------------------------------------- codec


class Codec(ABC):
    """A named bundle of formats. The name is written into every segment and resolved via the registry."""

    name: str

    @property
    @abstractmethod
    def segment_info_format(self) -> SegmentInfoFormat: ...

    @property
    @abstractmethod
    def field_infos_format(self) -> FieldInfosFormat: ...

    @property
    @abstractmethod
    def vector_values_format(self) -> VectorValuesFormat: ...

    @property
    @abstractmethod
    def graph_format(self) -> GraphFormat: ...

    @property
    @abstractmethod
    def stored_fields_format(self) -> StoredFieldsFormat: ...

    @property
    @abstractmethod
    def live_docs_format(self) -> LiveDocsFormat: ...

    @property
    @abstractmethod
    def doc_values_format(self) -> "DocValuesFormat": ...

    @property
    @abstractmethod
    def quantization_state_format(self) -> Any:
        """Persists per-field quantization states and codes (``write(dir, info, field, state, codes)``,
        ``read(dir, info, field) -> QuantizedValues | None``)."""

    @property
    def writable(self) -> bool:
        """False for frozen legacy codecs, which only read."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FilterCodec(Codec):
    """Delegates every format to ``delegate``; subclasses override the one they change."""

    def __init__(self, name: str, delegate: Codec) -> None:
        self.name = name
        self.delegate = delegate

    @property
    def segment_info_format(self) -> SegmentInfoFormat:
        return self.delegate.segment_info_format

    @property
    def field_infos_format(self) -> FieldInfosFormat:
        return self.delegate.field_infos_format

    @property
    def vector_values_format(self) -> VectorValuesFormat:
        return self.delegate.vector_values_format

    @property
    def graph_format(self) -> GraphFormat:
        return self.delegate.graph_format

    @property
    def stored_fields_format(self) -> StoredFieldsFormat:
        return self.delegate.stored_fields_format

    @property
    def live_docs_format(self) -> LiveDocsFormat:
        return self.delegate.live_docs_format

    @property
    def doc_values_format(self) -> "DocValuesFormat":
        return self.delegate.doc_values_format

    @property
    def quantization_state_format(self) -> Any:
        return self.delegate.quantization_state_format
