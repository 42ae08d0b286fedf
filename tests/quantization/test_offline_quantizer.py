"""Offline scalar quantization (seed page "Quantization techniques") and the ``segstore quantize`` tool."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from segstore.quantization import offline
from segstore.quantization.offline import CosineQuantizer, L2Quantizer


def _seed_l2(dataset: np.ndarray, queryset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed's L2 pseudocode, transcribed literally (on copies)."""
    dataset, queryset = dataset.astype(np.float64).copy(), queryset.astype(np.float64).copy()
    B = 256
    dataset_min = np.min(dataset)
    dataset_max = np.max(dataset)
    dataset -= dataset_min
    dataset *= 1.0 / (dataset_max - dataset_min)
    dataset = np.floor(dataset * (B - 1)) - int(B / 2)
    queryset = queryset.clip(dataset_min, dataset_max)
    queryset -= dataset_min
    queryset *= 1.0 / (dataset_max - dataset_min)
    queryset = np.floor(queryset * (B - 1)) - int(B / 2)
    return dataset, queryset


def _seed_cosine_value(val: float, dataset: np.ndarray) -> int:
    """The seed's cosine pseudocode for one value (positive or negative branch; ``var`` typo fixed)."""
    if val >= 0:
        mx, mn, B = float(np.max(dataset)), 0.0, 127
    else:
        mn, mx, B = 0.0, -float(np.min(dataset)), 128
    v = (val - mn) / (mx - mn) * B
    int_part = math.floor(v)
    frac = v - int_part
    return int(int_part + 1 if 0.5 < frac else int_part)


def test_l2_matches_the_seed_pseudocode_and_range() -> None:
    rng = np.random.default_rng(7)
    dataset = rng.uniform(-300, 300, (100, 10))
    queryset = rng.uniform(-350, 350, (100, 10))
    expect_d, expect_q = _seed_l2(dataset, queryset)
    codes, q = offline.quantize_l2(dataset)
    qcodes = offline.quantize_l2_queries(queryset, q)
    assert codes.dtype == np.int8 and qcodes.dtype == np.int8
    np.testing.assert_array_equal(codes, expect_d.astype(np.int8))
    np.testing.assert_array_equal(qcodes, expect_q.astype(np.int8))
    assert codes.min() == -128 and codes.max() == 127  # min -> -128, max -> 127 exactly
    assert q.clipped(queryset) > 0  # queries beyond the data range were clipped, not wrapped
    assert qcodes.min() >= -128 and qcodes.max() <= 127
    # the caller's arrays are untouched (the seed's code works in place)
    assert dataset.min() < 0


