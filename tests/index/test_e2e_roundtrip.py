"""End-to-end ``_source`` round trip: what GET and kNN hits return equals what was indexed.

Vectors come back as float32 shortest decimals (``0.1`` stays ``0.1``; ``1`` in a float field becomes
``1.0``), key order is preserved, other fields are untouched, ``null`` stays ``null`` and an absent key stays
absent. Checked at every stage a document goes through: RAM buffer, refreshed segment, commit, reopen (no
translog replay) and translog replay (reopen after an uncommitted close).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segstore
from segstore.index.operations import IndexOp

MAPPINGS = {
    "properties": {
        "v": {"type": "knn_vector", "dimension": 3},
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}},
        "title": {"type": "text"},
    }
}
SETTINGS = {"index.knn": True}


def same(actual: Any, expected: Any) -> None:
    """Equal values, equal key order, and floats where floats are expected (json.dumps compares all)."""
    assert actual == expected
    assert json.dumps(actual) == json.dumps(expected)


def create(tmp_path: Any, mappings: dict[str, Any] = MAPPINGS, settings: dict[str, Any] = SETTINGS,
           name: str = "docs") -> segstore.IndexWriter:
    return segstore.create_index(str(tmp_path / "data"), name, settings=settings, mappings=mappings)


def reopen(tmp_path: Any, name: str = "docs") -> segstore.IndexWriter:
    return segstore.open_index(str(tmp_path / "data"), name)


DOCS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # id: (indexed source, expected GET source)
    "decimals": ({"title": "first", "v": [0.1, 0.2, 0.3], "n": 1},
                 {"title": "first", "v": [0.1, 0.2, 0.3], "n": 1}),
    "ints": ({"v": [1, 2, -3], "title": "ints"}, {"v": [1.0, 2.0, -3.0], "title": "ints"}),
    "float32_rounding": ({"v": [0.123456789, 1e-7, 16777217]},
                         {"v": [0.12345679, 1e-7, 16777216.0]}),
    "null_vector": ({"z": True, "v": None, "after": "x"}, {"z": True, "v": None, "after": "x"}),
    "missing_vector": ({"title": "no vector", "tags": ["a", "b"]}, {"title": "no vector", "tags": ["a", "b"]}),
    "object_path": ({"a": {"x": 1, "b": {"vec": [0.5, -1.5], "y": [1, 2], "w": {"k": None}}, "z": "q"}, "v": [0, 0, 1]},
                    {"a": {"x": 1, "b": {"vec": [0.5, -1.5], "y": [1, 2], "w": {"k": None}}, "z": "q"},
                     "v": [0.0, 0.0, 1.0]}),
    "key_order": ({"zz": 1, "v": [3, 2, 1], "aa": {"y": 1, "x": 2}, "mm": [3, 1, 2]},
                  {"zz": 1, "v": [3.0, 2.0, 1.0], "aa": {"y": 1, "x": 2}, "mm": [3, 1, 2]}),
    "others_untouched": ({"v": [1.5, 2.5, 3.5], "f": 0.1, "i": 10**15, "neg": -7, "s": "ünïcødé ✓", "e": {},
                          "l": [], "nested": {"v": [9, 9, 9], "deep": {"deeper": [[1, 2], [3]]}}, "b": False},
                         {"v": [1.5, 2.5, 3.5], "f": 0.1, "i": 10**15, "neg": -7, "s": "ünïcødé ✓", "e": {},
                          "l": [], "nested": {"v": [9, 9, 9], "deep": {"deeper": [[1, 2], [3]]}}, "b": False}),
    "object_null": ({"a": {"b": {"vec": None}}}, {"a": {"b": {"vec": None}}}),
    "object_missing": ({"a": {"b": {}}}, {"a": {"b": {}}}),
    "empty": ({}, {}),
    "negative_zero": ({"v": [-0.0, 0.0, -1e-45]}, {"v": [-0.0, 0.0, -1e-45]}),
}


def check_all(get: Callable[[str], Any]) -> None:
    for doc_id, (_, expected) in DOCS.items():
        res = get(doc_id)
        assert res is not None, doc_id
        same(res.source, expected)


def index_all(w: segstore.IndexWriter) -> None:
    for doc_id, (src, _) in DOCS.items():
        w.index(doc_id, copy.deepcopy(src))


def test_vector_values_come_back_exactly(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [0.1, 0.2, 0.3]})
    w.index("2", {"v": [1, 2, 3]})
    for stage in ("buffer", "segment"):
        v1 = w.get("1").source["v"]
        v2 = w.get("2").source["v"]
        assert v1 == [0.1, 0.2, 0.3], stage
        assert v2 == [1.0, 2.0, 3.0], stage
        assert all(type(x) is float for x in v1 + v2), stage
        w.refresh()
    w.close()


@pytest.mark.parametrize("use_bulk", [False, True])
def test_get_at_every_stage(tmp_path: Any, use_bulk: bool) -> None:
    w = create(tmp_path)
    if use_bulk:
        res = w.bulk([IndexOp(i, copy.deepcopy(s)) for i, (s, _) in DOCS.items()])
        assert [r.result for r in res] == ["created"] * len(DOCS)
    else:
        index_all(w)
    check_all(w.get)  # realtime GET from the RAM buffer
    assert w.refresh()
    check_all(w.get)  # from the segment
    w.commit()
    check_all(w.get)  # after commit (pk map from the catalog)
    w.close()
    w = reopen(tmp_path)
    assert w.replayed_ops == 0
    check_all(w.get)  # after reopen
    w.close()


def test_translog_replay_round_trip(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_all(w)
    w.close(commit=False)  # nothing committed: everything comes back from the translog
    w = reopen(tmp_path)
    assert w.replayed_ops == len(DOCS)
    check_all(w.get)
    w.refresh()
    check_all(w.get)
    w.close(commit=False)
    w = reopen(tmp_path)  # replay twice, same result
    assert w.replayed_ops == len(DOCS)
    check_all(w.get)
    w.close()
    w = reopen(tmp_path)
    assert w.replayed_ops == 0
    check_all(w.get)
    w.close()


def test_caller_source_is_not_mutated(tmp_path: Any) -> None:
    w = create(tmp_path)
    src = {"v": [1, 2, 3], "a": {"b": {"vec": [1, 2]}}}
    before = copy.deepcopy(src)
    w.index("1", src)
    w.refresh()
    same(src, before)
    w.close()


def test_knn_hits_return_the_indexed_source(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_all(w)
    w.refresh()
    w.index("late", {"v": [0.7, 0.8, 0.9], "title": "late"})
    w.refresh()  # two segments
    expected = {i: e for i, (_, e) in DOCS.items()}
    expected["late"] = {"v": [0.7, 0.8, 0.9], "title": "late"}
    with_vec = {i for i, e in expected.items() if isinstance(e.get("v"), list)}
    with w.acquire_reader() as reader:
        top = segstore.knn_search(reader, "v", np.array([0.1, 0.2, 0.3], np.float32), k=50)
        got = {}
        for sd in top.score_docs:
            leaf = reader.leaves[sd.leaf]
            got[leaf.stored_document(sd.doc)["_id"]] = leaf.source(sd.doc)
        assert set(got) == with_vec
        for doc_id, src in got.items():
            same(src, expected[doc_id])
        # the object-path field is searchable too and returns whole sources
        top2 = segstore.knn_search(reader, "a.b.vec", np.array([0.5, -1.5], np.float32), k=5)
        assert [reader.leaves[sd.leaf].stored_document(sd.doc)["_id"] for sd in top2.score_docs] == ["object_path"]
        assert top2.score_docs[0].score == 1.0
        same(reader.leaves[top2.score_docs[0].leaf].source(top2.score_docs[0].doc), expected["object_path"])
    w.close()


def test_updates_deletes_and_recreate(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("x", {"v": [1, 1, 1], "rev": 1})
    w.refresh()
    w.index("x", {"rev": 2, "v": [2, 2, 2]})
    same(w.get("x").source, {"rev": 2, "v": [2.0, 2.0, 2.0]})
    w.refresh()
    same(w.get("x").source, {"rev": 2, "v": [2.0, 2.0, 2.0]})
    w.delete("x")
    assert w.get("x") is None
    w.refresh()
    assert w.get("x") is None
    w.commit()
    assert w.get("x") is None
    w.index("x", {"rev": 3, "v": None})
    same(w.get("x").source, {"rev": 3, "v": None})
    w.close()
    w = reopen(tmp_path)
    same(w.get("x").source, {"rev": 3, "v": None})
    w.close()


def test_version_after_delete_and_recreate_does_not_depend_on_commit(tmp_path: Any) -> None:
    versions = []
    for with_commit in (False, True):
        w = create(tmp_path, name=f"v{int(with_commit)}")
        w.index("x", {"rev": 1})
        w.index("x", {"rev": 2})
        w.delete("x")
        if with_commit:
            w.commit()
        versions.append(w.index("x", {"rev": 3}).version)
        w.close()
    assert versions == [4, 4]


def test_byte_vectors_flat_index_round_trip(tmp_path: Any) -> None:
    """Flat (index.knn false) byte and binary fields keep their signed ints (derived source is off here)."""
    m = {"properties": {"b": {"type": "knn_vector", "dimension": 3, "data_type": "byte"},
                        "h": {"type": "knn_vector", "dimension": 16, "data_type": "binary"}}}
    w = create(tmp_path, mappings=m, settings={})
    w.index("1", {"b": [-128, 0, 127], "h": [-1, 5]})
    w.refresh()
    same(w.get("1").source, {"b": [-128, 0, 127], "h": [-1, 5]})
    w.close()


def test_derived_source_disabled_round_trip(tmp_path: Any) -> None:
    """With derived source off the stored source is the original (ints stay ints, as OpenSearch stores it)."""
    w = create(tmp_path, settings={"index.knn": True, "index.knn.derived_source.enabled": False})
    w.index("1", {"v": [1, 2, 3], "t": "x"})
    w.index("2", {"v": [0.1, 0.2, 0.3]})
    w.refresh()
    same(w.get("1").source, {"v": [1, 2, 3], "t": "x"})
    same(w.get("2").source, {"v": [0.1, 0.2, 0.3]})
    w.close()


# ------------------------------------------------------------------------------------------------- fuzz

# Documents must be valid for OpenSearch's dynamic mapping: a field keeps one type across all documents.
# The first letter of a key fixes its type (I long, F float, S text, B boolean, O object, L long array), so
# random documents never conflict; ``v`` and ``a`` are the mapped vector paths and never generated.
_NAME = st.text(alphabet="cdexyz", min_size=1, max_size=3)
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Nd")), max_size=8)
_LEAF = {
    "I": st.integers(min_value=-(2**53), max_value=2**53),
    "F": st.floats(min_value=-1e30, max_value=1e30, allow_nan=False).filter(lambda f: f != int(f)),
    "S": _TEXT,
    "B": st.booleans(),
    "L": st.lists(st.integers(min_value=-1000, max_value=1000), max_size=4),
}


_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _objects(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    kinds = list(_LEAF) + (["O"] if depth < 2 else [])

    @st.composite
    def obj(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(kinds))
            key = kind + draw(_NAME)
            if draw(st.integers(0, 9)) == 0:
                out[key] = None
            elif kind == "O":
                out[key] = draw(_objects(depth + 1))
            else:
                out[key] = draw(_LEAF[kind])
        return out

    return obj()


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(indexed source, expected source): random JSON plus optional vectors at random key positions."""
    body = draw(_objects(0))
    items = list(body.items())
    expected_items = list(items)
    choice = draw(st.sampled_from(["vector", "null", "absent"]))
    if choice != "absent":
        vec = draw(st.lists(_F32, min_size=3, max_size=3)) if choice == "vector" else None
        pos = draw(st.integers(0, len(items)))
        items.insert(pos, ("v", vec))
        expected_items.insert(pos, ("v", None if vec is None else [float(np.float32(x)) for x in vec]))
    if draw(st.booleans()):
        inner = draw(_objects(1))
        vec2 = draw(st.lists(_F32, min_size=2, max_size=2) | st.none())
        a = {"b": {**inner, "vec": vec2}}
        items.append(("a", a))
        expected_items.append(("a", {"b": {**inner, "vec": vec2}}))
    return dict(items), dict(expected_items)


