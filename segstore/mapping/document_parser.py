"""Turns ``(id, _source)`` pairs into what the writer indexes: validated vectors and the stored source.

Vectors of a batch are validated and converted per field in one numpy call over the whole batch; only
when that fails (a ragged or non-numeric value somewhere) does the parser fall back to checking each value
on its own, to report exactly which document is bad and why. A bad document fails alone; nothing of it is
written anywhere.

Error texts are OpenSearch's: core wraps the k-NN reason in ``failed to parse field [f] of type
[knn_vector] in document with id '<id>'. Preview of field's value: '<value>'``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segstore.derived_source.mask import mask_source
from segstore.derived_source.paths import collect_expanded, split_path
from segstore.errors import IllegalArgumentError, MapperParsingError, ValidationError
from segstore.mapping.dynamic import extract_doc_values
from segstore.mapping.knn_vector import KnnVectorMapping
from segstore.mapping.mappings import Mappings
from segstore.mapping.nested import nested_children
from segstore.search.source_filter import SourceFilter

__all__ = ["ParsedDocument", "ParsedChild", "DocumentParser"]


@dataclass
class ParsedDocument:
    """One accepted document. ``stored_source`` is masked when derived source applies; None when
    ``_source`` is disabled. ``vectors`` maps a root-scope path to its canonical vector row."""

    doc_id: str
    stored_source: dict[str, Any] | None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    doc_values: dict[str, list[Any]] = field(default_factory=dict)
    children: list["ParsedChild"] = field(default_factory=list)


@dataclass
class ParsedChild:
    """A nested child document (block order): its nested path and the vectors of fields in that scope."""

    path: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def _preview(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= 100 else text[:100] + "..."


class DocumentParser:
    """Parses documents against one index's mappings."""

    def __init__(self, mappings: Mappings, derived_paths: Sequence[str]) -> None:
        self.mappings = mappings
        self.derived_paths = list(derived_paths)
        self._vector_parts = {p: split_path(p) for p in mappings.vector_fields}
        self._source_filter = (SourceFilter(mappings.source_includes, mappings.source_excludes)
                               if mappings.source_includes or mappings.source_excludes else None)

    def parse(self, docs: Sequence[tuple[str, Any]]) -> list[ParsedDocument | ValidationError]:
        """Parse a batch; each slot holds the parsed document or the error that rejects it."""
        results: list[ParsedDocument | ValidationError] = []
        raw: dict[str, list[tuple[int, int, Any]]] = {p: [] for p in self._vector_parts}
        for i, (doc_id, source) in enumerate(docs):
            try:
                results.append(self._parse_structure(doc_id, source, raw, i))
            except ValidationError as e:
                results.append(e)
        for path, items in raw.items():
            live = [(i, c, v) for i, c, v in items if isinstance(results[i], ParsedDocument)]
            if live:
                self._convert_field(self.mappings.vector_fields[path], live, docs, results)
        return results

    def _parse_structure(
        self, doc_id: str, source: Any, raw: dict[str, list[tuple[int, int, Any]]], slot: int
    ) -> ParsedDocument:
        if not isinstance(source, dict):
            raise MapperParsingError("failed to parse", caused_by=IllegalArgumentError(
                f"source must be a JSON object, got [{type(source).__name__}]", "not_x_content_exception"))
        children = nested_children(source, self.mappings)
        for path, parts in self._vector_parts.items():
            scope = self.mappings.nested_scope(path)
            if scope is None:
                targets = [(-1, collect_expanded(source, parts))]
            else:  # a nested field: its values live in the child documents of its scope
                rel = tuple(path[len(scope) + 1:].split("."))
                targets = [(c, collect_expanded(ch.obj, rel)) for c, ch in enumerate(children) if ch.path == scope]
            for target, values in targets:
                if not values:
                    continue
                if len(values) > 1:
                    raise MapperParsingError(
                        f"failed to parse field [{path}] of type [knn_vector] in document with id '{doc_id}'. "
                        f"Preview of field's value: '{_preview(values[1])}'",
                        caused_by=IllegalArgumentError(
                            f"Field [{path}] of type [knn_vector] doesn't support indexing multiple values for "
                            "the same field in the same document"),
                    )
                raw[path].append((slot, target, values[0]))
        doc_values = extract_doc_values(doc_id, source, self.mappings)
        stored: dict[str, Any] | None = source
        if not self.mappings.source_enabled:
            stored = None
        else:
            if self._source_filter is not None:  # the mapping's _source includes/excludes: store what remains
                stored = self._source_filter.apply(source)
            if self.derived_paths:
                stored = mask_source(stored, self.derived_paths)
        return ParsedDocument(doc_id=doc_id, stored_source=stored, doc_values=doc_values,
                              children=[ParsedChild(ch.path) for ch in children])

    def _convert_field(
        self,
        fm: KnnVectorMapping,
        items: list[tuple[int, int, Any]],
        docs: Sequence[tuple[str, Any]],
        results: list[ParsedDocument | ValidationError],
    ) -> None:
        values = [v if isinstance(v, list) else [v] for _, _, v in items]
        dimension = fm.dimension if fm.dimension is not None else -1  # a model field: the slow path names it
        width = dimension // 8 if fm.data_type == "binary" else dimension
        try:
            # Infer the dtype first: rows of only numbers come out int/float, while booleans, nulls and
            # strings give bool/object/str arrays and take the slow path, which names the bad token.
            inferred = np.array(values)
            if inferred.dtype.kind not in "iuf":
                raise TypeError(inferred.dtype)
            arr = inferred.astype(np.float64, copy=False)
            fast = arr.ndim == 2 and arr.shape[1] == width and bool(np.isfinite(arr).all())
            if fast:
                fast = not _hides_booleans(arr, values)
            if fast and fm.data_type != "float":
                fast = bool(((arr == np.round(arr)) & (arr >= -128) & (arr <= 127)).all())
            if fast and fm.space_type == "cosinesimil":
                fast = bool((arr != 0).any(axis=1).all())
        except (ValueError, TypeError):
            fast = False
        if fast:
            rows = _encode(fm, arr)
            # Finite as float64 but beyond float32's range (1e39) becomes inf once stored: the slow path rejects it.
            fast = fm.data_type != "float" or bool(np.isfinite(rows).all())
        if fast:
            for (slot, target, _), row in zip(items, rows):
                doc = results[slot]
                assert isinstance(doc, ParsedDocument)
                (doc.vectors if target < 0 else doc.children[target].vectors)[fm.path] = row
            return
        for slot, target, value in items:  # slow path: find and name the bad documents
            doc = results[slot]
            if not isinstance(doc, ParsedDocument):
                continue  # an earlier value of the same document already failed
            try:
                row = _encode(fm, _validate_one(fm, value))[0]
                (doc.vectors if target < 0 else doc.children[target].vectors)[fm.path] = row
            except IllegalArgumentError as cause:
                results[slot] = MapperParsingError(
                    f"failed to parse field [{fm.path}] of type [knn_vector] in document with id "
                    f"'{docs[slot][0]}'. Preview of field's value: '{_preview(value)}'",
                    caused_by=cause,
                )


