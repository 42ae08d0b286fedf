"""Model training (vector-semantics.md §5): the background job that trains a model.

The train request, its parsing and its validation are :mod:`segstore.models.train_request`.

:func:`start_training` persists the model in state ``training`` and starts a daemon thread that reads the
training vectors of the training index through a point-in-time reader (at most
``max_training_vector_count`` live vectors, in index order), trains a faiss IVF with the model's metric and
encoder, and moves the record to ``created`` (with the blob) or ``failed`` (``Failed to execute training.
<faiss message>``, e.g. faiss's ``'nx >= k'`` check when there are fewer vectors than ``nlist``).

What is trained:

=========  =============  ===========================================================================
data type  encoder        faiss
=========  =============  ===========================================================================
float      flat (default) ``IndexIVFFlat`` (l2: ``IndexFlatL2`` quantizer; innerproduct: IP; cosinesimil:
                          IP over L2-normalised training vectors)
float      sq             ``IndexIVFScalarQuantizer`` ``QT_fp16`` (residual encoding, faiss's default)
byte       flat           ``IndexIVFScalarQuantizer`` ``QT_8bit_direct_signed`` without residuals (exact
                          int8 values), as OpenSearch's ``IVFn,SQ8_direct_signed``
binary     flat           ``IndexBinaryIVF`` (Hamming)
=========  =============  ===========================================================================

The ``pq`` and ``binary`` encoders (and so ``mode``/``compression_level``, which resolve to an encoder)
pass validation like upstream but their training fails with a clear error: segstore's IVF graphs do not
store PQ or BQ codes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import faiss as _faiss
import numpy as np
from segstore_codecs.segstore1.ivf_model import IvfModel

from segstore.models.registry import MODEL_VERSION, ModelRegistry, now_timestamp
from segstore.models.train_request import (
    TrainRequest,
    validate_train_request,
    validate_training_count,
)

__all__ = [
    "TRAINING_HOOK",
    "TrainRequest",
    "collect_training_vectors",
    "start_training",
    "train_ivf",
]

log = logging.getLogger(__name__)
faiss: Any = _faiss
#: Called in the training thread (with the model id) before the vectors are read: tests use it to hold a
#: job in ``training`` (e.g. to close the node meanwhile). None in production.
TRAINING_HOOK: Callable[[str], None] | None = None


# ----------------------------------------------------------------------------------------- training


def collect_training_vectors(reader: Any, field_name: str, limit: int | None) -> np.ndarray | None:
    """Live vectors of ``field_name`` in index order (at most ``limit``); None if no segment has the field."""
    parts: list[np.ndarray] = []
    total = 0
    for leaf in reader.leaves:
        values = leaf.vector_values(field_name)
        if values is None or values.size == 0:
            continue
        live = leaf.live_ords(field_name)
        rows = values.vectors if live is None else values.vectors[live]
        if limit is not None:
            rows = rows[: max(0, limit - total)]
        parts.append(np.array(rows))
        total += rows.shape[0]
        if limit is not None and total >= limit:
            break
    return np.concatenate(parts) if parts else None


def _supported_encoder(req: TrainRequest) -> str:
    enc = req.encoder
    if req.data_type == "binary":
        return "binary"
    if req.data_type == "byte":
        return "sq8_direct"
    if enc is None or enc.name == "flat":
        return "flat"
    if enc.name == "sq":
        return "sq_fp16"
    raise ValueError(f"segstore's IVF graphs support the [flat] and [sq] encoders; the [{enc.name}] encoder "
                     "cannot be trained")


def train_ivf(req: TrainRequest, vectors: np.ndarray) -> IvfModel:
    """Train the model's faiss IVF on ``vectors`` (canonical rows) and return it decomposed."""
    kind = _supported_encoder(req)
    d, nlist = req.dimension, req.nlist
    if kind == "binary":
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, nlist)
        data = np.ascontiguousarray(vectors, dtype=np.uint8).view(np.uint8)
    else:
        ip = req.space_type in ("innerproduct", "cosinesimil")
        metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        if kind == "flat":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
        elif kind == "sq_fp16":
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_fp16, metric, True)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist,
                                                  faiss.ScalarQuantizer.QT_8bit_direct_signed, metric, False)
        data = np.asarray(vectors, dtype=np.float32)
        if req.space_type == "cosinesimil":
            norms = np.sqrt((data * data).sum(axis=1, keepdims=True, dtype=np.float32))
            data = np.divide(data, norms, out=np.zeros_like(data), where=norms > 0)
        data = np.ascontiguousarray(data)
    index.cp.min_points_per_centroid = 1  # faiss would only print a warning below 39 points per list
    index.train(data)
    return IvfModel.from_faiss(index, normalize=req.space_type == "cosinesimil")


def _run(registry: ModelRegistry, req: TrainRequest, reader: Any) -> None:
    try:
        try:
            hook = TRAINING_HOOK
            if hook is not None:
                hook(req.model_id)
            vectors = collect_training_vectors(reader, req.training_field, req.max_training_vector_count)
        finally:
            reader.dec_ref()
        if vectors is None:
            width = req.dimension // 8 if req.data_type == "binary" else req.dimension
            vectors = np.zeros((0, width), dtype=np.float32)
        model = train_ivf(req, vectors)
    except Exception as e:  # noqa: BLE001 - every failure is recorded in the model
        log.info("training of model [%s] failed: %s", req.model_id, e)
        try:
            registry.mark_failed(req.model_id, f"Failed to execute training. {e}")
        except Exception as e2:  # noqa: BLE001 - e.g. the node closed its catalog meanwhile
            log.warning("could not record the failure of model [%s]: %r", req.model_id, e2)
        return
    try:
        registry.mark_created(req.model_id, model)
    except Exception as e:  # noqa: BLE001
        log.warning("could not record model [%s]: %r", req.model_id, e)


def start_training(node: Any, registry: ModelRegistry, req: TrainRequest) -> str:
    """Validate, persist the ``training`` record and start the job; returns the model id."""
    validate_train_request(req, registry, registry.node_name)
    writer = node.writer(req.training_index)
    writer.refresh()  # train on what the index holds now, as a search after a refresh would see it
    reader = writer.acquire_reader()
    try:
        available = sum(
            int(leaf.vector_values(req.training_field).size if leaf.live_ords(req.training_field) is None
                else leaf.live_ords(req.training_field).sum())
            for leaf in reader.leaves if leaf.vector_values(req.training_field) is not None)
        validate_training_count(req, available)
        record = {
            "model_id": req.model_id, "timestamp": now_timestamp(), "description": req.description,
            "space_type": req.space_type, "dimension": req.dimension, "engine": req.engine,
            "training_node_assignment": registry.node_name, "model_definition": req.model_definition(),
            "data_type": req.data_type, "mode": req.mode, "compression_level": req.compression_level,
            "model_version": MODEL_VERSION,
        }
        job = threading.Thread(target=_run, args=(registry, req, reader), name=f"segstore-train-{req.model_id}",
                               daemon=True)
        registry.start_training(req.model_id, record, job)
    except BaseException:
        reader.dec_ref()
        raise
    return req.model_id
