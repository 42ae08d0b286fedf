"""The k-NN model registry: trained models of one node, persisted in its LMDB catalog (``models`` sub-db).

A model record (vector-semantics.md §5.4) is a msgpack map::

    model_id, state ("training" | "created" | "failed"), timestamp, description, error, space_type,
    dimension, engine, data_type, mode / compression_level (only when the request set them),
    model_definition ({"name": "ivf", "parameters": {...}}), model_version, training_node_assignment,
    model_blob (bytes | None: faiss.serialize_index(_binary) of the trained, empty IVF index),
    model_blob_crc32 (int | None), model_blob_sha256 (str | None)

The blob is what ``GET`` returns base64-encoded; its CRC32 is verified every time the registry decodes it.
A decoded model (:class:`~segstore_codecs.segstore1.ivf_model.IvfModel`) is registered in the codec's
process-wide cache under the blob's sha256, so segment writers find the trained quantizer of a field from
its attributes alone.

Restarts: training runs in a background thread of the node that accepted the request; a node that stops
while a model is ``training`` leaves it so in the catalog, and :meth:`ModelRegistry.recover_models` (called
when the node opens) turns such records into ``failed`` with :data:`INTERRUPTED_ERROR`.

Model ``model_id`` fields of index mappings are resolved here too (:func:`resolve_mappings`): once the model
is ``created``, the field takes its dimension, data type, space type and IVF parameters from the model.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from segstore_codecs.segstore1.ivf_model import IvfModel, register_model

from segstore.errors import ValidationError
from segstore.index.catalog import Catalog
from segstore.mapping.mappings import Mappings
from segstore.mapping.method_resolution import INDEX_CREATED_VERSION, version_string

__all__ = [
    "INTERRUPTED_ERROR",
    "STATES",
    "DeleteModelError",
    "ModelNotFoundError",
    "ModelRegistry",
    "indices_using_model",
    "model_response",
    "pending_models",
    "registry_for",
    "resolve_mappings",
]

log = logging.getLogger(__name__)

STATES = ("training", "created", "failed")
INTERRUPTED_ERROR = "Training interrupted: the node restarted before the model was created"
MODEL_VERSION = version_string(INDEX_CREATED_VERSION)
MODELS_INDEX = ".opensearch-knn-models"
# Fields GET returns, in OpenSearch's order (Model#toXContent, ModelMetadata#toXContent).
_RESPONSE_FIELDS = ("state", "timestamp", "description", "error", "space_type", "dimension", "engine",
                    "training_node_assignment", "model_definition", "data_type", "mode", "compression_level",
                    "model_version")


class ModelNotFoundError(ValidationError):
    error_type = "resource_not_found_exception"
    status = 404


class DeleteModelError(ValidationError):
    error_type = "delete_model_exception"
    status = 409


class DeleteModelWhenInTrainStateError(ValidationError):
    error_type = "delete_model_when_in_train_state_exception"
    status = 409


def now_timestamp() -> str:
    """Java's ``ZonedDateTime.now(ZoneOffset.UTC).toString()`` (microsecond precision here)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _crc(blob: bytes) -> int:
    return zlib.crc32(blob) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------ registry


