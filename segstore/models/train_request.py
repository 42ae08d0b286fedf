"""The train request of the model training API (vector-semantics.md §5): parsing and validation.

:func:`parse_train_request` reproduces ``RestTrainModelHandler#createTransportRequest`` (body parsing,
required fields, defaults, space and engine resolution) and :func:`validate_train_request` reproduces
``TrainingModelRequest#validate`` + ``IndexUtil#validateKnnField`` + the training-count checks, with
OpenSearch's exact messages (``Validation Failed: 1: ...;`` for the collected validation errors).

The training job that runs a validated request is :mod:`segstore.models.training`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import IllegalArgumentError, MapperParsingError, ValidationError
from segstore.mapping.encoders import methods_of
from segstore.mapping.knn_vector import DATA_TYPES, ENGINES, SPACES
from segstore.mapping.method_component import Component, Ctx, parse_method
from segstore.mapping.method_resolution import (
    COMPRESSION_LEVELS,
    INDEX_CREATED_VERSION,
    MAX_DIMENSION,
    MODES,
    resolve_engine,
    resolve_method,
)
from segstore.models.registry import ModelRegistry

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "TrainRequest",
    "new_model_id",
    "parse_train_request",
    "validate_train_request",
    "validate_training_count",
]

MAX_DESCRIPTION_LENGTH = 1000
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


@dataclass
class TrainRequest:
    """A parsed and resolved train request (``TrainingModelRequest``)."""

    model_id: str
    training_index: str
    training_field: str
    dimension: int
    description: str
    data_type: str
    space_type: str
    engine: str
    method_name: str
    parameters: dict[str, Any]  # resolved, with defaults (nlist, nprobes); encoder as a Component
    user_parameters: dict[str, Any]  # as given (model_definition)
    encoder: Component | None
    mode: str | None
    compression_level: str | None
    max_training_vector_count: int | None = None
    search_size: int = 10000
    preference: str | None = None
    ctx: Ctx | None = field(default=None, repr=False)

    @property
    def nlist(self) -> int:
        return int(self.parameters.get("nlist", 4))

    @property
    def nprobes(self) -> int:
        return int(self.parameters.get("nprobes", 1))

    def model_definition(self) -> dict[str, Any]:
        params = {k: v.to_dict() if isinstance(v, Component) else v for k, v in self.parameters.items()}
        return {"name": self.method_name, "parameters": params}


# ------------------------------------------------------------------------------------------ parsing


def _java_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _parse_int(value: Any, name: str) -> int:
    """``NumberFieldMapper.NumberType.INTEGER.parse(objectBytes, coerce=false)``."""
    if isinstance(value, bool) or value is None:
        raise IllegalArgumentError(f"Failed to parse [{name}]: [{_java_str(value)}] is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise IllegalArgumentError(f"Value [{value}] has a decimal part")
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise IllegalArgumentError(f'For input string: "{value}"') from None
    if not isinstance(value, int):
        raise IllegalArgumentError(f"Failed to parse [{name}]: not a number")
    if not _INT_MIN <= value <= _INT_MAX:
        raise IllegalArgumentError(f"Value [{value}] is out of range for an integer")
    return value


def new_model_id() -> str:
    """``UUIDs.randomBase64UUID()``-like: 20 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii")[:20]