def _hides_booleans(arr: np.ndarray, values: list[list[Any]]) -> bool:
    """True if a row mixes JSON booleans with numbers (``[1, true]``): numpy turned them into 0/1, but
    OpenSearch refuses a boolean token in a vector. Only an element that became exactly 0 or 1 can have been
    a boolean, so just those are looked at (a few per row in real embeddings, whose exact zeros are rare but
    not absent), never whole rows."""
    rows, cols = np.nonzero((arr == 0) | (arr == 1))
    return any(values[r][c].__class__ is bool for r, c in zip(rows.tolist(), cols.tolist()))


def _validate_one(fm: KnnVectorMapping, value: Any) -> np.ndarray:
    """Check one vector value and return it as a 1 x width float64 array (raises IllegalArgumentError)."""
    values = value if isinstance(value, list) else [value]
    dimension = fm.require_dimension()  # "Model ID '<id>' is not created." for an untrained model field
    width = dimension // 8 if fm.data_type == "binary" else dimension
    if len(values) == 0:
        raise IllegalArgumentError("Vector dimension mismatch. Expected: %d, Given: 0" % dimension)
    # This is the slow path (one vector that failed the batch checks), so a scan per element is fine.
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))), _NONE)
    if bad is not _NONE and not (isinstance(bad, str) and _is_number(bad)):
        raise IllegalArgumentError(f"Current token ({_token(bad)}) not numeric, can not use numeric value accessors")
    try:
        arr = np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise IllegalArgumentError("Current token (VALUE_STRING) not numeric, can not use numeric value accessors"
                                   ) from None
    if arr.ndim != 1:
        raise IllegalArgumentError("Current token (START_ARRAY) not numeric, can not use numeric value accessors")
    if arr.shape[0] != width:
        if fm.data_type == "binary":
            raise IllegalArgumentError(
                "The dimension of the binary vector must be 8 times the length of the provided vector. "
                f"Expected: {fm.dimension}, Given: {arr.shape[0] * 8}")
        raise IllegalArgumentError(f"Vector dimension mismatch. Expected: {fm.dimension}, Given: {arr.shape[0]}")
    if np.isnan(arr).any():
        raise IllegalArgumentError("KNN vector values cannot be NaN")
    with np.errstate(over="ignore"):  # values beyond float32's range overflow to inf: that is the check
        too_big = fm.data_type == "float" and bool(np.isinf(arr.astype(np.float32)).any())
    if np.isinf(arr).any() or too_big:
        raise IllegalArgumentError("KNN vector values cannot be infinity")
    if fm.data_type in ("byte", "binary"):
        if (arr != np.round(arr)).any():
            raise IllegalArgumentError(
                f"[data_type] field was set as [{fm.data_type}] in index mapping. But, KNN vector values are "
                "floats instead of byte integers")
        if ((arr < -128) | (arr > 127)).any():
            raise IllegalArgumentError(
                f"[data_type] field was set as [{fm.data_type}] in index mapping. But, KNN vector values are not "
                "within in the byte range [-128, 127]")
    if fm.space_type == "cosinesimil" and not arr.any():
        raise IllegalArgumentError("zero vector is not supported when space type is [cosinesimil]")
    return arr[None, :]


