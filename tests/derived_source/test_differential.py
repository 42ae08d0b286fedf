"""Differential test of derived source, after OpenSearch's ``DerivedSourceTestCase`` / ``DerivedSourceIT``.

Two indices with the same random mapping, one with derived source (the default for ``index.knn: true``) and
one with ``index.knn.derived_source.enabled: false``, receive the same random operations: float, byte and
binary vectors at the top level, in objects and in nested documents (nested inside nested inside nested, and
object <-> nested mixes), ~10% missing fields and ~3% nulls; bulk index, partial update (``_update`` with
``doc``), replace, set to ``{}``, delete; force merge to 10 then 1 segment; a restart that replays the
translog (the writers are closed without a commit); reindex both ways; nested k-NN queries with inner hits
(every nesting level, with and without ``expand_nested_docs``).

After every step every document is compared, from GET and from a ``match_all`` search: the parsed
``_source`` (and ``_version``) must be equal across the indices and equal to a model of what was written.
Inputs are canonical (floats with at most 3 decimals, ints for byte/binary), so the derived index's
float32 shortest decimals equal them. The derived index stores fewer bytes at every committed step.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from typing import Any

import msgpack

import segstore

SEED = int(os.environ.get("SEGSTORE_DS_SEED", "6221269"))  # override to explore other seeds
N_DOCS = 200
BULK = 15
ON, OFF = "ds-on", "ds-off"
MISSING, NULL = 0.10, 0.03
FAISS = {"name": "hnsw", "engine": "faiss"}


# ---------------------------------------------------------------------------------------- data model


class Gen:
    """Seeded random mapping and documents."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        r = self.rng
        self.dims = {"float": r.randint(3, 8), "byte": r.randint(3, 8), "binary": 8 * r.randint(1, 3)}
        self.counter = 0

    def vfield(self, kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "knn_vector", "dimension": self.dims[kind], "method": dict(FAISS)}
        if kind != "float":
            spec["data_type"] = kind
        spec["space_type"] = "hamming" if kind == "binary" else "l2"
        return spec

    def mapping(self) -> dict[str, Any]:
        f, b, x = self.vfield("float"), self.vfield("byte"), self.vfield("binary")
        kw = {"type": "keyword"}
        return {"properties": {
            "title": kw, "num": {"type": "integer"},
            "f_vec": f, "b_vec": b, "bin_vec": x,
            "obj": {"properties": {
                "tag": kw, "f_vec": f, "o2": {"properties": {"b_vec": b}},
                "n_in_obj": {"type": "nested", "properties": {"t": kw, "f_vec": f}},  # object -> nested
            }},
            "n1": {"type": "nested", "properties": {
                "t": kw, "f_vec": f, "bin_vec": x,
                "o_in_n": {"properties": {"b_vec": b}},  # nested -> object
                "n2": {"type": "nested", "properties": {
                    "t": kw, "b_vec": b,
                    "n3": {"type": "nested", "properties": {"t": kw, "f_vec": f}},
                }},
            }},
        }}

    def vector(self, kind: str) -> list[Any]:
        r, d = self.rng, self.dims[kind]
        if kind == "float":
            return [round(r.uniform(-1.0, 1.0), 3) for _ in range(d)]
        return [r.randint(-128, 127) for _ in range(d // 8 if kind == "binary" else d)]

    def put(self, d: dict[str, Any], key: str, make: Callable[[], Any]) -> None:
        """Set ``key``: missing ~10%, null ~3%, else a fresh value."""
        x = self.rng.random()
        if x < MISSING:
            return
        d[key] = None if x < MISSING + NULL else make()

    def nested(self, make: Callable[[], dict[str, Any]]) -> Any:
        n = self.rng.randint(0, 3)
        if n == 1 and self.rng.random() < 0.4:
            return make()  # a single object instead of an array
        return [make() for _ in range(n)]

    def text(self) -> str:
        self.counter += 1
        return f"w{self.counter}"

    def n3(self) -> dict[str, Any]:
        o: dict[str, Any] = {}
        self.put(o, "t", self.text)
        self.put(o, "f_vec", lambda: self.vector("float"))
        return o

    def n2(self) -> dict[str, Any]:
        o: dict[str, Any] = {}
        self.put(o, "t", self.text)
        self.put(o, "b_vec", lambda: self.vector("byte"))
        self.put(o, "n3", lambda: self.nested(self.n3))
        return o

    def n1(self) -> dict[str, Any]:
        o: dict[str, Any] = {}
        self.put(o, "t", self.text)
        self.put(o, "f_vec", lambda: self.vector("float"))
        self.put(o, "bin_vec", lambda: self.vector("binary"))
        self.put(o, "o_in_n", lambda: {"b_vec": self.vector("byte")})
        self.put(o, "n2", lambda: self.nested(self.n2))
        return o

    def obj(self) -> dict[str, Any]:
        o: dict[str, Any] = {}
        self.put(o, "tag", self.text)
        self.put(o, "f_vec", lambda: self.vector("float"))
        self.put(o, "o2", lambda: {"b_vec": self.vector("byte")})
        self.put(o, "n_in_obj", lambda: self.nested(self.n3))
        return o

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        self.put(d, "title", self.text)
        self.put(d, "num", lambda: self.rng.randint(0, 1000))
        self.put(d, "f_vec", lambda: self.vector("float"))
        self.put(d, "b_vec", lambda: self.vector("byte"))
        self.put(d, "bin_vec", lambda: self.vector("binary"))
        self.put(d, "obj", self.obj)
        self.put(d, "n1", lambda: self.nested(self.n1))
        return d

    def partial(self) -> dict[str, Any]:
        """A partial-update ``doc``: a few keys of a fresh document (objects merge, the rest replaces)."""
        fresh = self.doc()
        keys = self.rng.sample(sorted(fresh), k=min(len(fresh), self.rng.randint(1, 3))) if fresh else []
        return {k: fresh[k] for k in keys} or {"title": self.text()}


def merge_update(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """OpenSearch's partial update: maps merge recursively, every other value is replaced."""
    out = dict(base)
    for k, v in doc.items():
        out[k] = merge_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# ------------------------------------------------------------------------------------------- helpers


def bulk(client: Any, index: str, actions: list[tuple[str, str, Any]]) -> list[tuple[str, int]]:
    body: list[Any] = []
    for op, doc_id, src in actions:
        body.append({op: {"_index": index, "_id": doc_id}})
        if op == "index":
            body.append(src)
        elif op == "update":
            body.append({"doc": src})
    res = client.bulk(body=body)
    out = []
    for item in res["items"]:
        (op, r), = item.items()
        out.append((r.get("result", r.get("error", {}).get("type")), r["status"]))
    return out


def index_bytes(client: Any, index: str) -> tuple[int, int]:
    """(stored-fields bytes, all segment bytes) of the index's current segments."""
    w = client.transport.node.writer(index)
    path = w.directory.path
    stored = total = 0
    for seg in w.segments():
        for f in seg.files():
            size = os.path.getsize(os.path.join(path, f))
            total += size
            if f.endswith((".fdt", ".fdx")):
                stored += size
    return stored, total


def crash(client: Any) -> None:
    """Close every writer without a commit (a crash after the translog fsync), then the node."""
    client.transport.node.close(commit=False)


VECTOR_PATHS = frozenset({"f_vec", "b_vec", "bin_vec", "obj.f_vec", "obj.o2.b_vec", "obj.n_in_obj.f_vec",
                          "n1.f_vec", "n1.bin_vec", "n1.o_in_n.b_vec", "n1.n2.b_vec", "n1.n2.n3.f_vec"})


def masked(node: Any, prefix: str = "") -> Any:
    """``node`` with every non-null value at a vector path replaced by the mask 1 (arrays are transparent)."""
    if isinstance(node, dict):
        return {k: 1 if prefix + k in VECTOR_PATHS and v is not None else masked(v, f"{prefix}{k}.")
                for k, v in node.items()}
    if isinstance(node, list):
        return [masked(x, prefix) if isinstance(x, dict) else x for x in node]
    return node


def nested_hits(client: Any, index: str, body: dict[str, Any], path: str) -> dict[str, Any]:
    """``id -> (score, [(nested identity, score, _source)])`` of a nested query with inner hits."""
    hits = client.search(index=index, body=body)["hits"]["hits"]
    out = {}
    for x in hits:
        inner = x["inner_hits"][path]["hits"]
        assert inner["total"]["value"] == len(inner["hits"]) >= 1
        out[x["_id"]] = (x["_score"], [(x2["_nested"], x2["_score"], x2["_source"]) for x2 in inner["hits"]])
    return out


def model_object(doc: dict[str, Any], identity: dict[str, Any]) -> Any:
    """The nested object of ``doc`` at a hit's ``_nested`` identity (offsets count objects: null and
    non-object elements make no child)."""
    node: Any = doc
    ident: dict[str, Any] | None = identity
    while ident is not None:
        for part in ident["field"].split("."):
            node = node[part]
        objects = [x for x in (node if isinstance(node, list) else [node]) if isinstance(x, dict)]
        node = objects[ident["offset"]]
        ident = ident.get("_nested")
    return node


class Harness:
    def __init__(self, data: str, gen: Gen) -> None:
        self.data = data
        self.gen = gen
        self.client = segstore.connect(data)
        self.model: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.sizes: list[tuple[str, tuple[int, int], tuple[int, int]]] = []

    def both(self, fn: Callable[[str], Any], indices: tuple[str, ...] = (ON, OFF)) -> list[Any]:
        return [fn(i) for i in indices]

    def same_bulk(self, actions: list[tuple[str, str, Any]]) -> None:
        on, off = (bulk(self.client, i, actions) for i in (ON, OFF))
        assert on == off
        assert all(status < 300 or (result == "not_found" and status == 404) for result, status in on), on
        for op, doc_id, src in actions:
            if op == "index":
                self.model[doc_id] = copy.deepcopy(src)
                self.deleted.discard(doc_id)
            elif op == "update":
                self.model[doc_id] = merge_update(self.model[doc_id], src)
            else:
                self.model.pop(doc_id, None)
                self.deleted.add(doc_id)

    def refresh(self) -> None:
        self.client.indices.refresh(index=f"{ON},{OFF}")

    def check(self, step: str, indices: tuple[str, ...] = (ON, OFF), search: bool = True) -> None:
        c = self.client
        for doc_id in sorted(self.model):
            got = [c.get(index=i, id=doc_id) for i in indices]
            assert all(g["found"] for g in got), (step, doc_id)
            assert len({g["_version"] for g in got[:2]}) == 1, (step, doc_id, [g["_version"] for g in got])
            for i, g in zip(indices, got):
                assert g["_source"] == self.model[doc_id], (step, i, doc_id, g["_source"], self.model[doc_id])
        for doc_id in sorted(self.deleted):
            for i in indices:
                assert c.get(index=i, id=doc_id, ignore=404)["found"] is False, (step, i, doc_id)
        if not search:
            return
        for i in indices:
            hits = c.search(index=i, body={"query": {"match_all": {}}, "size": 1000})["hits"]["hits"]
            assert len(hits) == len(self.model), (step, i)
            for h in hits:
                assert h["_source"] == self.model[h["_id"]], (step, i, h["_id"])

    def check_sizes(self, step: str, derived: str = ON, plain: str = OFF) -> None:
        d, p = index_bytes(self.client, derived), index_bytes(self.client, plain)
        self.sizes.append((step, d, p))
        assert d[0] < p[0], (step, "stored fields", d, p)
        assert d[1] < p[1], (step, "segment files", d, p)

    def check_stored_masks(self, index: str = ON) -> None:
        """Stored ``_source`` of the derived index = the model with vectors masked; never a vector."""
        w = self.client.transport.node.writer(index)
        with w.acquire_reader() as reader:
            for leaf in reader.leaves:
                for doc in range(leaf.max_doc):
                    rec = leaf.stored_document(doc)
                    if not leaf.is_live(doc) or "_id" not in rec:
                        continue
                    stored = msgpack.unpackb(rec["_source"], raw=False)
                    assert stored == masked(self.model[rec["_id"]]), rec["_id"]


# ---------------------------------------------------------------------------------------------- test


def test_derived_and_plain_indices_stay_equal(tmp_path: Any) -> None:
    gen = Gen(SEED)
    mapping = gen.mapping()
    h = Harness(str(tmp_path / "data"), gen)
    try:
        base = {"index.knn": True, "index.refresh_interval": "-1"}
        h.client.indices.create(index=ON, body={"settings": base, "mappings": mapping})
        h.client.indices.create(index=OFF, body={"settings": {**base, "index.knn.derived_source.enabled": False},
                                                 "mappings": mapping})
        rng = gen.rng

        # 1. bulk ingest, one segment per bulk
        ids = [f"doc-{i:03d}" for i in range(N_DOCS)]
        for s in range(0, N_DOCS, BULK):
            h.same_bulk([("index", i, gen.doc()) for i in ids[s:s + BULK]])
            h.refresh()
        h.check("ingest")
        h.check_sizes("ingest")
        h.check_stored_masks()

        # 2. partial updates, replacements, {} and deletes (some via bulk, some via the single-doc APIs)
        live = sorted(h.model)
        picks = rng.sample(live, 60)
        h.same_bulk([("update", i, gen.partial()) for i in picks[:20]])
        for i in picks[20:30]:
            part = gen.partial()
            res = [h.client.update(index=x, id=i, body={"doc": part})["result"] for x in (ON, OFF)]
            assert res[0] == res[1]
            h.model[i] = merge_update(h.model[i], part)
        h.same_bulk([("index", i, gen.doc()) for i in picks[30:45]])
        h.same_bulk([("index", i, {}) for i in picks[45:50]])
        h.same_bulk([("delete", i, None) for i in picks[50:60]])
        h.same_bulk([("index", i, gen.doc()) for i in picks[50:53]])  # re-created after a delete
        h.refresh()
        h.check("updates")
        h.check_sizes("updates")

        # 3. force merge to 10, then 1 segment; the derived index stays smaller
        h.client.indices.forcemerge(index=f"{ON},{OFF}", max_num_segments=10)
        h.check("merge-10")
        h.check_sizes("merge-10")
        h.client.indices.forcemerge(index=f"{ON},{OFF}", max_num_segments=1)
        h.check("merge-1")
        h.check_sizes("merge-1")
        h.check_stored_masks()

        # 4. operations only in the translog (and the buffer), then a crash and a replay
        more = [f"late-{i:02d}" for i in range(15)]
        h.same_bulk([("index", i, gen.doc()) for i in more])
        h.same_bulk([("update", i, gen.partial()) for i in rng.sample(sorted(h.model), 10)])
        h.same_bulk([("delete", i, None) for i in rng.sample(sorted(h.model), 5)])
        h.check("buffered", search=False)  # realtime GET from the writers' buffers
        crash(h.client)
        h.client = segstore.connect(h.data)
        for i in (ON, OFF):
            assert h.client.transport.node.writer(i).replayed_ops > 0
        h.check("replayed", search=False)
        h.refresh()
        h.check("replayed+refresh")
        h.check_sizes("replayed+refresh")
        h.check_stored_masks()

        # 5. reindex both ways
        r_plain, r_derived = "r-on-to-off", "r-off-to-on"
        h.client.indices.create(index=r_plain, body={"settings": {"index.knn": True,
                                                                  "index.knn.derived_source.enabled": False},
                                                     "mappings": mapping})
        h.client.indices.create(index=r_derived, body={"settings": {"index.knn": True}, "mappings": mapping})
        for src, dest in ((ON, r_plain), (OFF, r_derived)):
            res = h.client.reindex(body={"source": {"index": src}, "dest": {"index": dest}}, refresh=True)
            assert res["created"] == len(h.model) and not res["failures"]
        h.client.indices.flush(index=f"{ON},{OFF},{r_plain},{r_derived}")
        h.check("reindexed", indices=(ON, OFF, r_plain, r_derived))
        h.check_sizes("reindexed", derived=r_derived, plain=r_plain)
        h.check_stored_masks(r_derived)

        # 6. request-level _source variants give the same hits on both sides
        vectors = sorted(VECTOR_PATHS)
        for variant in (False, {"excludes": vectors}, {"includes": vectors}, {"includes": ["n1"]},
                        {"excludes": ["*vec"]}, {"includes": ["obj.*", "title"]}):
            got = []
            for i in (ON, OFF, r_plain, r_derived):
                hits = h.client.search(index=i, body={"query": {"match_all": {}}, "size": 1000,
                                                      "_source": variant})["hits"]["hits"]
                got.append({x["_id"]: x.get("_source") for x in hits})
            assert got[0] == got[1] == got[2] == got[3], variant
            if variant is False:
                assert all(v is None for v in got[0].values())

        # 7. nested k-NN with inner hits: equal on every index, and each inner hit's _source is the model's
        #    object at its _nested position (real vectors, never the mask)
        for path, field, kind in (("n1", "n1.f_vec", "float"), ("n1", "n1.bin_vec", "binary"),
                                  ("n1.n2", "n1.n2.b_vec", "byte"), ("n1.n2.n3", "n1.n2.n3.f_vec", "float"),
                                  ("obj.n_in_obj", "obj.n_in_obj.f_vec", "float")):
            for expand, mode in ((False, "avg"), (True, "max"), (True, "avg")):
                body = {"size": 1000, "_source": False, "query": {"nested": {
                    "path": path, "score_mode": mode, "inner_hits": {"size": 100},
                    "query": {"knn": {field: {"vector": gen.vector(kind), "k": 300, "expand_nested_docs": expand}}}}}}
                got = [nested_hits(h.client, i, body, path) for i in (ON, OFF, r_plain, r_derived)]
                assert got[0] == got[1] == got[2] == got[3], (field, expand, mode)
                assert got[0], (field, "no hits")
                for doc_id, (_, inner) in got[0].items():
                    for identity, _, source in inner:
                        assert source == model_object(h.model[doc_id], identity), (field, doc_id, identity)
    finally:
        h.client.close()
    print("sizes (stored, segment files) derived vs plain:", h.sizes)
