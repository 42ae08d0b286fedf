"""The k-NN model training API through opensearch-py (vector-semantics.md §5): every request and validation
error with its exact text and type, the training -> created / failed lifecycle, restarts, GET / DELETE /
_search responses."""

from __future__ import annotations

import base64
import threading
from typing import Any

import numpy as np
import pytest
from opensearchpy.exceptions import (
    ConflictError,
    NotFoundError,
    RequestError,
    TransportError,
)

import segstore
from segstore.models import training
from segstore.models.registry import INTERRUPTED_ERROR
from tests.models.conftest import add_model_routes, wait_for_state

DIM = 4


def error_of(exc: pytest.ExceptionInfo[TransportError]) -> tuple[int, str, str]:
    err = exc.value.info["error"]
    return exc.value.status_code, err["type"], err["reason"]


def make_training_index(client: Any, name: str = "train", n: int = 64, dim: int = DIM, data_type: str = "float",
                        seed: int = 0) -> np.ndarray:
    client.indices.create(index=name, body={"mappings": {"properties": {
        "f": {"type": "knn_vector", "dimension": dim, "data_type": data_type}, "title": {"type": "keyword"}}}})
    rng = np.random.default_rng(seed)
    if data_type == "float":
        rows = rng.normal(size=(n, dim)).astype(np.float32)
    else:
        width = dim // 8 if data_type == "binary" else dim
        rows = rng.integers(-128, 128, (n, width))
    body = "".join(f'{{"index": {{"_index": "{name}", "_id": "{i}"}}}}\n{{"f": {r.tolist()}}}\n'
                   for i, r in enumerate(rows))
    client.bulk(body=body, params={"refresh": "true"})
    return rows


def train(client: Any, model_id: str | None = "m", **body: Any) -> Any:
    req = {"training_index": "train", "training_field": "f", "dimension": DIM,
           "method": {"name": "ivf", "engine": "faiss", "space_type": "l2", "parameters": {"nlist": 2}}}
    req.update(body)
    req = {k: v for k, v in req.items() if v is not None}
    return client.plugins.knn.train_model(model_id=model_id, body=req)


# ------------------------------------------------------------------------------------- request parsing


@pytest.mark.parametrize("body, message", [
    ({"bogus": 1}, 'Unable to parse token. "bogus" is not a valid parameter.'),
    ({"method": None}, 'At least "[method]", "[mode]" or "[compression_level]" needs to be set'),
    ({"dimension": None}, 'Request did not set "dimension.'),
    ({"training_index": None}, 'Request did not set "training_index.'),
    ({"training_field": None}, 'Request did not set "training_field.'),
    ({"description": "a,b"}, "Model description cannot contain any commas: ','"),
    ({"data_type": "half"}, "Invalid value provided for [data_type] field. Supported values are [binary,byte,float]"),
    ({"mode": "on_disk", "data_type": "byte", "method": None},
     'When "[mode]" or "[compression_level]" is set, "[data_type]" must be set to "[float]"'),
    ({"space_type": "l3"}, "Unable to find space: l3 . Valid values are: [l2, cosinesimil, l1, linf, innerproduct, hamming]"),
    ({"space_type": "innerproduct"}, 'Cannot specify conflicting space types: "[l2]" "[innerproduct]"'),
    ({"engine": "lucene"}, "Cannot specify engine other than FAISS for training"),
    ({"method": {"name": "ivf", "engine": "lucene"}}, 'Cannot use "lucene" engine from training context'),
    ({"engine": "x"}, "Invalid engine type: x"),
])
def test_request_errors(client: Any, body: dict[str, Any], message: str) -> None:
    make_training_index(client)
    with pytest.raises(RequestError) as e:
        train(client, **body)
    assert error_of(e) == (400, "illegal_argument_exception", message)


def test_method_parse_errors_are_mapper_parsing(client: Any) -> None:
    make_training_index(client)
    with pytest.raises(RequestError) as e:
        train(client, method={"name": "ivf", "params": {}})
    assert error_of(e)[1:] == ("mapper_parsing_exception", "Invalid parameter: params")


# ------------------------------------------------------------------------------------------ validation


def _validation(client: Any, message: str, **body: Any) -> None:
    with pytest.raises(RequestError) as e:
        train(client, **body)
    assert error_of(e) == (400, "action_request_validation_exception", f"Validation Failed: {message}")


