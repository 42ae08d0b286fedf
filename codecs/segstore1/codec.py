"""``SegStore1``: the first (and current) write codec. It only wires formats together."""

from __future__ import annotations

from segstore.codec.base import (
    Codec,
    FieldInfosFormat,
    GraphFormat,
    LiveDocsFormat,
    SegmentInfoFormat,
    StoredFieldsFormat,
    VectorValuesFormat,
)
from segstore.codec.doc_values import DocValuesFormat
from segstore_codecs.segstore1.doc_values_format import SegStore1DocValuesFormat
from segstore_codecs.segstore1.field_infos_format import SegStore1FieldInfosFormat
from segstore_codecs.segstore1.graph_format import SegStore1HnswGraphFormat
from segstore_codecs.segstore1.quantization_state_format import SegStore1QuantizationStateFormat
from segstore_codecs.segstore1.live_docs_format import SegStore1LiveDocsFormat
from segstore_codecs.segstore1.segment_info_format import SegStore1SegmentInfoFormat
from segstore_codecs.segstore1.stored_fields_format import SegStore1StoredFieldsFormat
from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat

__all__ = ["SegStore1Codec"]


class SegStore1Codec(Codec):
    """Flat canonical vectors + hnswlib graphs + zstd/msgpack stored fields."""

    name = "SegStore1"

    def __init__(self) -> None:
        self._si = SegStore1SegmentInfoFormat()
        self._fi = SegStore1FieldInfosFormat()
        self._vv = SegStore1VectorValuesFormat()
        self._graph = SegStore1HnswGraphFormat()
        self._stored = SegStore1StoredFieldsFormat()
        self._live = SegStore1LiveDocsFormat()
        self._dv = SegStore1DocValuesFormat()
        self._qstate = SegStore1QuantizationStateFormat()

    @property
    def segment_info_format(self) -> SegmentInfoFormat:
        return self._si

    @property
    def field_infos_format(self) -> FieldInfosFormat:
        return self._fi

    @property
    def vector_values_format(self) -> VectorValuesFormat:
        return self._vv

    @property
    def graph_format(self) -> GraphFormat:
        return self._graph

    @property
    def stored_fields_format(self) -> StoredFieldsFormat:
        return self._stored

    @property
    def live_docs_format(self) -> LiveDocsFormat:
        return self._live

    @property
    def doc_values_format(self) -> DocValuesFormat:
        return self._dv

    @property
    def quantization_state_format(self) -> SegStore1QuantizationStateFormat:
        return self._qstate
