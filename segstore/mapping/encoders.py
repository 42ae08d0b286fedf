"""Method components of the ``knn_vector`` mapping: methods, encoders and their parameters
(vector-semantics.md §1.5, §1.8–§1.10).

This module mirrors OpenSearch k-NN's ``MethodComponent`` / ``Parameter`` machinery
(``K/index/engine/MethodComponent.java``, ``Parameter.java``, ``validation/ParameterValidator.java``) closely
enough to reproduce its error texts: a parameter is checked for its Java type first (a JSON integer is an
``Integer`` only inside the int32 range, ``16.0`` is a ``Double``, ``"16"`` a ``String``), then by its
validator; a nested component (the ``encoder``) that fails reports only
``parameter validation failed for MethodComponentContext parameter [encoder].``, as upstream does.

Version-dependent rules take the index-creation version (a ``(major, minor, patch)`` tuple) from the
:class:`Ctx` they are given; :mod:`segstore.mapping.method_resolution` fills it in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import MapperParsingError

__all__ = [
    "Component", "Ctx", "Version", "ComponentSpec", "MethodSpec", "parse_method", "parse_component",
    "java_type", "validation_failed", "ParsedMethod", "encoders_of", "V2_12", "V2_17", "V2_19", "V3_0", "V3_1", "V3_6",
    "FAISS_HNSW", "FAISS_IVF", "LUCENE_HNSW", "LUCENE_FLAT", "NMSLIB_HNSW", "methods_of",
    "encoder_level", "auto_encoder", "default_ef", "BQ_LEVELS", "sq_bits_conflict",
]

Version = tuple[int, int, int]

V2_12: Version = (2, 12, 0)
V2_17: Version = (2, 17, 0)
V2_19: Version = (2, 19, 0)
V3_0: Version = (3, 0, 0)
V3_1: Version = (3, 1, 0)
V3_6: Version = (3, 6, 0)

#: Compression levels whose auto encoder is binary quantization; they raise the ef defaults to 256 (§1.10).
BQ_LEVELS = frozenset({"8x", "16x", "32x"})

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def validation_failed(*errors: str) -> MapperParsingError:
    """An OpenSearch ``ValidationException`` as its message renders: ``Validation Failed: 1: a;2: b;``."""
    return MapperParsingError("Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1)))


@dataclass(frozen=True)
class Component:
    """A parsed ``MethodComponentContext``: ``{"name": ..., "parameters": {...}}``; dict-valued parameters are
    themselves components (as upstream parses them)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "parameters": {k: v.to_dict() if isinstance(v, Component) else v for k, v in self.params.items()}}


@dataclass
class Ctx:
    """What parameter validation and defaults depend on (upstream's ``KNNMethodConfigContext``)."""

    data_type: str
    dimension: int | None
    version: Version
    compression: str | None = None  # resolved level (or the user's while resolving)
    user_compression: str | None = None
    mode: str | None = None


