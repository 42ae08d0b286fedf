"""``segstore estimate-memory``: native memory of a k-NN field by the docs' formulas, one row per encoding.

The formulas are those of the memory-optimized-vectors page and its siblings (vector-semantics.md §7;
bytes; 1.1 = overhead factor; d = dimension; m = HNSW ``m``; N = number of vectors)::

    HNSW (per vector)              IVF (total)
    float   1.1 (4d + 8m)          1.1 (4d N + 4 nlist d)
    byte    1.1 (d + 8m)           1.1 (d N + 4 nlist d)
    binary  1.1 (d/8 + 8m)         1.1 ((d/8) N + nlist d/8)
    SQ/BQ   1.1 (bytes + 8m)       faiss SQ: 1.1 (bytes N + 4 nlist d); BQ: 1.1 (bytes N + nlist bytes)

where *bytes* is what one quantized vector takes: fp16 (2x) 2d; Lucene SQ (4x) one byte per dimension plus
one float correction per vector, d + 4 (the docs' 7/8 byte per dimension is wrong: Lucene stores each
7-bit value in a whole byte); binary quantization with B bits (8x: 4, 16x: 2, 32x: 1) ceil(B d / 8), the
bit planes padded to whole bytes.

Where the seed page's arithmetic is wrong, this tool is not: a 32x 768-d float vector takes 3072 / 32 = 96
bytes (not 846); the byte-vector IVF formula is a *total*, not "bytes/vector"; and sizes are shown both in
GiB (2^30, the unit behind the docs' 0.39 / 0.656 / 0.215 / 0.171 "GB") and in decimal GB (behind 1.267 /
0.176 "GB"). IVF's centroid term is per *segment* (every segment's faiss index holds its own trained
coarse quantizer), so it is multiplied by ``--segments``; the formulas still leave out faiss's 8-byte id per
vector in the inverted lists, and HNSW's per-segment constants.

``--data-type`` and ``--compression`` pick the configured row (marked ``*``); every other row shows the
same vectors under another encoding, for comparison. ``--json`` prints the same numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ENCODINGS", "Row", "estimate", "estimate_rows", "format_table", "register", "GIB", "GB"]

GIB = float(1 << 30)
GB = 1e9
OVERHEAD = 1.1
COMPRESSIONS = ("1x", "2x", "4x", "8x", "16x", "32x")


@dataclass(frozen=True)
class Encoding:
    name: str
    data_type: str  # data_type of the field
    compression: str  # compression level (1x for byte/binary data)
    engine: str
    description: str
    ivf: bool  # an IVF index exists for it
    float_centroids: bool  # IVF coarse centroids are float32 (else packed like the codes)


ENCODINGS = (
    Encoding("float32", "float", "1x", "faiss/lucene", "full precision, 4 bytes/dim", True, True),
    Encoding("fp16", "float", "2x", "faiss", "sq fp16, 2 bytes/dim", True, True),
    Encoding("lucene-sq7", "float", "4x", "lucene", "sq 7-bit, 1 byte/dim + 4 bytes/vector", False, True),
    Encoding("bq-4bit", "float", "8x", "faiss", "binary quantization, 4 bits/dim", True, False),
    Encoding("bq-2bit", "float", "16x", "faiss", "binary quantization, 2 bits/dim", True, False),
    Encoding("bq-1bit", "float", "32x", "faiss", "binary quantization, 1 bit/dim", True, False),
    Encoding("byte", "byte", "1x", "faiss/lucene", "int8 vectors, 1 byte/dim", True, True),
    Encoding("binary", "binary", "1x", "faiss/lucene", "packed bits, d/8 bytes", True, False),
)
_BQ_BITS = {"8x": 4, "16x": 2, "32x": 1}


def vector_bytes(enc: Encoding, d: int) -> float:
    """Bytes one vector takes in the index under ``enc``."""
    if enc.data_type == "byte":
        return float(d)
    if enc.data_type == "binary":
        return d / 8.0
    if enc.compression == "1x":
        return 4.0 * d
    if enc.compression == "2x":
        return 2.0 * d
    if enc.compression == "4x":
        return d + 4.0
    return float(math.ceil(_BQ_BITS[enc.compression] * d / 8))


@dataclass
class Row:
    encoding: str
    data_type: str
    compression: str
    engine: str
    description: str
    selected: bool
    vector_bytes: float  # per vector, before overhead
    graph_bytes: float  # HNSW links (8 m) per vector; 0 for IVF
    bytes_per_vector: float | None  # 1.1 (vector + graph) for HNSW; 1.1 vector_bytes for IVF
    fixed_bytes: float  # IVF: 1.1 x centroids x segments; 0 for HNSW
    total_bytes: float | None
    total_gib: float | None
    total_gb: float | None
    formula: str
    ratio_to_float: float | None  # compression of the vector data alone (4d / vector_bytes)


def estimate_rows(dimension: int, vectors: int, *, m: int = 16, method: str = "hnsw", nlist: int = 4,
                  data_type: str = "float", compression: str = "1x", segments: int = 1) -> list[Row]:
    """One :class:`Row` per encoding of :data:`ENCODINGS` (see the module docstring)."""
    d, n = dimension, vectors
    rows = []
    for enc in ENCODINGS:
        vb = vector_bytes(enc, d)
        selected = (enc.data_type == data_type and (data_type != "float" or enc.compression == compression))
        if method == "hnsw":
            gb = 8.0 * m
            per = OVERHEAD * (vb + gb)
            fixed = 0.0
            total = per * n
            formula = f"1.1*({_num(vb)} + 8*{m}) = {_num(per)} B/vector"
        else:
            gb = 0.0
            if not enc.ivf:
                rows.append(Row(enc.name, enc.data_type, enc.compression, enc.engine, enc.description, selected, vb,
                                0.0, None, 0.0, None, None, None, "n/a (lucene has no IVF)", 4.0 * d / vb))
                continue
            centroids = 4.0 * nlist * d if enc.float_centroids else nlist * vb
            per = OVERHEAD * vb
            fixed = OVERHEAD * centroids * segments
            total = per * n + fixed
            cterm = f"4*{nlist}*{d}" if enc.float_centroids else f"{nlist}*{_num(vb)}"
            seg = f"{segments}*" if segments != 1 else ""
            formula = f"1.1*({_num(vb)}*{n} + {seg}{cterm}) (total)"
        rows.append(Row(enc.name, enc.data_type, enc.compression, enc.engine, enc.description, selected, vb, gb,
                        per, fixed, total, total / GIB, total / GB, formula, 4.0 * d / vb))
    return rows


def _num(x: float) -> str:
    """An exact-looking number: integers as such, else at most 2 decimals (trailing zeros dropped)."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def validate(dimension: int, vectors: int, m: int, method: str, nlist: int, data_type: str, compression: str,
             segments: int) -> None:
    if dimension < 1 or vectors < 0 or m < 1 or nlist < 1 or segments < 1:
        raise ValueError("--dimension, --m, --nlist and --segments must be >= 1 and --vectors >= 0")
    if method not in ("hnsw", "ivf"):
        raise ValueError(f"--method must be hnsw or ivf, got {method}")
    if data_type not in ("float", "byte", "binary"):
        raise ValueError(f"--data-type must be float, byte or binary, got {data_type}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {compression}")
    if data_type != "float" and compression != "1x":
        raise ValueError("Compression levels greater than 1x are only supported for float vector types")
    if data_type == "binary" and dimension % 8:
        raise ValueError("the dimension of a binary vector must be a multiple of 8")
    if method == "ivf" and data_type == "float" and compression == "4x":
        raise ValueError("4x compression is the lucene engine's, which has no IVF")