def test_validation_errors(client: Any) -> None:
    make_training_index(client)
    client.indices.create(index="other", body={"mappings": {"properties": {
        "kw": {"type": "keyword"}, "b": {"type": "knn_vector", "dimension": 8, "data_type": "binary"},
        "obj": {"properties": {"v": {"type": "knn_vector", "dimension": 3}}}}}})
    _validation(client, "1: Method does not require training.;", method={"name": "hnsw", "engine": "faiss"})
    _validation(client, "1: Unknown parameter 'nlists' found;", method={"name": "ivf", "parameters": {"nlists": 3}})
    _validation(client, '1: Index "nope" does not exist.;', training_index="nope")
    _validation(client, '1: Description exceeds limit of 1000 characters;2: Index "nope" does not exist.;',
                training_index="nope", description="x" * 1001)
    _validation(client, '1: Field "g" does not exist.;', training_field="g")
    _validation(client, '1: Field "kw" is not of type knn_vector.;', training_index="other", training_field="kw")
    _validation(client, '1: Field "f" has data type float, which is different from data type used in the training '
                'request: byte;', data_type="byte")
    _validation(client, '1: Field "f" has dimension 4, which is different from dimension specified in the training '
                "request: 8;", dimension=8)
    _validation(client, '1: Field "obj.v" has dimension 3, which is different from dimension specified in the '
                "training request: 4;", training_index="other", training_field="obj.v")
    # the method check (sq is float-only) and the field check both report, as upstream collects them
    _validation(client, "1: parameter validation failed for MethodComponentContext parameter [encoder].;"
                "2: encoder is not supported for vector data type [binary];", training_index="other",
                training_field="b", dimension=8, data_type="binary",
                method={"name": "ivf", "space_type": "hamming", "parameters": {"encoder": {"name": "sq"}}})
    with pytest.raises(RequestError) as e:
        client.plugins.knn.train_model(model_id="m2", body={
            "training_index": "train", "training_field": "f", "dimension": DIM,
            "method": {"name": "ivf", "parameters": {"nlist": 2}}}, params={"preference": "elsewhere"})
    assert error_of(e)[2] == 'Validation Failed: 1: Preferred node "elsewhere" does not exist;'


def test_model_id_exists(client: Any) -> None:
    make_training_index(client)
    train(client)
    wait_for_state(client, "m")
    _validation(client, '1: Model with id="m" already exists;')


def test_field_mapped_to_a_model(client: Any) -> None:
    """The training field's dimension may come from a created model; not created -> its own error."""
    make_training_index(client)
    train(client)
    wait_for_state(client, "m")
    client.indices.create(index="second", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "mv": {"type": "knn_vector", "model_id": "m"}, "pending": {"type": "knn_vector", "model_id": "zzz"}}}})
    client.index(index="second", id="1", body={"mv": [1, 2, 3, 4]}, params={"refresh": "true"})
    _validation(client, '1: Model "zzz" for field "pending" is not created.;', model_id="n", training_index="second",
                training_field="pending")
    _validation(client, '1: Field "mv" has dimension 4, which is different from dimension specified in the '
                "training request: 5;", model_id="n", training_index="second", training_field="mv", dimension=5)


def test_pq_training_count_checks(client: Any) -> None:
    make_training_index(client, n=20)
    pq = {"name": "ivf", "parameters": {"nlist": 2, "encoder": {"name": "pq", "parameters": {"m": 3}}}}
    with pytest.raises(RequestError) as e:
        train(client, method=pq)
    assert error_of(e) == (400, "illegal_argument_exception",
                           "Training request ENCODER_PARAMETER_PQ_M is not divisible by vector dimensions")
    pq["parameters"]["encoder"]["parameters"] = {"m": 2, "code_size": 8}
    with pytest.raises(RequestError) as e:
        train(client, method=pq)
    assert error_of(e)[2] == "Number of training points should be greater than 256"


def test_max_training_vector_count_and_search_size_ranges(client: Any) -> None:
    make_training_index(client)
    with pytest.raises(RequestError) as e:
        train(client, max_training_vector_count=0)
    assert error_of(e)[2] == "Maximum vector count 0 is invalid. Maximum vector count must be greater than 0"
    with pytest.raises(RequestError) as e:
        train(client, search_size=10001)
    assert error_of(e)[2] == "Search size 10001 is invalid. Search size must be between 0 and 10,000"


# ------------------------------------------------------------------------------------------- lifecycle


