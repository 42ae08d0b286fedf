"""Offline scalar quantization: float vectors -> ``data_type: byte`` vectors, before they are indexed.

These are the two techniques the memory-optimized-vectors docs page describes ("Quantization techniques")
for users who convert float data to byte vectors themselves, as library functions. Nothing in the engine
calls them: a ``byte`` field stores whatever int8 values it is given.

**L2 (shift invariant).** One global ``[min, max]`` over the whole training set (every value of every
vector), then ``code = floor((x - min) / (max - min) * (B - 1)) - B/2`` with B = 256, so codes cover
[-128, 127] and ``x == max`` maps to 127. The same affine map is applied to every dimension, so squared L2
distances between codes are the float distances times one constant (plus bucket error): rankings survive.
Queries use the *training* range and are clipped into it first (a query value outside the data range would
otherwise fall outside [-128, 127]).

**Cosine (not shift invariant, so zero must stay zero).** Positive values are scaled by the training set's
maximum into [0, 127] (B = 127), negative values by the magnitude of its minimum into [-128, 0] (B = 128);
each is rounded to the nearest integer with an exact .5 going *down* (the docs' ``if 0.5 < frac: int + 1``).
The same parameters are used for indexing and querying; query values beyond the training range are clipped
to 127 / -128.

Two slips of the docs' pseudocode are not reproduced: the negative branch reads ``floor(var)`` (a typo for
``val``), and the L2 code mutates the caller's arrays in place. All arithmetic here is float64 on a copy.

Each quantizer is a small frozen dataclass whose parameters (``to_dict`` / ``from_dict``) can be stored
next to the data, so queries quantized later use exactly the indexing range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "L2Quantizer", "CosineQuantizer", "fit", "quantizer_from_dict", "quantize_l2", "quantize_l2_queries",
    "quantize_cosine", "quantize_cosine_queries", "SPACES",
]

SPACES = ("l2", "cosinesimil")
_L2_BUCKETS = 256


def _as_float64(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"expected numeric vectors, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"expected a vector or a (n, d) matrix, got shape {a.shape}")
    a = a.astype(np.float64)  # a copy: the caller's array is never modified
    if a.size and not np.isfinite(a).all():
        raise ValueError("vectors contain NaN or infinite values")
    return a


def _round_half_down(v: np.ndarray) -> np.ndarray:
    """The docs' rounding: ``floor(v) + 1`` when the fraction is strictly above 0.5, else ``floor(v)``."""
    i = np.floor(v)
    return np.where(v - i > 0.5, i + 1.0, i)


