"""The methods and encoders of each engine, and what an encoder means for compression (vector-semantics.md
§1.8–§1.10).

Every method and encoder OpenSearch k-NN knows is a :class:`ComponentSpec` of parameters
(:mod:`segstore.mapping.method_component`): faiss ``hnsw`` / ``ivf`` with ``flat``, ``sq``, ``binary`` and
``pq`` encoders, lucene ``hnsw`` (``sq`` encoder) and ``flat``, nmslib ``hnsw``. The encoder rules map an
encoder to the compression level it produces, generate the encoder of a compression level when the user
gave none, and report an ``sq`` encoder whose ``bits`` contradict the user's level.

Version-dependent rules take the index-creation version (a ``(major, minor, patch)`` tuple) from the
:class:`Ctx` they are given; :mod:`segstore.mapping.method_resolution` fills it in.
"""

from __future__ import annotations

from typing import Any

from segstore.mapping.method_component import (
    BoolParam,
    Component,
    ComponentParam,
    ComponentSpec,
    Ctx,
    DoubleParam,
    IntParam,
    MethodSpec,
    StrParam,
    Version,
    java_type,
    validation_failed,
)

__all__ = [
    "V2_12", "V2_17", "V2_19", "V3_0", "V3_1", "V3_6", "FAISS_HNSW", "FAISS_IVF", "LUCENE_HNSW", "LUCENE_FLAT",
    "NMSLIB_HNSW", "methods_of", "encoders_of", "encoder_level", "auto_encoder", "default_ef", "BQ_LEVELS",
    "sq_bits_conflict",
]

V2_12: Version = (2, 12, 0)
V2_17: Version = (2, 17, 0)
V2_19: Version = (2, 19, 0)
V3_0: Version = (3, 0, 0)
V3_1: Version = (3, 1, 0)
V3_6: Version = (3, 6, 0)

#: Compression levels whose auto encoder is binary quantization; they raise the ef defaults to 256 (§1.10).
BQ_LEVELS = frozenset({"8x", "16x", "32x"})


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
