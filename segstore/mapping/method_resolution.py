"""Engine, method, mode and compression resolution of a ``knn_vector`` field (vector-semantics.md §1.6–§1.10).

The steps follow OpenSearch k-NN's ``KNNVectorFieldMapper.TypeParser`` for an index with ``index.knn: true``
and neither ``model_id`` nor a flat configuration, in upstream order (the order decides which error a
mapping with several problems reports):

1. engine (:func:`resolve_engine`, ``EngineResolver``);
2. the engine's method resolver (:func:`resolve_method`): supported compression, the auto encoder (§1.8),
   the level the encoder produces and its agreement with ``compression_level``, default parameters (§1.10);
3. engines blocked for new indices (nmslib from 3.0);
4. training (``"method" requires training.``) and then method validation (:func:`validate_method`):
   dimension limits, data type versus space, the support matrix and every parameter.

Errors that upstream collects in a ``ValidationException`` render as ``Validation Failed: 1: <msg>;`` (several
errors: ``1: a;2: b;``); errors upstream throws directly (``IllegalArgumentException``,
``MapperParsingException``) keep their bare text. The mapping layer prefixes both with
``Failed to parse mapping [_doc]: ``.

Every rule keyed on the index-creation version reads :data:`INDEX_CREATED_VERSION` unless a caller passes
another version: changing the version segstore emulates is a one-line change there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segstore.errors import MapperParsingError
from segstore.mapping.encoders import (
    V2_17, V2_19, V3_0, V3_1, V3_6, auto_encoder, encoder_level, encoders_of, methods_of, sq_bits_conflict,
)
from segstore.mapping.method_component import (
    Component, Ctx, MethodSpec, ParsedMethod, Version, java_type, validation_failed,
)

__all__ = [
    "INDEX_CREATED_VERSION", "MAX_DIMENSION", "COMPRESSION_LEVELS", "MODES", "ResolvedMethod",
    "resolve_engine", "resolve_method", "check_blocked_engine", "validate_method", "supported_compression",
    "effective_compression", "version_string", "check_space_data_type", "check_mode_and_compression",
    "encoders_of",
]

#: The OpenSearch version every segstore index counts as created on (the "idx" of vector-semantics.md).
INDEX_CREATED_VERSION: Version = (3, 3, 0)

MAX_DIMENSION = 16000
COMPRESSION_LEVELS = ("1x", "2x", "4x", "8x", "16x", "32x")
MODES = ("in_memory", "on_disk")
_NMSLIB_BLOCKED_FROM: Version = V3_0


def version_string(version: Version) -> str:
    return ".".join(str(p) for p in version)


# ------------------------------------------------------------------------------------------ engine (§1.6)


def _check_top_level_engine(top: str, compression: str | None, training: bool) -> str:
    if training and top != "faiss":
        raise MapperParsingError("Cannot specify engine other than FAISS for training")
    if compression == "4x" and top != "lucene":
        raise MapperParsingError("Lucene is the only engine that supports 4x compression")
    return top


def resolve_engine(
    method: ParsedMethod | None,
    top_engine: str | None,
    mode: str | None,
    compression: str | None,
    *,
    training: bool = False,
    version: Version = INDEX_CREATED_VERSION,
) -> str:
    """``EngineResolver``: the engine of a field from what the user configured (§1.6, evaluated in order)."""
    method_engine = method.engine if method is not None else None
    if method_engine is not None and top_engine is not None:
        top = _check_top_level_engine(top_engine, compression, training)
        if method_engine != top:
            raise MapperParsingError(f"Cannot specify conflicting engines: [{method_engine}] and [{top}]")
        return top
    if method_engine is not None:
        return method_engine
    if top_engine is not None:
        return _check_top_level_engine(top_engine, compression, training)
    if training:
        return "faiss"
    if method is not None and method.component.name.lower() == "flat" and version >= V3_6:
        return "lucene"
    if compression is None and mode is None:
        return "faiss" if version >= (2, 18, 0) else "nmslib"
    if compression == "4x":
        return "lucene"
    if compression in (None, "1x"):
        if version >= V2_19:
            return "faiss"
        return "faiss" if mode == "on_disk" else "nmslib"
    return "faiss"


# ------------------------------------------------------------------------------- method resolution (§1.7)


@dataclass
class ResolvedMethod:
    """A field's resolved method: engine, method, parameters with defaults, encoder and compression."""

    engine: str
    name: str
    space_type: str
    params: dict[str, Any] = field(default_factory=dict)
    encoder: Component | None = None  # the effective encoder (user's or auto); None: no quantization
    user_encoder: bool = False
    compression: str = "1x"
    memory_optimized: bool = False  # faiss on_disk + 1x (idx >= 3.1): mmap search without quantization


