"""The ``SegStore0`` stored-fields reader: SegStore1's reader, wrapped so that reading injects vectors back.

What a ``SegStore0`` segment holds (derived-source.md §3.1): the stored ``_source`` had every derived
``knn_vector`` path *removed* by core's source filter (``XContentMapValues.filter``): the key is gone (a
``null`` too), an object that becomes empty stays as ``{}``, but an object inside an array that becomes empty
is dropped from the array. Derived fields carry the field attribute ``segstore.derived_source.legacy =
"true"``; there are no derived-source segment attributes and no placeholder.

Reading (the 2.19 reader as 3.x's ``backward_codecs`` runs it, §3.2/§3.3), per root document, for each
marked field that has vector values in the segment:

* **root doc has a vector** (top-level or object path): put it at the path, creating intermediate maps as
  needed. Through an intermediate *list* the first map element is used (an empty list gets a new map).
* **a child of the block has one** (nested, single level): the scope is the ``_nested_path`` of that child
  record; the array's remaining objects are matched to the scope's child documents (block order), children
  whose object vanished get a fresh map at their block position, and each child's vectors are put into its
  object.
* byte and binary vectors are rendered as arrays of signed ints, floats as float32 shortest decimals
  (``vector_to_json``), as 3.x's backward reader does (#2533); 2.19 itself returned base64 strings.

``document``, ``raw_document`` and ``raw_documents`` all return the *injected* record. Copying a legacy
record verbatim into a new segment (as SegStore1's raw merge copy does) would lose its vectors for good, so
there is no non-injecting view: an unmodified merger then writes full vectors (correct, no saving) and a
merger that knows legacy inputs re-masks them (migration, §3.3/§4).

Limits (all inherited from the filter format; the mask format exists because of them, §2.5):

* ``null`` and empty vector values are lost (the filter removed the key): the key comes back absent.
* Key order is not kept: injected keys are appended to their map (2.19 used a hash map).
* Nested vectors: one nesting level only. A field whose scope lies inside another nested scope, or behind an
  array of plain objects, is not injected (its vectors are missing from ``_source``).
* Nested positions are exact when no object of the array vanished (every object had a non-vector key) or
  when all vanished and each had a vector. Otherwise the objects that remain cannot be located: upstream
  probed their sibling fields (norms, doc values, ``_field_names`` postings) in the child documents, but
  segstore indexes no per-child field besides vectors, so there is nothing to probe. Children without a
  vector are then assumed to have kept their object, and the earliest vector children fill the remaining
  objects; the others get new maps. Empty objects (``{}``, or only ``null`` vectors) inside an array are
  lost, and objects placed in a mixed array may be out of position.
* A source key that itself contains a dot (``{"obj.vec": ...}``) was removed by the filter like the nested
  form and comes back as nested maps (``{"obj": {"vec": ...}}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import numpy as np
from segstore_codecs.backward.segstore0 import (
    LEGACY_FIELD_ATTRIBUTE,
    ReadOnlyCodecError,
)

from segstore.codec.base import (
    StoredFieldsFormat,
    StoredFieldsReader,
    StoredFieldsWriter,
    VectorValuesFormat,
)
from segstore.codec.doc_values import DocValuesFormat
from segstore.index.segment_reader import vector_to_json
from segstore.index.write_state import SegmentReadState, SegmentWriteState

__all__ = ["SegStore0StoredFieldsFormat", "SegStore0StoredFieldsReader", "legacy_derived_fields"]

ROOT_FIELD = "_root"  # doc values of root documents (segstore.index.documents_writer.ROOT_FIELD)
NESTED_PATH = "_nested_path"  # the stored record of a nested child document


def legacy_derived_fields(state: SegmentReadState) -> list[str]:
    """Names of the vector fields the segment marks as derived (field attribute), in field-number order."""
    return [fi.name for fi in state.field_infos
            if fi.has_vectors and fi.attributes.get(LEGACY_FIELD_ATTRIBUTE) == "true"]


class SegStore0StoredFieldsReader(StoredFieldsReader):
    """Wraps SegStore1's stored-fields reader; root records come back with their vectors injected."""

    def __init__(self, delegate: StoredFieldsReader, state: SegmentReadState, fields: list[str],
                 vector_format: VectorValuesFormat, doc_values_format: DocValuesFormat) -> None:
        self._delegate = delegate
        self._fields = fields
        # Opened once per segment (upstream's KNN9120DerivedSourceReaders), closed with this reader.
        self._vectors = vector_format.fields_reader(state)
        try:
            self._doc_values = doc_values_format.fields_reader(state)
        except BaseException:
            self._vectors.close()
            raise
        self._types = {f: state.field_infos.get(f).vector_data_type for f in fields}  # type: ignore[union-attr]
        root = self._doc_values.get(ROOT_FIELD)
        self._roots: np.ndarray | None = None if root is None else np.asarray(root.docs, dtype=np.int64)

    # -- StoredFieldsReader

    def document(self, doc: int) -> dict[str, Any]:
        return self._inject(doc, self._delegate.document(doc))

    def raw_document(self, doc: int) -> bytes:
        raw = self._delegate.raw_document(doc)
        record = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        injected = self._inject(doc, record)
        return raw if injected is record else msgpack.packb(injected, use_bin_type=True)  # type: ignore[no-any-return]

    def raw_documents(self, docs: Iterable[int]) -> Iterator[bytes]:
        for doc in docs:
            yield self.raw_document(doc)

    def check_integrity(self) -> None:
        self._delegate.check_integrity()

    def close(self) -> None:
        for r in (self._delegate, self._vectors, self._doc_values):
            r.close()

    # -- injection

    def _block_start(self, doc: int) -> int:
        if self._roots is None:
            return doc
        i = int(np.searchsorted(self._roots, doc))
        return int(self._roots[i - 1]) + 1 if i > 0 else 0

    def _inject(self, doc: int, record: dict[str, Any]) -> dict[str, Any]:
        raw = record.get("_source")
        if not isinstance(raw, (bytes, bytearray)):
            return record  # a child record, or a document without _source
        try:
            source = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException):
            return record  # not a map we can inject into: passed through untouched
        if not isinstance(source, dict):
            return record
        start = self._block_start(doc)
        nested: dict[str, dict[str, list[tuple[int, Any]]]] = {}  # scope -> field -> [(child, vector)]
        child_paths: dict[int, str | None] = {}
        changed = False
        for field in self._fields:
            values = self._vectors.get(field)
            if values is None or values.size == 0:
                continue
            lo, hi = (int(x) for x in np.searchsorted(values.ord_to_doc, [start, doc + 1]))
            if hi == lo:
                continue
            dtype = self._types[field]
            if int(values.ord_to_doc[hi - 1]) == doc:  # the root has it: a top-level or object field
                changed |= _put_path(source, field.split("."), vector_to_json(dtype, values.vectors[hi - 1]))
                continue
            for o in range(lo, hi):  # children of this block with a vector for the field
                child = int(values.ord_to_doc[o])
                if child not in child_paths:
                    child_paths[child] = self._delegate.document(child).get(NESTED_PATH)
                scope = child_paths[child]
                if scope is None or not field.startswith(scope + "."):
                    continue
                nested.setdefault(scope, {}).setdefault(field, []).append(
                    (child, vector_to_json(dtype, values.vectors[o])))
        if nested:
            block = {c: self._delegate.document(c).get(NESTED_PATH) for c in range(start, doc)}
            for scope, by_field in nested.items():
                if any(p and scope.startswith(p + ".") for p in set(block.values())):
                    continue  # a nested scope inside another one: not supported by the filter format
                children = [c for c in range(start, doc) if block[c] == scope]
                changed |= _inject_nested(source, scope, children, by_field)
        if not changed:
            return record
        out = dict(record)
        out["_source"] = msgpack.packb(source, use_bin_type=True)
        return out


