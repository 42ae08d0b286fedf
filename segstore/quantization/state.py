"""``QuantizationState``: what a segment learned about one field's vectors, and the quantizer it implies.

A state is trained at flush and retrained at merge from the merged vectors (the state of a merged segment
never comes from its inputs). It is persisted in its own framed file by the codec's quantization-state
format, as plain numbers and arrays (no pickle).

==========  ==========================  =================================================
encoder     parameters                  state
==========  ==========================  =================================================
binary      bits 1/2/4 (32x/16x/8x)      thresholds (bits, d) float32
sq fp16     (2x)                        none (stateless), ``clip``
sq bits 7   (lucene 4x)                 lower, upper
==========  ==========================  =================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from segstore.index.field_infos import FieldInfo
from segstore.quantization.binary import encode_binary, train_binary
from segstore.quantization.scalar import decode_sq7, encode_fp16, encode_sq7, train_sq7

__all__ = ["QuantizationState", "train", "quantizer_for", "graph_field"]


@dataclass
class QuantizationState:
    """``kind`` is "binary", "fp16" or "sq7"; ``normalize`` is set for cosine (vectors are unit-scaled
    before quantization)."""

    kind: str
    bits: int
    dimension: int
    normalize: bool = False
    thresholds: np.ndarray | None = None
    lower: float = 0.0
    upper: float = 0.0
    clip: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def code_width(self) -> int:
        """Bytes per encoded vector."""
        if self.kind == "binary":
            return (self.bits * self.dimension + 7) // 8
        if self.kind == "fp16":
            return 2 * self.dimension
        return self.dimension

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if self.normalize:
            norms = np.sqrt((v * v).sum(axis=1, dtype=np.float32, keepdims=True))
            v = v / np.where(norms == 0, np.float32(1.0), norms)
        return v

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes of float32 ``vectors`` (also used for queries)."""
        v = self.prepare(vectors)
        if self.kind == "binary":
            assert self.thresholds is not None
            return encode_binary(v, self.thresholds)
        if self.kind == "fp16":
            return encode_fp16(v, self.clip)
        return encode_sq7(v, self.lower, self.upper)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 vectors from scalar codes (binary codes are not decodable)."""
        if self.kind == "fp16":
            return codes.astype(np.float32)
        if self.kind == "sq7":
            return decode_sq7(codes, self.lower, self.upper)
        raise ValueError("binary codes cannot be decoded")


def train(kind: str, bits: int, vectors: np.ndarray, *, normalize: bool = False, clip: bool = False,
          confidence_interval: float | None = None) -> QuantizationState:
    """Train a state on a segment's (live) float32 vectors."""
    d = int(vectors.shape[1])
    state = QuantizationState(kind, bits, d, normalize, clip=clip)
    if vectors.shape[0] == 0:
        return state
    v = state.prepare(vectors)
    if kind == "binary":
        state.thresholds = train_binary(v, bits)
    elif kind == "sq7":
        state.lower, state.upper = train_sq7(v, confidence_interval)
    return state


def quantizer_for(attributes: dict[str, str], space: str) -> tuple[str, int] | None:
    """``(kind, bits)`` the field's persisted encoder attributes call for, or None for full precision."""
    encoder = attributes.get("encoder")
    if encoder == "binary":
        return "binary", int(attributes.get("encoder.bits", "1"))
    if encoder == "sq":
        bits = attributes.get("encoder.bits")
        if bits in (None, "16") or attributes.get("encoder.type") == "fp16":
            return "fp16", 16
        if bits == "7":
            return "sq7", 7
        if bits == "1":
            return "binary", 1
    return None


def graph_field(fi: FieldInfo) -> FieldInfo:
    """The field a graph is built over: ``fi`` itself, or, for a quantized float field, the field of its
    codes (binary quantization -> a binary Hamming graph of B*d bits; 7-bit SQ -> byte codes; fp16 ->
    faiss SQfp16). Cosine vectors are unit-length before quantization, so l2/inner product rank them."""
    q = quantizer_for(fi.attributes, fi.vector_space_type)
    if q is None or fi.vector_data_type != "float":
        return fi
    kind, bits = q
    d, space = fi.vector_dimension, fi.vector_space_type
    if kind == "binary":
        return replace(fi, vector_dimension=(bits * d + 7) // 8 * 8, vector_data_type="binary",
                       vector_space_type="hamming")
    if kind == "sq7":
        return replace(fi, vector_data_type="byte", vector_space_type="innerproduct" if space == "innerproduct"
                       else "l2")
    return replace(fi, vector_data_type="float16", vector_space_type="l2" if space == "l2" else "innerproduct")