def parse_train_request(body: Any, model_id: str | None, preference: str | None = None) -> TrainRequest:
    """``RestTrainModelHandler#createTransportRequest`` (errors are ``illegal_argument_exception`` unless
    the method parser raises a ``mapper_parsing_exception``)."""
    if not isinstance(body, Mapping):
        raise IllegalArgumentError("request body is required")
    method = None
    training_index = training_field = description = data_type = mode = compression = None
    dimension = max_count = search_size = None
    top_space: str | None = None
    top_engine: str | None = None
    for key, value in body.items():
        if key == "training_index":
            training_index = None if value is None else _java_str(value)
        elif key == "training_field":
            training_field = None if value is None else _java_str(value)
        elif key == "method":
            method = parse_method(value, SPACES, ENGINES)
        elif key == "dimension":
            dimension = _parse_int(value, key)
        elif key == "max_training_vector_count":
            max_count = _parse_int(value, key)
        elif key == "search_size":
            search_size = _parse_int(value, key)
        elif key == "description":
            description = None if value is None else _java_str(value)
            if description is not None and "," in description:
                raise IllegalArgumentError("Model description cannot contain any commas: ','")
        elif key == "data_type":
            dt = value.lower() if isinstance(value, str) else None
            if dt not in DATA_TYPES:
                raise IllegalArgumentError(
                    "Invalid value provided for [data_type] field. Supported values are [binary,byte,float]")
            data_type = dt
        elif key == "mode":
            mode = _java_str(value)
        elif key == "compression_level":
            compression = _java_str(value)
        elif key in ("space_type", "spaceType"):
            if top_space is not None:
                raise IllegalArgumentError("Unable to parse SpaceType as it is duplicated.")
            text = _java_str(value)
            if text.lower() not in SPACES:
                raise IllegalArgumentError(f"Unable to find space: {text} . Valid values are: [{', '.join(SPACES)}]")
            top_space = text.lower()
        elif key == "engine":
            text = _java_str(value)
            if text.lower() not in ENGINES:
                raise IllegalArgumentError(f"Invalid engine type: {text}")
            top_engine = text.lower()
        else:
            raise IllegalArgumentError(f'Unable to parse token. "{key}" is not a valid parameter.')
    if method is None and mode is None and compression is None:
        raise IllegalArgumentError('At least "[method]", "[mode]" or "[compression_level]" needs to be set')
    for name, value in (("dimension", dimension), ("training_index", training_index),
                        ("training_field", training_field)):
        if value is None:
            raise IllegalArgumentError(f'Request did not set "{name}.')
    assert dimension is not None and training_index is not None and training_field is not None
    data_type = data_type or "float"
    if (mode is not None or compression is not None) and data_type != "float":
        raise IllegalArgumentError(
            'When "[mode]" or "[compression_level]" is set, "[data_type]" must be set to "[float]"')
    if mode is not None and mode not in MODES:
        raise IllegalArgumentError(f"Unknown value [{mode}] for field [mode] - accepted values are "
                                   f"[null, {', '.join(MODES)}]")
    if compression is not None and compression not in COMPRESSION_LEVELS:
        raise IllegalArgumentError(f"Unknown value [{compression}] for field [compression_level] - accepted "
                                   f"values are [, {', '.join(COMPRESSION_LEVELS)}]")
    # SpaceTypeResolver: the method's and the top-level space must agree; default by data type.
    method_space = method.space_type if method is not None else None
    if method_space is not None and top_space is not None and method_space != top_space:
        raise IllegalArgumentError(f'Cannot specify conflicting space types: "[{method_space}]" "[{top_space}]"')
    space = method_space or top_space or ("hamming" if data_type == "binary" else "l2")
    try:
        engine = resolve_engine(method, top_engine, mode, compression, training=True)
    except MapperParsingError as e:
        raise IllegalArgumentError(e.message) from None
    if engine != "faiss":
        raise IllegalArgumentError(f'Cannot use "{engine}" engine from training context')
    ctx = Ctx(data_type=data_type, dimension=dimension, version=INDEX_CREATED_VERSION, compression=compression,
              user_compression=compression, mode=mode)
    if method is None:
        method = parse_method({"name": "ivf"}, SPACES, ENGINES)
    user_params = {k: v.to_dict() if isinstance(v, Component) else v for k, v in method.component.params.items()}
    resolved = resolve_method("faiss", method, space, ctx)
    encoder = resolved.params.get("encoder")
    return TrainRequest(
        model_id=model_id or new_model_id(), training_index=training_index, training_field=training_field,
        dimension=dimension, description=description or "", data_type=data_type, space_type=space,
        engine="faiss", method_name=resolved.name, parameters=dict(resolved.params), user_parameters=user_params,
        encoder=encoder if isinstance(encoder, Component) else None, mode=mode,
        compression_level=compression, max_training_vector_count=max_count,
        search_size=search_size if search_size is not None else 10000, preference=preference, ctx=ctx)


# --------------------------------------------------------------------------------------- validation


def _field_mapping(properties: Any, path: str) -> Any:
    """``IndexUtil#getFieldMapping``: walk ``a.b.c`` through ``properties``."""
    node: Any = {"properties": properties}
    for part in path.split("."):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or part not in props:
            return None
        node = props[part]
    return node


