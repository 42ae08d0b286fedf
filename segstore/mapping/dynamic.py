"""Dynamic mapping and doc-value extraction for ordinary (non-vector) fields.

Unmapped fields get OpenSearch's dynamic types: ``true``/``false`` -> ``boolean``, integers -> ``long``,
other numbers -> ``float``, strings -> ``date`` when they look like an ISO date (``date_detection``), else
``text`` with a ``keyword`` sub-field (``ignore_above: 256``), objects -> ``object``. ``dynamic: false``
ignores new fields, ``strict`` rejects the document.

Mapped keyword, numeric, date and boolean fields are parsed into doc values here, with OpenSearch's
coercion (numeric strings are numbers) and its errors for values that do not fit the type.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from segstore.errors import IllegalArgumentError, MapperParsingError, ValidationError
from segstore.mapping.mappings import NUMERIC_FLOAT_TYPES, Mappings
from segstore.search.query_dsl import get_path

__all__ = ["dynamic_properties", "merge_properties", "extract_doc_values"]

_DATE = re.compile(r"^\d{4}[-/]\d{2}[-/]\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _infer(value: Any) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        if _DATE.match(value):
            return {"type": "date"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if isinstance(value, dict):
        return {"properties": {}}
    if isinstance(value, list):
        for v in value:
            if v is not None:
                return _infer(v)
    return None


def dynamic_properties(source: dict[str, Any], mappings: Mappings, prefix: str = "") -> dict[str, Any]:
    """Properties to add for the unmapped fields of ``source`` ({} if none)."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        path = prefix + key
        if path in mappings.vector_fields or path in mappings.leaf_types:
            continue
        if path in mappings.object_paths:
            children = [value] if isinstance(value, dict) else [v for v in value if isinstance(v, dict)] \
                if isinstance(value, list) else []
            sub: dict[str, Any] = {}
            for child in children:
                sub = merge_properties(sub, dynamic_properties(child, mappings, path + "."))
            if sub:
                out[key] = {"properties": sub}
            continue
        if mappings.dynamic in ("false",):
            continue
        spec = _infer(value)
        if spec is None:
            continue
        if mappings.dynamic == "strict":
            raise ValidationError(f"mapping set to strict, dynamic introduction of [{key}] within "
                                  f"[{prefix[:-1] or '_doc'}] is not allowed", "strict_dynamic_mapping_exception")
        if "properties" in spec:
            children = [value] if isinstance(value, dict) else [v for v in value if isinstance(v, dict)]
            props: dict[str, Any] = {}
            for child in children:
                props = merge_properties(props, dynamic_properties(child, mappings, path + "."))
            spec = {"properties": props}
        out[key] = spec
    return out


def merge_properties(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s fields added (existing definitions win)."""
    out = dict(base)
    for key, spec in extra.items():
        if key not in out:
            out[key] = spec
        elif "properties" in spec and isinstance(out[key], dict):
            merged = dict(out[key])
            merged["properties"] = merge_properties(out[key].get("properties", {}), spec["properties"])
            out[key] = merged
    return out


def _to_epoch_millis(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(v)
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    if s.lstrip("-").isdigit():
        return int(s)
    s = s.replace("/", "-").replace(" ", "T").replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(s)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp() * 1000)


def _coerce(ftype: str, v: Any) -> Any:
    if ftype in ("keyword", "constant_keyword", "ip"):
        if isinstance(v, (dict, list)):
            raise ValueError(v)
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    if ftype == "boolean":
        if isinstance(v, bool):
            return int(v)
        if v in ("true", "false", ""):
            return int(v == "true")
        raise IllegalArgumentError(f"Failed to parse value [{v}] as only [true] or [false] are allowed.")
    if ftype in ("date", "date_nanos"):
        return _to_epoch_millis(v)
    if isinstance(v, bool):
        raise ValueError(v)
    num = float(v)
    if ftype in NUMERIC_FLOAT_TYPES:
        return num
    if num != num or num in (float("inf"), float("-inf")):
        raise ValueError(v)
    return int(num)


def extract_doc_values(doc_id: str, source: dict[str, Any], mappings: Mappings) -> dict[str, list[Any]]:
    """Typed values of every doc-values field present in ``source``; raises MapperParsingError."""
    out: dict[str, list[Any]] = {}
    for path, (src_path, ftype) in mappings.doc_value_fields.items():
        values = get_path(source, src_path)
        if not values:
            continue
        coerced = []
        for v in values:
            try:
                c = _coerce(ftype, v)
            except IllegalArgumentError as e:
                raise MapperParsingError(
                    f"failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{v}'", caused_by=e) from None
            except (ValueError, TypeError, OverflowError):
                raise MapperParsingError(
                    f"failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{v}'",
                    caused_by=ValidationError(f'For input string: "{v}"', "number_format_exception")) from None
            if isinstance(c, str) and len(c) > mappings.ignore_above.get(path, 1 << 30):
                continue  # longer than ignore_above: kept in _source, not indexed
            coerced.append(c)
        if coerced:
            out[path] = coerced
    return out
