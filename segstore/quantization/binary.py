"""Binary quantization (BQ), as the k-NN plugin does it (vector-semantics.md §3.5).

Training is per segment and per field over the live vectors: a sample of at most 25,000 vectors (all of
them if fewer; the sampled row indices sorted), per-dimension mean and *population* standard deviation.
With B bits per dimension the thresholds are ``t_b = mean + (-1 + 2(b+1)/(B+1)) * std`` for b = 0..B-1
(1 bit: the mean; 2 bits: mean -+ std/3; 4 bits: mean + {-0.6, -0.2, 0.2, 0.6} std).

A value sets bit b iff it is strictly greater than ``t_b``. The code is laid out in bit planes: bit index
``b*d + j`` (dimension j, plane b), packed MSB-first, the B*d bits padded to whole bytes. Because the planes
form a thermometer code, the Hamming distance between two codes is ``sum_j |level_x(j) - level_y(j)|``.
Queries are quantized with the segment's own state, so the same query has a different code per segment.
For ``cosinesimil`` vectors are L2-normalised before training and encoding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_TRAINING_SAMPLE", "thresholds", "train_binary", "encode_binary", "SAMPLE_SEED"]

MAX_TRAINING_SAMPLE = 25_000
SAMPLE_SEED = 1212121212  # fixed, so retraining the same vectors gives the same state


def sample_rows(n: int, limit: int = MAX_TRAINING_SAMPLE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Sorted row indices of a uniform sample without replacement (all rows when ``n <= limit``)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def thresholds(mean: np.ndarray, std: np.ndarray, bits: int) -> np.ndarray:
    """``(bits, d)`` float32 thresholds."""
    b = np.arange(bits, dtype=np.float64)[:, None]
    factor = -1.0 + 2.0 * (b + 1.0) / (bits + 1.0)
    return (mean[None, :].astype(np.float64) + factor * std[None, :].astype(np.float64)).astype(np.float32)


def train_binary(vectors: np.ndarray, bits: int) -> np.ndarray:
    """Thresholds trained on (a sample of) ``vectors`` (float32, already normalised for cosine)."""
    sample = vectors[sample_rows(vectors.shape[0])].astype(np.float64)
    mean = sample.mean(axis=0)
    std = sample.std(axis=0)  # population standard deviation (ddof=0), as Welford's algorithm gives
    return thresholds(mean, std, bits)


def encode_binary(vectors: np.ndarray, thresholds_: np.ndarray) -> np.ndarray:
    """``(n, ceil(B*d/8))`` uint8 bit-plane codes of float32 ``vectors``."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    bits, d = thresholds_.shape
    planes = v[:, None, :] > thresholds_[None, :, :]  # (n, B, d): plane-major is bit index b*d + j
    return np.packbits(planes.reshape(v.shape[0], bits * d), axis=1, bitorder="big")
