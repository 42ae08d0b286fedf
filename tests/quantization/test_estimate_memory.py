"""``segstore estimate-memory``: the docs' formulas with the seed page's arithmetic slips corrected."""

from __future__ import annotations

import argparse
import json

import pytest

from segstore_tools import estimate_memory as em


def _rows(**kw):  # type: ignore[no-untyped-def]
    return {r["encoding"]: r for r in em.estimate(**kw)["rows"]}


def test_32x_of_768_floats_is_96_bytes_not_846() -> None:
    rows = _rows(dimension=768, vectors=1, compression="32x")
    assert rows["float32"]["vector_bytes"] == 3072
    assert rows["bq-1bit"]["vector_bytes"] == 96 == 3072 / 32
    assert rows["bq-1bit"]["ratio_to_float"] == 32
    assert rows["bq-1bit"]["selected"] and not rows["float32"]["selected"]
    assert rows["bq-2bit"]["vector_bytes"] == 192 and rows["bq-4bit"]["vector_bytes"] == 384
    assert rows["fp16"]["vector_bytes"] == 1536
    # Lucene stores each 7-bit value in a whole byte, plus one float per vector (not 7/8 byte per dim)
    assert rows["lucene-sq7"]["vector_bytes"] == 768 + 4


def test_byte_hnsw_example_in_gib_and_gb() -> None:
    r = em.estimate(256, 1_000_000, m=16, data_type="byte")["selected"]
    assert r["encoding"] == "byte"
    assert r["bytes_per_vector"] == pytest.approx(1.1 * (256 + 8 * 16))
    assert r["total_bytes"] == pytest.approx(422_400_000)
    assert round(r["total_gib"], 2) == 0.39  # the docs' "0.39 GB" is GiB
    assert round(r["total_gb"], 3) == 0.422


def test_byte_ivf_is_a_total_not_per_vector() -> None:
    r = em.estimate(256, 1_000_000, method="ivf", nlist=128, data_type="byte")["selected"]
    assert r["total_bytes"] == pytest.approx(1.1 * (256 * 1_000_000 + 4 * 128 * 256))  # 281,744,179.2
    assert r["fixed_bytes"] == pytest.approx(1.1 * 4 * 128 * 256)
    assert "(total)" in r["formula"]
    assert round(r["total_gib"], 4) == 0.2624 and round(r["total_gb"], 4) == 0.2817
    # the coarse centroids are per segment
    r3 = em.estimate(256, 1_000_000, method="ivf", nlist=128, data_type="byte", segments=3)["selected"]
    assert r3["total_bytes"] - r["total_bytes"] == pytest.approx(2 * 1.1 * 4 * 128 * 256)


def test_binary_and_float_formulas() -> None:
    rows = _rows(dimension=256, vectors=1_000_000, method="ivf", nlist=128, data_type="binary")
    assert rows["binary"]["selected"]
    assert rows["binary"]["total_bytes"] == pytest.approx(1.1 * ((256 / 8) * 1_000_000 + 128 * 256 / 8))
    assert rows["float32"]["total_bytes"] == pytest.approx(1.1 * (4 * 256 * 1_000_000 + 4 * 128 * 256))
    assert rows["lucene-sq7"]["total_bytes"] is None  # lucene has no IVF
    h = _rows(dimension=256, vectors=1_000_000, m=16, data_type="binary")
    assert h["binary"]["bytes_per_vector"] == pytest.approx(1.1 * (256 / 8 + 8 * 16))
    assert h["float32"]["bytes_per_vector"] == pytest.approx(1.1 * (4 * 256 + 8 * 16))
    assert h["fp16"]["bytes_per_vector"] == pytest.approx(1.1 * (2 * 256 + 8 * 16))
    # binary quantization pads the bit planes to whole bytes
    assert _rows(dimension=13, vectors=1, compression="16x")["bq-2bit"]["vector_bytes"] == 4


@pytest.mark.parametrize(("kw", "message"), [
    ({"data_type": "byte", "compression": "32x"}, "only supported for float"),
    ({"data_type": "binary", "dimension": 12}, "multiple of 8"),
    ({"method": "ivf", "compression": "4x"}, "no IVF"),
])
def test_invalid_configurations(kw, message) -> None:  # type: ignore[no-untyped-def]
    args = {"dimension": 16, "vectors": 10, **kw}
    with pytest.raises(ValueError, match=message):
        em.estimate(**args)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    em.register(parser.add_subparsers())
    args = parser.parse_args(["estimate-memory", *argv])
    return int(args.func(args))


def test_cli_table_and_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert _cli(["--dimension", "768", "--vectors", "1000000", "--compression", "32x"]) == 0
    out = capsys.readouterr().out
    assert "246,400,000" in out and "0.2295 GiB" in out and "0.2464 GB" in out
    star = [line for line in out.splitlines() if line.startswith("*")]
    assert len(star) == 1 and "bq-1bit" in star[0] and " 96 " in star[0]
    assert _cli(["-d", "256", "-n", "1000000", "--data-type", "byte", "--method", "ivf", "--nlist", "128",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["nlist"] == 128 and len(data["rows"]) == len(em.ENCODINGS)
    assert data["selected"]["total_bytes"] == pytest.approx(281_744_179.2)
    assert _cli(["-d", "256", "-n", "10", "--data-type", "byte", "--compression", "8x"]) == 2