def supported_compression(engine: str, method: str, version: Version) -> tuple[str, ...]:
    """Compression levels an engine/method accepts in a mapping (§1.7)."""
    if engine == "faiss":
        return ("1x", "2x", "8x", "16x", "32x")
    if engine == "lucene":
        if method == "flat" and version >= V3_6:
            return ("32x",)
        return ("1x", "4x", "32x") if version >= V3_6 else ("1x", "4x")
    return ("1x",)


def effective_compression(engine: str, method: str, mode: str | None, compression: str | None,
                          version: Version) -> str:
    """The level the auto encoder is generated for: the user's, else from the mode (§1.7)."""
    if compression is not None:
        return compression
    if mode != "on_disk":
        return "32x" if engine == "lucene" and method == "flat" and version >= V3_6 else "1x"
    if engine == "lucene":
        return "32x" if version >= V3_6 else "4x"
    return "32x"


def _should_auto_encode(user_encoder: bool, ctx: Ctx) -> bool:
    """An encoder is generated only without a user encoder, for float data, and with a compression above 1x
    or ``on_disk`` (``AbstractMethodResolver#shouldEncoderBeResolved``)."""
    if user_encoder or ctx.user_compression == "1x":
        return False
    if ctx.user_compression is None and ctx.mode != "on_disk":
        return False
    return ctx.data_type == "float"


def _compression_errors(engine: str, method: str, ctx: Ctx) -> list[str]:
    errors = []
    level = ctx.user_compression
    if level is not None and level not in supported_compression(engine, method, ctx.version):
        errors.append(f'"{engine}" does not support "{level}" compression')
    return errors


def _x1_on_disk_error(ctx: Ctx) -> list[str]:
    if ctx.user_compression == "1x" and ctx.mode == "on_disk":
        return ['Cannot specify "x1" compression level when using "on_disk" mode']
    return []


def _check_sq_bits_36(engine: str, encoder: Component, user_typed: bool, ctx: Ctx) -> None:
    """idx >= 3.6 ``sq`` rules (§1.9): ``bits`` required when the user gave the encoder; extra parameters
    are not allowed with a bit width that does not use them."""
    if ctx.version < V3_6 or encoder.name != "sq":
        return
    supported = "[1, 16]" if engine == "faiss" else "[1, 7]"
    if user_typed and "bits" not in encoder.params:
        raise validation_failed(
            f"Parameter [bits] is required for encoder [sq] on indices created with version 3.6.0 or later. "
            f"Supported values: {supported}")
    bits = encoder.params.get("bits")
    plain = 16 if engine == "faiss" else 7
    if java_type(bits) == "Integer" and bits != plain:
        extra = sorted(k for k in encoder.params if k != "bits")
        if extra:
            raise validation_failed(
                f"Parameters [{', '.join(extra)}] are not supported when [bits={bits}] for encoder [sq]. "
                f"The {bits}-bit scalar quantization path does not use additional parameters.")


def _check_conflict(engine: str, encoder: Component | None, user_typed_bits: bool, level: str | None,
                    ctx: Ctx) -> None:
    """A user ``compression_level`` must agree with the level of the encoder (§1.7)."""
    user = ctx.user_compression
    if user is None or encoder is None:
        return
    if user_typed_bits:
        specific = sq_bits_conflict(engine, encoder, user, ctx)
        if specific is not None:
            raise validation_failed(specific)
    if level is not None and level != user:
        raise validation_failed("Cannot specify an encoder that conflicts with the provided compression level")


def _user_encoder(params: dict[str, Any]) -> tuple[bool, Component | None]:
    if "encoder" not in params:
        return False, None
    value = params["encoder"]
    return True, value if isinstance(value, Component) else None


