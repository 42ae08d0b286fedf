"""ModelRegistry and mapping resolution, without the REST layer: restart recovery, state transitions,
blob integrity, which indices use a model, and model_id field resolution."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from segstore.errors import ValidationError
from segstore.index.catalog import Catalog
from segstore.mapping.mappings import Mappings
from segstore.models.registry import (
    INTERRUPTED_ERROR,
    ModelRegistry,
    decode_model,
    indices_using_model,
    model_response,
    pending_models,
    resolve_mappings,
)
from segstore.models.training import TrainRequest, train_ivf


@pytest.fixture
def catalog(tmp_path: Any) -> Any:
    c = Catalog.open(tmp_path)
    yield c
    c.close()


def trained_model(dim: int = 4) -> Any:
    req = TrainRequest("m", "i", "f", dim, "", "float", "l2", "faiss", "ivf", {"nlist": 2, "nprobes": 3}, {},
                       None, None, None)
    return train_ivf(req, np.random.default_rng(0).normal(size=(50, dim)).astype(np.float32))


def base_record(**extra: Any) -> dict[str, Any]:
    return {"timestamp": "t", "description": "", "space_type": "l2", "dimension": 4, "engine": "faiss",
            "training_node_assignment": "segstore", "data_type": "float", "mode": None, "compression_level": None,
            "model_definition": {"name": "ivf", "parameters": {"nlist": 2, "nprobes": 3}}, "model_version": "3.3.0",
            **extra}


def test_lifecycle_and_recovery(catalog: Any) -> None:
    reg = ModelRegistry(catalog)
    reg.start_training("a", base_record())
    reg.start_training("b", base_record())
    with pytest.raises(ValidationError, match='Model with id="a" already exists'):
        reg.start_training("a", base_record())
    assert reg.mark_created("a", trained_model())
    assert not reg.mark_failed("a", "late")  # only a training model changes state
    assert reg.get("a")["state"] == "created" and reg.get("b")["state"] == "training"
    # a new node on the same catalog: "b" was interrupted
    again = ModelRegistry(catalog)
    assert again.recover_models() == ["b"]
    assert (again.get("b")["state"], again.get("b")["error"]) == ("failed", INTERRUPTED_ERROR)
    assert again.recover_models() == []


def test_closed_registry_records_nothing(catalog: Any) -> None:
    reg = ModelRegistry(catalog)
    reg.start_training("a", base_record())
    reg.close()
    assert not reg.mark_created("a", trained_model())
    assert reg.get("a")["state"] == "training"


def test_blob_crc_is_checked(catalog: Any) -> None:
    reg = ModelRegistry(catalog)
    reg.start_training("a", base_record())
    reg.mark_created("a", trained_model())
    record = reg.get("a")
    model = decode_model(record)
    assert model.nlist == 2 and model.dimension == 4 and model.kind == "flat"
    bad = dict(record, model_blob=record["model_blob"][:-1] + bytes([record["model_blob"][-1] ^ 1]), model_blob_sha256="x")
    with pytest.raises(ValidationError, match="fails its CRC32"):
        decode_model(bad)
    assert model_response(record)["model_blob"] != "" and "model_blob_crc32" not in model_response(record)


def test_indices_using_model(catalog: Any) -> None:
    catalog.create_index("x", b"x" * 16, {"mappings": {"_doc": {"properties": {"o": {"properties": {
        "v": {"type": "knn_vector", "model_id": "m"}}}}}}})
    catalog.create_index("y", b"y" * 16, {"mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 3}}}})
    catalog.create_index("z", b"z" * 16, {"mappings": {"properties": {"v": {"type": "knn_vector", "model_id": "n"}}}})
    assert indices_using_model(catalog, "m") == ["x"]
    assert indices_using_model(catalog, "n") == ["z"]


def test_resolve_mappings(catalog: Any) -> None:
    mappings = Mappings.parse({"properties": {"v": {"type": "knn_vector", "model_id": "a"},
                                              "w": {"type": "knn_vector", "dimension": 2}}}, index_knn=True)
    assert pending_models(mappings)
    assert resolve_mappings(mappings, catalog) is mappings  # no such model: unchanged, same object
    reg = ModelRegistry(catalog)
    reg.start_training("a", base_record())
    assert resolve_mappings(mappings, catalog) is mappings
    reg.mark_created("a", trained_model())
    resolved = resolve_mappings(mappings, catalog)
    fm = resolved.vector_fields["v"]
    assert (fm.dimension, fm.data_type, fm.space_type, fm.engine, fm.method, fm.nlist, fm.nprobes) == (
        4, "float", "l2", "faiss", "ivf", 2, 3)
    attrs = fm.field_attributes()
    assert attrs["model_id"] == "a" and attrs["ivf.model_sha256"] == fm.model_sha256 and "encoder" not in attrs
    assert not pending_models(resolved) and resolve_mappings(resolved, catalog) is resolved
    assert resolved.vector_fields["w"] is mappings.vector_fields["w"]
    assert mappings.vector_fields["v"].dimension is None  # the input is not modified
