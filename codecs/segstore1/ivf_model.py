"""``IvfModel``: a trained IVF model, decomposed into numpy arrays, and the process-wide model cache.

A model is what OpenSearch's training API produces (``segstore.models.training``): an empty, trained faiss
IVF index, stored as a blob (``to_blob`` / ``from_blob``). Decomposed, it is its kind, metric, dimension,
``nlist``, coarse centroids and encoder flags: enough to rebuild the empty trained index, and what an IVF
graph file (:mod:`.ivf_graph`, which lists the kinds) stores next to a segment's inverted lists.

The cache maps the sha256 of a model blob to the model; graph writers find a field's model from its
attributes (``model_id`` + ``ivf.model_sha256``) alone.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import numpy as np

from segstore.index.field_infos import FieldInfo

__all__ = ["KINDS", "MERGE_SOURCES_ATTR", "IvfModel", "model_for_field", "register_model"]

faiss: Any = _faiss
KINDS = ("flat", "sq_fp16", "sq8_direct", "binary")
MERGE_SOURCES_ATTR = "ivf.model_sha256"


def _unit_rows(x: np.ndarray) -> np.ndarray:
    f = np.asarray(x, dtype=np.float32)
    norms = np.sqrt((f * f).sum(axis=1, keepdims=True, dtype=np.float32))
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)


@dataclass(frozen=True)
class IvfModel:
    """A trained IVF, decomposed: what rebuilds the model's empty trained faiss index.

    ``dimension`` is in bits for ``binary``. ``centroids`` are float32 ``(nlist, d)`` or uint8
    ``(nlist, d/8)``. ``normalize`` (cosine) makes rows and queries unit length before faiss sees them.
    ``sha256`` is the digest of the model blob this came from (it keys the process-wide model cache)."""

    kind: str
    metric: str
    dimension: int
    nlist: int
    centroids: np.ndarray
    by_residual: bool = False
    normalize: bool = False
    sha256: str = ""

    @property
    def code_size(self) -> int:
        return {"flat": 4 * self.dimension, "sq_fp16": 2 * self.dimension, "sq8_direct": self.dimension,
                "binary": self.dimension // 8}[self.kind]

    @property
    def binary(self) -> bool:
        return self.kind == "binary"

    def empty_index(self) -> Any:
        """A fresh, trained, empty faiss index (the coarse quantizer is referenced by the index object)."""
        d, nlist = self.dimension, self.nlist
        if self.binary:
            quantizer = faiss.IndexBinaryFlat(d)
            quantizer.add(np.ascontiguousarray(self.centroids, dtype=np.uint8))
            index = faiss.IndexBinaryIVF(quantizer, d, nlist)
        else:
            metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
            quantizer = faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)
            quantizer.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
            if self.kind == "flat":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            else:
                qtype = (faiss.ScalarQuantizer.QT_fp16 if self.kind == "sq_fp16"
                         else faiss.ScalarQuantizer.QT_8bit_direct_signed)
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, qtype, metric, self.by_residual)
        index.is_trained = True  # fp16 / direct SQ need no training data; the quantizer holds nlist centroids
        if index.code_size != self.code_size:
            raise ValueError(f"faiss code size {index.code_size} != {self.code_size} for kind {self.kind}")
        return index

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        """Rows (or queries) as faiss wants them: float32 (unit for cosine) or packed uint8."""
        if self.binary:
            q = np.asarray(rows)
            if q.dtype == np.int8:
                q = q.view(np.uint8)
            return np.ascontiguousarray(q, dtype=np.uint8)
        if self.normalize:
            return _unit_rows(rows)
        return np.ascontiguousarray(rows, dtype=np.float32)

    # -- the model blob (what the registry stores and GET returns, base64)

    def to_blob(self) -> bytes:
        """``faiss.serialize_index(_binary)`` of the empty trained index (OpenSearch's ``model_blob``)."""
        index = self.empty_index()
        if self.binary:
            return bytes(faiss.serialize_index_binary(index))
        return bytes(faiss.serialize_index(index))

    @classmethod
    def from_faiss(cls, index: Any, *, normalize: bool = False, sha256: str = "") -> IvfModel:
        """Decompose a trained faiss IVF index (flat / SQ fp16 / SQ8 direct signed / binary)."""
        if isinstance(index, faiss.IndexBinary):
            index = faiss.downcast_IndexBinary(index)
            if not isinstance(index, faiss.IndexBinaryIVF):
                raise ValueError(f"not a binary IVF index: {type(index).__name__}")
            quantizer = faiss.downcast_IndexBinary(index.quantizer)
            centroids = quantizer.reconstruct_n(0, index.nlist).astype(np.uint8)
            return cls("binary", "hamming", int(index.d), int(index.nlist), centroids, False, False, sha256)
        index = faiss.downcast_index(index)
        if not isinstance(index, faiss.IndexIVF):
            raise ValueError(f"not an IVF index: {type(index).__name__}")
        metric = {faiss.METRIC_L2: "l2", faiss.METRIC_INNER_PRODUCT: "ip"}.get(index.metric_type)
        if metric is None:
            raise ValueError(f"unsupported faiss metric {index.metric_type}")
        if isinstance(index, faiss.IndexIVFFlat):
            kind, by_residual = "flat", False
        elif isinstance(index, faiss.IndexIVFScalarQuantizer):
            qtype = int(index.sq.qtype)
            kind = {int(faiss.ScalarQuantizer.QT_fp16): "sq_fp16",
                    int(faiss.ScalarQuantizer.QT_8bit_direct_signed): "sq8_direct"}.get(qtype)
            if kind is None:
                raise ValueError(f"unsupported scalar quantizer type {qtype}")
            by_residual = bool(index.by_residual)
        else:
            raise ValueError(f"unsupported IVF index {type(index).__name__}")
        quantizer = faiss.downcast_index(index.quantizer)
        centroids = quantizer.reconstruct_n(0, index.nlist).astype(np.float32)
        return cls(kind, metric, int(index.d), int(index.nlist), centroids, by_residual, normalize, sha256)

    @classmethod
    def from_blob(cls, blob: bytes, *, binary: bool, normalize: bool = False) -> IvfModel:
        """Load a model blob (already CRC-checked by the registry) and decompose it."""
        array = np.frombuffer(blob, dtype=np.uint8)
        index = faiss.deserialize_index_binary(array) if binary else faiss.deserialize_index(array)
        model = cls.from_faiss(index, normalize=normalize, sha256=hashlib.sha256(blob).hexdigest())
        if index.ntotal != 0:
            raise ValueError(f"model blob holds {index.ntotal} vectors, expected an empty trained index")
        return model


# The process-wide model cache: models by the sha256 of their blob. The registry registers every created
# model it resolves for a mapping (and every model it trains), so a graph writer can find the trained
# quantizer from the field attributes alone (``model_id`` + ``ivf.model_sha256``); content addressing
# makes one cache safe for any number of nodes in the process.
_MODELS: dict[str, IvfModel] = {}
_MODELS_LOCK = threading.Lock()


def register_model(model: IvfModel) -> None:
    if not model.sha256:
        raise ValueError("a cached model needs its blob's sha256")
    with _MODELS_LOCK:
        _MODELS[model.sha256] = model


def model_for_field(field: FieldInfo) -> IvfModel:
    """The trained model of a ``model_id`` field (from the process cache the registry fills)."""
    sha = field.attributes.get(MERGE_SOURCES_ATTR)
    model = _MODELS.get(sha or "")
    if model is None:
        raise ValueError(f"field [{field.name}]: model [{field.attributes.get('model_id')}] "
                         f"(sha256 {sha}) is not loaded in this process; resolve the index mappings through "
                         f"segstore.models.registry first")
    return model
