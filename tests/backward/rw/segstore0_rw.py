"""The legacy ``SegStore0`` WRITER (test-only): filter-based derived source, as OpenSearch 2.19 wrote it.

``SegStore0RWCodec`` has the codec name ``SegStore0`` and writes SegStore1's file formats, except that

* the stored ``_source`` loses every derived vector path, removed the way core's
  ``XContentMapValues.filter`` removes an exclude: the key goes (``null`` values too), an object that becomes
  empty stays ``{}``, an object *inside an array* that becomes empty is dropped from the array, and a dotted
  key naming the path (``{"obj.vec": ...}``) is removed as well (derived-source.md §3.1, §2.5);
* the derived vector fields get the field attribute ``segstore.derived_source.legacy = "true"``;
* no derived-source segment attribute is written and nothing is masked.

:func:`create_legacy_index` opens a normal :class:`~segstore.IndexWriter` with this codec and with the
document parser's masking switched off (2.19 had no mask and no translog rewrite), so the catalog commits
name ``SegStore0`` for every segment it flushes or merges. Reading goes through the registered read-only
``SegStore0`` codec, as it will for every later reader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import msgpack
from segstore_codecs.backward.segstore0 import CODEC_NAME, LEGACY_FIELD_ATTRIBUTE
from segstore_codecs.backward.segstore0.codec import SegStore0Codec
from segstore_codecs.segstore1.codec import SegStore1Codec

import segstore
from segstore.codec.base import (
    FilterCodec,
    StoredFieldsFormat,
    StoredFieldsReader,
    StoredFieldsWriter,
)
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.mapping.document_parser import DocumentParser
from segstore.store.directory import Directory

__all__ = ["SegStore0RWCodec", "create_legacy_index", "legacy_filter"]


# ------------------------------------------------------------------------------------ core's exclude filter

def legacy_filter(source: dict[str, Any], excludes: Sequence[str]) -> dict[str, Any]:
    """``source`` without ``excludes`` (exact dotted paths), as core's source filter removes them."""
    return _filter_map(source, "", frozenset(excludes))


def _excluded(path: str, ex: frozenset[str]) -> bool:
    # core builds the exclude automaton with makeMatchDotsInFieldNames: "a.b" also removes "a.b.<anything>"
    return path in ex or any(path.startswith(e + ".") for e in ex)


def _below(path: str, ex: frozenset[str]) -> bool:
    return any(e.startswith(path + ".") for e in ex)


def _filter_map(node: dict[str, Any], prefix: str, ex: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = prefix + key
        if _excluded(path, ex):
            continue
        if not _below(path, ex):
            out[key] = value
        elif isinstance(value, dict):
            out[key] = _filter_map(value, path + ".", ex)  # kept even when empty (include matches all)
        elif isinstance(value, list):
            out[key] = _filter_list(value, path, ex)  # kept even when empty
        else:
            out[key] = value
    return out


def _filter_list(items: list[Any], path: str, ex: frozenset[str]) -> list[Any]:
    out: list[Any] = []
    for v in items:
        if isinstance(v, dict):
            f = _filter_map(v, path + ".", ex)
            if f:  # an object inside an array that became empty is dropped
                out.append(f)
        elif isinstance(v, list):
            g = _filter_list(v, path, ex)
            if g:
                out.append(g)
        else:
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------- the codec

class _FilteringWriter(StoredFieldsWriter):
    """SegStore1's stored-fields writer; each record's ``_source`` is filtered first."""

    def __init__(self, delegate: StoredFieldsWriter, paths: Sequence[str]) -> None:
        self._delegate = delegate
        self._paths = list(paths)

    def _filtered(self, fields: dict[str, Any]) -> dict[str, Any]:
        raw = fields.get("_source")
        if not self._paths or not isinstance(raw, (bytes, bytearray)):
            return fields
        source = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        if not isinstance(source, dict):
            return fields
        out = dict(fields)
        out["_source"] = msgpack.packb(legacy_filter(source, self._paths), use_bin_type=True)
        return out

    def write_document(self, fields: dict[str, Any]) -> None:
        self._delegate.write_document(self._filtered(fields))

    def write_raw(self, raw: bytes) -> None:
        # a legacy merge: the SegStore0 reader handed out the injected record, filter it again
        self._delegate.write_document(self._filtered(msgpack.unpackb(raw, raw=False, strict_map_key=False)))

    def finish(self, num_docs: int) -> None:
        self._delegate.finish(num_docs)

    def abort(self) -> None:
        self._delegate.abort()


class _RWStoredFieldsFormat(StoredFieldsFormat):
    name = "SegStore0StoredFields"

    def __init__(self, write_delegate: StoredFieldsFormat, read_delegate: StoredFieldsFormat,
                 paths: Sequence[str]) -> None:
        self._write, self._read, self._paths = write_delegate, read_delegate, list(paths)

    def fields_writer(self, state: SegmentWriteState) -> StoredFieldsWriter:
        return _FilteringWriter(self._write.fields_writer(state), self._paths)

    def fields_reader(self, state: SegmentReadState) -> StoredFieldsReader:
        return self._read.fields_reader(state)


class _RWFieldInfosFormat:
    """SegStore1's field infos; derived vector fields get the legacy field attribute on write."""

    def __init__(self, delegate: Any, paths: Sequence[str]) -> None:
        self._delegate, self._paths = delegate, set(paths)
        self.name = delegate.name

    def write(self, directory: Directory, info: SegmentInfo, field_infos: FieldInfos) -> str:
        marked = [FieldInfo(fi.name, fi.number, fi.vector_dimension, fi.vector_data_type, fi.vector_space_type,
                            {**fi.attributes, LEGACY_FIELD_ATTRIBUTE: "true"}
                            if fi.has_vectors and fi.name in self._paths else dict(fi.attributes))
                  for fi in field_infos]
        return self._delegate.write(directory, info, FieldInfos(marked))  # type: ignore[no-any-return]

    def read(self, directory: Directory, info: SegmentInfo) -> FieldInfos:
        return self._delegate.read(directory, info)  # type: ignore[no-any-return]


class SegStore0RWCodec(FilterCodec):
    """Writes ``SegStore0`` segments for the derived ``paths`` (test-only)."""

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__(CODEC_NAME, SegStore1Codec())
        reader = SegStore0Codec(self.delegate)
        self._stored = _RWStoredFieldsFormat(self.delegate.stored_fields_format, reader.stored_fields_format,
                                             paths)
        self._fi = _RWFieldInfosFormat(self.delegate.field_infos_format, paths)

    @property
    def stored_fields_format(self) -> StoredFieldsFormat:
        return self._stored

    @property
    def field_infos_format(self) -> Any:
        return self._fi


def create_legacy_index(data_dir: str | os.PathLike[str], name: str, *, settings: dict[str, Any],
                        mappings: dict[str, Any]) -> segstore.IndexWriter:
    """A writer that writes ``SegStore0`` segments (the mapping's derived paths filtered, not masked)."""
    probe = segstore.create_index(data_dir, name, settings=settings, mappings=mappings)
    paths = probe.parser.derived_paths
    probe.close()
    w = segstore.open_index(data_dir, name, codec=SegStore0RWCodec(paths))
    w._derived_paths = list  # type: ignore[method-assign]  # 2.19: no mask, no translog rewrite
    w.parser = DocumentParser(w.mappings, [])
    return w
