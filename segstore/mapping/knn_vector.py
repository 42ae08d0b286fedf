"""The ``knn_vector`` field mapping: parameters, defaults and validation (vector-semantics.md §1).

Errors are raised as :class:`~segstore.errors.MapperParsingError` with OpenSearch's exact messages; the
mapping layer prefixes ``Failed to parse mapping [_doc]: `` as the REST response does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import MapperParsingError

__all__ = ["KnnVectorMapping", "parse_knn_vector", "MAX_DIMENSION", "ENGINES", "DATA_TYPES"]

MAX_DIMENSION = 16000
ENGINES = ("faiss", "lucene", "nmslib")
DATA_TYPES = ("binary", "byte", "float")
SPACES = ("l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming")
_TOP_KEYS = {"type", "dimension", "data_type", "space_type", "engine", "method", "model_id", "mode",
             "compression_level", "doc_values", "store", "meta", "copy_to"}
_METHOD_KEYS = {"name", "engine", "space_type", "parameters"}
_HNSW_PARAMS = {"m", "ef_construction", "ef_search", "encoder"}


@dataclass(frozen=True)
class KnnVectorMapping:
    """A resolved ``knn_vector`` field. ``knn`` is False for a flat field (index without ``index.knn``)."""

    path: str
    dimension: int
    data_type: str = "float"
    space_type: str = "l2"
    engine: str = "faiss"
    method: str = "hnsw"
    m: int = 16
    ef_construction: int = 100
    ef_search: int | None = 100
    knn: bool = True
    copy_to: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    def field_attributes(self) -> dict[str, str]:
        """Per-field choices persisted by name in the segment's field infos."""
        attrs = {"knn": str(self.knn).lower(), "engine": self.engine, "method": self.method}
        if self.method == "hnsw":
            attrs["hnsw.m"] = str(self.m)
            attrs["hnsw.ef_construction"] = str(self.ef_construction)
        return attrs

    def to_dict(self) -> dict[str, Any]:
        """The mapping as ``GET _mapping`` shows it (what the user gave, as OpenSearch echoes it)."""
        return dict(self.source)


def _fail(msg: str) -> MapperParsingError:
    return MapperParsingError(msg)


def _parse_int(value: Any, what: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise _fail(f"Unable to parse [{what}] from provided value [{value}] for vector [{path}]")
    try:
        iv = int(value)
    except ValueError:
        raise _fail(f"Unable to parse [{what}] from provided value [{value}] for vector [{path}]") from None
    if isinstance(value, float) and iv != value:
        raise _fail(f"Unable to parse [{what}] from provided value [{value}] for vector [{path}]")
    return iv


def parse_knn_vector(path: str, spec: Mapping[str, Any], *, index_knn: bool) -> KnnVectorMapping:
    """Validate one ``knn_vector`` mapping and resolve its defaults."""
    for key in spec:
        if key not in _TOP_KEYS:
            raise _fail(f"unknown parameter [{key}] on mapper [{path}] of type [knn_vector]")
    data_type = str(spec.get("data_type", "float")).lower()
    if data_type not in DATA_TYPES:
        raise _fail("Invalid value provided for [data_type] field. Supported values are [binary,byte,float]")
    if "dimension" not in spec:
        raise _fail(f"Dimension value missing for vector: {path}")
    dim = _parse_int(spec["dimension"], "dimension", path)
    if dim <= 0:
        raise _fail(f"Dimension value must be greater than 0 for vector: {path}")
    method_spec = spec.get("method")
    if method_spec is not None and not isinstance(method_spec, Mapping):
        raise _fail(f"Unable to parse [method] from provided value [{method_spec}] for vector [{path}]")
    method_spec = method_spec or {}
    for key in method_spec:
        if key not in _METHOD_KEYS:
            raise _fail(f"Invalid parameter: {key}")
    if method_spec and "name" not in method_spec:
        raise _fail("name needs to be set")

    top_space = spec.get("space_type")
    if top_space is not None and str(top_space).lower() not in SPACES:
        raise _fail(f"Unable to find space: {top_space} . Valid values are: [{', '.join(SPACES)}]")
    m_space = method_spec.get("space_type")
    if m_space is not None and str(m_space).lower() not in SPACES:
        raise _fail(f"Invalid space_type: {m_space}")
    if top_space is not None and m_space is not None and str(top_space).lower() != str(m_space).lower():
        raise _fail(f'Cannot specify conflicting space types: "[{top_space}]" "[{m_space}]"')
    space = str(top_space or m_space or ("hamming" if data_type == "binary" else "l2")).lower()

    top_engine = spec.get("engine")
    if top_engine is not None and str(top_engine).lower() not in ENGINES:
        raise _fail(f"Invalid engine type: {top_engine}")
    m_engine = method_spec.get("engine")
    if m_engine is not None and str(m_engine).lower() not in ENGINES:
        raise _fail(f"Invalid engine: {m_engine}")
    if top_engine is not None and m_engine is not None and str(top_engine).lower() != str(m_engine).lower():
        raise _fail(f"Cannot specify conflicting engines: [{top_engine}] and [{m_engine}]")
    engine = str(top_engine or m_engine or "faiss").lower()

    if dim > MAX_DIMENSION:
        raise _fail(f"Dimension value cannot be greater than {MAX_DIMENSION} for vector with engine: {engine}")
    if data_type == "binary" and dim % 8:
        raise _fail("Dimension should be multiply of 8 for binary vector data type")
    if space == "hamming" and data_type != "binary":
        raise _fail(f"Space type [hamming] is not supported with [{data_type}] data type")
    if data_type == "binary" and space != "hamming":
        raise _fail(f"Space type [{space}] is not supported with [binary] data type")

    if not index_knn and (method_spec or "model_id" in spec):
        raise _fail("Cannot set modelId or method parameters when index.knn setting is false")
    if not index_knn and ("mode" in spec or "compression_level" in spec):
        raise _fail(f"Compression and mode can not be specified in a flat mapping configuration for field: {path}")
    if engine == "nmslib" and index_knn:
        raise _fail("nmslib engine is deprecated in OpenSearch  and cannot be used for new index creation "
                    "in OpenSearch from  3.0.0.")

    name = str(method_spec.get("name", "hnsw"))
    params = method_spec.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _fail(f"Unable to parse [parameters] from provided value [{params}] for vector [{path}]")
    if name == "hnsw":
        for key in params:
            if key not in _HNSW_PARAMS or (key == "ef_search" and engine == "lucene"):
                raise _fail(f"Unknown parameter '{key}' found")
    m = _parse_int(params.get("m", 16), "m", path)
    ef_c = _parse_int(params.get("ef_construction", 100), "ef_construction", path)
    ef_s = None if engine == "lucene" else _parse_int(params.get("ef_search", 100), "ef_search", path)
    copy_to = spec.get("copy_to") or ()
    if isinstance(copy_to, str):
        copy_to = (copy_to,)
    return KnnVectorMapping(
        path=path, dimension=dim, data_type=data_type, space_type=space, engine=engine, method=name,
        m=m, ef_construction=ef_c, ef_search=ef_s, knn=index_knn, copy_to=tuple(copy_to), source=dict(spec),
    )
