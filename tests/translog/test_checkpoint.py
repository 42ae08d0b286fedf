"""Checkpoint file and record codec: fixed size, full verification, typed errors naming the file."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segstore.errors import TranslogCorruptedError
from segstore.translog import Checkpoint
from segstore.translog.checkpoint import (
    CHECKPOINT_SIZE,
    write_checkpoint_atomically,
    write_checkpoint_in_place,
)
from segstore.translog.tlog_file import (
    RecordCorruptedError,
    encode_ops,
    iter_records,
    read_tlog_header,
    tlog_header,
)

UUID = bytes(range(16))


def sample() -> Checkpoint:
    return Checkpoint(offset=4242, num_ops=17, generation=5, min_seq_no=3, max_seq_no=99,
                      min_translog_generation=2, translog_uuid=UUID)


def test_round_trip_and_fixed_size_under_one_sector(tmp_path: Path) -> None:
    ckp = sample()
    data = ckp.to_bytes()
    assert len(data) == CHECKPOINT_SIZE < 512
    assert Checkpoint.from_bytes(data, "x") == ckp
    assert len(Checkpoint.empty(10**12, 1, UUID).to_bytes()) == CHECKPOINT_SIZE  # size does not depend on values
    write_checkpoint_atomically(str(tmp_path), "translog.ckp", ckp)
    assert Checkpoint.read(str(tmp_path / "translog.ckp")) == ckp
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_in_place_rewrite_keeps_size(tmp_path: Path) -> None:
    path = tmp_path / "translog.ckp"
    write_checkpoint_atomically(str(tmp_path), "translog.ckp", sample())
    fd = os.open(path, os.O_RDWR)
    try:
        newer = sample().appended(100, 2, 1, 200)
        write_checkpoint_in_place(fd, newer)
    finally:
        os.close(fd)
    assert path.stat().st_size == CHECKPOINT_SIZE
    got = Checkpoint.read(str(path))
    assert (got.offset, got.num_ops, got.min_seq_no, got.max_seq_no) == (4342, 19, 1, 200)


def test_every_single_bit_flip_is_detected(tmp_path: Path) -> None:
    data = sample().to_bytes()
    path = tmp_path / "translog.ckp"
    for i in range(len(data)):
        for bit in (0, 7):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            with pytest.raises(TranslogCorruptedError) as ei:
                Checkpoint.read(str(path))
            assert ei.value.file == str(path)
            assert str(path) in str(ei.value)


@pytest.mark.parametrize("mutate", [lambda d: d[:-1], lambda d: d + b"\0", lambda d: b""])
def test_truncated_or_extended_checkpoint(tmp_path: Path, mutate: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "translog.ckp"
    path.write_bytes(mutate(sample().to_bytes()))
    with pytest.raises(TranslogCorruptedError, match="wrong length"):
        Checkpoint.read(str(path))


def test_missing_checkpoint_names_path(tmp_path: Path) -> None:
    with pytest.raises(TranslogCorruptedError) as ei:
        Checkpoint.read(str(tmp_path / "translog.ckp"))
    assert ei.value.file == str(tmp_path / "translog.ckp")


def test_valid_crc_but_inconsistent_values_refused() -> None:
    for bad in (
        Checkpoint(100, 0, 1, 5, 5, 1, UUID),  # no ops but a seq range
        Checkpoint(100, 3, 1, 9, 2, 1, UUID),  # min > max
        Checkpoint(100, 3, 2, 0, 2, 3, UUID),  # min generation above generation
        Checkpoint(10, 0, 1, -1, -1, 1, UUID),  # offset inside the header
    ):
        with pytest.raises(TranslogCorruptedError, match="inconsistent"):
            Checkpoint.from_bytes(bad.to_bytes(), "f")


def test_future_version_is_reported(tmp_path: Path) -> None:
    data = bytearray(sample().to_bytes())
    pos = 5 + data[4]
    data[pos : pos + 4] = (2).to_bytes(4, "big")
    data[-8:] = zlib.crc32(bytes(data[:-8])).to_bytes(8, "big")
    with pytest.raises(TranslogCorruptedError, match="too new"):
        Checkpoint.from_bytes(bytes(data), "f")


# ------------------------------------------------------------------------------------------------ records


def records(ops: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO(tlog_header(UUID, 1) + encode_ops(ops)[0])


def test_records_round_trip_types() -> None:
    ops: list[dict[Any, Any]] = [
        {"seq_no": 0, "vec": b"\x00\xff" * 8, "text": "日本語 ✓ \u0000", "n": 2**63 - 1, "m": -(2**63)},
        {"seq_no": 2**63 - 1, "huge": 2**200, "neg_huge": -(2**64), "u64": 2**64 - 1, "f": 1.5, "l": [1, [b"x"]]},
        {"seq_no": 5, "nested": {"a": {"b": None, "c": True}}, 7: "int key"},
    ]
    fh = records(ops)
    start = read_tlog_header(fh, "f", UUID, 1)
    end = len(fh.getvalue())
    got = [op for _, op in iter_records(fh, "f", start, end)]
    assert got == ops
    assert isinstance(got[0]["vec"], bytes) and isinstance(got[0]["text"], str)
    assert encode_ops(ops)[1:] == (0, 2**63 - 1)


@pytest.mark.parametrize("op", [{}, {"seq_no": "1"}, {"seq_no": -1}, {"seq_no": True}, {"seq_no": 2**63}, [1]])
def test_bad_operations_rejected_before_writing(op: Any) -> None:
    with pytest.raises(ValueError):
        encode_ops([op])


def test_unsupported_value_type() -> None:
    with pytest.raises(TypeError, match="set"):
        encode_ops([{"seq_no": 1, "x": {1, 2}}])


def test_flipped_record_reports_offset() -> None:
    ops = [{"seq_no": i, "p": "x" * 20} for i in range(3)]
    data = bytearray(records(ops).getvalue())
    start = read_tlog_header(io.BytesIO(bytes(data)), "f", UUID, 1)
    rec_len = (len(data) - start) // 3
    second = start + rec_len
    data[second + 10] ^= 0x40  # inside the payload of the second record
    fh = io.BytesIO(bytes(data))
    it = iter_records(fh, "f.tlog", start, len(data))
    assert next(it)[1]["seq_no"] == 0
    with pytest.raises(RecordCorruptedError) as ei:
        next(it)
    assert ei.value.offset == second and ei.value.file == "f.tlog" and "checksum" in str(ei.value)


def test_length_past_checkpoint_is_corruption_not_allocation() -> None:
    data = bytearray(records([{"seq_no": 1}]).getvalue())
    start = read_tlog_header(io.BytesIO(bytes(data)), "f", UUID, 1)
    data[start : start + 4] = (0xFFFFFFF0).to_bytes(4, "big")
    with pytest.raises(RecordCorruptedError, match="invalid record length"):
        list(iter_records(io.BytesIO(bytes(data)), "f", start, len(data)))


def test_record_straddling_checkpoint_offset_is_corruption() -> None:
    data = records([{"seq_no": 1}, {"seq_no": 2}]).getvalue()
    start = read_tlog_header(io.BytesIO(data), "f", UUID, 1)
    with pytest.raises(RecordCorruptedError):
        list(iter_records(io.BytesIO(data), "f", start, len(data) - 3))


def test_tlog_header_checks() -> None:
    good = tlog_header(UUID, 7)
    assert read_tlog_header(io.BytesIO(good), "f", UUID, 7) == len(good)
    with pytest.raises(TranslogCorruptedError, match="suffix"):
        read_tlog_header(io.BytesIO(tlog_header(UUID, 8)), "f", UUID, 7)  # a valid header of another generation
    with pytest.raises(TranslogCorruptedError, match="uuid mismatch"):
        read_tlog_header(io.BytesIO(tlog_header(bytes(16), 7)), "f", UUID, 7)
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 1
        with pytest.raises(TranslogCorruptedError):
            read_tlog_header(io.BytesIO(bytes(bad)), "f", UUID, 7)
    with pytest.raises(TranslogCorruptedError, match="truncated"):
        read_tlog_header(io.BytesIO(good[:-1]), "f", UUID, 7)
