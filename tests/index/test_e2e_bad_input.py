"""Bad input raises a typed error and writes nothing (reliability.md §8 rows 21-24).

"Nothing" means: the translog holds the same operations and the same bytes, no segment appears after a
refresh, ``max_seq_no`` does not move, the catalog metadata (mappings) is unchanged, and a reopened index
does not see the document. In a bulk, the bad item fails alone and the good ones are applied. An invalid
mapping at create time leaves no index in the catalog and no folder for it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import segstore
from segstore.errors import (
    IllegalArgumentError,
    IndexNotFoundError,
    MapperParsingError,
    ValidationError,
    VersionConflictError,
)
from segstore.index.operations import DeleteOp, IndexOp, OpResult

MAPPINGS = {
    "properties": {
        "v": {"type": "knn_vector", "dimension": 3},
        "c": {"type": "knn_vector", "dimension": 2, "space_type": "cosinesimil"},
        "b": {"type": "knn_vector", "dimension": 2, "data_type": "byte"},
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}},
        "title": {"type": "text"},
    }
}


class State:
    """Everything a rejected operation must leave untouched."""

    def __init__(self, w: segstore.IndexWriter) -> None:
        stats = w.translog.stats()
        self.ops = stats.operations
        self.tlog_bytes = {n: open(os.path.join(w.files.translog_path, n), "rb").read()
                           for n in sorted(os.listdir(w.files.translog_path)) if n.endswith(".tlog")}
        self.max_seq_no = w.max_seq_no
        self.segments = [s.name for s in w.segments()]
        self.files = w.directory.list_all()
        self.mappings = w.catalog.get_index(w.index_name)["mappings"]
        self.buffered = w.stats()["buffered_docs"]

    def assert_unchanged(self, w: segstore.IndexWriter) -> None:
        now = State(w)
        assert now.ops == self.ops
        assert now.tlog_bytes == self.tlog_bytes
        assert now.max_seq_no == self.max_seq_no
        assert now.buffered == self.buffered
        assert now.mappings == self.mappings
        assert not w.refresh()  # nothing to flush
        assert [s.name for s in w.segments()] == self.segments
        assert w.directory.list_all() == self.files


@pytest.fixture
def writer(tmp_path: Any) -> Any:
    w = segstore.create_index(str(tmp_path / "data"), "bad", settings={"index.knn": True}, mappings=MAPPINGS)
    w.index("good", {"v": [1, 2, 3], "title": "ok"})
    w.refresh()
    yield w
    w.close()


BAD_VECTORS = [
    # (source, caused_by message)
    ({"v": [1, 2]}, "Vector dimension mismatch. Expected: 3, Given: 2"),
    ({"v": [1, 2, 3, 4]}, "Vector dimension mismatch. Expected: 3, Given: 4"),
    ({"v": []}, "Vector dimension mismatch. Expected: 3, Given: 0"),
    ({"v": 7}, "Vector dimension mismatch. Expected: 3, Given: 1"),
    ({"v": [1.0, float("nan"), 2.0]}, "KNN vector values cannot be NaN"),
    ({"v": [float("inf"), 1.0, 2.0]}, "KNN vector values cannot be infinity"),
    ({"v": [1.0, 2.0, float("-inf")]}, "KNN vector values cannot be infinity"),
    ({"v": [[1], [2], [3]]}, "Current token (START_ARRAY) not numeric, can not use numeric value accessors"),
    ({"v": [{"x": 1}, 2, 3]}, "Current token (START_OBJECT) not numeric, can not use numeric value accessors"),
    ({"c": [0, 0]}, "zero vector is not supported when space type is [cosinesimil]"),
    ({"b": [200, 1]}, "[data_type] field was set as [byte] in index mapping. But, KNN vector values are not "
                      "within in the byte range [-128, 127]"),
    ({"b": [1.5, 1]}, "[data_type] field was set as [byte] in index mapping. But, KNN vector values are floats "
                      "instead of byte integers"),
    ({"a": {"b": {"vec": [1, 2, 3]}}}, "Vector dimension mismatch. Expected: 2, Given: 3"),
]


@pytest.mark.parametrize("source, reason", BAD_VECTORS, ids=[r[:40] for _, r in BAD_VECTORS])
def test_bad_vector_is_rejected_and_writes_nothing(writer: segstore.IndexWriter, source: dict[str, Any],
                                                   reason: str) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", source)
    e = ei.value
    assert e.error_type == "mapper_parsing_exception" and e.status == 400
    assert e.caused_by is not None
    assert e.caused_by.message == reason
    field = next(iter(source))
    path = "a.b.vec" if field == "a" else field
    assert e.message.startswith(f"failed to parse field [{path}] of type [knn_vector] in document with id 'x'.")
    before.assert_unchanged(writer)
    assert writer.get("x") is None


@pytest.mark.parametrize("source", [{"v": ["a", "b", "c"]}, {"v": "abc"}, {"v": {"x": 1}}])
def test_non_numeric_vector_is_rejected_and_writes_nothing(writer: segstore.IndexWriter,
                                                           source: dict[str, Any]) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", source)
    assert isinstance(ei.value.caused_by, IllegalArgumentError)
    assert "not numeric" in ei.value.caused_by.message
    before.assert_unchanged(writer)


@pytest.mark.parametrize("source", [{"v": ["a", "b", "c"]}, {"v": "abc"}])
def test_non_numeric_vector_names_the_string_token(writer: segstore.IndexWriter, source: dict[str, Any]) -> None:
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", source)
    assert ei.value.caused_by.message == \
        "Current token (VALUE_STRING) not numeric, can not use numeric value accessors"


@pytest.mark.parametrize("source, token", [({"v": [True, False, True]}, "VALUE_TRUE"),
                                           ({"v": [1.0, None, 2.0]}, "VALUE_NULL"),
                                           ({"v": [1, True, 2]}, "VALUE_TRUE"),      # numpy would make it 1
                                           ({"v": [0.5, False, 2.5]}, "VALUE_FALSE")])
def test_boolean_and_null_elements_are_rejected(writer: segstore.IndexWriter, source: dict[str, Any],
                                                token: str) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", source)
    assert ei.value.caused_by.message == f"Current token ({token}) not numeric, can not use numeric value accessors"
    before.assert_unchanged(writer)


def test_a_boolean_hidden_in_a_bulk_rejects_only_its_document(writer: segstore.IndexWriter) -> None:
    """The batch path converts a whole bulk at once; a boolean mixed with numbers in one document must still
    reject that document (and only it), as OpenSearch refuses the token."""
    res = writer.bulk([IndexOp("ok1", {"v": [1.0, 0.0, 1.0]}), IndexOp("bad", {"v": [1.0, 0.0, True]}),
                       IndexOp("ok2", {"v": [0.25, 0.5, 0.75]})])
    assert [type(r).__name__ for r in res] == ["OpResult", "MapperParsingError", "OpResult"]
    assert res[1].caused_by.message == "Current token (VALUE_TRUE) not numeric, can not use numeric value accessors"
    assert writer.get("bad") is None and writer.get("ok1").source == {"v": [1.0, 0.0, 1.0]}


def test_multiple_values_for_one_vector_field(writer: segstore.IndexWriter) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", {"a": [{"b": {"vec": [1, 2]}}, {"b": {"vec": [3, 4]}}]})
    assert ei.value.caused_by.message == ("Field [a.b.vec] of type [knn_vector] doesn't support indexing multiple "
                                         "values for the same field in the same document")
    before.assert_unchanged(writer)


@pytest.mark.parametrize("source", [[1, 2, 3], "text", None, 5])
def test_source_that_is_not_an_object(writer: segstore.IndexWriter, source: Any) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError):
        writer.index("x", source)
    before.assert_unchanged(writer)


def test_rejected_document_adds_no_dynamic_mapping(writer: segstore.IndexWriter) -> None:
    before = State(writer)
    with pytest.raises(MapperParsingError):
        writer.index("x", {"v": [1, 2], "brand_new": "text", "obj": {"n": 1}})
    before.assert_unchanged(writer)


def test_version_conflict_writes_nothing(writer: segstore.IndexWriter) -> None:
    before = State(writer)
    with pytest.raises(VersionConflictError) as ei:
        writer.index("good", {"v": [0, 0, 0]}, op_type="create")
    assert ei.value.message == "[good]: version conflict, document already exists (current version [1])"
    before.assert_unchanged(writer)


def test_version_conflict_in_bulk_slot(writer: segstore.IndexWriter) -> None:
    before = State(writer)
    (res,) = writer.bulk([IndexOp("good", {"v": [0, 0, 0]}, op_type="create")])
    assert isinstance(res, VersionConflictError)
    assert res.status == 409
    with pytest.raises(VersionConflictError):
        writer.index("good", {"v": [0, 0, 0]}, if_seq_no=99, if_primary_term=1)
    before.assert_unchanged(writer)
    assert writer.get("good").source == {"v": [1.0, 2.0, 3.0], "title": "ok"}


def test_bulk_bad_items_fail_alone(tmp_path: Any) -> None:
    w = segstore.create_index(str(tmp_path / "data"), "bulk", settings={"index.knn": True}, mappings=MAPPINGS)
    ops0 = w.translog.stats().operations
    ops = [
        IndexOp("1", {"v": [1, 2, 3], "title": "one"}),
        IndexOp("2", {"v": [1, 2]}),                         # bad dimension
        IndexOp("3", {"v": [3, 2, 1]}),
        IndexOp("4", {"v": [1, float("nan"), 1]}),           # NaN
        DeleteOp("missing"),                                 # fine: not_found, still logged
        IndexOp("5", {"c": [0, 0]}),                         # zero vector with cosine
        IndexOp("1", {"v": [9, 9, 9], "title": "one again"}),  # update inside the same bulk
        IndexOp("3", {"v": [0, 0, 0]}, op_type="create"),    # conflict with item 3 of this bulk
    ]
    res = w.bulk(ops)
    assert [type(r).__name__ for r in res] == [
        "OpResult", "MapperParsingError", "OpResult", "MapperParsingError", "OpResult", "MapperParsingError",
        "OpResult", "VersionConflictError"]
    ok = [r for r in res if isinstance(r, OpResult)]
    assert [(r.doc_id, r.result, r.version, r.seq_no) for r in ok] == [
        ("1", "created", 1, 0), ("3", "created", 1, 1), ("missing", "not_found", 1, 2), ("1", "updated", 2, 3)]
    assert all(isinstance(r, ValidationError) for r in res if not isinstance(r, OpResult))
    assert w.translog.stats().operations == ops0 + 4
    assert w.max_seq_no == 3
    for doc_id in ("2", "4", "5"):
        assert w.get(doc_id) is None
    assert w.get("1").source == {"v": [9.0, 9.0, 9.0], "title": "one again"}
    assert w.get("3").source == {"v": [3.0, 2.0, 1.0]}
    w.refresh()
    assert w.stats()["docs"] == 2
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "bulk")
    assert w.get("1").source == {"v": [9.0, 9.0, 9.0], "title": "one again"}
    assert w.get("2") is None and w.get("4") is None and w.get("5") is None
    assert w.max_seq_no == 3
    w.close()


def test_all_bad_bulk_logs_nothing(writer: segstore.IndexWriter) -> None:
    before = State(writer)
    res = writer.bulk([IndexOp("x", {"v": [1]}), IndexOp("y", {"v": [float("nan")] * 3})])
    assert all(isinstance(r, MapperParsingError) for r in res)
    before.assert_unchanged(writer)


def test_bad_documents_do_not_survive_reopen(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    w = segstore.create_index(data, "r", settings={"index.knn": True}, mappings=MAPPINGS)
    w.index("ok", {"v": [1, 1, 1]})
    for src in ({"v": [1, 2]}, {"v": [float("nan")] * 3}):
        with pytest.raises(MapperParsingError):
            w.index("bad", src)
    w.close(commit=False)
    w = segstore.open_index(data, "r")
    assert w.replayed_ops == 1
    assert w.get("bad") is None
    assert w.get("ok").source == {"v": [1.0, 1.0, 1.0]}
    w.close()


# ----------------------------------------------------------------------------------- invalid mappings


# Exact texts; the k-NN checks that OpenSearch collects in a ValidationException may render as
# "Validation Failed: 1: <text>;" after the prefix, so those are matched on prefix + core text.
INVALID_MAPPINGS = [
    ({"properties": {"bar": {"type": "foo"}}},
     "Failed to parse mapping [_doc]: No handler for type [foo] declared on field [bar]"),
    ({"properties": {"v": {"type": "knn_vector", "dimension": 16001}}},
     "Failed to parse mapping [_doc]: Dimension value cannot be greater than 16000 for vector with engine: faiss"),
    ({"properties": {"v": {"type": "knn_vector"}}},
     "Failed to parse mapping [_doc]: Dimension value missing for vector: v"),
    ({"properties": {"v": {"type": "knn_vector", "dimension": 0}}},
     "Failed to parse mapping [_doc]: Dimension value must be greater than 0 for vector: v"),
    ({"properties": {"v": {"type": "knn_vector", "dimension": "x"}}},
     "Failed to parse mapping [_doc]: Unable to parse [dimension] from provided value [x] for vector [v]"),
    ({"properties": {"v": {"type": "knn_vector", "dimension": 12, "data_type": "binary"}}},
     "Failed to parse mapping [_doc]: Dimension should be multiply of 8 for binary vector data type"),
]


@pytest.mark.parametrize("mappings, message", INVALID_MAPPINGS, ids=[m[30:70] for _, m in INVALID_MAPPINGS])
def test_invalid_mapping_creates_nothing(tmp_path: Any, mappings: dict[str, Any], message: str) -> None:
    data = str(tmp_path / "data")
    # an existing index in the same data directory must not be disturbed
    segstore.create_index(data, "other", settings={"index.knn": True}, mappings=MAPPINGS).close()
    before = sorted(os.listdir(os.path.join(data, "indices")))
    with pytest.raises(MapperParsingError) as ei:
        segstore.create_index(data, "broken", settings={"index.knn": True}, mappings=mappings)
    prefix = "Failed to parse mapping [_doc]: "
    core = message[len(prefix):]
    if "No handler" in message:  # a core mapper error: never wrapped
        assert ei.value.message == message
    else:
        assert ei.value.message in (message, f"{prefix}Validation Failed: 1: {core};")
    assert ei.value.status == 400
    with segstore.Catalog.open(data) as cat:
        assert cat.list_indices() == ["other"]
        assert cat.get_index("broken") is None
    assert sorted(os.listdir(os.path.join(data, "indices"))) == before
    with pytest.raises(IndexNotFoundError):
        segstore.open_index(data, "broken")


def test_invalid_mapping_in_fresh_data_dir_leaves_no_index_folder(tmp_path: Any) -> None:
    data = str(tmp_path / "fresh")
    with pytest.raises(MapperParsingError):
        segstore.create_index(data, "broken", settings={"index.knn": True},
                              mappings={"properties": {"bar": {"type": "foo"}}})
    assert not os.path.exists(os.path.join(data, "indices"))


def test_invalid_settings_create_nothing(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    with pytest.raises(IllegalArgumentError):
        segstore.create_index(data, "s", settings={"index.knn": True, "index.nope": 1}, mappings=MAPPINGS)
    with pytest.raises(IllegalArgumentError):
        segstore.create_index(data, "s", settings={"index.knn.derived_source.enabled": True}, mappings=MAPPINGS)
    assert not os.path.exists(os.path.join(data, "indices"))


def test_value_beyond_float32_range_is_infinity(writer: segstore.IndexWriter) -> None:
    """1e39 is finite as a JSON number but overflows float32: OpenSearch rejects it as infinity."""
    with pytest.raises(MapperParsingError) as ei:
        writer.index("x", {"v": [1e39, 1.0, 2.0]})
    assert ei.value.caused_by.message == "KNN vector values cannot be infinity"
    assert writer.get("x") is None
