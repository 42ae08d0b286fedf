"""Derived source on disk: stored ``_source`` holds the mask ``1`` where a vector was, never the vector.

Checked through the stored-fields reader (the raw record, msgpack-decoded) and by scanning the raw ``.fdt``
bytes (every zstd block decompressed) for any encoding of the vector values. With
``index.knn.derived_source.enabled: false`` the vector is stored. A force merge copies masked records as
they are, and GET still returns the vectors.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

import msgpack
import numpy as np
import zstandard

import segstore
from segstore.codec.framing import FOOTER_LENGTH
from segstore.derived_source.attributes import NESTED_KEY, ROOT_KEY

MAPPINGS = {
    "properties": {
        "v": {"type": "knn_vector", "dimension": 3},
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}},
        "title": {"type": "text"},
    }
}
# Distinctive values: their float32 / float64 / msgpack encodings cannot appear by accident.
V1 = [0.1234567, -98.7654321, 3.14159265]
V2 = [42.4242, -0.000123]
V3 = [7.77, 8.88, 9.99]


def create(tmp_path: Any, settings: dict[str, Any] | None = None, name: str = "m") -> segstore.IndexWriter:
    return segstore.create_index(str(tmp_path / "data"), name,
                                 settings=settings if settings is not None else {"index.knn": True},
                                 mappings=MAPPINGS)


def stored_sources(w: segstore.IndexWriter) -> dict[str, Any]:
    """id -> decoded stored (masked) _source of every live doc, read raw from the segments."""
    out = {}
    with w.acquire_reader() as reader:
        for leaf in reader.leaves:
            for doc in range(leaf.max_doc):
                if leaf.is_live(doc):
                    rec = leaf.stored_document(doc)
                    assert isinstance(rec["_source"], bytes)
                    out[rec["_id"]] = msgpack.unpackb(rec["_source"], raw=False)
    return out


def fdt_plain_bytes(path: str) -> bytes:
    """Decompress every zstd block of a ``.fdt`` file (header and footer skipped)."""
    data = open(path, "rb").read()
    nlen = data[4]
    pos = 5 + nlen + 4 + 16
    pos += 1 + data[pos]  # suffix
    body = data[pos : len(data) - FOOTER_LENGTH]
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
    plain = reader.read()
    assert plain, "no stored-fields block decompressed"
    return plain


def vector_encodings(vec: list[float]) -> list[bytes]:
    """Byte patterns that would betray a stored vector: raw float32/float64 arrays (LE and BE), the msgpack
    list (double and single floats), and each component's msgpack float encoding."""
    pats = [np.asarray(vec, "<f4").tobytes(), np.asarray(vec, ">f4").tobytes(),
            np.asarray(vec, "<f8").tobytes(), np.asarray(vec, ">f8").tobytes(),
            msgpack.packb(vec), msgpack.packb(vec, use_single_float=True),
            msgpack.packb([float(np.float32(x)) for x in vec])]
    for x in vec:
        pats.append(b"\xcb" + struct.pack(">d", x))
        pats.append(b"\xcb" + struct.pack(">d", float(np.float32(x))))
        pats.append(b"\xca" + struct.pack(">f", x))
    return pats


def fdt_files(w: segstore.IndexWriter) -> list[str]:
    return sorted(os.path.join(w.directory.path, f) for f in w.directory.list_all() if f.endswith(".fdt"))


def index_docs(w: segstore.IndexWriter) -> None:
    w.index("1", {"title": "alpha", "v": V1, "a": {"b": {"vec": V2, "keep": "me"}}, "n": 5})
    w.index("2", {"title": "beta", "v": None, "a": {"b": {"vec": None}}})
    w.index("3", {"title": "gamma"})
    w.index("4", {"v": V3, "title": "delta"})