def _validate_field(req: TrainRequest, registry: ModelRegistry) -> list[str]:
    """``IndexUtil#validateKnnField`` (each branch stops at its first error)."""
    meta = registry.catalog.get_index(req.training_index) or {}
    mappings = meta.get("mappings") or {}
    if isinstance(mappings, Mapping) and "_doc" in mappings and len(mappings) == 1:
        mappings = mappings["_doc"]
    properties = mappings.get("properties") if isinstance(mappings, Mapping) else None
    if properties is None:
        return ["Properties in map does not exists. This is unexpected"]
    f = req.training_field
    if not f:
        return ["Field path is empty."]
    fm = _field_mapping(properties, f)
    if fm is None:
        return [f'Field "{f}" does not exist.']
    if not isinstance(fm, Mapping):
        return [f'Field info for "{f}" is not a map.']
    if fm.get("type") != "knn_vector":
        return [f'Field "{f}" is not of type knn_vector.']
    field_type = str(fm.get("data_type", "float")).lower()
    if field_type != req.data_type:
        return [f'Field "{f}" has data type {field_type}, which is different from data type used in the '
                f"training request: {req.data_type}"]
    if req.encoder is not None and req.data_type in ("byte", "binary") and req.encoder.name != "flat" \
            and "encoder" in req.user_parameters:
        return [f"encoder is not supported for vector data type [{req.data_type}]"]
    dimension = fm.get("dimension")
    if dimension is None:
        model_id = fm.get("model_id")
        if model_id is None:
            return [f'Field "{f}" does not have a dimension set.']
        record = registry.get(str(model_id))
        if record is None or record.get("state") != "created":
            return [f'Model "{model_id}" for field "{f}" is not created.']
        dimension = record.get("dimension")
    if dimension != req.dimension:
        return [f'Field "{f}" has dimension {dimension}, which is different from dimension specified in the '
                f"training request: {req.dimension}"]
    return []


def validate_train_request(req: TrainRequest, registry: ModelRegistry, node_name: str = "segstore") -> None:
    """``TrainingModelRequest#validate`` then the training-count checks; raises the collected errors as an
    ``action_request_validation_exception`` (``Validation Failed: 1: a;2: b;``)."""
    def raise_errors(errors: list[str]) -> None:
        raise ValidationError("Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1)),
                              "action_request_validation_exception")

    if registry.get(req.model_id) is not None:
        raise_errors([f'Model with id="{req.model_id}" already exists'])
    errors: list[str] = []
    spec = methods_of("faiss", INDEX_CREATED_VERSION).get(req.method_name)
    comp = Component(req.method_name, req.parameters)
    assert req.ctx is not None
    if spec is None:
        errors.append(f"Invalid method name: {req.method_name}")
    else:
        if req.dimension > MAX_DIMENSION:
            errors.append(f"Dimension value cannot be greater than {MAX_DIMENSION} for vector with engine: faiss")
        elif req.data_type == "binary" and req.dimension % 8:
            errors.append("Dimension should be multiply of 8 for binary vector data type")
        if req.space_type == "hamming" and req.data_type != "binary":
            errors.append(f"Space type [hamming] is not supported with [{req.data_type}] data type")
        elif req.data_type == "binary" and req.space_type != "hamming":
            errors.append(f"Space type [{req.space_type}] is not supported with [binary] data type")
        errors += spec.validate(comp, req.space_type, req.ctx)
    if spec is None or not spec.requires_training(comp, req.ctx):
        errors.append("Method does not require training.")
    if req.preference is not None and req.preference not in (node_name, "_local"):
        errors.append(f'Preferred node "{req.preference}" does not exist')
    if len(req.description) > MAX_DESCRIPTION_LENGTH:
        errors.append(f"Description exceeds limit of {MAX_DESCRIPTION_LENGTH} characters")
    if registry.catalog.get_index(req.training_index) is None:
        errors.append(f'Index "{req.training_index}" does not exist.')
        raise_errors(errors)
    errors += _validate_field(req, registry)
    if errors:
        raise_errors(errors)
    if req.max_training_vector_count is not None and req.max_training_vector_count <= 0:
        raise IllegalArgumentError(f"Maximum vector count {req.max_training_vector_count} is invalid. Maximum "
                                   "vector count must be greater than 0")
    if not 0 < req.search_size <= 10000:
        raise IllegalArgumentError(f"Search size {req.search_size} is invalid. Search size must be between 0 "
                                   "and 10,000")


def validate_training_count(req: TrainRequest, available: int) -> None:
    """``AbstractFaissPQEncoder#validateEncoderConfig``: only with a PQ encoder (§5.3)."""
    enc = req.encoder
    if enc is None or enc.name != "pq":
        return
    m = enc.params.get("m", 1)
    if isinstance(m, int) and m > 0 and req.dimension % m:
        raise IllegalArgumentError("Training request ENCODER_PARAMETER_PQ_M is not divisible by vector dimensions")
    code_size = enc.params.get("code_size")
    needed = 2 ** code_size if isinstance(code_size, int) else 1000
    count = available if req.max_training_vector_count is None else min(available, req.max_training_vector_count)
    if count < needed:
        raise IllegalArgumentError(f"Number of training points should be greater than {needed}")