def _put_path(node: dict[str, Any], parts: list[str], value: Any) -> bool:
    """Set ``value`` at ``parts`` below ``node``, creating maps on the way; False if the way is blocked."""
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif isinstance(nxt, list):  # an object given as an array: use its first map
            maps = [x for x in nxt if isinstance(x, dict)]
            if maps:
                nxt = maps[0]
            elif not nxt:
                nxt.append({})
                nxt = nxt[0]
            else:
                return False
        if not isinstance(nxt, dict):
            return False
        node = nxt
    node[parts[-1]] = value
    return True


def _inject_nested(source: dict[str, Any], scope: str, children: list[int],
                   by_field: dict[str, list[tuple[int, Any]]]) -> bool:
    """Put the vectors of one single-level nested scope back into ``source`` (see the module limits).

    ``children`` are the scope's child documents of the block, in block (= source) order."""
    vectors: dict[int, dict[str, Any]] = {}
    for field, rows in by_field.items():
        rel = field[len(scope) + 1:]
        for child, vec in rows:
            vectors.setdefault(child, {})[rel] = vec
    if not vectors:
        return False
    parts = scope.split(".")
    holder = source
    for part in parts[:-1]:
        nxt = holder.get(part)
        if nxt is None:
            nxt = holder[part] = {}
        if not isinstance(nxt, dict):
            return False  # behind an array of plain objects: positions cannot be rebuilt
        holder = nxt
    key = parts[-1]
    value = holder.get(key)
    single = isinstance(value, dict)
    items: list[Any] = [value] if single else list(value) if isinstance(value, list) else []
    elements = [i for i, x in enumerate(items) if isinstance(x, dict)]
    m, k = len(children), len(elements)
    if k >= m:
        kept = list(children)
    else:  # objects vanished: those without a vector are assumed to have stayed (module limits)
        plain = [c for c in children if c not in vectors]
        with_vec = [c for c in children if c in vectors]
        kept = plain[:k] if len(plain) >= k else sorted(plain + with_vec[: k - len(plain)])
    element_child = dict(zip(elements, kept))  # item index -> child doc
    kept_set = set(kept)
    added = [c for c in children if c in vectors and c not in kept_set]  # vanished objects, block order
    target: dict[int, dict[str, Any]] = {}
    new_items: list[Any] = []
    a = 0
    for idx, item in enumerate(items):
        child = element_child.get(idx)
        if child is not None:
            while a < len(added) and added[a] < child:
                new_items.append({})
                target[added[a]] = new_items[-1]
                a += 1
            target[child] = item
        new_items.append(item)
    for child in added[a:]:
        new_items.append({})
        target[child] = new_items[-1]
    for child, fields in vectors.items():
        obj = target.get(child)
        if obj is None:
            continue
        for rel, vec in fields.items():
            _put_path(obj, rel.split("."), vec)
    holder[key] = new_items[0] if single and len(new_items) == 1 else new_items
    return True


class SegStore0StoredFieldsFormat(StoredFieldsFormat):
    """Reads with :class:`SegStore0StoredFieldsReader` when the segment marks derived fields, else with the
    plain SegStore1 reader (no overhead at all, as upstream). Has no writer."""

    name = "SegStore0StoredFields"

    def __init__(self, delegate: StoredFieldsFormat, vector_format: VectorValuesFormat,
                 doc_values_format: DocValuesFormat) -> None:
        self._delegate = delegate
        self._vector_format = vector_format
        self._doc_values_format = doc_values_format

    def fields_writer(self, state: SegmentWriteState) -> StoredFieldsWriter:
        raise ReadOnlyCodecError(self.name)

    def fields_reader(self, state: SegmentReadState) -> StoredFieldsReader:
        reader = self._delegate.fields_reader(state)
        fields = legacy_derived_fields(state)
        if not fields:
            return reader
        try:
            return SegStore0StoredFieldsReader(reader, state, fields, self._vector_format,
                                               self._doc_values_format)
        except BaseException:
            reader.close()
            raise