def _float32_shortest(x: float) -> float:
    """The value GET must show for a float32 component: the shortest decimal that round-trips through
    float32 (numpy's ``str`` of a float32 is exactly that decimal), as a Python float."""
    return float(str(np.float32(x)))


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents(), min_size=1, max_size=12))
def test_fuzz_round_trip(tmp_path_factory: Any, docs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    w = create(tmp)
    expected: dict[str, Any] = {}
    for i, (src, exp) in enumerate(docs):
        w.index(str(i), copy.deepcopy(src))
        # float32 components are shown as their shortest decimal; float(np.float32) is the exact value,
        # and the shortest decimal parses back to the same float32.
        if isinstance(exp.get("v"), list):
            exp["v"] = [_float32_shortest(x) for x in exp["v"]]
        if isinstance(exp.get("a", {}).get("b", {}).get("vec"), list):
            exp["a"]["b"]["vec"] = [_float32_shortest(x) for x in exp["a"]["b"]["vec"]]
        expected[str(i)] = exp
    for stage in ("buffer", "refresh", "reopen"):
        if stage == "refresh":
            w.refresh()
        if stage == "reopen":
            w.close()
            w = reopen(tmp)
        for doc_id, exp in expected.items():
            same(w.get(doc_id).source, exp)
    w.close()


def test_random_docs_through_updates_merges_and_reopen(tmp_path: Any) -> None:
    """A seeded random workload (index, update, delete, refresh, commit, merge, reopen) against a model."""
    seed = int(os.environ.get("SEGSTORE_TEST_SEED", "20240611"))
    rng = random.Random(seed)
    w = create(tmp_path)
    model: dict[str, dict[str, Any] | None] = {}

    def rand_doc(n: int) -> dict[str, Any]:
        d: dict[str, Any] = {"n": n, "s": "".join(rng.choice("abcé✓") for _ in range(rng.randint(0, 6)))}
        if rng.random() < 0.8:
            d["v"] = [rng.randint(-5000, 5000) / 1000 for _ in range(3)]
        if rng.random() < 0.3:
            d["a"] = {"b": {"vec": [rng.randint(-99, 99) / 10 for _ in range(2)]}, "k": [1, None, 3]}
        keys = list(d)
        rng.shuffle(keys)
        return {k: d[k] for k in keys}

    def expect(d: dict[str, Any]) -> dict[str, Any]:
        e = copy.deepcopy(d)
        if "v" in e:
            e["v"] = [float(x) for x in e["v"]]
        if "a" in e:
            e["a"]["b"]["vec"] = [float(x) for x in e["a"]["b"]["vec"]]
        return e

    for step in range(400):
        doc_id = f"id{rng.randrange(120)}"
        r = rng.random()
        if r < 0.65:
            d = rand_doc(step)
            w.index(doc_id, d)
            model[doc_id] = expect(d)
        elif r < 0.85:
            w.delete(doc_id)
            model[doc_id] = None
        elif r < 0.93:
            w.refresh()
        elif r < 0.97:
            w.commit()
        elif r < 0.985:
            w.force_merge(rng.choice([1, 2]))
        else:
            w.close(commit=rng.random() < 0.5)
            w = reopen(tmp_path)
        if step % 50 == 0:
            for k, e in model.items():
                g = w.get(k)
                assert (None if g is None else g.source) == e, (seed, step, k)
    w.close()
    w = reopen(tmp_path)
    for k, e in model.items():
        g = w.get(k)
        if e is None:
            assert g is None, (seed, k)
        else:
            same(g.source, e)
    w.close()
