"""``SegStore1DocValues``: per-document values of keyword, numeric, date and boolean fields, for filters.

Each field is a flat list of ``(doc, value)`` entries sorted by doc then value (a field may hold several
values per document, like Lucene's SortedNumeric / SortedSet doc values). Filters evaluate over these arrays
with numpy: a term filter is an ``isin`` over ordinals, a range filter a comparison over values.

File grammar (framing per :mod:`segstore.codec.framing`)::

    .dvm  := Header("SegStore1DocValuesMeta"), Meta, Footer
    Meta  := msgpack {"dvd_length": int, "fields": [Field, ...]}
    Field := {"name": str, "kind": "numeric" | "sorted_set", "count": int, "dtype": "<i8" | "<f8" | "<i4",
              "docs_offset": int, "values_offset": int, "terms_offset": int, "terms_length": int,
              "terms_count": int}
    .dvd  := Header("SegStore1DocValuesData"), { Pad64, Docs:int32le[count], Pad64, Values[count],
              Terms? }*, Footer
    Values := int64le | float64le (numeric) | int32le ordinals into Terms (sorted_set)
    Terms  := msgpack list of the field's distinct keyword terms, sorted (ordinal = position)

``.dvm`` is fully checksummed on open; ``.dvd`` gets its exact length and footer checked on open and a full
CRC in ``check_integrity()``. Arrays are zero-copy views on the memory map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from segstore.codec.doc_values import DocValuesFormat, DocValuesReaderBase, DocValuesWriterBase
from segstore.codec.framing import FramedInput, pad_to, write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.file_names import segment_file_name
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store.directory import IndexOutput

__all__ = ["SegStore1DocValuesFormat", "DocValues", "DocValuesWriter", "DocValuesReader"]

META_CODEC = "SegStore1DocValuesMeta"
DATA_CODEC = "SegStore1DocValuesData"
VERSION_START = 1
VERSION_CURRENT = VERSION_START
_ALIGN = 64


@dataclass(frozen=True)
class DocValues:
    """One field's entries. ``terms`` is set for keyword (sorted_set) fields; ``values`` are then ordinals."""

    name: str
    kind: str
    docs: np.ndarray
    values: np.ndarray
    terms: list[str] | None

    def _mask(self, max_doc: int, hit: np.ndarray) -> np.ndarray:
        mask = np.zeros(max_doc, dtype=bool)
        mask[self.docs[hit]] = True
        return mask

    def exists_mask(self, max_doc: int) -> np.ndarray:
        mask = np.zeros(max_doc, dtype=bool)
        mask[self.docs] = True
        return mask

    def term_mask(self, max_doc: int, wanted: list[Any]) -> np.ndarray:
        """Docs holding any of ``wanted``."""
        if self.terms is not None:
            lookup = {t: i for i, t in enumerate(self.terms)}
            ords = [lookup[str(w)] for w in wanted if not isinstance(w, (dict, list)) and str(w) in lookup]
            return self._mask(max_doc, np.isin(self.values, np.asarray(ords, dtype=np.int32)))
        nums = []
        for w in wanted:
            try:
                nums.append(float(w) if not isinstance(w, bool) else float(w))
            except (TypeError, ValueError):
                if str(w).lower() in ("true", "false"):
                    nums.append(1.0 if str(w).lower() == "true" else 0.0)
        return self._mask(max_doc, np.isin(self.values.astype(np.float64), np.asarray(nums, dtype=np.float64)))

    def range_mask(self, max_doc: int, bounds: dict[str, Any]) -> np.ndarray:
        """Docs with a value inside ``bounds`` (gt/gte/lt/lte); keyword ranges compare terms."""
        hit = np.ones(self.values.shape[0], dtype=bool)
        if self.terms is not None:
            terms = np.asarray(self.terms, dtype=object)
            vals = terms[self.values] if len(self.terms) else np.zeros(0, dtype=object)
            for op, b in bounds.items():
                b = str(b)
                hit &= {"gt": vals > b, "gte": vals >= b, "lt": vals < b, "lte": vals <= b}[op]
            return self._mask(max_doc, hit)
        vals = self.values
        for op, b in bounds.items():
            b = float(b)
            hit &= {"gt": vals > b, "gte": vals >= b, "lt": vals < b, "lte": vals <= b}[op]
        return self._mask(max_doc, hit)


def _meta_name(seg: str) -> str:
    return segment_file_name(seg, "", "dvm")


def _data_name(seg: str) -> str:
    return segment_file_name(seg, "", "dvd")