def java_type(value: Any) -> str:
    """The Java class a JSON value parses to in OpenSearch's mapping maps."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if _INT_MIN <= value <= _INT_MAX else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Component):
        return "MethodComponentContext"
    if value is None:
        return "null"
    return type(value).__name__


# ------------------------------------------------------------------------------------------------- parsing


def _java_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def _parse_params(value: Any) -> dict[str, Any]:
    return {k: parse_component(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def parse_component(value: Any) -> Component:
    """``MethodComponentContext.parse`` (a nested component such as an encoder)."""
    if not isinstance(value, Mapping):
        raise MapperParsingError("Unable to parse MethodComponent")
    name = ""
    params: dict[str, Any] = {}
    for key, v in value.items():
        if key == "name":
            if not isinstance(v, str):
                raise MapperParsingError("Component name should be a string")
            name = v
        elif key == "parameters":
            if v is None:
                params = {}
                continue
            if not isinstance(v, Mapping):
                raise MapperParsingError("Unable to parse parameters for  method component")
            params = _parse_params(v)
        else:
            raise MapperParsingError(f"Invalid parameter for MethodComponentContext: {key}")
    if not name:
        raise MapperParsingError("name needs to be set")
    return Component(name, params)


@dataclass(frozen=True)
class ParsedMethod:
    """A parsed top-level ``method`` (upstream's ``KNNMethodContext`` before resolution)."""

    component: Component
    engine: str | None  # lower-cased, validated; None when not given
    space_type: str | None  # lower-cased, validated; None when not given ("undefined" counts as not given)
    engine_configured: bool = False


def parse_method(value: Any, spaces: tuple[str, ...], engines: tuple[str, ...]) -> ParsedMethod:
    """``KNNMethodContext.parse``: the ``method`` object of a mapping."""
    if not isinstance(value, Mapping):
        raise MapperParsingError('Unable to parse mapping into KNNMethodContext. Object not of type "Map"')
    engine: str | None = None
    engine_configured = False
    space: str | None = None
    name = ""
    params: dict[str, Any] = {}
    for key, v in value.items():
        if key == "engine":
            if v is not None and not isinstance(v, str):
                raise MapperParsingError('"engine" must be a string')
            if v is not None:
                if v.lower() not in engines:
                    raise MapperParsingError(f"Invalid engine: {v}")
                engine = v.lower()
            engine_configured = True
        elif key == "space_type":
            if v is not None and not isinstance(v, str):
                raise MapperParsingError('"space_type" must be a string')
            low = v.lower() if isinstance(v, str) else None
            if low != "undefined" and low not in spaces:
                raise MapperParsingError(f"Invalid space_type: {_java_str(v)}")
            space = None if low == "undefined" else low
        elif key == "name":
            if not isinstance(v, str):
                raise MapperParsingError("namehas to be a string")  # sic: NAME + "has to be a string"
            name = v
        elif key == "parameters":
            if v is None:
                params = {}
                continue
            if not isinstance(v, Mapping):
                raise MapperParsingError("Unable to parse parameters for main method component")
            params = _parse_params(v)
        else:
            raise MapperParsingError(f"Invalid parameter: {key}")
    if not name:
        raise MapperParsingError("name needs to be set")
    return ParsedMethod(Component(name, params), engine, space, engine_configured)


# ---------------------------------------------------------------------------------------------- parameters


class Param:
    """One method-component parameter: a Java type and a validator."""

    java: str = ""

    def __init__(self, name: str, default: Any, check: Callable[[Any, Ctx], bool]) -> None:
        self.name = name
        self._default = default
        self.check = check

    def default(self, ctx: Ctx) -> Any:
        return self._default(ctx) if callable(self._default) else self._default

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if java_type(value) != self.java:
            return [f"value is not an instance of {self.java} for {self.java} parameter [{self.name}]."]
        if not self.check(value, ctx):
            return [f"parameter validation failed for {self.java} parameter [{self.name}]."]
        return []


class IntParam(Param):
    java = "Integer"


class BoolParam(Param):
    java = "Boolean"


class StrParam(Param):
    java = "String"


class DoubleParam(Param):
    java = "Double"

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if value is None:
            return [f'Null value provided for Double parameter "{self.name}".']
        if java_type(value) == "Integer" and value == 0:
            value = 0.0  # upstream: if (value.equals(0)) value = 0.0
        return super().validate(value, ctx)


class ComponentParam(Param):
    """A parameter whose value is a component (``encoder``)."""

    java = "MethodComponentContext"

    def __init__(self, name: str, default: Any, components: Callable[[Ctx], Mapping[str, ComponentSpec]]) -> None:
        super().__init__(name, default, lambda v, ctx: True)
        self.components = components

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if not isinstance(value, Component):
            return [f"value is not an instance of for MethodComponentContext parameter [{self.name}]."]  # sic
        spec = self.components(ctx).get(value.name)
        if spec is None or spec.validate(value, ctx):
            return [f"parameter validation failed for MethodComponentContext parameter [{self.name}]."]
        return []


@dataclass(frozen=True)
class ComponentSpec:
    """A method or encoder: its parameters, supported data types and whether it needs training."""

    name: str
    params: Mapping[str, Param]
    data_types: frozenset[str]
    requires_training: bool = False

    def validate(self, comp: Component, ctx: Ctx) -> list[str]:
        """``MethodComponent.validate``: data type first, then every given parameter in order."""
        errors = []
        if ctx.data_type not in self.data_types:
            errors.append(f'Method "{self.name}" is not supported for vector data type "{ctx.data_type.upper()}".')
        for key, value in comp.params.items():
            param = self.params.get(key)
            if param is None:
                errors.append(f"Unknown parameter '{key}' found")
            else:
                errors.extend(param.validate(value, ctx))
        return errors

    def with_defaults(self, comp: Component, ctx: Ctx) -> dict[str, Any]:
        """The given parameters plus the defaults of the missing ones (``getParameterMapWithDefaultsAdded``)."""
        out = dict(comp.params)
        for name, param in self.params.items():
            if name not in out:
                default = param.default(ctx)
                if default is not None:
                    out[name] = default
        return out


@dataclass(frozen=True)
class MethodSpec:
    """An engine's method (``AbstractKNNMethod``): a component plus the spaces it supports."""

    engine: str
    component: ComponentSpec
    spaces: frozenset[str]

    @property
    def name(self) -> str:
        return self.component.name

    def validate(self, comp: Component, space: str, ctx: Ctx) -> list[str]:
        errors = []
        if space not in self.spaces:
            errors.append(f'"{self.name}" with "{self.engine}" configuration does not support space type: "{space}".')
        errors.extend(self.component.validate(comp, ctx))
        return errors

    def requires_training(self, comp: Component, ctx: Ctx) -> bool:
        if self.component.requires_training:
            return True
        for key, value in comp.params.items():
            param = self.component.params.get(key)
            if isinstance(param, ComponentParam) and isinstance(value, Component):
                spec = param.components(ctx).get(value.name)
                if spec is not None and spec.requires_training:
                    return True
        return False


# ---------------------------------------------------------------------------------------------- components

_FLOAT = frozenset({"float"})
_ALL_TYPES = frozenset({"float", "byte", "binary"})


def default_ef(ctx: Ctx, *, lucene: bool = False) -> int:
    """HNSW ``ef_construction`` / faiss ``ef_search`` default (§1.10): 512 before 2.12, 256 with a BQ level
    (faiss: the resolved level; Lucene: only a user-given ``compression_level``), else 100."""
    if ctx.version < V2_12:
        return 512
    level = ctx.user_compression if lucene else ctx.compression
    return 256 if level in BQ_LEVELS else 100


def _faiss_sq_bits(ctx: Ctx) -> frozenset[int]:
    return frozenset({1, 16}) if ctx.version >= V3_6 else frozenset({16})


def _lucene_sq_bits(ctx: Ctx) -> frozenset[int]:
    return frozenset({1, 7}) if ctx.version >= V3_6 else frozenset({7})


FAISS_FLAT_ENCODER = ComponentSpec("flat", {}, _ALL_TYPES)
FAISS_SQ_ENCODER = ComponentSpec("sq", {
    "type": StrParam("type", "fp16", lambda v, ctx: v == "fp16"),
    "clip": BoolParam("clip", False, lambda v, ctx: True),
    "bits": IntParam("bits", None, lambda v, ctx: v in _faiss_sq_bits(ctx)),
}, _FLOAT)
FAISS_BINARY_ENCODER = ComponentSpec("binary", {
    "bits": IntParam("bits", 1, lambda v, ctx: v in (1, 2, 4)),
    "random_rotation": BoolParam("random_rotation", False, lambda v, ctx: True),
    "enable_adc": BoolParam("enable_adc", False, lambda v, ctx: True),
}, _FLOAT)
FAISS_HNSW_PQ_ENCODER = ComponentSpec("pq", {
    "m": IntParam("m", 1, lambda v, ctx: 0 < v < 1024),
    "code_size": IntParam("code_size", 8, lambda v, ctx: v == 8),
}, _FLOAT, requires_training=True)
FAISS_IVF_PQ_ENCODER = ComponentSpec("pq", {
    "m": IntParam("m", 1, lambda v, ctx: 0 < v < 1024),
    "code_size": IntParam("code_size", 8, lambda v, ctx: 0 < v < 128),
}, _FLOAT, requires_training=True)
LUCENE_SQ_ENCODER = ComponentSpec("sq", {
    "confidence_interval": DoubleParam("confidence_interval", None,
                                       lambda v, ctx: v == 0.0 or 0.9 <= v <= 1.0),
    "bits": IntParam("bits", None, lambda v, ctx: v in _lucene_sq_bits(ctx)),
}, _FLOAT)

_FAISS_HNSW_ENCODERS = {e.name: e for e in (FAISS_FLAT_ENCODER, FAISS_SQ_ENCODER, FAISS_HNSW_PQ_ENCODER,
                                            FAISS_BINARY_ENCODER)}
_FAISS_IVF_ENCODERS = {e.name: e for e in (FAISS_FLAT_ENCODER, FAISS_SQ_ENCODER, FAISS_IVF_PQ_ENCODER,
                                           FAISS_BINARY_ENCODER)}
_LUCENE_ENCODERS = {LUCENE_SQ_ENCODER.name: LUCENE_SQ_ENCODER}


def _positive(v: int, ctx: Ctx) -> bool:
    return v > 0


FAISS_HNSW = MethodSpec("faiss", ComponentSpec("hnsw", {
    "m": IntParam("m", 16, _positive),
    "ef_construction": IntParam("ef_construction", default_ef, _positive),
    "ef_search": IntParam("ef_search", default_ef, _positive),
    "encoder": ComponentParam("encoder", None, lambda ctx: _FAISS_HNSW_ENCODERS),
}, _ALL_TYPES), frozenset({"l2", "innerproduct", "cosinesimil", "hamming"}))

FAISS_IVF = MethodSpec("faiss", ComponentSpec("ivf", {
    "nlist": IntParam("nlist", 4, lambda v, ctx: 0 < v < 20000),
    "nprobes": IntParam("nprobes", 1, lambda v, ctx: 0 < v < 20000),
    "encoder": ComponentParam("encoder", None, lambda ctx: _FAISS_IVF_ENCODERS),
}, _ALL_TYPES, requires_training=True), frozenset({"l2", "innerproduct", "cosinesimil", "hamming"}))

LUCENE_HNSW = MethodSpec("lucene", ComponentSpec("hnsw", {
    "m": IntParam("m", 16, _positive),
    "ef_construction": IntParam("ef_construction", lambda ctx: default_ef(ctx, lucene=True), _positive),
    "encoder": ComponentParam("encoder", None, lambda ctx: _LUCENE_ENCODERS),
}, _ALL_TYPES), frozenset({"l2", "innerproduct", "cosinesimil", "hamming"}))

LUCENE_FLAT = MethodSpec("lucene", ComponentSpec("flat", {}, _FLOAT),
                         frozenset({"l2", "innerproduct", "cosinesimil"}))

NMSLIB_HNSW = MethodSpec("nmslib", ComponentSpec("hnsw", {
    "m": IntParam("m", 16, _positive),
    "ef_construction": IntParam("ef_construction", default_ef, _positive),
}, _FLOAT), frozenset({"l2", "l1", "linf", "innerproduct", "cosinesimil"}))


def methods_of(engine: str, version: Version) -> dict[str, MethodSpec]:
    """The methods an engine knows for an index created on ``version`` (lucene ``flat`` from 3.6)."""
    if engine == "faiss":
        return {"hnsw": FAISS_HNSW, "ivf": FAISS_IVF}
    if engine == "lucene":
        return {"hnsw": LUCENE_HNSW, "flat": LUCENE_FLAT} if version >= V3_6 else {"hnsw": LUCENE_HNSW}
    return {"hnsw": NMSLIB_HNSW}


def encoders_of(engine: str, method: str) -> dict[str, ComponentSpec]:
    if engine == "faiss":
        return _FAISS_IVF_ENCODERS if method == "ivf" else _FAISS_HNSW_ENCODERS
    if engine == "lucene" and method == "hnsw":
        return _LUCENE_ENCODERS
    return {}


# ----------------------------------------------------------------------------- encoder <-> compression (§1.8)

_BINARY_BITS_TO_LEVEL = {1: "32x", 2: "16x", 4: "8x"}
_PQ_BUCKETS = ((2.0, "1x"), (4.0, "2x"), (8.0, "4x"), (16.0, "8x"), (32.0, "16x"), (64.0, "32x"))


def _check_param(spec: ComponentSpec, name: str, value: Any, ctx: Ctx) -> None:
    errors = spec.params[name].validate(value, ctx)
    if errors:
        raise validation_failed(*errors)


def _sq_bits_level(engine: str, bits: int) -> str:
    if bits == 1:
        return "32x"
    return "2x" if engine == "faiss" else "4x"


def encoder_level(engine: str, method: str, encoder: Component, ctx: Ctx) -> str | None:
    """The compression level an encoder produces (``Encoder#calculateCompressionLevel``); None when it cannot
    be told (unknown encoder, PQ without ``m`` and ``code_size``). Parameters the level depends on are
    validated here, as upstream does, and fail with their own ``Validation Failed`` message."""
    spec = encoders_of(engine, method).get(encoder.name)
    if spec is None:
        return None
    params = encoder.params
    if spec is FAISS_FLAT_ENCODER:
        return "1x"
    if spec is FAISS_SQ_ENCODER:
        if "type" in params:
            _check_param(spec, "type", params["type"], ctx)
        if "bits" in params:
            _check_param(spec, "bits", params["bits"], ctx)
            return _sq_bits_level("faiss", params["bits"])
        return "2x"
    if spec is FAISS_BINARY_ENCODER:
        if "bits" in params:
            _check_param(spec, "bits", params["bits"], ctx)
            return _BINARY_BITS_TO_LEVEL[params["bits"]]
        return "32x"  # default bits: 1 (§1.9)
    if spec in (FAISS_HNSW_PQ_ENCODER, FAISS_IVF_PQ_ENCODER):
        if "m" not in params or "code_size" not in params:
            return None
        _check_param(spec, "m", params["m"], ctx)
        _check_param(spec, "code_size", params["code_size"], ctx)
        if not ctx.dimension or ctx.dimension <= 0:
            return None
        ratio = ctx.dimension * 32 / (params["m"] * params["code_size"])
        return next((level for bound, level in _PQ_BUCKETS if ratio < bound), "64x")
    if spec is LUCENE_SQ_ENCODER:
        bits = params.get("bits")
        if java_type(bits) == "Integer" and bits in _lucene_sq_bits(ctx):
            return _sq_bits_level("lucene", bits)
        return "32x" if ctx.version >= V3_6 and bits is None else "4x"
    return None


def sq_bits_conflict(engine: str, encoder: Component, user_level: str, ctx: Ctx) -> str | None:
    """The encoder-specific conflict text for an ``sq`` encoder whose user-typed ``bits`` disagree with the
    user's ``compression_level`` (§1.7), else None."""
    if encoder.name != "sq":
        return None
    bits = encoder.params.get("bits")
    valid = _faiss_sq_bits(ctx) if engine == "faiss" else _lucene_sq_bits(ctx)
    if java_type(bits) != "Integer" or bits not in valid:
        return None
    expected = _sq_bits_level(engine, bits)
    if expected == user_level:
        return None
    return (f"Compression level [{user_level}] is incompatible with [bits={bits}] for encoder [sq]. "
            f"Expected compression level: [{expected}]")


def auto_encoder(engine: str, method: str, level: str, version: Version) -> Component | None:
    """The encoder generated for a compression level when the user gave none (§1.8)."""
    if level == "1x":
        return None
    if engine == "lucene":
        if level == "4x":
            return Component("sq", {"bits": 7})
        if level == "32x":
            return Component("sq", {"bits": 1})
        return None
    if level == "2x":
        return Component("sq", {"type": "fp16", "bits": 16} if version >= V3_6 else {"type": "fp16"})
    if level == "32x" and version >= V3_6 and method == "hnsw":
        return Component("sq", {"bits": 1})
    bits = {"8x": 4, "16x": 2, "32x": 1}.get(level)
    return Component("binary", {"bits": bits}) if bits else None