class ModelRegistry:
    """Model records of one node's catalog. Thread-safe; one per :class:`~segstore.node.Node`.

    ``close()`` marks the registry closed: a training job that finishes afterwards writes nothing (the node
    that accepted it is gone; the next node to open the catalog reports the model ``failed``)."""

    def __init__(self, catalog: Catalog, node_name: str = "segstore") -> None:
        self.catalog = catalog
        self.node_name = node_name
        self._lock = threading.RLock()
        self._closed = False
        self._jobs: dict[str, threading.Thread] = {}

    # -- lifecycle

    def recover_models(self) -> list[str]:
        """Mark every model left ``training`` by a previous run ``failed`` (call once, when the node opens)."""
        failed = []
        with self._lock:
            for record in self.catalog.list_models():
                if record.get("state") == "training":
                    record = {**record, "state": "failed", "error": INTERRUPTED_ERROR}
                    self.catalog.put_model(record["model_id"], record)
                    failed.append(record["model_id"])
        if failed:
            log.warning("models interrupted by a restart marked failed: %s", failed)
        return failed

    def close(self, timeout: float = 0.0) -> None:
        """Stop accepting results from running training jobs (optionally wait ``timeout`` s for them)."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def _write(self, model_id: str, record: dict[str, Any]) -> bool:
        with self._lock:
            if self._closed or self.catalog.closed:
                return False
            self.catalog.put_model(model_id, record)
            return True

    # -- records

    def get(self, model_id: str) -> dict[str, Any] | None:
        record = self.catalog.get_model(model_id)
        if record is not None:
            record.setdefault("model_id", model_id)
        return record

    def list(self) -> list[dict[str, Any]]:
        return self.catalog.list_models()

    def start_training(self, model_id: str, record: dict[str, Any], job: threading.Thread | None = None) -> None:
        """Persist ``record`` in state ``training`` and start ``job`` (refused if the id exists)."""
        with self._lock:
            if self._closed:
                raise ValidationError("the node is closing; training refused")
            if self.catalog.get_model(model_id) is not None:
                raise ValidationError(f'Validation Failed: 1: Model with id="{model_id}" already exists;',
                                      "action_request_validation_exception")
            self.catalog.put_model(model_id, {**record, "model_id": model_id, "state": "training",
                                              "model_blob": None, "model_blob_crc32": None,
                                              "model_blob_sha256": None, "error": ""})
            if job is not None:
                self._jobs[model_id] = job
                job.start()

    def mark_created(self, model_id: str, model: IvfModel) -> bool:
        """Store the trained model's blob and move the record to ``created``."""
        blob = model.to_blob()
        import hashlib

        sha = hashlib.sha256(blob).hexdigest()
        register_model(replace(model, sha256=sha))
        with self._lock:
            record = self.get(model_id)
            if record is None or record.get("state") != "training":
                return False
            ok = self._write(model_id, {**record, "state": "created", "error": "", "model_blob": blob,
                                        "model_blob_crc32": _crc(blob), "model_blob_sha256": sha})
            self._jobs.pop(model_id, None)
            return ok

    def mark_failed(self, model_id: str, error: str) -> bool:
        with self._lock:
            record = self.get(model_id)
            if record is None or record.get("state") != "training":
                return False
            ok = self._write(model_id, {**record, "state": "failed", "error": error})
            self._jobs.pop(model_id, None)
            return ok

    def delete(self, model_id: str) -> None:
        """DELETE: refused while training or while an index maps a field to the model (exact upstream texts)."""
        with self._lock:
            record = self.get(model_id)
            if record is None:
                raise ModelNotFoundError(f"Unable to delete model [{model_id}]. Model does not exist")
            if record.get("state") == "training":
                raise DeleteModelWhenInTrainStateError(
                    f"Cannot delete model [{model_id}]. Model is still in training")
            users = indices_using_model(self.catalog, model_id)
            if users:
                raise DeleteModelError(f"Cannot delete model [{model_id}].  Model is in use by the following "
                                       f"indices [{', '.join(users)}], which must be deleted first.")
            self.catalog.delete_model(model_id)

    # -- trained models

    def model(self, model_id: str) -> IvfModel | None:
        """The decoded trained model of a ``created`` record (None otherwise); registered in the cache."""
        record = self.get(model_id)
        return None if record is None else decode_model(record)


def decode_model(record: Mapping[str, Any]) -> IvfModel | None:
    """Decode (CRC-checked) and cache the model of a ``created`` record; None for other states."""
    if record.get("state") != "created":
        return None
    blob = record.get("model_blob")
    if not isinstance(blob, bytes) or record.get("model_blob_crc32") != _crc(blob):
        raise ValidationError(f"model [{record.get('model_id')}] is corrupt: its blob fails its CRC32",
                              "corrupt_index_exception", 500)
    model = _DECODED.get(record.get("model_blob_sha256") or "")
    if model is None:
        model = IvfModel.from_blob(blob, binary=record.get("data_type") == "binary",
                                   normalize=record.get("space_type") == "cosinesimil")
        register_model(model)
        with _DECODED_LOCK:
            _DECODED[model.sha256] = model
    return model