def test_stored_source_holds_the_mask(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_docs(w)
    w.commit()
    stored = stored_sources(w)
    assert stored == {
        "1": {"title": "alpha", "v": 1, "a": {"b": {"vec": 1, "keep": "me"}}, "n": 5},
        "2": {"title": "beta", "v": None, "a": {"b": {"vec": None}}},
        "3": {"title": "gamma"},
        "4": {"v": 1, "title": "delta"},
    }
    assert type(stored["1"]["v"]) is int and stored["1"]["v"] == 1
    assert list(stored["1"]) == ["title", "v", "a", "n"]  # key order kept in the stored copy
    # GET still returns the vectors (float32 shortest decimals).
    assert w.get("1").source == {"title": "alpha", "v": [0.1234567, -98.765434, 3.1415927],
                                 "a": {"b": {"vec": [42.4242, -0.000123], "keep": "me"}}, "n": 5}
    w.close()


def test_segment_attributes_list_the_derived_paths(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_docs(w)
    w.refresh()
    with w.acquire_reader() as reader:
        (leaf,) = reader.leaves
        attrs = leaf.commit_info.info.attributes
        assert attrs[ROOT_KEY] == "v,a.b.vec"
        assert NESTED_KEY not in attrs
    w.close()
    # and the attribute is persisted in the .si (read back by a fresh reader)
    reader = segstore.open_reader(str(tmp_path / "data"), "m")
    try:
        assert reader.leaves[0].commit_info.info.attributes[ROOT_KEY] == "v,a.b.vec"
    finally:
        reader.close()


def test_raw_fdt_bytes_hold_no_vector(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_docs(w)
    w.commit()
    (fdt,) = fdt_files(w)
    plain = fdt_plain_bytes(fdt)
    raw = open(fdt, "rb").read()
    # positive controls: the scan does see the stored records
    assert b"alpha" in plain and b"delta" in plain and b"keep" in plain
    assert msgpack.packb({"title": "alpha", "v": 1})[1:] in plain  # the masked pair "title":"alpha","v":1
    for vec in (V1, V2, V3):
        for pat in vector_encodings(vec):
            assert pat not in plain, (vec, pat)
            assert pat not in raw, (vec, pat)
    w.close()


def test_derived_source_disabled_stores_the_vector(tmp_path: Any) -> None:
    w = create(tmp_path, settings={"index.knn": True, "index.knn.derived_source.enabled": False})
    index_docs(w)
    w.commit()
    stored = stored_sources(w)
    assert stored["1"] == {"title": "alpha", "v": V1, "a": {"b": {"vec": V2, "keep": "me"}}, "n": 5}
    assert stored["4"]["v"] == V3
    (fdt,) = fdt_files(w)
    plain = fdt_plain_bytes(fdt)
    assert msgpack.packb(V1) in plain and msgpack.packb(V2) in plain
    with w.acquire_reader() as reader:
        assert ROOT_KEY not in reader.leaves[0].commit_info.info.attributes
    assert w.get("1").source["v"] == V1  # the original source, unchanged
    w.close()


def test_flat_index_stores_the_vector(tmp_path: Any) -> None:
    """``index.knn`` false: derived source does not apply (the setting defaults to index.knn)."""
    w = create(tmp_path, settings={})
    index_docs(w)
    w.refresh()
    assert stored_sources(w)["4"]["v"] == V3
    w.close()


def test_force_merge_keeps_source_masked(tmp_path: Any) -> None:
    w = create(tmp_path)
    index_docs(w)
    w.refresh()
    w.index("5", {"v": [5.5, 6.5, 7.5], "title": "epsilon"})
    w.index("6", {"a": {"b": {"vec": [1.25, 2.25]}}, "title": "zeta"})
    w.delete("3")
    w.refresh()
    w.index("7", {"title": "eta", "v": [0.5, 0.25, 0.125]})
    w.refresh()
    assert len(w.segments()) == 3
    w.force_merge(1)
    assert len(w.segments()) == 1
    stored = stored_sources(w)
    assert stored == {
        "1": {"title": "alpha", "v": 1, "a": {"b": {"vec": 1, "keep": "me"}}, "n": 5},
        "2": {"title": "beta", "v": None, "a": {"b": {"vec": None}}},
        "4": {"v": 1, "title": "delta"},
        "5": {"v": 1, "title": "epsilon"},
        "6": {"a": {"b": {"vec": 1}}, "title": "zeta"},
        "7": {"title": "eta", "v": 1},
    }
    with w.acquire_reader() as reader:
        (leaf,) = reader.leaves
        assert leaf.commit_info.info.attributes[ROOT_KEY].split(",") == ["v", "a.b.vec"]
        assert leaf.commit_info.info.diagnostics["source"] == "merge"
    (fdt,) = fdt_files(w)
    plain = fdt_plain_bytes(fdt)
    assert b"epsilon" in plain
    for vec in (V1, V2, V3, [5.5, 6.5, 7.5], [1.25, 2.25]):
        for pat in vector_encodings(vec)[:6]:
            assert pat not in plain, (vec, pat)
    expected = {
        "1": {"title": "alpha", "v": [0.1234567, -98.765434, 3.1415927],
              "a": {"b": {"vec": [42.4242, -0.000123], "keep": "me"}}, "n": 5},
        "2": {"title": "beta", "v": None, "a": {"b": {"vec": None}}},
        "4": {"v": [7.77, 8.88, 9.99], "title": "delta"},
        "5": {"v": [5.5, 6.5, 7.5], "title": "epsilon"},
        "6": {"a": {"b": {"vec": [1.25, 2.25]}}, "title": "zeta"},
        "7": {"title": "eta", "v": [0.5, 0.25, 0.125]},
    }
    for doc_id, src in expected.items():
        assert w.get(doc_id).source == src, doc_id
    assert w.get("3") is None
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    for doc_id, src in expected.items():
        assert w.get(doc_id).source == src, doc_id
    w.close()


def test_merge_of_segments_with_and_without_a_vector_field(tmp_path: Any) -> None:
    """A segment where no document has ``a.b.vec`` has no such field; after merging with one that has it,
    the masked sources of both inputs still map back to the right vectors (and absent stays absent)."""
    w = create(tmp_path)
    w.index("only_v", {"v": [1, 2, 3]})
    w.refresh()
    w.index("only_ab", {"a": {"b": {"vec": [4, 5]}}})
    w.index("neither", {"x": 1})
    w.refresh()
    w.force_merge(1)
    assert stored_sources(w) == {"only_v": {"v": 1}, "only_ab": {"a": {"b": {"vec": 1}}}, "neither": {"x": 1}}
    assert w.get("only_v").source == {"v": [1.0, 2.0, 3.0]}
    assert w.get("only_ab").source == {"a": {"b": {"vec": [4.0, 5.0]}}}
    assert w.get("neither").source == {"x": 1}
    w.close()
