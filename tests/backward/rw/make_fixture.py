"""Regenerate the checked-in ``SegStore0`` fixture index (``tests/backward/fixtures/``).

    python tests/backward/rw/make_fixture.py            # rewrites segstore0_index.zip + segstore0_docs.json

The index is written by the legacy writer (:mod:`segstore0_rw`): top-level, object and nested vectors of
every data type (float, byte, binary), some fields missing, several segments, one of them produced by a
legacy merge, deletes and an update on legacy segments. Documents are seeded, so the JSON is reproducible;
the segment files are not byte-identical between runs (segment ids are random).

``segstore0_docs.json`` holds ``docs`` (id -> the source as indexed, final state), ``legacy_view`` (id -> what
GET must return where the filter format loses information, see the limits in
``segstore_codecs.backward.segstore0.stored_fields_reader``), the index name, settings and mappings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import zipfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures")
ZIP_NAME = "segstore0_index.zip"
DOCS_NAME = "segstore0_docs.json"
INDEX = "legacy"
SEED = 20250219
SETTINGS = {"index.knn": True, "index.knn.derived_source.enabled": True, "index.refresh_interval": "-1"}
MAPPINGS: dict[str, Any] = {"properties": {
    "title": {"type": "keyword"},
    "vec": {"type": "knn_vector", "dimension": 4, "space_type": "l2",
            "method": {"name": "hnsw", "engine": "faiss"}},
    "bvec": {"type": "knn_vector", "dimension": 4, "data_type": "byte", "space_type": "l2",
             "method": {"name": "hnsw", "engine": "faiss"}},
    "bin": {"type": "knn_vector", "dimension": 32, "data_type": "binary", "space_type": "hamming",
            "method": {"name": "hnsw", "engine": "faiss"}},
    "obj": {"properties": {
        "tag": {"type": "keyword"},
        "vec": {"type": "knn_vector", "dimension": 3, "space_type": "l2"},
        "inner": {"properties": {"bvec": {"type": "knn_vector", "dimension": 3, "data_type": "byte",
                                          "space_type": "l2", "method": {"name": "hnsw", "engine": "faiss"}}}},
    }},
    "nested_1": {"type": "nested", "properties": {
        "text": {"type": "keyword"},
        "vec": {"type": "knn_vector", "dimension": 3, "space_type": "l2"},
        "bin": {"type": "knn_vector", "dimension": 16, "data_type": "binary", "space_type": "hamming",
                "method": {"name": "hnsw", "engine": "faiss"}},
    }},
}}
FIELDS = {"vec": ("float", 4), "bvec": ("byte", 4), "bin": ("binary", 4), "obj.vec": ("float", 3),
          "obj.inner.bvec": ("byte", 3), "nested_1.vec": ("float", 3), "nested_1.bin": ("binary", 2)}


class _Gen:
    """Random vectors, each value unique per field (so a kNN query on a doc's vector finds that doc)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seen: dict[str, set[tuple[Any, ...]]] = {f: set() for f in FIELDS}

    def vector(self, field: str) -> list[Any]:
        kind, width = FIELDS[field]
        while True:
            if kind == "float":  # four decimals: exactly what float32's shortest decimal prints back
                v: list[Any] = [round(self.rng.uniform(-10, 10), 4) for _ in range(width)]
            else:
                v = [self.rng.randint(-128, 127) for _ in range(width)]
            if tuple(v) not in self.seen[field]:
                self.seen[field].add(tuple(v))
                return v

    def doc(self, i: int) -> dict[str, Any]:
        r = self.rng
        d: dict[str, Any] = {"title": f"doc {i}"}
        for f in ("vec", "bvec", "bin"):
            if r.random() < 0.9:
                d[f] = self.vector(f)
        if r.random() < 0.8:
            obj: dict[str, Any] = {"tag": f"t{i % 3}"}
            if r.random() < 0.9:
                obj["vec"] = self.vector("obj.vec")
            if r.random() < 0.9:
                obj["inner"] = {"bvec": self.vector("obj.inner.bvec")}
            d["obj"] = obj
        mode = r.random()
        if mode < 0.1:  # a single object instead of an array
            d["nested_1"] = {"text": f"only {i}", "vec": self.vector("nested_1.vec")}
        elif mode < 0.3:  # vector-only objects, each with a vector: all vanish from the stored array
            d["nested_1"] = [{"vec": self.vector("nested_1.vec"), "bin": self.vector("nested_1.bin")}
                             for _ in range(r.randint(1, 3))]
        elif mode < 0.9:  # every object keeps a non-vector key: nothing vanishes
            items = []
            for j in range(r.randint(0, 4)):
                o: dict[str, Any] = {"text": f"n{i}.{j}"}
                if r.random() < 0.85:
                    o["vec"] = self.vector("nested_1.vec")
                if r.random() < 0.85:
                    o["bin"] = self.vector("nested_1.bin")
                items.append(o)
            d["nested_1"] = items
        return d


def build(data_dir: str) -> dict[str, Any]:
    """Write the fixture index into ``data_dir``; return the JSON description."""
    sys.path.insert(0, os.path.dirname(HERE))
    import segstore
    from rw.segstore0_rw import create_legacy_index

    g = _Gen(SEED)
    docs = {f"d{i:03d}": g.doc(i) for i in range(60)}
    a, b = g.vector("nested_1.vec"), g.vector("nested_1.vec")
    c = g.vector("nested_1.vec")
    bv = g.vector("bvec")
    limits = {
        # a null vector: the filter removed the key, so it comes back absent
        "limit-null": ({"title": "null vec", "vec": None, "bvec": bv}, {"title": "null vec", "bvec": bv}),
        # a vector-only object next to one with text: the remaining object is taken for the first child
        "limit-mixed": ({"title": "mixed", "nested_1": [{"vec": a}, {"vec": b, "text": "x"}]},
                        {"title": "mixed", "nested_1": [{"text": "x", "vec": a}, {"vec": b}]}),
        # an empty object vanishes: the remaining object is taken for the child without a vector
        "limit-empty": ({"title": "empty", "nested_1": [{}, {"vec": c, "text": "y"}]},
                        {"title": "empty", "nested_1": [{"text": "y"}, {"vec": c}]}),
    }
    w = create_legacy_index(data_dir, INDEX, settings=SETTINGS, mappings=MAPPINGS)
    try:
        ids = list(docs)

        def bulk(keys: list[str]) -> None:
            res = w.bulk([segstore.IndexOp(k, docs[k]) for k in keys])
            bad = [r for r in res if isinstance(r, Exception)]
            assert not bad, bad

        bulk(ids[:20])
        w.refresh()
        bulk(ids[20:40])
        w.refresh()
        w.force_merge(1)  # a legacy merge: injected records filtered again by the legacy writer
        bulk(ids[40:])
        for k, (src, _) in limits.items():
            docs[k] = src
        bulk(list(limits))
        w.refresh()
        docs["d005"] = {**g.doc(5), "title": "doc 5 v2"}  # an update: deletes the block in a legacy segment
        bulk(["d005"])
        for k in ("d010", "d045"):
            w.delete(k)
            del docs[k]
        w.refresh()
        w.commit()
        codecs = sorted({s.info.codec for s in w.segments()})
        assert codecs == ["SegStore0"], codecs
        nseg = len(w.segments())
    finally:
        w.close()
    return {"index": INDEX, "settings": SETTINGS, "mappings": MAPPINGS, "segments": nseg,
            "docs": docs, "legacy_view": {k: view for k, (_, view) in limits.items()}}


def main() -> int:
    work = tempfile.mkdtemp(prefix="segstore0-fixture-")
    try:
        data = os.path.join(work, "data")
        desc = build(data)
        os.makedirs(FIXTURES, exist_ok=True)
        zpath = os.path.join(FIXTURES, ZIP_NAME)
        with zipfile.ZipFile(zpath + ".tmp", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for root, _dirs, files in sorted(os.walk(data)):
                for f in sorted(files):
                    if f in ("lock.mdb", "write.lock"):
                        continue
                    full = os.path.join(root, f)
                    z.write(full, os.path.relpath(full, data))
        os.replace(zpath + ".tmp", zpath)
        with open(os.path.join(FIXTURES, DOCS_NAME), "w", encoding="utf-8") as fh:
            json.dump(desc, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print(f"wrote {zpath} ({os.path.getsize(zpath)} bytes), {len(desc['docs'])} docs, "
              f"{desc['segments']} segments")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
