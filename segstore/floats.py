"""Float32 values rendered the way OpenSearch (Jackson) prints a Java ``float``.

OpenSearch returns float vectors and ``_score`` as float32 numbers printed with the shortest decimal that
round-trips through float32 (``0.1``, not ``0.10000000149011612``). Python floats are float64, so a float32
value must be turned into the float64 nearest to that shortest decimal before it reaches JSON or a caller.

Per-element ``repr`` (or ``astype(str)``) costs ~0.7 us per value. :func:`shortest_float32` computes, for every
value at once, the candidates rounded to p = 1..9 significant digits (a 9 x n matrix) and keeps the first p
whose candidate converts back to the same float32; nine digits always round-trip. A candidate is
``round(x * 10**e) / 10**e`` (or ``round(x / 10**-e) * 10**-e``); with |e| <= 22 the power of ten is exact in
float64, so the division/multiplication is correctly rounded and the candidate *is* the float64 nearest to
that decimal, exactly what parsing the decimal string would give. Values so large or small that |e| would
exceed 22 (|x| outside about [1e-13, 1e22]) take the slow exact path.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shortest_float32", "shortest_float32_list"]

_SMALL = 48  # below this many values the per-element path is faster
_P = np.arange(1, 10, dtype=np.int64)[:, None]  # significant digits, as a column
_POW10 = np.array([10.0**i for i in range(23)], dtype=np.float64)  # exact powers of ten


def shortest_float32(values: np.ndarray) -> np.ndarray:
    """float64 array whose elements are the shortest round-tripping decimals of the float32 ``values``."""
    v32 = np.asarray(values, dtype=np.float32)
    if v32.size <= _SMALL:
        # A handful of values (the scores of a page of hits): numpy's own shortest repr (dragon4) per element
        # is cheaper than the fixed cost of the vectorised passes below.
        return v32.astype(str).astype(np.float64)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn on the cast; they stay NaN
        x = v32.astype(np.float64).ravel()
    out = x.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        exp10 = np.floor(np.log10(np.abs(x)))
    fast = np.isfinite(exp10) & (exp10 >= -13) & (exp10 <= 21)
    if fast.any():
        xf = x[fast]
        e = (_P - 1) - exp10[fast].astype(np.int64)[None, :]  # (9, n) decimal exponents
        scale = _POW10[np.abs(e)]
        cand = np.where(e >= 0, np.round(xf * scale) / scale, np.round(xf / scale) * scale)
        ok = cand.astype(np.float32) == xf.astype(np.float32)
        first = np.argmax(ok, axis=0)
        out[fast] = cand[first, np.arange(xf.shape[0])]
    slow = ~fast & np.isfinite(x) & (x != 0.0)
    if slow.any():
        out[slow] = v32.ravel()[slow].astype(str).astype(np.float64)
    return out.reshape(v32.shape)


def shortest_float32_list(values: np.ndarray) -> list[float]:
    """``shortest_float32(values).tolist()``: a JSON-ready list of Python floats."""
    return shortest_float32(values).tolist()  # type: ignore[no-any-return]
