"""``segstore quantize``: float vectors (.npy) -> int8 byte vectors (.npy), the docs' offline scalar quantization.

Indexing data (fits the quantizer on the input itself)::

    segstore quantize --space l2 docs.npy docs.i8.npy --save-params params.json

Queries (quantized with the *training* range: from saved parameters or from the training data)::

    segstore quantize --space l2 --queries queries.npy queries.i8.npy --params params.json
    segstore quantize --space l2 --queries queries.npy queries.i8.npy --train docs.npy

``--space`` is ``l2`` (global min/max shift, normalize, 256 buckets into [-128, 127]) or ``cosinesimil``
(positives scaled by the maximum into [0, 127], negatives by |minimum| into [-128, 0]); see
:mod:`segstore.quantization.offline`. Input may be any float (or integer) .npy of shape (n, d) or (d,),
float16 included. ``--json`` prints statistics (shape, parameters, clipped values, code range, mean
absolute reconstruction error) as JSON. Exit codes: 0 ok, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

__all__ = ["register", "run_quantize"]


def _load(path: str) -> np.ndarray:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read [{path}] as a .npy array: {e}") from None
    if a.ndim not in (1, 2):
        raise ValueError(f"[{path}]: expected shape (n, d) or (d,), got {a.shape}")
    return np.asarray(a)


def run_quantize(space: str, input_path: str, output_path: str, *, queries: bool = False,
                 params_path: str | None = None, train_path: str | None = None,
                 save_params: str | None = None) -> dict[str, Any]:
    """Quantize ``input_path`` into ``output_path`` and return the statistics."""
    from segstore.quantization import offline

    if space not in offline.SPACES:
        raise ValueError(f"--space must be one of {list(offline.SPACES)}, got {space}")
    data = _load(input_path)
    if queries:
        if (params_path is None) == (train_path is None):
            raise ValueError("--queries needs exactly one of --params (saved parameters) or --train (training data)")
        if params_path is not None:
            with open(params_path, encoding="utf-8") as fh:
                q = offline.quantizer_from_dict(json.load(fh))
            if q.space != space:
                raise ValueError(f"[{params_path}] holds {q.space} parameters, not {space}")
        else:
            assert train_path is not None
            q = offline.fit(space, _load(train_path))
        codes = q.quantize_queries(data)
    else:
        if params_path is not None or train_path is not None:
            raise ValueError("--params/--train only apply to --queries (indexing fits on the input itself)")
        q = offline.fit(space, data)
        codes = q.quantize(data)
    out_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(out_dir, exist_ok=True)
    np.save(output_path, codes)
    if save_params:
        with open(save_params, "w", encoding="utf-8") as fh:
            json.dump(q.to_dict(), fh, indent=2)
            fh.write("\n")
    f64 = np.asarray(data, dtype=np.float64)
    err = np.abs(q.dequantize(codes) - np.clip(f64, *_range(q))) if codes.size else np.zeros(0)
    return {
        "space": space, "mode": "queries" if queries else "index", "input": input_path, "output": output_path,
        "shape": list(codes.shape), "input_dtype": str(data.dtype), "output_dtype": str(codes.dtype),
        "params": q.to_dict(), "clipped_values": q.clipped(data),
        "code_min": int(codes.min()) if codes.size else None, "code_max": int(codes.max()) if codes.size else None,
        "mean_abs_error": float(err.mean()) if err.size else 0.0,
        "max_abs_error": float(err.max()) if err.size else 0.0,
        "input_bytes": int(data.nbytes), "output_bytes": int(codes.nbytes),
    }


def _range(q: Any) -> tuple[float, float]:
    if q.space == "l2":
        return q.min, q.max
    return -q.negative_max, q.positive_max


def register(sub: Any) -> None:
    p = sub.add_parser("quantize", help="quantize float vectors (.npy) to int8 byte vectors (.npy)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="input .npy (n, d) of floats")
    p.add_argument("output", help="output .npy of int8")
    p.add_argument("--space", choices=("l2", "cosinesimil"), required=True)
    p.add_argument("--queries", action="store_true", help="quantize queries with the training range")
    p.add_argument("--params", default=None, help="quantizer parameters saved by --save-params (with --queries)")
    p.add_argument("--train", default=None, help="training data .npy to fit the range on (with --queries)")
    p.add_argument("--save-params", default=None, help="write the quantizer parameters (JSON) here")
    p.add_argument("--json", action="store_true", help="print statistics as JSON")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        stats = run_quantize(args.space, args.input, args.output, queries=args.queries, params_path=args.params,
                             train_path=args.train, save_params=args.save_params)
    except (ValueError, OSError, KeyError) as e:
        print(f"segstore quantize: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{stats['mode']}: {stats['input']} {tuple(stats['shape'])} {stats['input_dtype']} -> {stats['output']} "
              f"int8 [{stats['code_min']}, {stats['code_max']}], {stats['space']} params {stats['params']}, "
              f"{stats['clipped_values']} clipped, mean |error| {stats['mean_abs_error']:.4g}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="quantize")
    _sub = _parser.add_subparsers()
    register(_sub)
    sys.exit(_main(_parser.parse_args(["quantize", *sys.argv[1:]])))
