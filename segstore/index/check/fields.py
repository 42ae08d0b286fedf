"""Levels 2 and 3 of every vector field of a segment (:class:`VectorFieldChecks`).

Level 2: the vector count and ord->doc map, no NaN/Inf (and no zero vector for ``cosinesimil``), field
attributes against the mapping, the quantization state against the vectors, the graph loads and its size
matches the vector count; derived-source paths and doc-values fields against the mapping. Level 3 (the
graph): HNSW connectivity per level and a recall sample against exact search.

For connectivity an hnswlib graph file is read directly (grammar in
:mod:`segstore_codecs.segstore1.graph_format`)::

    File := Header("SegStore1HnswGraph", Version, SegmentId, Suffix="f<number>"), Meta, Blob, Footer
    Meta := msgpack map {"library" (absent in version 1: hnswlib), "count", "random_seed", "blob_length"}
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

from segstore.codec.framing import FramedInput
from segstore.errors import SegstoreError
from segstore.index.check.base import CheckBase
from segstore.index.check.formats import FORMAT_VERSIONS, GRAPH_COMPONENTS
from segstore.index.check.graph import (
    exact_distances,
    faiss_levels,
    graph_connectivity,
    graph_rows,
    hnswlib_levels,
)
from segstore.index.check.status import (
    FieldStatus,
    Problem,
    SegmentStatus,
    problem_from_error,
)

__all__ = ["VectorFieldChecks"]


class VectorFieldChecks(CheckBase):
    """``_check_fields`` (level 2, and level 3 through ``_check_graph``) of one open segment."""

    def _check_fields(self, st: SegmentStatus, leaf: Any) -> None:
        from segstore.derived_source.attributes import derived_paths
        from segstore.quantization.state import quantizer_for

        fis = leaf.field_infos
        mappings, settings = self._mappings, self._settings
        graph_fields = set(leaf.core.graphs.fields())
        total_vectors = 0
        n_graphs = 0
        for fi in fis.vector_fields():
            fs = FieldStatus(fi.name, fi.number, fi.vector_dimension, fi.vector_data_type, fi.vector_space_type)
            st.fields.append(fs)
            values = leaf.vector_values(fi.name)
            vem = f"{st.name}.vem"
            vec = f"{st.name}.vec"
            if values is None:
                self._add(st.problems, Problem("vectors", "vector field has no entry in the vector metadata",
                                               segment=st.name, file=vem, field=fi.name, level=2))
                continue
            fs.vectors = values.size
            total_vectors += values.size
            o2d = np.asarray(values.ord_to_doc, dtype=np.int64)
            if values.size > st.max_doc or (values.size and not (
                    o2d[0] >= 0 and o2d[-1] < st.max_doc and bool(np.all(o2d[1:] > o2d[:-1])))):
                self._add(st.problems, Problem("vectors", "ord->doc map is not strictly increasing within "
                                               "[0, max_doc)", segment=st.name, file=vec, field=fi.name, level=2))
            if fi.vector_data_type == "float" and values.size:
                chunk = max(1, (1 << 22) // max(1, fi.vector_dimension))
                for start in range(0, values.size, chunk):
                    block = values.vectors[start:start + chunk]
                    finite = np.isfinite(block).all(axis=1)
                    if not finite.all():
                        bad = start + int(np.flatnonzero(~finite)[0])
                        self._add(st.problems, Problem("vectors", "vector holds NaN or Inf", segment=st.name,
                                                       file=vec, field=fi.name, doc=int(o2d[bad]),
                                                       expected="finite", actual=str(values.vectors[bad].tolist()),
                                                       level=2))
                        break
                    if fi.vector_space_type == "cosinesimil":
                        zero = ~(np.abs(block) > 0).any(axis=1)
                        if zero.any():
                            bad = start + int(np.flatnonzero(zero)[0])
                            self._add(st.problems, Problem("vectors", "zero vector in a cosinesimil field",
                                                           segment=st.name, file=vec, field=fi.name,
                                                           doc=int(o2d[bad]), expected="norm > 0", actual=0.0,
                                                           level=2))
                            break
            # attributes against the mapping
            if mappings is not None:
                fm = mappings.vector_fields.get(fi.name)
                if fm is None:
                    self._add(st.problems, Problem("attributes", "vector field is not in the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name, level=2))
                elif getattr(fm, "dimension", None) is not None:
                    want = (fm.dimension, fm.data_type, fm.space_type)
                    got = (fi.vector_dimension, fi.vector_data_type, fi.vector_space_type)
                    if want != got:
                        self._add(st.problems, Problem(
                            "attributes", "vector parameters differ from the mapping "
                            "(dimension, data_type, space_type)", segment=st.name, file=f"{st.name}.fnm",
                            field=fi.name, expected=list(want), actual=list(got), level=2))
                    try:
                        mapped_attrs = fm.field_attributes()
                    except Exception:  # noqa: BLE001 - an unexpected mapping shape only skips this comparison
                        mapped_attrs = {}
                    diff = {k: (mapped_attrs[k], v) for k, v in fi.attributes.items()
                            if k in mapped_attrs and mapped_attrs[k] != v and not k.endswith(".user")}
                    if diff:
                        self._add(st.problems, Problem(
                            "attributes", "field attributes differ from the mapping", segment=st.name,
                            file=f"{st.name}.fnm", field=fi.name,
                            expected={k: a for k, (a, _b) in diff.items()},
                            actual={k: b for k, (_a, b) in diff.items()}, level=2))
            # graph
            graph_file = next((f for f in st.files if f.startswith(f"{st.name}_f{fi.number}.")
                               and f.rsplit(".", 1)[-1] in ("hnsw", "ivf")), None)
            fs.graph_file = graph_file
            q = quantizer_for(fi.attributes, fi.vector_space_type) if fi.vector_data_type == "float" else None
            if q is not None:
                try:
                    qv = leaf.quantized(fi.name)
                except (SegstoreError, OSError, ValueError) as e:
                    self._add(st.problems, problem_from_error(e, "quantization", segment=st.name, level=2,
                                                              field=fi.name))
                    qv = None
                    fs.quantization = {"kind": q[0], "bits": q[1], "state": "unreadable"}
                else:
                    if qv is None:
                        if values.size:
                            self._add(st.problems, Problem("quantization", "quantized field has no state file",
                                                           "MissingFileError", st.name,
                                                           f"{st.name}_f{fi.number}.qst", fi.name, level=2))
                        fs.quantization = {"kind": q[0], "bits": q[1], "state": "missing"}
                    else:
                        rows = int(qv.codes.shape[0])
                        width = int(qv.codes.nbytes // rows) if rows else qv.state.code_width
                        fs.quantization = {"kind": qv.state.kind, "bits": qv.state.bits, "codes": rows,
                                           "code_width": width, "state": "ok"}
                        if rows != values.size or width != qv.state.code_width:
                            self._add(st.problems, Problem(
                                "quantization", "quantized codes do not match the vectors",
                                segment=st.name, file=f"{st.name}_f{fi.number}.qst", field=fi.name,
                                expected=[values.size, qv.state.code_width], actual=[rows, width], level=2))
            if fi.name in graph_fields and any(p.file == graph_file for p in st.problems):
                fs.graph = "unreadable"
            elif fi.name in graph_fields:
                try:
                    graph = leaf.graph(fi.name)
                except (SegstoreError, OSError, ValueError, RuntimeError) as e:
                    p = problem_from_error(e, "graph", segment=st.name, level=2, field=fi.name)
                    if p.file is None:
                        p.file = graph_file
                    self._add(st.problems, p)
                    continue
                n_graphs += 1
                fs.graph = _graph_kind(graph)
                count = getattr(graph, "count", None)
                if count is not None and count != values.size:
                    self._add(st.problems, Problem("graph", "graph size differs from the vector count",
                                                   segment=st.name, file=graph_file, field=fi.name,
                                                   expected=values.size, actual=count, level=2))
                if self.level >= 3:
                    self._check_graph(st, leaf, fi, fs, graph, graph_file)
            elif fi.attributes.get("knn") == "true" and settings is not None and values.size >= max(
                    1, settings.approximate_threshold):
                self._add(st.problems, Problem("graph", "k-NN field has no graph: searches of this segment are exact",
                                               "MissingGraph", st.name, None, fi.name, level=2, severity="warning"))
        root, nested = derived_paths(st.attributes)
        if mappings is not None:
            for path in [p for p in (*root, *nested) if p]:
                if path not in mappings.vector_fields:
                    self._add(st.problems, Problem("attributes", "derived-source path is not a mapped vector field",
                                                   segment=st.name, file=f"{st.name}.si", field=path, level=2))
        if settings is not None and not settings.derived_source and any(p for p in (*root, *nested)):
            self._add(st.problems, Problem("attributes", "segment derives vectors but the index setting "
                                           "index.knn.derived_source.enabled is false", segment=st.name,
                                           file=f"{st.name}.si", expected=[], actual=[*root, *nested], level=2))
        if mappings is not None:
            dv_fields = mappings.doc_value_fields
            for fi in fis:
                if fi.has_vectors or fi.name == "_root" or "doc_values" not in fi.attributes:
                    continue
                mapped = dv_fields.get(fi.name)
                if mapped is None:
                    self._add(st.problems, Problem("attributes", "doc-values field is not in the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name, level=2,
                                                   severity="warning"))
                elif fi.attributes.get("type") not in (None, mapped[1]):
                    self._add(st.problems, Problem("attributes", "doc-values field type differs from the mapping",
                                                   segment=st.name, file=f"{st.name}.fnm", field=fi.name,
                                                   expected=mapped[1], actual=fi.attributes.get("type"), level=2))
        st.tests["vectors"] = f"OK [{len(st.fields)} fields, {total_vectors} vectors]" if not any(
            p.component == "vectors" for p in st.problems) else "FAILED"
        st.tests["graphs"] = f"OK [{n_graphs} graphs]" if not any(
            p.component in GRAPH_COMPONENTS and p.severity == "error" for p in st.problems) else "FAILED"

    # -- level 3

    def _check_graph(self, st: SegmentStatus, leaf: Any, fi: Any, fs: FieldStatus, graph: Any,
                     graph_file: str | None) -> None:
        levels = per_level = None
        entry = -1
        try:
            kind = fs.graph
            if kind == "hnswlib" and graph_file:
                blob, meta = _hnswlib_blob(self.directory, graph_file, st, fi)
                levels, per_level, entry = hnswlib_levels(blob, int(meta["count"]))
            elif kind in ("faiss", "faiss_binary"):
                levels, per_level, entry = faiss_levels(graph.index)
        except (SegstoreError, ValueError, struct.error) as e:
            self._add(st.problems, problem_from_error(e, "graph", segment=st.name, level=3, field=fi.name))
            return
        if levels is not None and per_level is not None:
            nodes, conn, errors = graph_connectivity(levels, per_level, entry)
            fs.nodes_at_level, fs.connectedness_at_level = nodes, conn
            for msg in errors:
                self._add(st.problems, Problem("graph", msg, segment=st.name, file=graph_file, field=fi.name,
                                               level=3))
            for lvl, c in enumerate(conn):
                reach, total = (int(x) for x in c.split("/"))
                if reach < total:
                    self._add(st.problems, Problem(
                        "graph", f"level {lvl}: {total - reach} node(s) unreachable from the entry point",
                        "DisconnectedGraph", st.name, graph_file, fi.name, expected=total, actual=reach, level=3,
                        severity="warning" if reach >= 0.99 * total else "error"))
        # recall sample against exact search over the rows the graph was built on
        try:
            rows, gf = graph_rows(leaf, fi)
        except (SegstoreError, OSError, ValueError) as e:
            self._add(st.problems, problem_from_error(e, "quantization", segment=st.name, level=3, field=fi.name))
            return
        n = int(rows.shape[0])
        if n == 0:
            return
        k = min(10, n)
        rng = np.random.default_rng(0)
        picks = rng.choice(n, size=min(self.recall_queries, n), replace=False)
        queries = rows[picks]
        if np.asarray(rows).dtype.kind == "f":
            partners = rows[rng.choice(n, size=len(picks))]
            queries = ((np.asarray(queries, np.float32) + np.asarray(partners, np.float32)) / 2).astype(np.float32)
        ef = max(100, int(fi.attributes.get("hnsw.ef_search", "100") or 100), k)
        try:
            ords, _d = graph.search(queries, k, ef)
        except Exception as e:  # noqa: BLE001 - any search failure is a graph finding
            self._add(st.problems, problem_from_error(e, "graph", segment=st.name, level=3, field=fi.name))
            return
        exact = exact_distances(queries, rows, gf)
        kth = np.sort(exact, axis=1)[:, k - 1]
        hits = 0
        for row in range(len(picks)):
            got = np.asarray(ords[row], dtype=np.int64)
            got = got[(got >= 0) & (got < n)]
            d = exact[row, got]
            hits += int((d <= kth[row] + 1e-6 * max(1.0, abs(float(kth[row]))) + 1e-9).sum())
        recall = hits / (k * len(picks))
        fs.recall = round(recall, 4)
        if recall < self.min_recall:
            self._add(st.problems, Problem("graph", f"recall {recall:.3f} of a {len(picks)}-query sample is below "
                                           f"{self.min_recall}", "LowRecall", st.name, graph_file, fi.name,
                                           expected=f">= {self.min_recall}", actual=round(recall, 4), level=3))


def _graph_kind(graph: Any) -> str:
    name = type(graph).__name__
    if name == "HnswGraph":
        return "hnswlib"
    if name == "FaissGraph":
        layout = getattr(graph, "layout", None)
        return getattr(layout, "library", "faiss")
    if "Ivf" in name:
        return "ivf"
    return name


def _hnswlib_blob(directory: Any, name: str, st: SegmentStatus, fi: Any) -> tuple[memoryview, dict[str, Any]]:
    from segstore_codecs.segstore1.hnswlib_blob import validate_hnswlib_blob

    vmin, vmax = FORMAT_VERSIONS.get("SegStore1HnswGraph", (1, 2))
    inp = FramedInput(directory, name, "SegStore1HnswGraph", vmin, vmax, bytes.fromhex(st.segment_id),
                      f"f{fi.number}", verify_checksum=True)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(inp.payload[:4096])
    meta = dict(unpacker.unpack())
    blob = inp.payload[unpacker.tell():]
    meta.setdefault("library", "hnswlib")
    validate_hnswlib_blob(blob, meta, name)
    return blob, meta