def test_created_model_response(client: Any) -> None:
    make_training_index(client)
    assert train(client, description="my model") == {"model_id": "m"}
    body = wait_for_state(client, "m")
    assert list(body) == ["model_id", "model_blob", "state", "timestamp", "description", "error", "space_type",
                          "dimension", "engine", "training_node_assignment", "model_definition", "data_type",
                          "model_version"]
    assert body["state"] == "created" and body["error"] == "" and body["description"] == "my model"
    assert (body["space_type"], body["dimension"], body["engine"], body["data_type"]) == ("l2", 4, "faiss", "float")
    assert body["model_definition"] == {"name": "ivf", "parameters": {"nlist": 2, "nprobes": 1}}
    assert body["timestamp"].endswith("Z") and body["model_version"] == "3.3.0"
    assert base64.b64decode(body["model_blob"])[:4] == b"IwFl"  # faiss IndexIVFFlat
    assert client.plugins.knn.get_model(model_id="m", params={"filter_path": "state"}) == {"state": "created"}


def test_train_without_id_gets_a_random_id(client: Any) -> None:
    make_training_index(client)
    model_id = client.plugins.knn.train_model(body={
        "training_index": "train", "training_field": "f", "dimension": DIM, "method": {"name": "ivf",
                                                                                         "parameters": {"nlist": 2}}})["model_id"]
    assert len(model_id) == 20
    assert wait_for_state(client, model_id)["state"] == "created"


def test_too_few_points_fails_with_faiss_message(client: Any) -> None:
    make_training_index(client, n=4)
    train(client, method={"name": "ivf", "parameters": {"nlist": 16}})
    body = wait_for_state(client, "m")
    assert body["state"] == "failed" and body["model_blob"] == ""
    assert body["error"].startswith("Failed to execute training. ")
    assert "Number of training points (4) should be at least as large as number of clusters (16)" in body["error"]


def test_max_training_vector_count_limits_the_data(client: Any) -> None:
    make_training_index(client, n=64)
    train(client, max_training_vector_count=3, method={"name": "ivf", "parameters": {"nlist": 4}})
    body = wait_for_state(client, "m")
    assert body["state"] == "failed" and "Number of training points (3)" in body["error"]