def resolve_method(engine: str, method: ParsedMethod | None, space: str, ctx: Ctx) -> ResolvedMethod:
    """The engine's method resolver (``FaissMethodResolver``, ``LuceneHNSWMethodResolver``,
    ``LuceneFlatMethodResolver``, ``NmslibMethodResolver``). ``ctx.compression`` is set to the result."""
    name = method.component.name if method is not None else "hnsw"
    params = dict(method.component.params) if method is not None else {}
    if engine == "faiss":
        resolved = _resolve_faiss(name, params, space, ctx)
    elif engine == "lucene" and name == "flat" and ctx.version >= V3_6:
        resolved = _resolve_lucene_flat(params, space, ctx)
    elif engine == "lucene":
        resolved = _resolve_lucene_hnsw(name, params, space, ctx)
    else:
        resolved = _resolve_nmslib(name, params, space, ctx)
    ctx.compression = resolved.compression
    return resolved


def _with_defaults(spec: MethodSpec | None, name: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    if spec is None:
        return params
    return spec.component.with_defaults(Component(name, params), ctx)


def _resolve_faiss(name: str, params: dict[str, Any], space: str, ctx: Ctx) -> ResolvedMethod:
    if ctx.data_type == "byte" and space == "cosinesimil":
        raise MapperParsingError(
            "Faiss engine does not support cosine similarity with byte vectors. Cosine similarity requires vector "
            "normalization which is only supported for float vectors. Please use float data type or choose a "
            "different space type like l2 or inner_product.")
    errors = _compression_errors("faiss", name, ctx)
    if ctx.version < V3_1:
        errors += _x1_on_disk_error(ctx)
    if errors:
        raise validation_failed(*errors)
    methods = methods_of("faiss", ctx.version)
    spec_name = "hnsw" if name == "hnsw" else "ivf"  # upstream resolves any other name with the IVF component
    user_given, encoder = _user_encoder(params)
    if _should_auto_encode(user_given, ctx):
        auto_level = effective_compression("faiss", spec_name, ctx.mode, ctx.user_compression, ctx.version)
        encoder = auto_encoder("faiss", spec_name, auto_level, ctx.version)
        if encoder is not None:
            params["encoder"] = encoder
    level: str | None = encoder_level("faiss", spec_name, encoder, ctx) if encoder is not None else "1x"
    if encoder is not None and user_given:
        _check_sq_bits_36("faiss", encoder, True, ctx)
    typed_bits = user_given and encoder is not None and "bits" in encoder.params
    _check_conflict("faiss", encoder if user_given else None, typed_bits, level, ctx)
    compression = level or ctx.user_compression or "1x"
    ctx.compression = compression
    resolved_params = _with_defaults(methods[spec_name], name, params, ctx)
    shown = encoder if user_given or (encoder is not None and encoder.name != "flat") else None
    return ResolvedMethod(
        engine="faiss", name=name, space_type=space, params=resolved_params, encoder=shown,
        user_encoder=user_given, compression=compression,
        memory_optimized=ctx.mode == "on_disk" and compression == "1x")


def _resolve_lucene_hnsw(name: str, params: dict[str, Any], space: str, ctx: Ctx) -> ResolvedMethod:
    errors = _compression_errors("lucene", "hnsw", ctx) + _x1_on_disk_error(ctx)
    if errors:
        raise validation_failed(*errors)
    user_given, encoder = _user_encoder(params)
    typed_bits = encoder is not None and "bits" in encoder.params
    if _should_auto_encode(user_given, ctx):
        auto_level = effective_compression("lucene", "hnsw", ctx.mode, ctx.user_compression, ctx.version)
        encoder = auto_encoder("lucene", "hnsw", auto_level, ctx.version)
        if encoder is not None:
            params["encoder"] = encoder
    if encoder is not None and encoder.name == "sq":
        if user_given:
            _check_sq_bits_36("lucene", encoder, True, ctx)
        if "bits" not in encoder.params and ctx.version < V3_6:
            encoder = Component(encoder.name, {**encoder.params, "bits": 7})
            params["encoder"] = encoder
    level: str | None = encoder_level("lucene", "hnsw", encoder, ctx) if encoder is not None else "1x"
    _check_conflict("lucene", encoder if user_given else None, user_given and typed_bits, level, ctx)
    compression = level or ctx.user_compression or "1x"
    ctx.compression = compression
    resolved_params = _with_defaults(methods_of("lucene", ctx.version)["hnsw"], name, params, ctx)
    return ResolvedMethod(engine="lucene", name=name, space_type=space, params=resolved_params, encoder=encoder,
                          user_encoder=user_given, compression=compression)


def _resolve_lucene_flat(params: dict[str, Any], space: str, ctx: Ctx) -> ResolvedMethod:
    errors = []
    if params:
        errors.append('Parameters are not supported for the "flat" method')
    if ctx.mode is not None:
        errors.append('"mode" is not supported for the "flat" method')
    if ctx.user_compression is not None and ctx.user_compression != "32x":
        errors.append('"flat" method only supports "32x" compression')
    if errors:
        raise validation_failed(*errors)
    ctx.compression = "32x"
    return ResolvedMethod(engine="lucene", name="flat", space_type=space, params=dict(params),
                          encoder=None, compression="32x")


def _resolve_nmslib(name: str, params: dict[str, Any], space: str, ctx: Ctx) -> ResolvedMethod:
    errors = _compression_errors("nmslib", "hnsw", ctx)
    if ctx.mode == "on_disk":
        errors.append("Nmslib engine does not support disk-based search")
    if errors:
        raise validation_failed(*errors)
    ctx.compression = "1x"
    resolved_params = _with_defaults(methods_of("nmslib", ctx.version)["hnsw"], name, params, ctx)
    return ResolvedMethod(engine="nmslib", name=name, space_type=space, params=resolved_params,
                          compression="1x")


def check_blocked_engine(engine: str, version: Version) -> None:
    """nmslib cannot be used for indices created on or after 3.0 (§1.2; the double spaces are upstream's)."""
    if engine == "nmslib" and version >= _NMSLIB_BLOCKED_FROM:
        raise MapperParsingError(
            f"{engine} engine is deprecated in OpenSearch  and cannot be used for new index creation in "
            f"OpenSearch from  {version_string(_NMSLIB_BLOCKED_FROM)}.")


# ----------------------------------------------------------------------------------- validation (§1.3–§1.5)


def validate_method(resolved: ResolvedMethod, ctx: Ctx, path: str) -> MethodSpec:
    """Method existence, training, dimension limits, data type versus space, the support matrix and all
    parameters, in upstream order (``validateFromKNNMethod``). Returns the method's spec."""
    spec = methods_of(resolved.engine, ctx.version).get(resolved.name)
    if spec is None:
        raise MapperParsingError(f"Invalid method name: {resolved.name}")
    if spec.requires_training(Component(resolved.name, resolved.params), ctx):
        raise validation_failed('"method" requires training.')
    errors = []
    dimension = ctx.dimension if ctx.dimension is not None else -1
    if dimension > MAX_DIMENSION:
        errors.append(f"Dimension value cannot be greater than {MAX_DIMENSION} for vector with engine: "
                      f"{resolved.engine}")
    elif ctx.data_type == "binary" and dimension % 8 != 0:
        errors.append("Dimension should be multiply of 8 for binary vector data type")
    check_space_data_type(resolved.space_type, ctx.data_type)
    errors += spec.validate(Component(resolved.name, resolved.params), resolved.space_type, ctx)
    if errors:
        raise validation_failed(*errors)
    if ctx.dimension is None:
        raise MapperParsingError(f"Dimension value missing for vector: {path}")
    encoder = resolved.params.get("encoder")
    if isinstance(encoder, Component) and encoder.name == "binary" and encoder.params.get("enable_adc") is True:
        bits = encoder.params.get("bits", 1)
        if bits != 1:
            raise MapperParsingError(f"Validation Failed: ADC is not supported for bit count: {bits}")
    return spec


def check_space_data_type(space: str, data_type: str) -> None:
    """``SpaceType#validateVectorDataType`` (§1.4): hamming only with binary, binary only with hamming."""
    if space == "hamming" and data_type != "binary":
        raise MapperParsingError(f"Space type [hamming] is not supported with [{data_type}] data type")
    if data_type == "binary" and space != "hamming":
        raise MapperParsingError(f"Space type [{space}] is not supported with [binary] data type")


def check_mode_and_compression(mode: str | None, compression: str | None, data_type: str, path: str,
                               version: Version) -> None:
    """``validateModeAndCompression`` (§1.2): float data only, and indices created on or after 2.17."""
    if mode is None and compression is None:
        return
    if data_type != "float":
        raise MapperParsingError(f"Compression and mode cannot be used for non-float32 data type for field {path}")
    if version < V2_17:
        raise MapperParsingError("Compression and mode can only be used on indices created on or after version "
                                 "2.17.0")