class DocValuesWriter(DocValuesWriterBase):
    """Buffers fields, writes ``.dvd`` then ``.dvm`` at ``finish()``."""

    def __init__(self, state: SegmentWriteState) -> None:
        self.state = state
        self._fields: list[tuple[str, str, np.ndarray, np.ndarray, list[str] | None]] = []
        self._published: list[str] = []
        self._done = False

    def add_numeric(self, name: str, docs: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values)
        values = values.astype(np.float64 if values.dtype.kind == "f" else np.int64)
        order = np.lexsort((values, docs))
        self._fields.append((name, "numeric", np.asarray(docs, np.int32)[order], values[order], None))

    def add_keyword(self, name: str, docs: np.ndarray, values: list[str]) -> None:
        terms, ords = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
        ords = ords.astype(np.int32)
        order = np.lexsort((ords, docs))
        self._fields.append((name, "sorted_set", np.asarray(docs, np.int32)[order], ords[order],
                             [str(t) for t in terms]))

    def finish(self) -> None:
        if self._done:
            return
        if not self._fields:
            self._done = True
            return
        seg = self.state.segment_info
        directory = self.state.directory
        metas = []
        out: IndexOutput = directory.create_output(_data_name(seg.name))
        try:
            write_header(out, DATA_CODEC, VERSION_CURRENT, seg.segment_id)
            for name, kind, docs, values, terms in self._fields:
                pad_to(out, _ALIGN)
                docs_off = out.file_pointer
                out.write(docs.astype("<i4").tobytes())
                pad_to(out, _ALIGN)
                values_off = out.file_pointer
                dtype = "<i4" if kind == "sorted_set" else ("<f8" if values.dtype.kind == "f" else "<i8")
                out.write(values.astype(dtype).tobytes())
                terms_off = out.file_pointer
                blob = msgpack.packb(terms, use_bin_type=True) if terms is not None else b""
                out.write(blob)
                metas.append({"name": name, "kind": kind, "count": int(docs.shape[0]), "dtype": dtype,
                              "docs_offset": docs_off, "values_offset": values_off, "terms_offset": terms_off,
                              "terms_length": len(blob), "terms_count": len(terms or ())})
            write_footer(out)
            length = out.file_pointer
        except BaseException:
            out.abort()
            raise
        out.close()
        self._published.append(out.name)
        meta = directory.create_output(_meta_name(seg.name))
        try:
            write_header(meta, META_CODEC, VERSION_CURRENT, seg.segment_id)
            meta.write(msgpack.packb({"dvd_length": length, "fields": metas}, use_bin_type=True))
            write_footer(meta)
        except BaseException:
            meta.abort()
            self.abort()
            raise
        meta.close()
        self._published.append(meta.name)
        self.state.files.update(self._published)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        for name in self._published:
            try:
                self.state.directory.delete_file(name)
            except FileNotFoundError:
                pass
        self._published.clear()
        self._done = True


class DocValuesReader(DocValuesReaderBase):
    def __init__(self, state: SegmentReadState) -> None:
        seg = state.segment_info
        self._fields: dict[str, DocValues] = {}
        self._data: FramedInput | None = None
        if _meta_name(seg.name) not in seg.files:
            return
        with FramedInput(state.directory, _meta_name(seg.name), META_CODEC, VERSION_START, VERSION_CURRENT,
                         seg.segment_id, verify_checksum=True) as meta_in:
            meta = meta_in.parse(lambda p: msgpack.unpackb(p, raw=False))
        self._data = FramedInput(state.directory, _data_name(seg.name), DATA_CODEC, VERSION_START,
                                 VERSION_CURRENT, seg.segment_id, expected_length=int(meta["dvd_length"]))
        buf = self._data.buffer
        end = len(buf) - 16
        try:
            for f in meta["fields"]:
                count = int(f["count"])
                for off, size in ((f["docs_offset"], 4 * count),
                                  (f["values_offset"], np.dtype(f["dtype"]).itemsize * count),
                                  (f["terms_offset"], f["terms_length"])):
                    if off < self._data.data_offset or off + size > end:
                        raise CorruptIndexError(f"field [{f['name']}] extends past the data", _meta_name(seg.name))
                docs = np.frombuffer(buf, "<i4", count, f["docs_offset"])
                values = np.frombuffer(buf, f["dtype"], count, f["values_offset"])
                terms = None
                if f["kind"] == "sorted_set":
                    raw = bytes(buf[f["terms_offset"]: f["terms_offset"] + f["terms_length"]])
                    terms = self._data.parse(lambda _p, raw=raw: msgpack.unpackb(raw, raw=False))
                    if count and (values.min() < 0 or values.max() >= len(terms)):
                        raise CorruptIndexError(f"field [{f['name']}] has an ordinal out of range",
                                                _data_name(seg.name))
                if count and (docs.min() < 0 or docs.max() >= seg.max_doc):
                    raise CorruptIndexError(f"field [{f['name']}] has a doc id out of range", _data_name(seg.name))
                self._fields[f["name"]] = DocValues(f["name"], f["kind"], docs, values, terms)
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptIndexError(f"invalid doc values metadata: {e!r}", _meta_name(seg.name)) from e

    def get(self, name: str) -> DocValues | None:
        return self._fields.get(name)

    def fields(self) -> list[str]:
        return list(self._fields)

    def check_integrity(self) -> None:
        if self._data is not None:
            self._data.check_integrity()

    def close(self) -> None:
        if self._data is not None:
            self._data.close()


class SegStore1DocValuesFormat(DocValuesFormat):
    name = "SegStore1DocValues"

    def fields_writer(self, state: SegmentWriteState) -> DocValuesWriter:
        return DocValuesWriter(state)

    def fields_reader(self, state: SegmentReadState) -> DocValuesReader:
        return DocValuesReader(state)