def test_mode_and_compression_are_returned_when_set(client: Any) -> None:
    make_training_index(client)
    train(client, method={"name": "ivf", "parameters": {"nlist": 2}}, mode="in_memory")
    body = wait_for_state(client, "m")
    assert body["mode"] == "in_memory" and "compression_level" not in body


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Holds every training job in state ``training`` until the event is set."""
    release = threading.Event()
    monkeypatch.setattr(training, "TRAINING_HOOK", lambda model_id: release.wait(30))
    yield release
    release.set()


def test_delete_errors(client: Any, held: threading.Event) -> None:
    make_training_index(client)
    with pytest.raises(NotFoundError) as e:
        client.plugins.knn.delete_model(model_id="nope")
    assert error_of(e) == (404, "resource_not_found_exception", "Unable to delete model [nope]. Model does not exist")
    train(client)
    assert client.plugins.knn.get_model(model_id="m")["state"] == "training"
    with pytest.raises(ConflictError) as e:
        client.plugins.knn.delete_model(model_id="m")
    assert error_of(e) == (409, "delete_model_when_in_train_state_exception",
                           "Cannot delete model [m]. Model is still in training")
    held.set()
    wait_for_state(client, "m")
    client.indices.create(index="b-uses", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "model_id": "m"}}}})
    client.indices.create(index="a-uses", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "o": {"properties": {"v": {"type": "knn_vector", "model_id": "m"}}}}}})
    with pytest.raises(ConflictError) as e:
        client.plugins.knn.delete_model(model_id="m")
    assert error_of(e) == (409, "delete_model_exception", "Cannot delete model [m].  Model is in use by the following "
                           "indices [a-uses, b-uses], which must be deleted first.")
    client.indices.delete(index="a-uses")
    client.indices.delete(index="b-uses")
    assert client.plugins.knn.delete_model(model_id="m") == {"model_id": "m", "result": "deleted"}
    with pytest.raises(NotFoundError) as e:
        client.plugins.knn.get_model(model_id="m")
    assert error_of(e) == (404, "resource_not_found_exception", 'Model " m " does not exist')


def test_index_and_search_fail_until_created(client: Any, held: threading.Event) -> None:
    make_training_index(client)
    train(client)
    client.indices.create(index="uses", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "model_id": "m"}}}})
    with pytest.raises(RequestError) as e:
        client.index(index="uses", id="1", body={"v": [1, 2, 3, 4]})
    assert e.value.info["error"]["caused_by"]["reason"] == "Model ID 'm' is not created."
    with pytest.raises(RequestError) as e:
        client.search(index="uses", body={"query": {"knn": {"v": {"vector": [1, 2, 3, 4], "k": 1}}}})
    assert e.value.info["error"]["root_cause"][0]["reason"].endswith("Model ID 'm' is not created.")
    held.set()
    wait_for_state(client, "m")
    client.index(index="uses", id="1", body={"v": [1, 2, 3, 4]}, params={"refresh": "true"})
    hits = client.search(index="uses", body={"query": {"knn": {"v": {"vector": [1, 2, 3, 4], "k": 1}}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["1"] and hits["hits"]["hits"][0]["_score"] == 1.0


def test_restart_during_training_reports_failed(tmp_path: Any, integration: None, held: threading.Event) -> None:
    data = tmp_path / "data"
    client = add_model_routes(segstore.connect(data))
    make_training_index(client)
    train(client)
    assert client.plugins.knn.get_model(model_id="m")["state"] == "training"
    node = client.transport.node
    job = node.models._jobs["m"]
    client.close()  # the node stops while the job is held in training
    client = add_model_routes(segstore.connect(data))
    try:
        body = client.plugins.knn.get_model(model_id="m")
        assert (body["state"], body["error"]) == ("failed", INTERRUPTED_ERROR)
        held.set()
        job.join(30)
        assert not job.is_alive()
        body = client.plugins.knn.get_model(model_id="m")  # the old job recorded nothing
        assert (body["state"], body["error"], body["model_blob"]) == ("failed", INTERRUPTED_ERROR, "")
    finally:
        client.close()


def test_created_model_survives_restart(tmp_path: Any, integration: None) -> None:
    data = tmp_path / "data"
    client = add_model_routes(segstore.connect(data))
    make_training_index(client)
    train(client)
    before = wait_for_state(client, "m")
    client.indices.create(index="uses", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "model_id": "m"}}}})
    client.index(index="uses", id="1", body={"v": [1, 2, 3, 4]}, params={"refresh": "true"})
    client.close()
    client = add_model_routes(segstore.connect(data))
    try:
        assert client.plugins.knn.get_model(model_id="m") == before
        client.index(index="uses", id="2", body={"v": [4, 3, 2, 1]}, params={"refresh": "true"})
        hits = client.search(index="uses", body={"query": {"knn": {"v": {"vector": [4, 3, 2, 1], "k": 2}}}})
        assert [h["_id"] for h in hits["hits"]["hits"]] == ["2", "1"]
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- search


def test_search_models(client: Any) -> None:
    make_training_index(client)
    train(client, model_id="a", description="first")
    train(client, model_id="b", method={"name": "ivf", "parameters": {"nlist": 100}})
    wait_for_state(client, "a")
    wait_for_state(client, "b")
    res = client.plugins.knn.search_models(body={"query": {"match_all": {}}})
    assert res["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert [(h["_index"], h["_id"]) for h in res["hits"]["hits"]] == [(".opensearch-knn-models", "a"),
                                                                       (".opensearch-knn-models", "b")]
    assert res["hits"]["hits"][0]["_source"]["description"] == "first"
    res = client.plugins.knn.search_models(body={"query": {"term": {"state": "failed"}}})
    assert [h["_id"] for h in res["hits"]["hits"]] == ["b"]
    res = client.plugins.knn.search_models(body={"query": {"ids": {"values": ["a", "zz"]}}, "_source": ["state"]})
    assert res["hits"]["hits"] == [{"_index": ".opensearch-knn-models", "_id": "a", "_score": 1.0,
                                    "_source": {"state": "created"}}]
    res = client.plugins.knn.search_models(body={"query": {"bool": {"filter": [{"term": {"dimension": 4}}],
                                                                    "must_not": [{"term": {"_id": "a"}}]}}})
    assert [h["_id"] for h in res["hits"]["hits"]] == ["b"]
    res = client.plugins.knn.search_models(body={"size": 1, "from": 1})
    assert [h["_id"] for h in res["hits"]["hits"]] == ["b"] and res["hits"]["total"]["value"] == 2