_DECODED: dict[str, IvfModel] = {}
_DECODED_LOCK = threading.Lock()

_REGISTRIES: dict[int, ModelRegistry] = {}
_REGISTRIES_LOCK = threading.Lock()


def registry_for(node: Any) -> ModelRegistry:
    """The node's registry: ``node.models`` when the node keeps one (see the Node patch), else one created
    on first use, attached to the node, after :meth:`ModelRegistry.recover_models`."""
    reg = getattr(node, "models", None)
    if isinstance(reg, ModelRegistry):
        return reg
    with _REGISTRIES_LOCK:
        reg = getattr(node, "models", None)
        if not isinstance(reg, ModelRegistry):
            reg = ModelRegistry(node.catalog)
            reg.recover_models()
            node.models = reg
    return reg


# ------------------------------------------------------------------------------------- REST helpers


def model_response(record: Mapping[str, Any]) -> dict[str, Any]:
    """The GET body of a model (``Model#toXContent``): model_id, model_blob (base64, "" if none), then the
    metadata; ``mode``/``compression_level`` only when the training request set them."""
    import base64

    blob = record.get("model_blob")
    out: dict[str, Any] = {"model_id": record["model_id"],
                           "model_blob": base64.b64encode(blob).decode("ascii") if blob else ""}
    for key in _RESPONSE_FIELDS:
        if key in ("mode", "compression_level") and record.get(key) is None:
            continue
        out[key] = record.get(key)
    return out


def _walk_properties(props: Any, prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(props, Mapping):
        return
    for name, spec in props.items():
        if not isinstance(spec, Mapping):
            continue
        path = f"{prefix}{name}"
        yield path, spec
        yield from _walk_properties(spec.get("properties"), path + ".")


def indices_using_model(catalog: Catalog, model_id: str) -> list[str]:
    """Indices with a ``knn_vector`` field mapped to ``model_id``, by name."""
    users = []
    for name in catalog.list_indices():
        meta = catalog.get_index(name) or {}
        mappings = meta.get("mappings") or {}
        if isinstance(mappings, Mapping) and "_doc" in mappings and len(mappings) == 1:
            mappings = mappings["_doc"]
        for _path, spec in _walk_properties((mappings or {}).get("properties")):
            if spec.get("type") == "knn_vector" and spec.get("model_id") == model_id:
                users.append(name)
                break
    return users


# --------------------------------------------------------------------------------- mapping resolution


def pending_models(mappings: Mappings) -> bool:
    """True when some ``model_id`` field is not resolved yet (cheap; no catalog access)."""
    return any(fm.model_pending for fm in mappings.vector_fields.values())


def resolve_mappings(mappings: Mappings, catalog: Catalog) -> Mappings:
    """``mappings`` with every ``model_id`` field whose model is ``created`` resolved from the model
    (vector-semantics.md §5.4). Returns the same object when nothing changed, so callers can compare
    identities. Fields whose model is missing, training or failed stay unresolved: indexing into them and
    searching them fail with ``Model ID '<id>' is not created.`` (``KnnVectorMapping.require_dimension``)."""
    if not pending_models(mappings):
        return mappings
    changed = {}
    for path, fm in mappings.vector_fields.items():
        if not fm.model_pending:
            continue
        assert fm.model_id is not None
        record = catalog.get_model(fm.model_id)
        if record is None or record.get("state") != "created":
            continue
        record.setdefault("model_id", fm.model_id)
        model = decode_model(record)
        assert model is not None
        params = (record.get("model_definition") or {}).get("parameters") or {}
        changed[path] = fm.with_model(
            dimension=int(record["dimension"]), data_type=str(record.get("data_type") or "float"),
            space_type=str(record["space_type"]), nlist=int(params.get("nlist", model.nlist)),
            nprobes=int(params.get("nprobes", 1)), model_sha256=model.sha256)
    if not changed:
        return mappings
    return replace(mappings, vector_fields={**mappings.vector_fields, **changed})
