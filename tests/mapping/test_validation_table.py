"""Every ``knn_vector`` mapping validation rule of vector-semantics.md §1 (and §8/§8.1), one table row each,
run through the embedded opensearch-py client as ``PUT /<index>`` with ``index.knn`` on or off.

A failing row must answer 400 ``mapper_parsing_exception`` with the exact reason
``Failed to parse mapping [_doc]: <message>``, leave no index behind and leave ``_cat/indices`` unchanged.
A passing row must create the index and echo the mapping in ``GET /_mapping``.

Messages that upstream collects in a ``ValidationException`` render as ``Validation Failed: 1: <msg>;``
(``1: a;2: b;`` with several); the others keep their bare text (see ``method_resolution``).
All rows assume an index created on ``INDEX_CREATED_VERSION`` (3.3): rules that only exist for other
versions are unit-tested in ``test_knn_vector_mapping.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from opensearchpy import RequestError

import segstore
from segstore.mapping.method_resolution import INDEX_CREATED_VERSION

PREFIX = "Failed to parse mapping [_doc]: "
KNN = {"index.knn": True}
FLAT = {"index.knn": False}
NO_KNN: dict[str, Any] = {}  # index.knn absent: a flat field too
SPACES = "[l2, cosinesimil, l1, linf, innerproduct, hamming]"
NMSLIB_BLOCKED = ("nmslib engine is deprecated in OpenSearch  and cannot be used for new index creation in "
                  "OpenSearch from  3.0.0.")
FAISS_BYTE_COSINE = (
    "Faiss engine does not support cosine similarity with byte vectors. Cosine similarity requires vector "
    "normalization which is only supported for float vectors. Please use float data type or choose a different "
    "space type like l2 or inner_product.")


def vf(*errors: str) -> str:
    """A ``ValidationException`` message."""
    return "Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1))


def kv(**spec: Any) -> dict[str, Any]:
    """A ``knn_vector`` field spec (``dimension`` 4 unless given; pass ``dimension=None`` to leave it out)."""
    spec.setdefault("dimension", 4)
    if spec["dimension"] is None:
        del spec["dimension"]
    return {"type": "knn_vector", **spec}


@dataclass(frozen=True)
class Row:
    rule: str  # where the rule is in vector-semantics.md
    mapping: dict[str, Any]  # the knn_vector field ``f``
    reason: str | None  # exact message after the prefix; None: the mapping is valid
    settings: dict[str, Any] = field(default_factory=lambda: dict(KNN))


ROWS: dict[str, Row] = {
    # ---------------------------------------------------------------- §1.1 parameters: dimension
    "dimension-zero": Row("1.1 dimension", kv(dimension=0), "Dimension value must be greater than 0 for vector: f"),
    "dimension-negative": Row("1.1 dimension", kv(dimension=-3),
                              "Dimension value must be greater than 0 for vector: f"),
    "dimension-missing": Row("1.1 dimension", kv(dimension=None), "Dimension value missing for vector: f"),
    "dimension-missing-flat": Row("1.1 dimension", kv(dimension=None), "Dimension value missing for vector: f", FLAT),
    "dimension-not-int": Row("1.1 dimension", kv(dimension="abc"),
                             "Unable to parse [dimension] from provided value [abc] for vector [f]"),
    "dimension-fraction": Row("1.1 dimension", kv(dimension=3.5),
                              "Unable to parse [dimension] from provided value [3.5] for vector [f]"),
    "dimension-over-int": Row("1.1 dimension", kv(dimension="2147483648"),
                              "Unable to parse [dimension] from provided value [2147483648] for vector [f]"),
    "dimension-null": Row("1.1 dimension (core)", kv(dimension=None) | {"dimension": None},
                          "[dimension] on mapper [f] of type [knn_vector] must not have a [null] value"),
    "dimension-string-ok": Row("1.1 dimension", kv(dimension="8"), None),
    # ---------------------------------------------------------------- §1.1 data_type
    "data-type-invalid": Row("1.1 data_type", kv(data_type="half"),
                             "Invalid value provided for [data_type] field. Supported values are [binary,byte,float]"),
    "data-type-case-insensitive": Row("1.1 data_type", kv(data_type="BYTE"), None),
    # ---------------------------------------------------------------- §1.1 space_type
    "space-conflict": Row("1.1 space_type", kv(space_type="l2", method={"name": "hnsw", "space_type": "innerproduct"}),
                          'Cannot specify conflicting space types: "[innerproduct]" "[l2]"'),
    "space-invalid-in-method": Row("1.1 space_type", kv(method={"name": "hnsw", "space_type": "dot"}),
                                   "Invalid space_type: dot"),
    "space-invalid-top-level": Row("1.1 space_type", kv(space_type="dot"),
                                   f"Unable to find space: dot . Valid values are: {SPACES}"),
    "space-hammingbit-top-level": Row("8 error 11", kv(space_type="hammingbit"),
                                      f"Unable to find space: hammingbit . Valid values are: {SPACES}"),
    "space-hammingbit-in-method": Row("8 error 11", kv(method={"name": "hnsw", "space_type": "hammingbit"}),
                                      "Invalid space_type: hammingbit"),
    "space-same-both-ok": Row("1.1 space_type", kv(space_type="L2", method={"name": "hnsw", "space_type": "l2"}), None),
    # ---------------------------------------------------------------- §1.1 engine
    "engine-conflict": Row("1.1 engine", kv(engine="lucene", method={"name": "hnsw", "engine": "faiss"}),
                           "Cannot specify conflicting engines: [faiss] and [lucene]"),
    "engine-invalid-top-level": Row("1.1 engine", kv(engine="annoy"), "Invalid engine type: annoy"),
    "engine-invalid-in-method": Row("1.1 engine", kv(method={"name": "hnsw", "engine": "annoy"}),
                                    "Invalid engine: annoy"),
    "engine-case-insensitive-ok": Row("1.1 engine", kv(engine="Lucene", method={"name": "hnsw", "engine": "LUCENE"}),
                                      None),
    # ---------------------------------------------------------------- §1.1 method
    "method-unknown-key": Row("1.1 method / 8 error 8", kv(method={"name": "hnsw", "params": {"m": 16}}),
                              "Invalid parameter: params"),
    "method-name-missing": Row("1.1 method / 8 error 8", kv(method={"engine": "faiss"}), "name needs to be set"),
    "method-not-object": Row("1.1 method", kv(method="hnsw"),
                             'Unable to parse mapping into KNNMethodContext. Object not of type "Map"'),
    "method-name-not-string": Row("1.1 method", kv(method={"name": 1}), "namehas to be a string"),
    "method-parameters-not-object": Row("1.1 method", kv(method={"name": "hnsw", "parameters": [1]}),
                                        "Unable to parse parameters for main method component"),
    "component-unknown-key": Row("1.1 method", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "params": {}}}}), "Invalid parameter for MethodComponentContext: params"),
    "component-name-missing": Row("1.1 method", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"parameters": {}}}}), "name needs to be set"),
    "component-parameters-not-object": Row("1.1 method", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": 3}}}), "Unable to parse parameters for  method component"),
    "method-unknown-parameter": Row("1.1 method", kv(method={"name": "hnsw", "parameters": {"nlists": 4}}),
                                    vf("Unknown parameter 'nlists' found")),
    "method-unknown-name": Row("1.1 method", kv(method={"name": "diskann"}), "Invalid method name: diskann"),
    # ---------------------------------------------------------------- §1.1 model_id
    "model-and-method": Row("1.1 model_id", kv(dimension=None, model_id="m1", method={"name": "hnsw"}),
                            "Method and model can not be both specified in the mapping: f"),
    "model-and-dimension": Row("1.1 model_id", kv(model_id="m1"),
                               "Cannot specify both a modelId and dimension in the mapping: f"),
    "model-and-top-level-space": Row("1.1 model_id", kv(dimension=None, model_id="m1", space_type="l2"),
                                     "TopLevel Space type and model can not be both specified in the mapping"),
    "model-ok": Row("1.1 model_id", kv(dimension=None, model_id="m1"), None),
    # ---------------------------------------------------------------- §1.1 mode / compression_level
    "mode-invalid": Row("1.1 mode", kv(mode="disk"),
                        "Unknown value [disk] for field [mode] - accepted values are [null, in_memory, on_disk]"),
    "mode-case-sensitive": Row("1.1 mode", kv(mode="ON_DISK"),
                               "Unknown value [ON_DISK] for field [mode] - accepted values are "
                               "[null, in_memory, on_disk]"),
    "compression-invalid": Row("1.1 compression_level", kv(compression_level="3x"),
                               "Unknown value [3x] for field [compression_level] - accepted values are "
                               "[, 1x, 2x, 4x, 8x, 16x, 32x]"),
    "compression-64x-rejected": Row("1.1 compression_level", kv(compression_level="64x"),
                                    "Unknown value [64x] for field [compression_level] - accepted values are "
                                    "[, 1x, 2x, 4x, 8x, 16x, 32x]"),
    "compression-explicit-null": Row("1.1 compression_level", kv(compression_level=None) | {"compression_level": None},
                                     "Unknown value [null] for field [compression_level] - accepted values are "
                                     "[, 1x, 2x, 4x, 8x, 16x, 32x]"),
    "mode-explicit-null-ok": Row("1.1 mode", kv() | {"mode": None}, None),
    # ---------------------------------------------------------------- core parameter parsing
    "unknown-top-level-parameter": Row("core", kv(similarity="l2"),
                                       "unknown parameter [similarity] on mapper [f] of type [knn_vector]"),
    "parse-before-validators": Row("core order", {"type": "knn_vector", "mode": "disk", "dimension": 0},
                                   "Dimension value must be greater than 0 for vector: f"),
    "validators-in-declaration-order": Row("core order", kv(space_type="dot", compression_level="3x"),
                                           "Unknown value [3x] for field [compression_level] - accepted values are "
                                           "[, 1x, 2x, 4x, 8x, 16x, 32x]"),
    # ---------------------------------------------------------------- §1.2 global preconditions
    "flat-with-method": Row("1.2 flat", kv(method={"name": "hnsw"}),
                            "Cannot set modelId or method parameters when index.knn setting is false", FLAT),
    "flat-with-model": Row("1.2 flat", kv(dimension=None, model_id="m1"),
                           "Cannot set modelId or method parameters when index.knn setting is false", FLAT),
    "flat-absent-setting-with-method": Row("1.2 flat", kv(method={"name": "hnsw"}),
                                           "Cannot set modelId or method parameters when index.knn setting is false",
                                           NO_KNN),
    "flat-with-mode": Row("1.2 flat", kv(mode="on_disk"),
                          "Compression and mode can not be specified in a flat mapping configuration for field: f",
                          FLAT),
    "flat-with-compression": Row("1.2 flat", kv(compression_level="2x"),
                                 "Compression and mode can not be specified in a flat mapping configuration for "
                                 "field: f", NO_KNN),
    "flat-ok": Row("1.2 flat", kv(space_type="innerproduct"), None, FLAT),
    "mode-with-byte": Row("1.2 non-float", kv(data_type="byte", mode="on_disk"),
                          "Compression and mode cannot be used for non-float32 data type for field f"),
    "compression-with-binary": Row("1.2 non-float", kv(dimension=8, data_type="binary", compression_level="1x"),
                                   "Compression and mode cannot be used for non-float32 data type for field f"),
    "model-with-mode": Row("1.2 model", kv(dimension=None, model_id="m1", mode="on_disk"),
                           "Compression and mode can not be specified in a model mapping configuration for field: f"),
    "model-with-compression": Row("1.2 model", kv(dimension=None, model_id="m1", compression_level="8x"),
                                  "Compression and mode can not be specified in a model mapping configuration for "
                                  "field: f"),
    "training-ivf": Row("1.2 training", kv(method={"name": "ivf", "engine": "faiss"}),
                        vf('"method" requires training.')),
    "training-ivf-default-engine": Row("1.2 training", kv(method={"name": "ivf", "parameters": {"nlist": 8}}),
                                       vf('"method" requires training.')),
    "training-hnsw-pq": Row("1.2 training", kv(method={"name": "hnsw", "engine": "faiss", "parameters": {
        "encoder": {"name": "pq", "parameters": {"m": 2, "code_size": 8}}}}), vf('"method" requires training.')),
    "nmslib-blocked-method": Row("1.2 nmslib", kv(method={"name": "hnsw", "engine": "nmslib"}), NMSLIB_BLOCKED),
    "nmslib-blocked-top-level": Row("1.2 nmslib", kv(engine="nmslib"), NMSLIB_BLOCKED),
    # ---------------------------------------------------------------- §1.3 dimension limits
    "dimension-max-faiss": Row("1.3 max", kv(dimension=16001),
                               vf("Dimension value cannot be greater than 16000 for vector with engine: faiss")),
    "dimension-max-lucene": Row("1.3 max", kv(dimension=16001, engine="lucene"),
                                vf("Dimension value cannot be greater than 16000 for vector with engine: lucene")),
    "dimension-max-ok": Row("1.3 max", kv(dimension=16000), None),
    "binary-dimension-multiple-of-8": Row("1.3 binary", kv(dimension=12, data_type="binary"),
                                          vf("Dimension should be multiply of 8 for binary vector data type")),
    "binary-dimension-multiple-of-8-flat": Row("1.3 binary", kv(dimension=12, data_type="binary"),
                                               "Dimension should be multiply of 8 for binary vector data type", FLAT),
    # ---------------------------------------------------------------- §1.4 data_type versus space_type
    "hamming-with-float": Row("1.4", kv(space_type="hamming"),
                              "Space type [hamming] is not supported with [float] data type"),
    "hamming-with-byte": Row("1.4", kv(data_type="byte", method={"name": "hnsw", "space_type": "hamming"}),
                             "Space type [hamming] is not supported with [byte] data type"),
    "binary-with-l2": Row("1.4", kv(dimension=8, data_type="binary", space_type="l2"),
                          "Space type [l2] is not supported with [binary] data type"),
    "binary-with-l2-flat": Row("1.4", kv(dimension=8, data_type="binary", space_type="l2"),
                               "Space type [l2] is not supported with [binary] data type", FLAT),
    "faiss-byte-cosine": Row("1.4 / 10 #11", kv(data_type="byte", space_type="cosinesimil"), FAISS_BYTE_COSINE),
    "faiss-byte-cosine-explicit": Row("1.4", kv(data_type="byte", method={
        "name": "hnsw", "engine": "faiss", "space_type": "cosinesimil"}), FAISS_BYTE_COSINE),
    "lucene-byte-cosine-ok": Row("1.4", kv(data_type="byte", space_type="cosinesimil", engine="lucene"), None),
    "binary-default-hamming-ok": Row("1.4", kv(dimension=16, data_type="binary"), None),
    # ---------------------------------------------------------------- §1.5 support matrix
    "lucene-l1": Row("1.5 spaces", kv(engine="lucene", space_type="l1"),
                     vf('"hnsw" with "lucene" configuration does not support space type: "l1".')),
    "faiss-linf": Row("1.5 spaces", kv(method={"name": "hnsw", "space_type": "linf"}),
                      vf('"hnsw" with "faiss" configuration does not support space type: "linf".')),
    "lucene-innerproduct-ok": Row("1.5 spaces / 8 error 9", kv(engine="lucene", space_type="innerproduct"), None),
    "lucene-binary-ok": Row("1.5 / 8 error 9", kv(dimension=16, data_type="binary", engine="lucene"), None),
    "faiss-byte-ok": Row("1.5", kv(data_type="byte", method={"name": "hnsw", "engine": "faiss"}), None),
    "encoder-sq-with-byte": Row("1.5 encoders float-only", kv(data_type="byte", method={
        "name": "hnsw", "engine": "faiss", "parameters": {"encoder": {"name": "sq"}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "encoder-binary-with-binary": Row("1.5 encoders float-only", kv(dimension=8, data_type="binary", method={
        "name": "hnsw", "engine": "faiss", "parameters": {"encoder": {"name": "binary"}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "encoder-flat-with-byte-ok": Row("1.5 encoders", kv(data_type="byte", method={
        "name": "hnsw", "engine": "faiss", "parameters": {"encoder": {"name": "flat"}}}), None),
    "lucene-encoder-not-sq": Row("1.5 lucene sq only", kv(method={
        "name": "hnsw", "engine": "lucene", "parameters": {"encoder": {"name": "binary"}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "lucene-flat-unknown-on-3.3": Row("1.5 lucene flat (idx >= 3.6)", kv(method={"name": "flat"}),
                                      "Invalid method name: flat"),
    "lucene-flat-unknown-on-3.3-explicit": Row("1.5 lucene flat (idx >= 3.6)", kv(
        method={"name": "flat", "engine": "lucene"}), "Invalid method name: flat"),
    "several-errors": Row("1.2 Validation Failed list", kv(engine="lucene", space_type="linf", method={
        "name": "hnsw", "parameters": {"ef_search": 10}}),
        vf('"hnsw" with "lucene" configuration does not support space type: "linf".',
           "Unknown parameter 'ef_search' found")),
    # ---------------------------------------------------------------- §1.6 engine resolution
    "4x-top-level-faiss": Row("1.6", kv(engine="faiss", compression_level="4x"),
                              "Lucene is the only engine that supports 4x compression"),
    "4x-resolves-lucene-ok": Row("1.6", kv(compression_level="4x"), None),
    "on-disk-resolves-faiss-ok": Row("1.6", kv(mode="on_disk"), None),
    "in-memory-1x-ok": Row("1.6", kv(mode="in_memory", compression_level="1x"), None),
    # ---------------------------------------------------------------- §1.7 mode and compression
    "faiss-4x": Row("1.7 supported", kv(method={"name": "hnsw", "engine": "faiss"}, compression_level="4x"),
                    vf('"faiss" does not support "4x" compression')),
    "lucene-8x": Row("1.7 supported", kv(engine="lucene", compression_level="8x"),
                     vf('"lucene" does not support "8x" compression')),
    "lucene-2x": Row("1.7 supported", kv(method={"name": "hnsw", "engine": "lucene"}, compression_level="2x"),
                     vf('"lucene" does not support "2x" compression')),
    "lucene-32x-before-3.6": Row("1.7 / 8.1 lucene 32x (idx >= 3.6)", kv(engine="lucene", compression_level="32x"),
                                 vf('"lucene" does not support "32x" compression')),
    "nmslib-2x": Row("1.7 supported", kv(engine="nmslib", compression_level="2x"),
                     vf('"nmslib" does not support "2x" compression')),
    "nmslib-on-disk": Row("1.7 nmslib", kv(engine="nmslib", mode="on_disk"),
                          vf("Nmslib engine does not support disk-based search")),
    "nmslib-on-disk-8x": Row("1.7 nmslib", kv(engine="nmslib", mode="on_disk", compression_level="8x"),
                             vf('"nmslib" does not support "8x" compression',
                                "Nmslib engine does not support disk-based search")),
    "lucene-on-disk-1x": Row("1.7 on_disk 1x", kv(engine="lucene", mode="on_disk", compression_level="1x"),
                             vf('Cannot specify "x1" compression level when using "on_disk" mode')),
    "faiss-on-disk-1x-ok": Row("1.7 on_disk 1x (faiss >= 3.1)", kv(mode="on_disk", compression_level="1x"), None),
    "lucene-on-disk-ok": Row("1.7 lucene on_disk -> 4x", kv(engine="lucene", mode="on_disk"), None),
    "encoder-conflict": Row("1.7 encoder vs compression", kv(compression_level="8x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "sq"}}}),
        vf("Cannot specify an encoder that conflicts with the provided compression level")),
    "encoder-conflict-binary-bits": Row("1.7 encoder vs compression", kv(compression_level="32x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "binary", "parameters": {"bits": 2}}}}),
        vf("Cannot specify an encoder that conflicts with the provided compression level")),
    "encoder-conflict-flat": Row("1.7 encoder vs compression", kv(compression_level="2x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "flat"}}}),
        vf("Cannot specify an encoder that conflicts with the provided compression level")),
    "encoder-conflict-lucene-sq": Row("1.7 encoder vs compression", kv(compression_level="1x", method={
        "name": "hnsw", "engine": "lucene", "parameters": {"encoder": {"name": "sq"}}}),
        vf("Cannot specify an encoder that conflicts with the provided compression level")),
    "encoder-conflict-sq-bits": Row("1.7 encoder-specific form", kv(compression_level="32x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "sq", "parameters": {"bits": 16}}}}),
        vf("Compression level [32x] is incompatible with [bits=16] for encoder [sq]. Expected compression level: "
           "[2x]")),
    "encoder-conflict-lucene-sq-bits": Row("1.7 encoder-specific form", kv(compression_level="1x", method={
        "name": "hnsw", "engine": "lucene", "parameters": {"encoder": {"name": "sq", "parameters": {"bits": 7}}}}),
        vf("Compression level [1x] is incompatible with [bits=7] for encoder [sq]. Expected compression level: "
           "[4x]")),
    "encoder-consistent-32x-binary-ok": Row("1.7 / 8 error 7 / 8.1", kv(
        mode="on_disk", compression_level="32x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "binary", "parameters": {"bits": 1}}}}), None),
    "encoder-consistent-2x-sq-ok": Row("1.7 / 8 error 7", kv(compression_level="2x", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "sq", "parameters": {"type": "fp16"}}}}), None),
    "encoder-consistent-4x-lucene-ok": Row("1.7 / 8 error 7", kv(compression_level="4x", method={
        "name": "hnsw", "engine": "lucene", "parameters": {"encoder": {"name": "sq", "parameters": {"bits": 7}}}}),
        None),
    "mode-in-memory-32x-ok": Row("1.7 / 3.6", kv(mode="in_memory", compression_level="32x"), None),
    # ---------------------------------------------------------------- §1.8 auto encoders (accepted levels)
    "auto-2x-ok": Row("1.8", kv(compression_level="2x"), None),
    "auto-8x-ok": Row("1.8", kv(compression_level="8x"), None),
    "auto-16x-ok": Row("1.8", kv(compression_level="16x"), None),
    "auto-32x-ok": Row("1.8", kv(compression_level="32x"), None),
    "auto-compression-empty-string-ok": Row("1.1 compression_level", kv(compression_level=""), None),
    # ---------------------------------------------------------------- §1.9 encoder parameters
    "binary-bits-invalid": Row("1.9 binary", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"bits": 3}}}}),
        vf("parameter validation failed for Integer parameter [bits].")),
    "binary-bits-not-int": Row("1.9 binary", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"bits": "1"}}}}),
        vf("value is not an instance of Integer for Integer parameter [bits].")),
    "binary-adc-bits-2": Row("1.9 binary ADC", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"bits": 2, "enable_adc": True}}}}),
        "Validation Failed: ADC is not supported for bit count: 2"),
    "binary-adc-rotation-ok": Row("1.9 binary ADC", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"bits": 1, "enable_adc": True, "random_rotation": True}}}}),
        None),
    "binary-rotation-not-bool": Row("1.9 binary", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"random_rotation": "yes"}}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "binary-unknown-parameter": Row("1.9 binary", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "binary", "parameters": {"bit": 1}}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "sq-type-invalid": Row("1.9 faiss sq", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"type": "int8"}}}}),
        vf("parameter validation failed for String parameter [type].")),
    "sq-clip-not-bool": Row("1.9 faiss sq", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"clip": 1}}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "sq-bits-1-before-3.6": Row("1.9 faiss sq bits", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"bits": 1}}}}),
        vf("parameter validation failed for Integer parameter [bits].")),
    "sq-without-bits-ok": Row("1.9 faiss sq (bits optional before 3.6)", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"type": "fp16", "clip": True}}}}), None),
    "lucene-sq-confidence-invalid": Row("1.9 lucene sq", kv(engine="lucene", method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"confidence_interval": 0.5}}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "lucene-sq-confidence-ok": Row("1.9 lucene sq", kv(engine="lucene", method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"confidence_interval": 0.95}}}}), None),
    "lucene-sq-confidence-dynamic-ok": Row("1.9 lucene sq", kv(engine="lucene", method={"name": "hnsw", "parameters": {
        "encoder": {"name": "sq", "parameters": {"confidence_interval": 0}}}}), None),
    "lucene-sq-bits-1-before-3.6": Row("1.9 lucene sq bits", kv(engine="lucene", method={
        "name": "hnsw", "parameters": {"encoder": {"name": "sq", "parameters": {"bits": 1}}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "pq-hnsw-code-size": Row("1.9 pq", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "pq", "parameters": {"m": 2, "code_size": 4}}}}),
        vf("parameter validation failed for Integer parameter [code_size].")),
    "pq-m-range": Row("1.9 pq / 8 error 12", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "pq", "parameters": {"m": 1024, "code_size": 8}}}}),
        vf("parameter validation failed for Integer parameter [m].")),
    "encoder-unknown-name": Row("1.5 encoders", kv(method={"name": "hnsw", "parameters": {
        "encoder": {"name": "lsh"}}}),
        vf("parameter validation failed for MethodComponentContext parameter [encoder].")),
    "encoder-not-object": Row("1.5 encoders", kv(method={"name": "hnsw", "parameters": {"encoder": "sq"}}),
                              vf("value is not an instance of for MethodComponentContext parameter [encoder].")),
    # ---------------------------------------------------------------- §1.10 method parameters
    "hnsw-m-zero": Row("1.10 / 8 error 12", kv(method={"name": "hnsw", "parameters": {"m": 0}}),
                       vf("parameter validation failed for Integer parameter [m].")),
    "hnsw-m-string": Row("1.10", kv(method={"name": "hnsw", "parameters": {"m": "16"}}),
                         vf("value is not an instance of Integer for Integer parameter [m].")),
    "hnsw-m-200-ok": Row("8 error 12", kv(method={"name": "hnsw", "parameters": {"m": 200}}), None),
    "hnsw-ef-construction-negative": Row("1.10", kv(method={"name": "hnsw", "parameters": {"ef_construction": -1}}),
                                         vf("parameter validation failed for Integer parameter [ef_construction].")),
    "faiss-ef-search-zero": Row("1.10", kv(method={"name": "hnsw", "parameters": {"ef_search": 0}}),
                                vf("parameter validation failed for Integer parameter [ef_search].")),
    "lucene-ef-search": Row("1.10 lucene has no ef_search", kv(engine="lucene", method={
        "name": "hnsw", "parameters": {"ef_search": 100}}), vf("Unknown parameter 'ef_search' found")),
    "faiss-all-parameters-ok": Row("1.10", kv(method={"name": "hnsw", "engine": "faiss", "space_type": "innerproduct",
                                                      "parameters": {"m": 24, "ef_construction": 128,
                                                                     "ef_search": 64}}), None),
}

_USED: set[str] = set()


def _index_name(row_id: str) -> str:
    name = "t-" + re.sub(r"[^a-z0-9-]", "-", row_id.lower())
    assert name not in _USED
    _USED.add(name)
    return name


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    c = segstore.connect(str(tmp_path_factory.mktemp("mapping-table")))
    yield c
    c.close()


def test_table_assumes_3_3() -> None:
    assert INDEX_CREATED_VERSION == (3, 3, 0)


@pytest.mark.parametrize("row_id", [k for k, r in ROWS.items() if r.reason is not None])
def test_rejected(client, row_id: str) -> None:  # type: ignore[no-untyped-def]
    row = ROWS[row_id]
    index = _index_name(row_id)
    before = client.cat.indices(format="json")
    body = {"settings": row.settings, "mappings": {"properties": {"f": row.mapping}}}
    with pytest.raises(RequestError) as exc:
        client.indices.create(index=index, body=body)
    e = exc.value
    assert row.reason is not None
    info: dict[str, Any] = e.info  # type: ignore[assignment]
    assert e.status_code == 400
    assert e.error == "mapper_parsing_exception"
    assert info["error"]["reason"] == PREFIX + row.reason
    assert info["error"]["root_cause"][0]["reason"] == PREFIX + row.reason
    assert client.indices.exists(index=index) is False
    assert client.cat.indices(format="json") == before


@pytest.mark.parametrize("row_id", [k for k, r in ROWS.items() if r.reason is None])
def test_accepted(client, row_id: str) -> None:  # type: ignore[no-untyped-def]
    row = ROWS[row_id]
    index = _index_name(row_id)
    mappings = {"properties": {"f": row.mapping, "title": {"type": "keyword"}}}
    resp = client.indices.create(index=index, body={"settings": row.settings, "mappings": mappings})
    assert resp["acknowledged"] is True
    assert client.indices.exists(index=index) is True
    assert client.indices.get_mapping(index=index) == {index: {"mappings": mappings}}
    client.indices.delete(index=index)


def test_every_rule_of_section_1_has_a_row() -> None:
    """The table covers each subsection of §1 and the §8 items about mappings."""
    rules = " ".join(r.rule for r in ROWS.values())
    for section in ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "8 error 7",
                    "8 error 8", "8 error 9", "8 error 11", "8 error 12", "8.1"):
        assert section in rules, section
