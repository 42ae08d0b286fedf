"""Resolution of ``knn_vector`` mappings (vector-semantics.md §1.6–§1.10): engines, mode and compression,
auto-generated encoders, default parameters and space types, and the persisted field attributes.

Most tests use the public :func:`parse_knn_vector` (an index created on ``INDEX_CREATED_VERSION``, 3.3);
rules keyed on other index-creation versions go through ``_parse(..., version=...)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from segstore.errors import IllegalArgumentError, MapperParsingError
from segstore.mapping.knn_vector import ENGINES, SPACES, KnnVectorMapping, _parse, parse_knn_vector
from segstore.mapping.mappings import Mappings
from segstore.mapping.method_component import parse_method
from segstore.mapping.method_resolution import INDEX_CREATED_VERSION, resolve_engine


def knn(**spec: Any) -> KnnVectorMapping:
    spec.setdefault("dimension", 16)
    return parse_knn_vector("f", {"type": "knn_vector", **spec}, index_knn=True)


def at(version: tuple[int, int, int], **spec: Any) -> KnnVectorMapping:
    spec.setdefault("dimension", 16)
    return _parse("f", {"type": "knn_vector", **spec}, index_knn=True, version=version)


def error(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(MapperParsingError) as exc:
        fn(*args, **kwargs)
    return exc.value.message


def hnsw(**params: Any) -> dict[str, Any]:
    return {"name": "hnsw", "parameters": params}


# ------------------------------------------------------------------------------------------ defaults


def test_target_version_is_3_3() -> None:
    assert INDEX_CREATED_VERSION == (3, 3, 0)


def test_plain_mapping_defaults_to_faiss_hnsw_l2() -> None:
    m = knn()
    assert (m.engine, m.method, m.space_type, m.data_type) == ("faiss", "hnsw", "l2", "float")
    assert (m.m, m.ef_construction, m.ef_search) == (16, 100, 100)
    assert (m.mode, m.compression_level, m.encoder) == (None, "1x", None)
    assert (m.user_mode, m.user_compression, m.model_id, m.nlist, m.nprobes) == (False, False, None, None, None)
    assert m.knn is True and m.dimension == 16


@pytest.mark.parametrize("data_type, dimension, space", [("float", 4, "l2"), ("byte", 4, "l2"),
                                                          ("binary", 16, "hamming")])
def test_space_default_depends_on_data_type(data_type: str, dimension: int, space: str) -> None:
    assert knn(data_type=data_type, dimension=dimension).space_type == space


def test_data_type_and_space_are_case_insensitive() -> None:
    m = knn(data_type="FLOAT", space_type="InnerProduct")
    assert (m.data_type, m.space_type) == ("float", "innerproduct")


def test_space_type_undefined_counts_as_absent() -> None:
    assert knn(space_type="undefined").space_type == "l2"
    assert knn(dimension=8, data_type="binary", method={"name": "hnsw", "space_type": "UNDEFINED"}).space_type \
        == "hamming"


def test_space_type_list_is_in_upstream_enum_order() -> None:
    assert SPACES == ("l2", "cosinesimil", "l1", "linf", "innerproduct", "hamming")
    assert ENGINES == ("faiss", "lucene", "nmslib")


# ---------------------------------------------------------------- top-level versus method space / engine


def test_space_from_top_level_or_method() -> None:
    assert knn(space_type="cosinesimil").space_type == "cosinesimil"
    assert knn(method={"name": "hnsw", "space_type": "cosinesimil"}).space_type == "cosinesimil"
    assert knn(space_type="cosinesimil", method={"name": "hnsw", "space_type": "COSINESIMIL"}).space_type \
        == "cosinesimil"


def test_conflicting_spaces_name_the_method_one_first() -> None:
    assert error(knn, space_type="l2", method={"name": "hnsw", "space_type": "innerproduct"}) \
        == 'Cannot specify conflicting space types: "[innerproduct]" "[l2]"'


def test_engine_from_top_level_or_method() -> None:
    assert knn(engine="lucene").engine == "lucene"
    assert knn(method={"name": "hnsw", "engine": "lucene"}).engine == "lucene"
    assert knn(engine="LUCENE", method={"name": "hnsw", "engine": "lucene"}).engine == "lucene"


def test_conflicting_engines_name_the_method_one_first() -> None:
    assert error(knn, engine="faiss", method={"name": "hnsw", "engine": "lucene"}) \
        == "Cannot specify conflicting engines: [lucene] and [faiss]"


def test_null_method_engine_counts_as_absent() -> None:
    assert knn(compression_level="4x", method={"name": "hnsw", "engine": None}).engine == "lucene"


# ------------------------------------------------------------------------------------ engine resolution


@pytest.mark.parametrize("mode, compression, engine", [
    (None, None, "faiss"),
    ("in_memory", None, "faiss"),
    ("on_disk", None, "faiss"),
    (None, "1x", "faiss"),
    ("on_disk", "1x", "faiss"),
    (None, "2x", "faiss"),
    (None, "4x", "lucene"),
    ("on_disk", "4x", "lucene"),
    (None, "8x", "faiss"),
    ("in_memory", "16x", "faiss"),
    ("on_disk", "32x", "faiss"),
])
def test_engine_resolution_on_3_3(mode: str | None, compression: str | None, engine: str) -> None:
    assert resolve_engine(None, None, mode, compression) == engine
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mode"] = mode
    if compression is not None:
        spec["compression_level"] = compression
    assert knn(**spec).engine == engine


def test_engine_resolution_on_older_indices() -> None:
    assert resolve_engine(None, None, None, None, version=(2, 17, 0)) == "nmslib"
    assert resolve_engine(None, None, None, None, version=(2, 18, 0)) == "faiss"
    assert resolve_engine(None, None, "in_memory", None, version=(2, 18, 0)) == "nmslib"
    assert resolve_engine(None, None, "on_disk", "1x", version=(2, 18, 0)) == "faiss"
    assert resolve_engine(None, None, "in_memory", "1x", version=(2, 19, 0)) == "faiss"


def test_flat_method_name_resolves_lucene_only_from_3_6() -> None:
    flat = parse_method({"name": "flat"}, SPACES, ENGINES)
    assert resolve_engine(flat, None, None, None) == "faiss"
    assert resolve_engine(flat, None, None, None, version=(3, 6, 0)) == "lucene"


def test_training_engine_resolution() -> None:
    assert resolve_engine(None, None, None, None, training=True) == "faiss"
    with pytest.raises(MapperParsingError, match=r"^Cannot specify engine other than FAISS for training$"):
        resolve_engine(None, "lucene", None, None, training=True)


def test_4x_needs_lucene_at_top_level() -> None:
    assert error(knn, engine="faiss", compression_level="4x") \
        == "Lucene is the only engine that supports 4x compression"
    assert knn(engine="lucene", compression_level="4x").engine == "lucene"


# --------------------------------------------------------------------------- mode and compression (§1.7)


@pytest.mark.parametrize("spec, engine, level, mode", [
    ({"mode": "on_disk"}, "faiss", "32x", "on_disk"),
    ({"mode": "in_memory"}, "faiss", "1x", "in_memory"),
    ({"mode": "on_disk", "engine": "lucene"}, "lucene", "4x", "on_disk"),
    ({"mode": "in_memory", "engine": "lucene"}, "lucene", "1x", "in_memory"),
    ({"mode": "on_disk", "compression_level": "1x"}, "faiss", "1x", "on_disk"),
    ({"mode": "on_disk", "compression_level": "8x"}, "faiss", "8x", "on_disk"),
    ({"compression_level": "16x"}, "faiss", "16x", None),
])
def test_effective_compression(spec: dict[str, Any], engine: str, level: str, mode: str | None) -> None:
    m = knn(**spec)
    assert (m.engine, m.compression_level, m.mode) == (engine, level, mode)
    assert m.user_mode is ("mode" in spec)
    assert m.user_compression is ("compression_level" in spec)


def test_empty_compression_string_is_not_configured() -> None:
    m = knn(compression_level="")
    assert (m.compression_level, m.user_compression, m.encoder) == ("1x", False, None)


def test_faiss_on_disk_1x_is_memory_optimized_without_encoder() -> None:
    m = knn(mode="on_disk", compression_level="1x")
    assert (m.engine, m.compression_level, m.encoder) == ("faiss", "1x", None)


def test_faiss_on_disk_1x_rejected_before_3_1() -> None:
    assert error(at, (3, 0, 0), mode="on_disk", compression_level="1x") \
        == 'Validation Failed: 1: Cannot specify "x1" compression level when using "on_disk" mode;'
    assert at((3, 1, 0), mode="on_disk", compression_level="1x").compression_level == "1x"


def test_lucene_on_disk_1x_always_rejected() -> None:
    for version in ((3, 3, 0), (3, 6, 0)):
        assert error(at, version, engine="lucene", mode="on_disk", compression_level="1x") \
            == 'Validation Failed: 1: Cannot specify "x1" compression level when using "on_disk" mode;'


@pytest.mark.parametrize("engine, levels", [("faiss", ["1x", "2x", "8x", "16x", "32x"]), ("lucene", ["1x", "4x"])])
def test_supported_compression_per_engine(engine: str, levels: list[str]) -> None:
    for level in ("1x", "2x", "4x", "8x", "16x", "32x"):
        spec = {"compression_level": level, "method": {"name": "hnsw", "engine": engine}}
        if level in levels:
            assert knn(**spec).compression_level == level
        else:
            assert error(knn, **spec) == f'Validation Failed: 1: "{engine}" does not support "{level}" compression;'


def test_lucene_32x_from_3_6() -> None:
    m = at((3, 6, 0), engine="lucene", compression_level="32x")
    assert (m.compression_level, m.encoder) == ("32x", {"name": "sq", "parameters": {"bits": 1}})
    assert at((3, 6, 0), engine="lucene", mode="on_disk").compression_level == "32x"


def test_mode_and_compression_need_2_17() -> None:
    assert error(at, (2, 16, 0), mode="on_disk") \
        == "Compression and mode can only be used on indices created on or after version 2.17.0"


def test_mode_and_compression_need_float() -> None:
    assert error(knn, data_type="byte", compression_level="1x") \
        == "Compression and mode cannot be used for non-float32 data type for field f"


# ------------------------------------------------------------------------------ auto encoders (§1.8)


@pytest.mark.parametrize("spec, encoder", [
    ({"compression_level": "1x"}, None),
    ({"compression_level": "2x"}, {"name": "sq", "parameters": {"type": "fp16"}}),
    ({"compression_level": "8x"}, {"name": "binary", "parameters": {"bits": 4}}),
    ({"compression_level": "16x"}, {"name": "binary", "parameters": {"bits": 2}}),
    ({"compression_level": "32x"}, {"name": "binary", "parameters": {"bits": 1}}),
    ({"mode": "on_disk"}, {"name": "binary", "parameters": {"bits": 1}}),
    ({"mode": "in_memory"}, None),
    ({"compression_level": "4x"}, {"name": "sq", "parameters": {"bits": 7}}),
    ({"mode": "on_disk", "engine": "lucene"}, {"name": "sq", "parameters": {"bits": 7}}),
])
def test_auto_encoder_per_level_on_3_3(spec: dict[str, Any], encoder: dict[str, Any] | None) -> None:
    assert knn(**spec).encoder == encoder


@pytest.mark.parametrize("spec, encoder", [
    ({"compression_level": "2x"}, {"name": "sq", "parameters": {"type": "fp16", "bits": 16}}),
    ({"compression_level": "32x"}, {"name": "sq", "parameters": {"bits": 1}}),
    ({"mode": "on_disk"}, {"name": "sq", "parameters": {"bits": 1}}),
    ({"compression_level": "8x"}, {"name": "binary", "parameters": {"bits": 4}}),
])
def test_auto_encoder_per_level_from_3_6(spec: dict[str, Any], encoder: dict[str, Any]) -> None:
    assert at((3, 6, 0), **spec).encoder == encoder


def test_no_auto_encoder_without_mode_or_compression() -> None:
    assert knn().encoder is None
    assert knn(engine="lucene").encoder is None


def test_user_encoder_wins_and_gives_the_level() -> None:
    m = knn(method=hnsw(encoder={"name": "binary", "parameters": {"bits": 2}}))
    assert (m.compression_level, m.encoder) == ("16x", {"name": "binary", "parameters": {"bits": 2}})
    m = knn(method=hnsw(encoder={"name": "binary"}))
    assert (m.compression_level, m.encoder) == ("32x", {"name": "binary", "parameters": {"bits": 1}})
    m = knn(method=hnsw(encoder={"name": "sq"}))
    assert (m.compression_level, m.encoder) == ("2x", {"name": "sq", "parameters": {"type": "fp16"}})
    m = knn(method=hnsw(encoder={"name": "flat"}))
    assert (m.compression_level, m.encoder) == ("1x", {"name": "flat", "parameters": {}})
    m = knn(engine="lucene", method=hnsw(encoder={"name": "sq", "parameters": {"confidence_interval": 0.9}}))
    assert (m.compression_level, m.encoder) == ("4x", {"name": "sq", "parameters": {"confidence_interval": 0.9,
                                                                                    "bits": 7}})


def test_consistent_encoder_and_compression_are_accepted() -> None:
    m = knn(mode="on_disk", compression_level="32x", method=hnsw(encoder={"name": "binary", "parameters": {"bits": 1}}))
    assert (m.compression_level, m.user_compression, m.mode) == ("32x", True, "on_disk")
    assert knn(compression_level="2x", method=hnsw(encoder={"name": "sq", "parameters": {"bits": 16}})) \
        .compression_level == "2x"


def test_conflicting_encoder_and_compression() -> None:
    generic = "Validation Failed: 1: Cannot specify an encoder that conflicts with the provided compression level;"
    assert error(knn, compression_level="8x", method=hnsw(encoder={"name": "binary"})) == generic
    assert error(knn, compression_level="16x", method=hnsw(encoder={"name": "sq"})) == generic
    assert error(knn, compression_level="32x", method=hnsw(encoder={"name": "sq", "parameters": {"bits": 16}})) == (
        "Validation Failed: 1: Compression level [32x] is incompatible with [bits=16] for encoder [sq]. Expected "
        "compression level: [2x];")


def test_encoder_is_not_generated_for_non_float() -> None:
    assert knn(data_type="byte").encoder is None


# ------------------------------------------------------------------------------ encoder rules (§1.9)


def test_sq_bits_rules_from_3_6() -> None:
    assert error(at, (3, 6, 0), method=hnsw(encoder={"name": "sq", "parameters": {"type": "fp16"}})) == (
        "Validation Failed: 1: Parameter [bits] is required for encoder [sq] on indices created with version "
        "3.6.0 or later. Supported values: [1, 16];")
    assert error(at, (3, 6, 0), engine="lucene", method=hnsw(encoder={"name": "sq"})) == (
        "Validation Failed: 1: Parameter [bits] is required for encoder [sq] on indices created with version "
        "3.6.0 or later. Supported values: [1, 7];")
    m = at((3, 6, 0), method=hnsw(encoder={"name": "sq", "parameters": {"bits": 1}}))
    assert (m.compression_level, m.ef_construction, m.ef_search) == ("32x", 256, 256)
    assert at((3, 6, 0), engine="lucene", method=hnsw(encoder={"name": "sq", "parameters": {"bits": 1}})) \
        .compression_level == "32x"
    assert error(at, (3, 6, 0), engine="lucene", method=hnsw(
        encoder={"name": "sq", "parameters": {"bits": 1, "confidence_interval": 0.9}})) == (
        "Validation Failed: 1: Parameters [confidence_interval] are not supported when [bits=1] for encoder [sq]. "
        "The 1-bit scalar quantization path does not use additional parameters.;")


def test_sq_bits_not_required_before_3_6() -> None:
    assert knn(method=hnsw(encoder={"name": "sq", "parameters": {"type": "fp16"}})).compression_level == "2x"
    assert knn(engine="lucene", method=hnsw(encoder={"name": "sq"})).compression_level == "4x"


def test_adc_only_with_one_bit() -> None:
    m = knn(method=hnsw(encoder={"name": "binary", "parameters": {"enable_adc": True}}))
    assert m.encoder == {"name": "binary", "parameters": {"enable_adc": True, "bits": 1}}
    assert error(knn, method=hnsw(encoder={"name": "binary", "parameters": {"bits": 4, "enable_adc": True}})) \
        == "Validation Failed: ADC is not supported for bit count: 4"


# -------------------------------------------------------------------------- method parameters (§1.10)


@pytest.mark.parametrize("spec, ef", [
    ({}, 100), ({"compression_level": "2x"}, 100), ({"compression_level": "8x"}, 256),
    ({"compression_level": "16x"}, 256), ({"compression_level": "32x"}, 256), ({"mode": "on_disk"}, 256),
    ({"mode": "in_memory", "compression_level": "32x"}, 256), ({"mode": "on_disk", "compression_level": "1x"}, 100),
])
def test_faiss_ef_defaults_follow_the_resolved_level(spec: dict[str, Any], ef: int) -> None:
    m = knn(**spec)
    assert (m.m, m.ef_construction, m.ef_search) == (16, ef, ef)


def test_faiss_ef_defaults_with_a_user_bq_encoder() -> None:
    m = knn(method=hnsw(encoder={"name": "binary", "parameters": {"bits": 4}}))
    assert (m.ef_construction, m.ef_search) == (256, 256)


def test_user_parameters_override_defaults() -> None:
    m = knn(mode="on_disk", method=hnsw(m=32, ef_construction=64, ef_search=48))
    assert (m.m, m.ef_construction, m.ef_search) == (32, 64, 48)


def test_lucene_has_no_mapping_ef_search() -> None:
    m = knn(engine="lucene")
    assert (m.m, m.ef_construction, m.ef_search) == (16, 100, None)
    assert knn(engine="lucene", compression_level="4x").ef_construction == 100
    assert error(knn, engine="lucene", method=hnsw(ef_search=10)) \
        == "Validation Failed: 1: Unknown parameter 'ef_search' found;"


def test_lucene_bq_ef_only_with_user_compression() -> None:
    assert at((3, 6, 0), engine="lucene", compression_level="32x").ef_construction == 256
    assert at((3, 6, 0), engine="lucene", mode="on_disk").ef_construction == 100


def test_ef_defaults_before_2_12() -> None:
    m = at((2, 11, 0), method={"name": "hnsw", "engine": "faiss"})
    assert (m.ef_construction, m.ef_search) == (512, 512)


def test_nmslib_allowed_before_3_0() -> None:
    m = at((2, 19, 0), engine="nmslib", space_type="l1")
    assert (m.engine, m.space_type, m.m, m.ef_construction, m.ef_search) == ("nmslib", "l1", 16, 100, None)
    assert error(at, (2, 19, 0), engine="nmslib", data_type="byte") \
        == 'Validation Failed: 1: Method "hnsw" is not supported for vector data type "BYTE".;'


def test_nmslib_blocked_from_3_0() -> None:
    assert error(knn, engine="nmslib") == ("nmslib engine is deprecated in OpenSearch  and cannot be used for new "
                                           "index creation in OpenSearch from  3.0.0.")


def test_training_methods_are_rejected() -> None:
    assert error(knn, method={"name": "ivf"}) == 'Validation Failed: 1: "method" requires training.;'
    assert error(knn, method=hnsw(encoder={"name": "pq"})) == 'Validation Failed: 1: "method" requires training.;'


# ------------------------------------------------------------------------------------ lucene flat (3.6)


def test_lucene_flat_method_from_3_6() -> None:
    m = at((3, 6, 0), method={"name": "flat"})
    assert (m.engine, m.method, m.compression_level, m.m, m.ef_construction) == ("lucene", "flat", "32x", None, None)
    assert at((3, 6, 0), compression_level="32x", method={"name": "flat", "engine": "lucene"}).method == "flat"
    assert error(at, (3, 6, 0), method={"name": "flat", "parameters": {"m": 4}}) \
        == 'Validation Failed: 1: Parameters are not supported for the "flat" method;'
    assert error(at, (3, 6, 0), mode="on_disk", method={"name": "flat"}) \
        == 'Validation Failed: 1: "mode" is not supported for the "flat" method;'
    assert error(at, (3, 6, 0), compression_level="4x", method={"name": "flat"}) \
        == 'Validation Failed: 1: "flat" method only supports "32x" compression;'
    assert error(at, (3, 6, 0), data_type="byte", method={"name": "flat"}) \
        == 'Validation Failed: 1: Method "flat" is not supported for vector data type "BYTE".;'
    assert error(at, (3, 6, 0), space_type="l1", method={"name": "flat"}) \
        == 'Validation Failed: 1: "flat" with "lucene" configuration does not support space type: "l1".;'


def test_flat_method_unknown_before_3_6() -> None:
    assert error(knn, method={"name": "flat"}) == "Invalid method name: flat"


# --------------------------------------------------------------------------------- flat and model fields


def test_flat_field() -> None:
    m = parse_knn_vector("f", {"type": "knn_vector", "dimension": 8, "data_type": "binary"}, index_knn=False)
    assert (m.knn, m.space_type, m.engine, m.method, m.encoder) == (False, "hamming", None, None, None)
    assert m.field_attributes() == {"knn": "false"}


def test_model_field_has_no_dimension_until_the_model_exists() -> None:
    m = parse_knn_vector("f", {"type": "knn_vector", "model_id": "my-model"}, index_knn=True)
    assert (m.dimension, m.model_id, m.engine, m.space_type, m.compression_level) == (None, "my-model", None, None,
                                                                                       None)
    assert m.field_attributes() == {"knn": "true", "model_id": "my-model"}
    with pytest.raises(IllegalArgumentError, match=r"^Model ID 'my-model' is not created\.$"):
        m.require_dimension()
    assert knn().require_dimension() == 16


def test_model_and_dimension_allowed_before_2_19() -> None:
    assert _parse("f", {"type": "knn_vector", "model_id": "m", "dimension": 3}, index_knn=True,
                  version=(2, 18, 0)).model_id == "m"


# -------------------------------------------------------------------------------- persisted attributes


def test_field_attributes_record_the_resolution() -> None:
    assert knn().field_attributes() == {
        "knn": "true", "engine": "faiss", "method": "hnsw", "hnsw.m": "16", "hnsw.ef_construction": "100",
        "hnsw.ef_search": "100", "compression": "1x", "compression.user": "false", "mode.user": "false"}
    assert knn(mode="on_disk").field_attributes() == {
        "knn": "true", "engine": "faiss", "method": "hnsw", "hnsw.m": "16", "hnsw.ef_construction": "256",
        "hnsw.ef_search": "256", "compression": "32x", "compression.user": "false", "mode": "on_disk",
        "mode.user": "true", "encoder": "binary", "encoder.bits": "1"}
    assert knn(compression_level="4x").field_attributes() == {
        "knn": "true", "engine": "lucene", "method": "hnsw", "hnsw.m": "16", "hnsw.ef_construction": "100",
        "compression": "4x", "compression.user": "true", "mode.user": "false", "encoder": "sq", "encoder.bits": "7"}
    attrs = knn(method=hnsw(encoder={"name": "sq", "parameters": {"clip": True}})).field_attributes()
    assert (attrs["encoder"], attrs["encoder.type"], attrs["encoder.clip"]) == ("sq", "fp16", "true")
    assert all(isinstance(v, str) for v in attrs.values())


def test_to_dict_echoes_the_mapping() -> None:
    spec = {"type": "knn_vector", "dimension": 3, "mode": "on_disk"}
    assert parse_knn_vector("f", spec, index_knn=True).to_dict() == spec


# ------------------------------------------------------------------------------------ mapping layer


def test_messages_name_the_leaf_field_and_get_the_prefix() -> None:
    with pytest.raises(MapperParsingError) as exc:
        Mappings.parse({"properties": {"doc": {"properties": {"emb": {"type": "knn_vector"}}}}}, index_knn=True)
    assert exc.value.message == "Failed to parse mapping [_doc]: Dimension value missing for vector: emb"
    assert exc.value.status == 400 and exc.value.error_type == "mapper_parsing_exception"
    m = Mappings.parse({"properties": {"doc": {"properties": {"emb": {"type": "knn_vector", "dimension": 2}}}}},
                       index_knn=True)
    assert m.vector_fields["doc.emb"].path == "doc.emb"