def estimate(dimension: int, vectors: int, *, m: int = 16, method: str = "hnsw", nlist: int = 4,
             data_type: str = "float", compression: str = "1x", segments: int = 1) -> dict[str, Any]:
    """The JSON-ready estimate: configuration, selected row, all rows."""
    validate(dimension, vectors, m, method, nlist, data_type, compression, segments)
    rows = estimate_rows(dimension, vectors, m=m, method=method, nlist=nlist, data_type=data_type,
                         compression=compression, segments=segments)
    selected = next(r for r in rows if r.selected)
    return {"config": {"dimension": dimension, "vectors": vectors, "m": m, "method": method, "nlist": nlist,
                       "data_type": data_type, "compression": compression, "segments": segments},
            "selected": asdict(selected), "rows": [asdict(r) for r in rows]}


def _size(b: float | None, unit: float) -> str:
    return "n/a" if b is None else f"{b / unit:,.4f}"


def format_table(result: dict[str, Any]) -> str:
    c = result["config"]
    head = ("", "encoding", "data_type", "level", "vector B", "graph B", "B/vector (x1.1)", "fixed B",
            "total bytes", "GiB", "GB", "formula")
    lines = [f"segstore estimate-memory: {c['vectors']:,} vectors x {c['dimension']} dims, {c['method']}"
             + (f" m={c['m']}" if c["method"] == "hnsw" else f" nlist={c['nlist']}, {c['segments']} segment(s)")]
    table = [head]
    for r in result["rows"]:
        table.append(("*" if r["selected"] else "", r["encoding"], r["data_type"], r["compression"],
                      _num(r["vector_bytes"]), _num(r["graph_bytes"]),
                      "n/a" if r["bytes_per_vector"] is None else f"{r['bytes_per_vector']:,.1f}",
                      f"{r['fixed_bytes']:,.1f}" if r["fixed_bytes"] else "0",
                      "n/a" if r["total_bytes"] is None else f"{r['total_bytes']:,.0f}",
                      _size(r["total_bytes"], GIB), _size(r["total_bytes"], GB), r["formula"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for j, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[i]) if i in (0, 1, 2, 3, 11) else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    s = result["selected"]
    lines.append("")
    lines.append(f"selected ({s['encoding']}, {s['compression']}): "
                 + ("n/a" if s["total_bytes"] is None else
                    f"{s['total_bytes']:,.0f} bytes = {s['total_bytes'] / GIB:.4f} GiB = "
                    f"{s['total_bytes'] / GB:.4f} GB"))
    lines.append("units: GiB = 2^30 bytes, GB = 10^9 bytes; B = bytes")
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("estimate-memory", help="native memory of a k-NN field by encoding (docs' formulas)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--dimension", "-d", type=int, required=True, help="vector dimension (bits for binary)")
    p.add_argument("--vectors", "-n", type=int, required=True, help="number of vectors")
    p.add_argument("--m", type=int, default=16, help="HNSW m (default 16)")
    p.add_argument("--method", choices=("hnsw", "ivf"), default="hnsw")
    p.add_argument("--nlist", type=int, default=4, help="IVF nlist (default 4)")
    p.add_argument("--data-type", choices=("float", "byte", "binary"), default="float")
    p.add_argument("--compression", choices=COMPRESSIONS, default="1x", help="compression level (float only)")
    p.add_argument("--segments", type=int, default=1, help="segments (IVF centroids are per segment)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        result = estimate(args.dimension, args.vectors, m=args.m, method=args.method, nlist=args.nlist,
                          data_type=args.data_type, compression=args.compression, segments=args.segments)
    except ValueError as e:
        print(f"segstore estimate-memory: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":  # python tools/estimate_memory.py ...
    _parser = argparse.ArgumentParser(prog="estimate-memory")
    _sub = _parser.add_subparsers()
    register(_sub)
    sys.exit(_main(_parser.parse_args(["estimate-memory", *sys.argv[1:]])))
