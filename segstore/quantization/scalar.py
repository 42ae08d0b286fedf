"""Scalar quantizers: fp16 (faiss ``SQfp16``, 2x) and a 7-bit quantizer at one byte per dimension
(the Lucene engine's 4x).

fp16 keeps every dimension as an IEEE half; values outside +-65504 are rejected at ingest unless the
encoder has ``clip: true`` (then clamped). Distances on fp16 codes are computed on the decoded values, so
first-pass scores are estimates in the space's own units.

The 7-bit quantizer follows Lucene's scalar quantizer: per segment one [lower, upper] interval taken from
the ``confidence_interval`` quantiles of all sampled values (Lucene's default ``1 - 1/(d+1)``), then
``code = round((clip(v) - lower) * 127 / (upper - lower))`` stored as one byte per dimension. Decoding is
``lower + code * (upper - lower) / 127``.
"""

from __future__ import annotations

import numpy as np

from segstore.quantization.binary import sample_rows

__all__ = ["FP16_MAX", "encode_fp16", "train_sq7", "encode_sq7", "decode_sq7"]

FP16_MAX = 65504.0


def encode_fp16(vectors: np.ndarray, clip: bool = False) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if clip:
        v = np.clip(v, -FP16_MAX, FP16_MAX)
    return v.astype(np.float16)


def train_sq7(vectors: np.ndarray, confidence_interval: float | None = None) -> tuple[float, float]:
    """``(lower, upper)`` of the quantization interval from the sampled values' quantiles."""
    sample = np.asarray(vectors[sample_rows(vectors.shape[0])], dtype=np.float32)
    d = sample.shape[1]
    ci = confidence_interval or (1.0 - 1.0 / (d + 1))
    flat = sample.ravel()
    lower, upper = np.quantile(flat, [(1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0])
    if upper <= lower:
        upper = lower + 1e-6
    return float(lower), float(upper)


def encode_sq7(vectors: np.ndarray, lower: float, upper: float) -> np.ndarray:
    v = np.clip(np.asarray(vectors, dtype=np.float32), lower, upper)
    return np.round((v - lower) * (127.0 / (upper - lower))).astype(np.uint8)


def decode_sq7(codes: np.ndarray, lower: float, upper: float) -> np.ndarray:
    return (lower + codes.astype(np.float32) * np.float32((upper - lower) / 127.0)).astype(np.float32)