_NONE = object()


def _is_number(text: str) -> bool:
    """OpenSearch coerces numeric strings in numeric contexts."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def _token(value: Any) -> str:
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if value is None:
        return "VALUE_NULL"
    return "VALUE_STRING"


def _encode(fm: KnnVectorMapping, arr: np.ndarray) -> np.ndarray:
    """Canonical storage rows: float32, int8 (byte) or uint8 packed bits (binary, signed input bytes).

    Faiss implements ``cosinesimil`` as inner product over unit vectors and normalises the indexed vector
    in place, so OpenSearch returns the normalised vector in ``_source``; segstore stores it the same way.
    """
    if fm.data_type == "float":
        with np.errstate(over="ignore"):  # beyond float32's range -> inf, rejected by the caller
            rows = arr.astype(np.float32)
        if fm.engine == "faiss" and fm.space_type == "cosinesimil":
            norms = np.sqrt((rows * rows).sum(axis=1, dtype=np.float32, keepdims=True))
            # Normalising in float32 is not idempotent: rows already of unit length (a derived _source fed
            # back through reindex or import) are kept as they are, so they do not drift by an ulp each time.
            unit = np.abs(norms - np.float32(1.0)) <= np.float32(4 * np.finfo(np.float32).eps)
            rows = np.where(unit, rows, rows / norms)
        return rows
    as_int8 = arr.astype(np.int8)
    return as_int8.view(np.uint8) if fm.data_type == "binary" else as_int8