@dataclass(frozen=True)
class L2Quantizer:
    """Global min/max shift-normalize-bucket quantizer for the ``l2`` space."""

    min: float
    max: float
    space: str = "l2"

    @classmethod
    def fit(cls, dataset: Any) -> "L2Quantizer":
        d = _as_float64(dataset)
        if d.size == 0:
            raise ValueError("cannot fit a quantizer on an empty dataset")
        return cls(float(d.min()), float(d.max()))

    @property
    def width(self) -> float:
        return self.max - self.min

    def _encode(self, x: np.ndarray) -> np.ndarray:
        if self.width > 0:
            unit = (x - self.min) * (1.0 / self.width)
        else:  # a constant dataset: every value is the minimum
            unit = np.zeros_like(x)
        codes = np.floor(unit * (_L2_BUCKETS - 1)) - _L2_BUCKETS // 2
        return np.clip(codes, -128, 127).astype(np.int8)  # the clip only absorbs float noise at the ends

    def quantize(self, dataset: Any) -> np.ndarray:
        """Indexing: int8 codes of the training data (or of data known to lie within the training range;
        values outside it are clipped like queries rather than wrapping around)."""
        return self._encode(np.clip(_as_float64(dataset), self.min, self.max))

    def quantize_queries(self, queries: Any) -> np.ndarray:
        """Querying: clip into the training range, then the same map as :meth:`quantize`."""
        return self._encode(np.clip(_as_float64(queries), self.min, self.max))

    def dequantize(self, codes: Any) -> np.ndarray:
        """The centre of each code's bucket (float64): ``|x - dequantize(quantize(x))| <= width / 255``."""
        c = np.asarray(codes, dtype=np.float64) + _L2_BUCKETS // 2
        return self.min + (c + 0.5) * (self.width / (_L2_BUCKETS - 1))

    def clipped(self, values: Any) -> int:
        """How many values lie outside the training range (clipped when quantized as queries)."""
        v = _as_float64(values)
        return int(np.count_nonzero((v < self.min) | (v > self.max)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CosineQuantizer:
    """Sign-preserving quantizer for ``cosinesimil``: positives by the maximum into [0, 127], negatives by
    the magnitude of the minimum into [-128, 0]."""

    positive_max: float
    negative_max: float  # = -min(dataset), >= 0
    space: str = "cosinesimil"

    @classmethod
    def fit(cls, dataset: Any) -> "CosineQuantizer":
        d = _as_float64(dataset)
        if d.size == 0:
            raise ValueError("cannot fit a quantizer on an empty dataset")
        return cls(max(float(d.max()), 0.0), max(-float(d.min()), 0.0))

    def quantize(self, dataset: Any) -> np.ndarray:
        v = _as_float64(dataset)
        out = np.zeros_like(v)
        pos = v > 0
        neg = v < 0
        if self.positive_max > 0:
            out[pos] = _round_half_down(np.minimum(v[pos], self.positive_max) / self.positive_max * 127.0)
        if self.negative_max > 0:
            out[neg] = _round_half_down(np.maximum(v[neg], -self.negative_max) / self.negative_max * 128.0)
        return np.clip(out, -128, 127).astype(np.int8)

    # Indexing and querying use the same parameters (the docs' "INDEXING and QUERYING").
    quantize_queries = quantize

    def dequantize(self, codes: Any) -> np.ndarray:
        c = np.asarray(codes, dtype=np.float64)
        return np.where(c >= 0, c / 127.0 * self.positive_max, c / 128.0 * self.negative_max)

    def clipped(self, values: Any) -> int:
        v = _as_float64(values)
        return int(np.count_nonzero((v > self.positive_max) | (v < -self.negative_max)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Quantizer = L2Quantizer | CosineQuantizer


def fit(space: str, dataset: Any) -> Quantizer:
    """The quantizer of ``space`` (``l2`` or ``cosinesimil``) trained on ``dataset``."""
    if space == "l2":
        return L2Quantizer.fit(dataset)
    if space == "cosinesimil":
        return CosineQuantizer.fit(dataset)
    raise ValueError(f"offline scalar quantization supports {list(SPACES)}, not [{space}]")


def quantizer_from_dict(params: dict[str, Any]) -> Quantizer:
    """Inverse of ``to_dict()``."""
    space = params.get("space")
    if space == "l2":
        return L2Quantizer(float(params["min"]), float(params["max"]))
    if space == "cosinesimil":
        return CosineQuantizer(float(params["positive_max"]), float(params["negative_max"]))
    raise ValueError(f"not quantizer parameters: {params!r}")


def quantize_l2(dataset: Any) -> tuple[np.ndarray, L2Quantizer]:
    """(int8 codes, quantizer) of a float dataset for the l2 space (indexing)."""
    q = L2Quantizer.fit(dataset)
    return q.quantize(dataset), q


def quantize_l2_queries(queries: Any, quantizer: L2Quantizer) -> np.ndarray:
    return quantizer.quantize_queries(queries)


def quantize_cosine(dataset: Any) -> tuple[np.ndarray, CosineQuantizer]:
    """(int8 codes, quantizer) of a float dataset for the cosinesimil space (indexing)."""
    q = CosineQuantizer.fit(dataset)
    return q.quantize(dataset), q


def quantize_cosine_queries(queries: Any, quantizer: CosineQuantizer) -> np.ndarray:
    return quantizer.quantize_queries(queries)