def test_l2_round_trip_and_rank_preservation() -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((500, 32)).astype(np.float32)
    q = L2Quantizer.fit(data)
    codes = q.quantize(data)
    back = q.dequantize(codes)
    assert np.abs(back - data).max() <= q.width / 255 + 1e-12
    np.testing.assert_array_equal(q.quantize(back), codes)  # bucket centres map back to their own code
    # l2 neighbours of the codes mostly match the float neighbours (same affine map on every dimension)
    queries = rng.standard_normal((20, 32)).astype(np.float32)
    qc = q.quantize_queries(queries).astype(np.float64)
    c = codes.astype(np.float64)
    exact = np.argsort(((data[None, :, :] - queries[:, None, :]) ** 2).sum(-1), axis=1)[:, :10]
    approx = np.argsort(((c[None, :, :] - qc[:, None, :]) ** 2).sum(-1), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9
    # parameters survive JSON
    assert offline.quantizer_from_dict(json.loads(json.dumps(q.to_dict()))) == q


def test_l2_constant_dataset_does_not_divide_by_zero() -> None:
    q = L2Quantizer.fit(np.full((3, 4), 2.5))
    assert (q.quantize(np.full((3, 4), 2.5)) == -128).all()
    assert (q.quantize_queries(np.array([100.0, -100.0])) == -128).all()


def test_cosine_matches_the_seed_per_value_rule() -> None:
    rng = np.random.default_rng(3)
    dataset = rng.uniform(-0.4, 0.6, (50, 16))
    cq = CosineQuantizer.fit(dataset)
    codes = cq.quantize(dataset)
    expect = np.vectorize(lambda v: _seed_cosine_value(v, dataset))(dataset)
    np.testing.assert_array_equal(codes, expect.astype(np.int8))
    assert codes.max() == 127 and codes.min() == -128
    assert cq.positive_max == pytest.approx(dataset.max()) and cq.negative_max == pytest.approx(-dataset.min())


def test_cosine_keeps_signs_and_rounds_half_down() -> None:
    cq = CosineQuantizer(positive_max=127.0, negative_max=128.0)  # scale 1: values are their own codes
    v = np.array([0.0, 3.5, 3.51, -3.5, -3.49, -3.51, 200.0, -200.0, 126.6])
    np.testing.assert_array_equal(cq.quantize(v), np.array([0, 3, 4, -4, -3, -4, 127, -128, 127], np.int8))
    # queries use the training parameters and are clipped the same way
    np.testing.assert_array_equal(cq.quantize_queries(v), cq.quantize(v))
    assert cq.clipped(v) == 2
    # round trip within half a step per side
    data = np.linspace(-1.0, 1.0, 101)
    cq2 = CosineQuantizer.fit(data)
    back = cq2.dequantize(cq2.quantize(data))
    assert np.abs(back - data).max() <= 0.5 / 127 + 1e-12
    assert np.sign(back[data != 0]).tolist() == np.sign(data[data != 0]).tolist()


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="supports"):
        offline.fit("innerproduct", np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        offline.fit("l2", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="empty"):
        offline.fit("cosinesimil", np.zeros((0, 3)))


def _cli(argv: list[str]) -> int:
    from segstore_tools import quantize

    parser = argparse.ArgumentParser()
    quantize.register(parser.add_subparsers())
    args = parser.parse_args(["quantize", *argv])
    return int(args.func(args))


def test_quantize_tool_round_trip(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    docs = rng.standard_normal((200, 8)).astype(np.float16)
    queries = (rng.standard_normal((10, 8)) * 2).astype(np.float32)
    np.save(tmp_path / "docs.npy", docs)
    np.save(tmp_path / "q.npy", queries)
    assert _cli([str(tmp_path / "docs.npy"), str(tmp_path / "docs.i8.npy"), "--space", "l2",
                 "--save-params", str(tmp_path / "p.json"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    out = np.load(tmp_path / "docs.i8.npy")
    assert out.dtype == np.int8 and out.shape == (200, 8)
    q = L2Quantizer.fit(docs)
    np.testing.assert_array_equal(out, q.quantize(docs))
    assert stats["params"] == q.to_dict() and stats["clipped_values"] == 0
    assert stats["code_min"] == -128 and stats["code_max"] == 127
    # queries through saved params == queries through the training data == the library
    assert _cli([str(tmp_path / "q.npy"), str(tmp_path / "q1.npy"), "--space", "l2", "--queries",
                 "--params", str(tmp_path / "p.json")]) == 0
    assert _cli([str(tmp_path / "q.npy"), str(tmp_path / "q2.npy"), "--space", "l2", "--queries",
                 "--train", str(tmp_path / "docs.npy"), "--json"]) == 0
    stats_q = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert stats_q["clipped_values"] == q.clipped(queries) > 0
    np.testing.assert_array_equal(np.load(tmp_path / "q1.npy"), q.quantize_queries(queries))
    np.testing.assert_array_equal(np.load(tmp_path / "q2.npy"), q.quantize_queries(queries))
    # usage errors exit 2
    assert _cli([str(tmp_path / "q.npy"), str(tmp_path / "q3.npy"), "--space", "l2", "--queries"]) == 2
    assert _cli([str(tmp_path / "q.npy"), str(tmp_path / "q3.npy"), "--space", "cosinesimil", "--queries",
                 "--params", str(tmp_path / "p.json")]) == 2
    assert _cli([str(tmp_path / "missing.npy"), str(tmp_path / "x.npy"), "--space", "l2"]) == 2
