"""``SegStore0Codec``: reads filter-based derived-source segments; writes nothing.

Every format is SegStore1's, imported and wrapped, not copied (style rule 5: only the stored-fields *reader*
differs). The wrappers forward reads and refuse writes, so a ``SegStore0`` segment can be opened, searched,
deleted from and merged away, but never created. Live docs are the exception: a delete generation is
per-commit state, not segment format, and the current writer records deletes on old segments too (as
Lucene's backward codecs keep ``LiveDocsFormat`` writable).
"""

from __future__ import annotations

from typing import Any, NoReturn

from segstore_codecs.backward.segstore0 import CODEC_NAME, ReadOnlyCodecError
from segstore_codecs.backward.segstore0.stored_fields_reader import (
    SegStore0StoredFieldsFormat,
)
from segstore_codecs.segstore1.codec import SegStore1Codec

from segstore.codec.base import (
    Codec,
    FieldInfosFormat,
    FilterCodec,
    GraphFormat,
    LiveDocsFormat,
    SegmentInfoFormat,
    StoredFieldsFormat,
    VectorValuesFormat,
)
from segstore.codec.doc_values import DocValuesFormat

__all__ = ["ReadOnlyCodecError", "SegStore0Codec"]


def _refuse(what: str) -> NoReturn:
    raise ReadOnlyCodecError(what)


class _ReadOnlyFormat:
    """Forwards a format's reads to SegStore1's; ``fields_writer`` and ``write`` raise."""

    def __init__(self, delegate: Any) -> None:
        self._delegate = delegate
        self.name = delegate.name

    def fields_writer(self, state: Any) -> NoReturn:
        _refuse(self.name)

    def write(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self.name)

    def __getattr__(self, attr: str) -> Any:  # fields_reader, read, and whatever else a reader needs
        return getattr(self._delegate, attr)


class SegStore0Codec(FilterCodec):
    """SegStore1's formats, read-only, with the vector-injecting legacy stored-fields reader."""

    def __init__(self, delegate: Codec | None = None) -> None:
        super().__init__(CODEC_NAME, delegate or SegStore1Codec())
        d = self.delegate
        self._si = _ReadOnlyFormat(d.segment_info_format)
        self._fi = _ReadOnlyFormat(d.field_infos_format)
        self._vv = _ReadOnlyFormat(d.vector_values_format)
        self._graph = _ReadOnlyFormat(d.graph_format)
        self._dv = _ReadOnlyFormat(d.doc_values_format)
        self._qstate = _ReadOnlyFormat(d.quantization_state_format)
        self._stored = SegStore0StoredFieldsFormat(d.stored_fields_format, d.vector_values_format,
                                                   d.doc_values_format)

    @property
    def writable(self) -> bool:
        return False

    @property
    def segment_info_format(self) -> SegmentInfoFormat:
        return self._si  # type: ignore[return-value]

    @property
    def field_infos_format(self) -> FieldInfosFormat:
        return self._fi  # type: ignore[return-value]

    @property
    def vector_values_format(self) -> VectorValuesFormat:
        return self._vv  # type: ignore[return-value]

    @property
    def graph_format(self) -> GraphFormat:
        return self._graph  # type: ignore[return-value]

    @property
    def stored_fields_format(self) -> StoredFieldsFormat:
        return self._stored

    @property
    def live_docs_format(self) -> LiveDocsFormat:
        return self.delegate.live_docs_format

    @property
    def doc_values_format(self) -> DocValuesFormat:
        return self._dv  # type: ignore[return-value]

    @property
    def quantization_state_format(self) -> Any:
        return self._qstate
