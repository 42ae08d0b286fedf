"""The ``knn_vector`` field mapping: parameters, defaults and validation (vector-semantics.md §1).

:func:`parse_knn_vector` reproduces OpenSearch k-NN's ``KNNVectorFieldMapper.TypeParser`` for an index
created on :data:`~segstore.mapping.method_resolution.INDEX_CREATED_VERSION`:

1. every parameter is parsed in the order the user wrote them (unknown parameters, ``null`` values, bad
   ``dimension``/``data_type``/``method``/``mode``/``compression_level`` values), then the top-level
   ``space_type`` and ``engine`` are checked;
2. ``method`` with ``model_id``, ``model_id`` with ``dimension``;
3. one of three configurations: *flat* (``index.knn`` false or absent: exact search only), *model*
   (``model_id``: dimension, engine, space and compression come from the model later) or *method*, which
   resolves engine, method, mode, compression and encoder (:mod:`segstore.mapping.method_resolution`).

Errors are :class:`~segstore.errors.MapperParsingError` with OpenSearch's exact messages (typos and double
spaces included); the mapping layer prefixes ``Failed to parse mapping [_doc]: `` as the REST response does.

A *model* field has no dimension until its model is trained (``dimension is None``). Code that needs the
dimension calls :meth:`KnnVectorMapping.require_dimension`, which fails with upstream's
``Model ID '<id>' is not created.`` for such fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from segstore.errors import IllegalArgumentError, MapperParsingError
from segstore.mapping.encoders import V2_19
from segstore.mapping.method_component import Component, Ctx, ParsedMethod, Version, parse_method
from segstore.mapping.method_resolution import (
    COMPRESSION_LEVELS, INDEX_CREATED_VERSION, MAX_DIMENSION, MODES, check_blocked_engine,
    check_mode_and_compression, check_space_data_type, resolve_engine, resolve_method, validate_method,
)

__all__ = ["KnnVectorMapping", "parse_knn_vector", "MAX_DIMENSION", "ENGINES", "DATA_TYPES", "SPACES",
           "INDEX_CREATED_VERSION"]

ENGINES = ("faiss", "lucene", "nmslib")
DATA_TYPES = ("binary", "byte", "float")
#: ``SpaceType`` values in upstream enum order (the order of the "Valid values are" list).
SPACES = ("l2", "cosinesimil", "l1", "linf", "innerproduct", "hamming")
_PARAMS = ("dimension", "data_type", "space_type", "engine", "method", "model_id", "mode", "compression_level",
           "doc_values", "store", "meta", "copy_to")
_NULLABLE = frozenset({"mode", "compression_level"})
_INT_RE = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class KnnVectorMapping:
    """A resolved ``knn_vector`` field.

    ``knn`` is False for a flat field (index without ``index.knn``). A field mapped with ``model_id`` has
    ``dimension``, ``engine``, ``space_type``, ``method`` and ``compression_level`` None: they come from the
    model. ``mode`` and ``compression_level`` are what the field resolved to; ``user_mode`` and
    ``user_compression`` tell whether the user typed them. ``encoder`` is the effective encoder
    (``{"name": ..., "parameters": {...}}``, the user's or the one generated for the compression level), None
    without quantization.
    """

    path: str
    dimension: int | None
    data_type: str = "float"
    space_type: str | None = "l2"
    engine: str | None = "faiss"
    method: str | None = "hnsw"
    m: int | None = 16
    ef_construction: int | None = 100
    ef_search: int | None = 100
    knn: bool = True
    copy_to: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    mode: str | None = None
    compression_level: str | None = "1x"
    encoder: dict[str, Any] | None = field(default=None, hash=False)
    model_id: str | None = None
    nlist: int | None = None
    nprobes: int | None = None
    user_compression: bool = False
    user_mode: bool = False
    model_sha256: str | None = None  # set once a model field is resolved from its created model

    # --- model_id resolution hook (segstore.models.registry.resolve_mappings) ---------------------------
    @property
    def model_pending(self) -> bool:
        """A ``model_id`` field whose model is not resolved yet (not created, or not looked up)."""
        return self.model_id is not None and self.dimension is None

    def with_model(self, *, dimension: int, data_type: str, space_type: str, nlist: int, nprobes: int,
                   model_sha256: str) -> "KnnVectorMapping":
        """This ``model_id`` field resolved from its created model (vector-semantics.md §5.4): dimension,
        data type, engine (faiss), method (ivf), space and IVF parameters come from the model. No encoder
        is set: the model's encoder lives in the model itself (segment IVF graphs), not in the mapping."""
        if self.model_id is None:
            raise ValueError(f"field [{self.path}] has no model_id")
        return replace(self, dimension=dimension, data_type=data_type, space_type=space_type, engine="faiss",
                       method="ivf", nlist=nlist, nprobes=nprobes, compression_level="1x",
                       model_sha256=model_sha256)
    # --- end model_id resolution hook ---------------------------------------------------------------

    def require_dimension(self) -> int:
        """The dimension, or OpenSearch's error for a model field whose model is not created yet."""
        if self.dimension is None:
            raise IllegalArgumentError(f"Model ID '{self.model_id}' is not created.")
        return self.dimension

    def field_attributes(self) -> dict[str, str]:
        """Per-field choices persisted by name in the segment's field infos."""
        attrs = {"knn": str(self.knn).lower()}
        if self.model_id is not None:
            attrs["model_id"] = self.model_id
            if self.model_sha256 is not None:  # resolved: the segment's IVF graph is built from the model
                attrs.update({"engine": "faiss", "method": "ivf", "ivf.nlist": str(self.nlist),
                              "ivf.nprobes": str(self.nprobes), "ivf.model_sha256": self.model_sha256})
            return attrs
        if not self.knn or self.engine is None or self.method is None:
            return attrs
        attrs["engine"] = self.engine
        attrs["method"] = self.method
        if self.method == "hnsw":
            if self.m is not None:
                attrs["hnsw.m"] = str(self.m)
            if self.ef_construction is not None:
                attrs["hnsw.ef_construction"] = str(self.ef_construction)
            if self.ef_search is not None:
                attrs["hnsw.ef_search"] = str(self.ef_search)
        if self.method == "ivf":
            attrs["ivf.nlist"] = str(self.nlist)
            attrs["ivf.nprobes"] = str(self.nprobes)
        if self.compression_level is not None:
            attrs["compression"] = self.compression_level
        attrs["compression.user"] = str(self.user_compression).lower()
        if self.mode is not None:
            attrs["mode"] = self.mode
        attrs["mode.user"] = str(self.user_mode).lower()
        if self.encoder is not None:
            attrs["encoder"] = str(self.encoder["name"])
            for key, value in self.encoder.get("parameters", {}).items():
                if not isinstance(value, (dict, list)):
                    attrs[f"encoder.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return attrs

    def to_dict(self) -> dict[str, Any]:
        """The mapping as ``GET _mapping`` shows it (what the user gave, as OpenSearch echoes it)."""
        return dict(self.source)


# ------------------------------------------------------------------------------------------------ parsing


def _java_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def _parse_dimension(value: Any, path: str) -> int:
    """``XContentMapValues.nodeIntegerValue`` (numbers must be exact ints, strings ``Integer.parseInt``)."""
    iv: int | None = None
    if isinstance(value, bool):
        iv = None
    elif isinstance(value, int):
        iv = value
    elif isinstance(value, float):
        iv = int(value) if value.is_integer() else None
    elif isinstance(value, str) and _INT_RE.fullmatch(value):
        iv = int(value)
    if iv is None or not -(1 << 31) <= iv < (1 << 31):
        raise MapperParsingError(
            f"Unable to parse [dimension] from provided value [{_java_str(value)}] for vector [{path}]")
    if iv <= 0:
        raise MapperParsingError(f"Dimension value must be greater than 0 for vector: {path}")
    return iv


def _restricted(key: str, value: Any, accepted: tuple[str | None, ...]) -> str | None:
    """``Parameter.restrictedStringParam``'s validator: exact strings only (the first one is the default,
    meaning not configured)."""
    text = None if value is None else _java_str(value)
    if text not in accepted:
        shown = ", ".join("null" if a is None else a for a in accepted)
        raise MapperParsingError(f"Unknown value [{_java_str(text)}] for field [{key}] - accepted values are "
                                 f"[{shown}]")
    return text or None


@dataclass
class _Raw:
    """The parameters as parsed, before validation across parameters."""

    dimension: int | None = None
    data_type: str = "float"
    method: ParsedMethod | None = None
    method_given: bool = False
    model_id: str | None = None
    mode: str | None = None
    compression: str | None = None
    space_type: str | None = None
    engine: str | None = None
    copy_to: tuple[str, ...] = ()


def _parse_parameters(path: str, spec: Mapping[str, Any]) -> _Raw:
    """``ParametrizedFieldMapper.Builder#parse``: each parameter is parsed in the user's order, then the
    parameter validators run in declaration order (``mode``, ``compression_level``, ``space_type``,
    ``engine``)."""
    raw = _Raw()
    given: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key not in _PARAMS:
            raise MapperParsingError(f"unknown parameter [{key}] on mapper [{path}] of type [knn_vector]")
        if value is None and key not in _NULLABLE:
            raise MapperParsingError(f"[{key}] on mapper [{path}] of type [knn_vector] must not have a [null] value")
        given[key] = value
        if key == "dimension":
            raw.dimension = _parse_dimension(value, path)
        elif key == "data_type":
            data_type = value.lower() if isinstance(value, str) else None
            if data_type not in DATA_TYPES:
                raise MapperParsingError(
                    "Invalid value provided for [data_type] field. Supported values are [binary,byte,float]")
            raw.data_type = data_type
        elif key == "method":
            raw.method = parse_method(value, SPACES, ENGINES)
            raw.method_given = True
        elif key == "model_id":
            raw.model_id = _java_str(value)
        elif key == "copy_to":
            raw.copy_to = (value,) if isinstance(value, str) else tuple(value)
    if "mode" in given:
        raw.mode = _restricted("mode", given["mode"], (None,) + MODES)
    if "compression_level" in given:
        raw.compression = _restricted("compression_level", given["compression_level"], ("",) + COMPRESSION_LEVELS)
    if "space_type" in given:
        text = _java_str(given["space_type"])
        low = text.lower()
        if low not in SPACES and low != "undefined":
            raise MapperParsingError(f"Unable to find space: {text} . Valid values are: [{', '.join(SPACES)}]")
        raw.space_type = None if low == "undefined" else low
    if "engine" in given:
        text = _java_str(given["engine"])
        if text and text.lower() not in ENGINES:
            raise MapperParsingError(f"Invalid engine type: {text}")
        raw.engine = text.lower() or None
    return raw


def parse_knn_vector(path: str, spec: Mapping[str, Any], *, index_knn: bool) -> KnnVectorMapping:
    """Validate one ``knn_vector`` mapping and resolve its defaults."""
    return _parse(path, spec, index_knn=index_knn, version=INDEX_CREATED_VERSION)


def _parse(path: str, spec: Mapping[str, Any], *, index_knn: bool, version: Version) -> KnnVectorMapping:
    name = path.rsplit(".", 1)[-1]  # upstream messages name the field by its simple (leaf) name
    mapping = _parse_named(name, spec, index_knn=index_knn, version=version)
    return replace(mapping, path=path)


def _parse_named(path: str, spec: Mapping[str, Any], *, index_knn: bool, version: Version) -> KnnVectorMapping:
    raw = _parse_parameters(path, spec)
    if raw.method_given and raw.model_id is not None:
        raise MapperParsingError(f"Method and model can not be both specified in the mapping: {path}")
    if raw.dimension is not None and raw.model_id is not None and version >= V2_19:
        raise MapperParsingError(f"Cannot specify both a modelId and dimension in the mapping: {path}")
    if not index_knn:
        return _flat(path, spec, raw)
    if raw.model_id is not None:
        return _model(path, spec, raw)
    return _method(path, spec, raw, version)


def _flat(path: str, spec: Mapping[str, Any], raw: _Raw) -> KnnVectorMapping:
    """``index.knn`` false: a flat field, searched exactly (``validateFromFlat``)."""
    if raw.model_id is not None or raw.method_given:
        raise MapperParsingError("Cannot set modelId or method parameters when index.knn setting is false")
    if raw.dimension is None:
        raise MapperParsingError(f"Dimension value missing for vector: {path}")
    if raw.mode is not None or raw.compression is not None:
        raise MapperParsingError(
            f"Compression and mode can not be specified in a flat mapping configuration for field: {path}")
    space = raw.space_type or ("hamming" if raw.data_type == "binary" else "l2")
    check_space_data_type(space, raw.data_type)
    if raw.data_type == "binary" and raw.dimension % 8:
        raise MapperParsingError("Dimension should be multiply of 8 for binary vector data type")
    return KnnVectorMapping(
        path=path, dimension=raw.dimension, data_type=raw.data_type, space_type=space, engine=None, method=None,
        m=None, ef_construction=None, ef_search=None, knn=False, copy_to=raw.copy_to, source=dict(spec),
        compression_level="1x")


def _model(path: str, spec: Mapping[str, Any], raw: _Raw) -> KnnVectorMapping:
    """``model_id``: everything but the data type comes from the model (``validateFromModel``)."""
    if raw.space_type is not None:
        raise MapperParsingError("TopLevel Space type and model can not be both specified in the mapping")
    if raw.mode is not None or raw.compression is not None:
        raise MapperParsingError(
            f"Compression and mode can not be specified in a model mapping configuration for field: {path}")
    return KnnVectorMapping(
        path=path, dimension=None, data_type=raw.data_type, space_type=None, engine=None, method=None, m=None,
        ef_construction=None, ef_search=None, knn=True, copy_to=raw.copy_to, source=dict(spec),
        compression_level=None, model_id=raw.model_id)


def _resolve_space(raw: _Raw) -> str:
    """``SpaceTypeResolver``: method and top-level space must agree; the default depends on the data type."""
    method_space = raw.method.space_type if raw.method is not None else None
    top = raw.space_type
    if method_space is not None and top is not None and method_space != top:
        raise MapperParsingError(f'Cannot specify conflicting space types: "[{method_space}]" "[{top}]"')
    return method_space or top or ("hamming" if raw.data_type == "binary" else "l2")


def _method(path: str, spec: Mapping[str, Any], raw: _Raw, version: Version) -> KnnVectorMapping:
    """An ANN field: resolve engine, method, mode, compression and encoder, then validate them."""
    check_mode_and_compression(raw.mode, raw.compression, raw.data_type, path, version)
    space = _resolve_space(raw)
    ctx = Ctx(data_type=raw.data_type, dimension=raw.dimension, version=version, compression=raw.compression,
              user_compression=raw.compression, mode=raw.mode)
    engine = resolve_engine(raw.method, raw.engine, raw.mode, raw.compression, version=version)
    resolved = resolve_method(engine, raw.method, space, ctx)
    check_blocked_engine(engine, version)
    validate_method(resolved, ctx, path)
    params = resolved.params
    encoder = _encoder_dict(resolved.encoder, engine, version)
    is_hnsw = resolved.name == "hnsw"
    return KnnVectorMapping(
        path=path, dimension=raw.dimension, data_type=raw.data_type, space_type=space, engine=engine,
        method=resolved.name,
        m=params.get("m") if is_hnsw else None,
        ef_construction=params.get("ef_construction") if is_hnsw else None,
        ef_search=params.get("ef_search") if is_hnsw else None,
        knn=True, copy_to=raw.copy_to, source=dict(spec), mode=raw.mode, compression_level=resolved.compression,
        encoder=encoder,
        nlist=params.get("nlist") if resolved.name == "ivf" else None,
        nprobes=params.get("nprobes") if resolved.name == "ivf" else None,
        user_compression=raw.compression is not None, user_mode=raw.mode is not None)


def _encoder_dict(encoder: Component | None, engine: str, version: Version) -> dict[str, Any] | None:
    """The effective encoder as a dict, with the defaults that fix its level filled in."""
    if encoder is None:
        return None
    out = encoder.to_dict()
    params = out["parameters"]
    if engine == "faiss" and encoder.name == "binary":
        params.setdefault("bits", 1)
    if engine == "faiss" and encoder.name == "sq" and "bits" not in params:
        params.setdefault("type", "fp16")
    return out
