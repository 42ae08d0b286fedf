"""Index mappings: the ``properties`` tree, ``_source`` options and the vector fields it declares.

Only what segstore indexes is typed here: ``knn_vector`` fields (resolved by
:mod:`segstore.mapping.knn_vector`), ``object`` and ``nested`` containers (they define vector paths and
nested scopes), and the ordinary leaf types, which are accepted and kept in ``_source``. Unknown types are
rejected as OpenSearch does (``No handler for type [x] declared on field [f]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from segstore.errors import MapperParsingError
from segstore.mapping.knn_vector import KnnVectorMapping, parse_knn_vector

__all__ = ["Mappings", "LEAF_TYPES"]

LEAF_TYPES = frozenset({
    "text", "keyword", "match_only_text", "long", "integer", "short", "byte", "double", "float", "half_float",
    "scaled_float", "unsigned_long", "boolean", "date", "date_nanos", "ip", "binary", "geo_point", "flat_object",
    "wildcard", "constant_keyword", "token_count", "alias", "integer_range", "float_range", "long_range",
    "double_range", "date_range", "ip_range", "rank_feature", "rank_features", "join", "completion",
    "search_as_you_type", "percolator",
})
_ROOT_KEYS = {"properties", "_source", "dynamic", "dynamic_templates", "_routing", "_meta", "date_detection",
              "numeric_detection", "_field_names", "enabled"}
PREFIX = "Failed to parse mapping [_doc]: "
NUMERIC_INT_TYPES = frozenset({"long", "integer", "short", "byte", "unsigned_long", "date", "date_nanos", "boolean"})
NUMERIC_FLOAT_TYPES = frozenset({"double", "float", "half_float", "scaled_float"})
DOC_VALUE_TYPES = NUMERIC_INT_TYPES | NUMERIC_FLOAT_TYPES | {"keyword", "constant_keyword", "ip"}


@dataclass
class Mappings:
    """Parsed mappings of one index."""

    source: dict[str, Any]
    vector_fields: dict[str, KnnVectorMapping] = field(default_factory=dict)
    nested_paths: list[str] = field(default_factory=list)
    source_enabled: bool = True
    source_includes: tuple[str, ...] = ()
    source_excludes: tuple[str, ...] = ()
    leaf_types: dict[str, str] = field(default_factory=dict)
    object_paths: set[str] = field(default_factory=set)
    source_paths: dict[str, str] = field(default_factory=dict)  # multi-field path -> its source path
    no_doc_values: set[str] = field(default_factory=set)
    ignore_above: dict[str, int] = field(default_factory=dict)
    dynamic: str = "true"
    routing_required: bool = False  # ``_routing: {"required": true}``: writes and GETs must name a routing

    @cached_property
    def doc_value_fields(self) -> dict[str, tuple[str, str]]:
        """``path -> (source path, type)`` of the fields that get doc values (filterable without _source).
        Cached: a ``Mappings`` is complete once parsed (a mapping update parses a new one), and the document
        parser asks for this once per document."""
        out = {}
        for path, ftype in self.leaf_types.items():
            if ftype in DOC_VALUE_TYPES and path not in self.no_doc_values:
                out[path] = (self.source_paths.get(path, path), ftype)
        return out

    @classmethod
    def parse(cls, body: Mapping[str, Any] | None, *, index_knn: bool) -> "Mappings":
        body = dict(body or {})
        try:
            return cls._parse(body, index_knn=index_knn)
        except MapperParsingError as e:
            if e.message.startswith(PREFIX):
                raise
            raise MapperParsingError(PREFIX + e.message) from e

    @classmethod
    def _parse(cls, body: dict[str, Any], *, index_knn: bool) -> "Mappings":
        if "_doc" in body and isinstance(body["_doc"], Mapping) and len(body) == 1:
            body = dict(body["_doc"])  # typed mapping wrapper still accepted by OpenSearch
        for key in body:
            if key not in _ROOT_KEYS:
                raise MapperParsingError(f"Root mapping definition has unsupported parameters:  [{key} : "
                                         f"{body[key]}]")
        m = cls(source=body)
        src = body.get("_source") or {}
        if not isinstance(src, Mapping):
            raise MapperParsingError(f"[_source] must be an object, got [{src}]")
        m.source_enabled = bool(src.get("enabled", True))
        m.source_includes = tuple(src.get("includes") or ())
        m.source_excludes = tuple(src.get("excludes") or ())
        m.dynamic = str(body.get("dynamic", "true")).lower()
        routing = body.get("_routing") or {}
        if not isinstance(routing, Mapping):
            raise MapperParsingError(f"[_routing] must be an object, got [{routing}]")
        required = routing.get("required", False)
        if required not in (True, False, "true", "false"):
            raise MapperParsingError(f"Failed to parse value [{required}] as only [true] or [false] are allowed.")
        m.routing_required = required in (True, "true")
        m._walk(body.get("properties") or {}, "", index_knn)
        return m

    def _walk(self, props: Mapping[str, Any], prefix: str, index_knn: bool) -> None:
        if not isinstance(props, Mapping):
            raise MapperParsingError(f"Expected map for property [properties] on field [{prefix}] but got "
                                     f"a {type(props).__name__}")
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if not isinstance(spec, Mapping):
                raise MapperParsingError(f"Expected map for property [fields] on field [{name}] but got a "
                                         f"{type(spec).__name__}")
            ftype = spec.get("type", "object" if "properties" in spec else None)
            if ftype is None:
                raise MapperParsingError(f"No type specified for field [{name}]")
            if ftype == "knn_vector":
                self.vector_fields[path] = parse_knn_vector(path, spec, index_knn=index_knn)
            elif ftype in ("object", "nested"):
                if ftype == "nested":
                    self.nested_paths.append(path)
                self.object_paths.add(path)
                self._walk(spec.get("properties") or {}, path + ".", index_knn)
            elif ftype in LEAF_TYPES:
                self.leaf_types[path] = str(ftype)
                if spec.get("doc_values") is False:
                    self.no_doc_values.add(path)
                if "ignore_above" in spec:
                    self.ignore_above[path] = int(spec["ignore_above"])
                for sub, sub_spec in (spec.get("fields") or {}).items():
                    sub_type = sub_spec.get("type") if isinstance(sub_spec, Mapping) else None
                    if sub_type not in LEAF_TYPES:
                        raise MapperParsingError(f"No handler for type [{sub_type}] declared on field [{sub}]")
                    self.leaf_types[f"{path}.{sub}"] = str(sub_type)
                    self.source_paths[f"{path}.{sub}"] = path
                    if "ignore_above" in sub_spec:
                        self.ignore_above[f"{path}.{sub}"] = int(sub_spec["ignore_above"])
            else:
                raise MapperParsingError(f"No handler for type [{ftype}] declared on field [{name}]")

    def nested_scope(self, path: str) -> str | None:
        """The innermost nested path that contains ``path`` (None for root-scope fields)."""
        best = None
        for n in self.nested_paths:
            if path.startswith(n + ".") and (best is None or len(n) > len(best)):
                best = n
        return best

    def to_dict(self) -> dict[str, Any]:
        return self.source
