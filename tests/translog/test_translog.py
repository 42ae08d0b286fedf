"""Translog behaviour: durability, recovery checks, tragic events, inspection and explicit repair.

Ports the relevant parts of OpenSearch's LocalTranslogTests / TestTranslog (reliability.md 7.2, matrix rows
6, 7, 9 and 14)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstore.errors import (
    AlreadyClosedError,
    DiskFullError,
    StorageIOError,
    TranslogCorruptedError,
)
from segstore.translog import Checkpoint, Translog, TranslogStats
from segstore.translog.tlog_file import encode_ops, tlog_header_length

UUID = bytes.fromhex("0123456789abcdef0123456789abcdef")


def op(seq: int, **extra: object) -> dict[str, Any]:
    return {"seq_no": seq, "op": "index", "id": f"doc-{seq}", **extra}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def record_size(o: dict[str, Any]) -> int:
    return len(encode_ops([o])[0])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "translog"


def build(folder: Path, per_gen: list[int]) -> list[dict[str, Any]]:
    """A closed translog with ``per_gen[i]`` ops in generation i+1; returns every op in order."""
    ops: list[dict[str, Any]] = []
    with Translog.create(folder, UUID) as t:
        for i, n in enumerate(per_gen):
            if i:
                t.roll_generation()
            batch = [op(len(ops) + k, pad="x" * 10) for k in range(n)]
            for o in batch:
                t.add([o])
            ops += batch
    return ops


# ------------------------------------------------------------------------------------------ round trips


def test_round_trip_generations_roll_trim_reopen(folder: Path) -> None:
    values = {"vec": bytes(range(256)), "text": "ünïcødé ✓ 😀", "big": 2**64 + 5, "neg": -(2**80), "f": -0.5}
    with Translog.create(folder, UUID) as t:
        assert (t.current_generation, t.min_generation, t.uuid) == (1, 1, UUID)
        t.add([op(0, **values), op(1)])
        assert t.roll_generation() == 2
        t.add([op(2), op(3, **values)])
        assert t.roll_generation() == 3
        t.add([op(4)])
        everything = list(t.read_ops())
        assert [o["seq_no"] for o in everything] == [0, 1, 2, 3, 4]
        assert everything[0] == op(0, **values) and isinstance(everything[0]["vec"], bytes)
        assert [o["seq_no"] for o in t.read_ops(min_generation=2)] == [2, 3, 4]
        st_ = t.stats(committed_generation=3)
        assert (st_.operations, st_.uncommitted_operations, st_.generations) == (5, 1, [1, 2, 3])
        assert (st_.earliest_seq_no, st_.latest_seq_no, st_.current_generation) == (0, 4, 3)

        t.trim_below(2)
        assert t.min_generation == 2
        assert not (folder / "translog-1.tlog").exists() and not (folder / "translog-1.ckp").exists()
        # the new minimum is durable before the files went away
        assert Checkpoint.read(str(folder / "translog.ckp")).min_translog_generation == 2
        assert [o["seq_no"] for o in t.read_ops()] == [2, 3, 4]
        with pytest.raises(ValueError, match="trimmed"):
            t.read_ops(min_generation=1)
        with pytest.raises(ValueError):
            t.trim_below(99)

    with Translog.open(folder, UUID) as t:
        assert t.current_generation == 4 and t.min_generation == 2  # recovery rolls to a new generation
        got = list(t.read_ops())
        assert [o["seq_no"] for o in got] == [2, 3, 4] and got[1] == op(3, **values)
        t.add([op(5)])
    with Translog.open(folder, UUID) as t:
        assert [o["seq_no"] for o in t.read_ops()] == [2, 3, 4, 5]
        assert isinstance(t.stats(), TranslogStats)


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                       max_leaves=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.text(max_size=8), _values, max_size=5), min_size=1, max_size=12),
       st.integers(0, 3))
def test_random_ops_round_trip(docs: list[dict[str, Any]], rolls: int) -> None:
    ops = [{**d, "seq_no": i} for i, d in enumerate(docs)]
    with tempfile.TemporaryDirectory() as tmp:
        with Translog.create(tmp, UUID) as t:
            for i, o in enumerate(ops):
                t.add([o])
                if rolls and i % (rolls + 1) == rolls:
                    t.roll_generation()
        with Translog.open(tmp, UUID) as t:
            assert list(t.read_ops()) == ops


def test_empty_add_and_create_refuses_existing(folder: Path) -> None:
    with Translog.create(folder, UUID) as t:
        t.add([])
        assert t.stats().operations == 0
        with pytest.raises(ValueError):
            t.add([{"no_seq": 1}])
        assert t.is_open  # a rejected op is not a tragic event
    with pytest.raises(FileExistsError):
        Translog.create(folder, UUID)
    other = bytes(16)
    with Translog.create(folder, other, overwrite=True) as t:
        assert t.uuid == other and sorted(os.listdir(folder)) == ["translog-1.tlog", "translog.ckp"]


def test_close_is_idempotent_and_use_after_close_fails(folder: Path) -> None:
    t = Translog.create(folder, UUID)
    t.close()
    t.close()
    for call in (lambda: t.add([op(1)]), t.sync, t.roll_generation, lambda: t.read_ops(), lambda: t.trim_below(1),
                 t.stats):
        with pytest.raises(AlreadyClosedError) as ei:
            call()
        assert ei.value.cause is None


# ------------------------------------------------------------------------------------------- durability


def test_request_durability_ack_means_on_disk(folder: Path) -> None:
    t = Translog.create(folder, UUID)
    t.add([op(0), op(1)])
    # Acked: the on-disk checkpoint already covers both ops, before any close.
    ckp = Checkpoint.read(str(folder / "translog.ckp"))
    assert (ckp.num_ops, ckp.min_seq_no, ckp.max_seq_no) == (2, 0, 1)
    inspected = Translog.inspect(folder)
    assert inspected["clean"] and inspected["generations"][0]["operations"] == 2
    t.close()
    with Translog.open(folder, UUID) as t2:
        assert [o["seq_no"] for o in t2.read_ops()] == [0, 1]


_CHILD = r"""
import os, sys
from segstore.translog import Translog
t = Translog.create(sys.argv[1], bytes.fromhex(sys.argv[2]))
seq = 0
while True:
    batch = [{"seq_no": seq + i, "vec": os.urandom(32), "s": "é" * (seq % 7)} for i in range(3)]
    t.add(batch)  # durability=request: returns after fsync of the records and of translog.ckp
    print(" ".join(str(o["seq_no"]) for o in batch), flush=True)
    seq += 3
    if seq % 45 == 0:
        t.roll_generation()
"""


@pytest.mark.parametrize("acks_before_kill", [30, 150, 400])
def test_sigkill_loses_no_acked_op(tmp_path: Path, acks_before_kill: int) -> None:
    folder = tmp_path / f"tl{acks_before_kill}"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), UUID.hex()], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked: set[int] = set()
    deadline = time.monotonic() + 6
    try:
        assert proc.stdout is not None
        while len(acked) < acks_before_kill and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.update(int(x) for x in line.split())
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-stream: the child is still adding (or rolling)
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == -signal.SIGKILL, err  # it was killed mid-stream, not crashed on its own
    acked.update(int(x) for line in out.splitlines(keepends=True) if line.endswith("\n") for x in line.split())
    assert len(acked) >= min(acks_before_kill, 30), err
    with Translog.open(folder, UUID) as t:
        seqs = [o["seq_no"] for o in t.read_ops()]
    assert acked <= set(seqs)
    assert seqs == list(range(len(seqs)))  # whole batches, in order, no duplicates, nothing torn


def test_async_durability_syncs_on_interval(folder: Path) -> None:
    with Translog.create(folder, UUID, durability="async", sync_interval=0.05) as t:
        t.add([op(0), op(1), op(2)])
        deadline = time.monotonic() + 5
        while len(list(t.read_ops())) < 3:  # readers see what was synced; the syncer thread must do it
            assert time.monotonic() < deadline, "async sync did not happen"
            time.sleep(0.01)
        assert Checkpoint.read(str(folder / "translog.ckp")).num_ops == 3  # checkpoint written before readers see it
        assert [o["seq_no"] for o in t.read_ops()] == [0, 1, 2]


def test_async_durability_unsynced_until_close(folder: Path) -> None:
    t = Translog.create(folder, UUID, durability="async", sync_interval=60)
    t.add([op(0)])
    assert Checkpoint.read(str(folder / "translog.ckp")).num_ops == 0  # not durable yet: may be lost
    assert list(t.read_ops()) == []  # readers only see synced operations
    t.close()  # close syncs
    assert Checkpoint.read(str(folder / "translog.ckp")).num_ops == 1
    with Translog.open(folder, UUID) as t2:
        assert [o["seq_no"] for o in t2.read_ops()] == [0]


def test_concurrent_adds_and_reads(folder: Path) -> None:
    t = Translog.create(folder, UUID)
    n_threads, per_thread = 6, 40
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(per_thread):
                seq = k * per_thread + i
                t.add([op(seq, payload=bytes([k]) * 50), op(10_000 + seq)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(20):
                got = list(t.read_ops())
                assert all(o["seq_no"] >= 10_000 or o["payload"] == bytes([o["seq_no"] // per_thread]) * 50
                           for o in got)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    threads += [threading.Thread(target=reader), threading.Thread(target=lambda: [t.roll_generation() for _ in range(3)])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    t.close()
    with Translog.open(folder, UUID) as t2:
        seqs = [o["seq_no"] for o in t2.read_ops()]
    assert sorted(seqs) == sorted(list(range(n_threads * per_thread)) + [10_000 + s for s in range(n_threads * per_thread)])
    # a batch of one add() is contiguous: op(seq) is always followed by op(10_000 + seq)
    assert all(seqs[i + 1] == seqs[i] + 10_000 for i in range(0, len(seqs), 2))


def test_read_ops_is_a_snapshot(folder: Path) -> None:
    with Translog.create(folder, UUID) as t:
        t.add([op(0), op(1)])
        it = t.read_ops()
        t.add([op(2)])
        t.roll_generation()
        t.add([op(3)])
        t.trim_below(t.current_generation)  # the snapshot's file is deleted, but was opened already
        assert [o["seq_no"] for o in it] == [0, 1]
        assert [o["seq_no"] for o in t.read_ops()] == [3]


# --------------------------------------------------------------------------------------------- recovery


def test_garbage_after_checkpoint_offset_is_ignored(folder: Path) -> None:
    ops = build(folder, [3, 2])
    tlog = folder / "translog-2.tlog"
    with open(tlog, "ab") as fh:
        fh.write(b"\x00\x00\x00\x20partial record never acked")  # a torn, unacknowledged append
    size = tlog.stat().st_size
    with Translog.open(folder, UUID) as t:
        assert list(t.read_ops()) == ops
        t.add([op(100)])
        assert t.current_generation == 3
    assert tlog.stat().st_size == size  # the old generation is never appended to again
    with Translog.open(folder, UUID) as t:
        assert [o["seq_no"] for o in t.read_ops()] == [o["seq_no"] for o in ops] + [100]
    report = Translog.inspect(folder)
    assert report["clean"] and report["generations"][1]["unacknowledged_bytes"] == len(b"partial record never acked") + 4


@pytest.mark.parametrize("gen", [1, 2])
def test_flipped_record_inside_checkpoint_refuses_open(folder: Path, gen: int) -> None:
    build(folder, [3, 3])
    tlog = folder / f"translog-{gen}.tlog"
    data = bytearray(tlog.read_bytes())
    data[tlog_header_length(gen) + 12] ^= 0x01
    tlog.write_bytes(bytes(data))
    before = snapshot(folder)
    with pytest.raises(TranslogCorruptedError) as ei:
        Translog.open(folder, UUID)
    assert ei.value.file == str(tlog) and str(tlog) in str(ei.value)
    assert f"offset {tlog_header_length(gen)}" in str(ei.value)
    assert snapshot(folder) == before  # nothing truncated, deleted or created


def test_truncated_tlog_refuses_open(folder: Path) -> None:
    build(folder, [3])
    tlog = folder / "translog-1.tlog"
    tlog.write_bytes(tlog.read_bytes()[:-1])
    with pytest.raises(TranslogCorruptedError, match="truncated") as ei:
        Translog.open(folder, UUID)
    assert ei.value.file == str(tlog)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "zero"])
def test_corrupted_translog_ckp(folder: Path, damage: str) -> None:
    build(folder, [2])
    ckp = folder / "translog.ckp"
    data = bytearray(ckp.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
        ckp.write_bytes(bytes(data))
    elif damage == "truncate":
        ckp.write_bytes(bytes(data[:-3]))
    elif damage == "zero":
        ckp.write_bytes(bytes(len(data)))
    else:
        ckp.unlink()
    with pytest.raises(TranslogCorruptedError) as ei:
        Translog.open(folder, UUID)
    assert ei.value.file == str(ckp)


def test_missing_middle_generation(folder: Path) -> None:
    build(folder, [1, 1, 1])
    (folder / "translog-2.tlog").unlink()
    with pytest.raises(TranslogCorruptedError, match="consecutive") as ei:
        Translog.open(folder, UUID)
    assert ei.value.file == str(folder / "translog-2.tlog")


def test_missing_rolled_checkpoint(folder: Path) -> None:
    build(folder, [1, 1])
    (folder / "translog-1.ckp").unlink()
    with pytest.raises(TranslogCorruptedError, match="missing"):
        Translog.open(folder, UUID)


def test_wrong_uuid(folder: Path) -> None:
    build(folder, [1])
    with pytest.raises(TranslogCorruptedError, match=f"translog uuid mismatch: expected={'ff' * 16} got={UUID.hex()}"):
        Translog.open(folder, b"\xff" * 16)


def test_swapped_generation_file_detected(folder: Path) -> None:
    build(folder, [2, 2])
    one, two = folder / "translog-1.tlog", folder / "translog-2.tlog"
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    with pytest.raises(TranslogCorruptedError, match="suffix"):
        Translog.open(folder, UUID)


def test_stray_newer_generation_deleted_with_warning(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    ops = build(folder, [2])  # current generation is 1 on disk
    # A crash while rolling: the final checkpoint was copied and the next .tlog created, translog.ckp not updated.
    (folder / "translog-1.ckp").write_bytes((folder / "translog.ckp").read_bytes())
    (folder / "translog-2.tlog").write_bytes(b"half-created next generation")
    (folder / ".translog-2.ckp.abcd.tmp").write_bytes(b"temp")
    with caplog.at_level(logging.WARNING, logger="segstore.translog.translog"):
        with Translog.open(folder, UUID) as t:
            assert list(t.read_ops()) == ops and t.current_generation == 2
            assert (folder / "translog-2.tlog").read_bytes() != b"half-created next generation"
    assert any("translog-2.tlog" in r.getMessage() and "newer" in r.getMessage() for r in caplog.records)
    assert not (folder / ".translog-2.ckp.abcd.tmp").exists()


def test_wrong_content_checkpoint_copy(folder: Path) -> None:
    build(folder, [2])
    good = Checkpoint.read(str(folder / "translog.ckp"))
    wrong = Checkpoint(good.offset - 1, good.num_ops, good.generation, good.min_seq_no, good.max_seq_no,
                       good.min_translog_generation, UUID)
    (folder / "translog-1.ckp").write_bytes(wrong.to_bytes())
    with pytest.raises(TranslogCorruptedError, match="already exists but has corrupted content") as ei:
        Translog.open(folder, UUID)
    assert ei.value.file == str(folder / "translog-1.ckp")


def test_leftover_generation_below_minimum_deleted(folder: Path) -> None:
    with Translog.create(folder, UUID) as t:
        t.add([op(0)])
        t.roll_generation()
        t.add([op(1)])
        saved = {n: (folder / n).read_bytes() for n in ("translog-1.tlog", "translog-1.ckp")}
        t.trim_below(2)
    for n, data in saved.items():  # as if the process died after the checkpoint but before the deletes
        (folder / n).write_bytes(data)
    with Translog.open(folder, UUID) as t:
        assert [o["seq_no"] for o in t.read_ops()] == [1]
    assert not (folder / "translog-1.tlog").exists() and not (folder / "translog-1.ckp").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damage_below_the_committed_generation_is_trimmed_unread(folder: Path, damage: str) -> None:
    """A crash between a commit and its translog trim leaves committed generations behind: recovery starts
    at the commit's generation (as OpenSearch's does) and deletes the older ones without reading them."""
    ops = build(folder, [3, 3, 2])
    tlog = folder / "translog-1.tlog"
    data = tlog.read_bytes()
    if damage == "flip":
        tlog.write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    elif damage == "truncate":
        tlog.write_bytes(data[: len(data) // 2])
    else:
        tlog.unlink()
    with pytest.raises(TranslogCorruptedError):  # without the commit's generation, the damage is fatal
        Translog.open(folder, UUID)
    with Translog.open(folder, UUID, committed_generation=2) as t:
        assert t.min_generation == 2
        assert [o["seq_no"] for o in t.read_ops()] == [o["seq_no"] for o in ops[3:]]
    assert not tlog.exists() and not (folder / "translog-1.ckp").exists()
    with Translog.open(folder, UUID) as t:  # the new minimum is durable
        assert [o["seq_no"] for o in t.read_ops()] == [o["seq_no"] for o in ops[3:]]


def test_damage_at_or_above_the_committed_generation_still_refuses(folder: Path) -> None:
    build(folder, [3, 3])
    tlog = folder / "translog-2.tlog"
    data = bytearray(tlog.read_bytes())
    data[tlog_header_length(2) + 12] ^= 0x01
    tlog.write_bytes(bytes(data))
    before = snapshot(folder)
    with pytest.raises(TranslogCorruptedError) as ei:
        Translog.open(folder, UUID, committed_generation=2)
    assert ei.value.file == str(tlog)
    assert snapshot(folder) == before


# ---------------------------------------------------------------------------------------- tragic events


def test_fsync_failure_is_tragic(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Translog.create(folder, UUID)
    t.add([op(0)])

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "injected EIO")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageIOError) as ei:
        t.add([op(1)])
    assert not isinstance(ei.value, DiskFullError) and ei.value.errno == errno.EIO
    assert not t.is_open and t.tragic_exception is ei.value
    for call in (lambda: t.add([op(2)]), t.sync, t.roll_generation, lambda: t.read_ops(), t.stats):
        with pytest.raises(AlreadyClosedError) as later:
            call()
        assert later.value.cause is ei.value and "injected EIO" in str(later.value)
    t.close()  # no-op after a tragic event
    monkeypatch.undo()
    with Translog.open(folder, UUID) as t2:
        assert [o["seq_no"] for o in t2.read_ops()] == [0]  # op 1 was never acked


def test_disk_full_on_write(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Translog.create(folder, UUID)
    t.add([op(0)])
    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        real(fd, bytes(data)[:5], offset)  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(DiskFullError) as ei:
        t.add([op(1, big="y" * 1000)])
    assert ei.value.errno == errno.ENOSPC and isinstance(ei.value.cause, OSError)
    with pytest.raises(AlreadyClosedError) as later:
        t.add([op(2)])
    assert later.value.cause is ei.value
    monkeypatch.undo()
    with Translog.open(folder, UUID) as t2:
        assert [o["seq_no"] for o in t2.read_ops()] == [0]


def test_any_exception_while_syncing_is_tragic(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Translog.create(folder, UUID, durability="async", sync_interval=60)
    t.add([op(0)])
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(RuntimeError("unexpected")))
    with pytest.raises(RuntimeError):
        t.sync()
    with pytest.raises(AlreadyClosedError) as later:
        t.add([op(1)])
    assert isinstance(later.value.cause, RuntimeError)


def test_fatal_fsync_errors_while_writing_concurrently(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port of testFatalIOExceptionsWhileWritingConcurrently: every op whose add() returned survives."""
    t = Translog.create(folder, UUID)
    real_fsync, calls, lock = os.fsync, [0], threading.Lock()

    def flaky_fsync(fd: int) -> None:
        with lock:
            calls[0] += 1
            failing = calls[0] > 60
        if failing:
            raise OSError(errno.EIO, "injected EIO")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    acked: list[int] = []
    failures: list[BaseException] = []

    def writer(k: int) -> None:
        for i in range(100):
            seq = k * 100 + i
            try:
                t.add([op(seq)])
            except (StorageIOError, AlreadyClosedError) as e:
                failures.append(e)
                return
            acked.append(seq)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(failures) == 4 and t.tragic_exception is not None
    assert all(isinstance(f, StorageIOError) or (isinstance(f, AlreadyClosedError) and f.cause is t.tragic_exception)
               for f in failures)
    monkeypatch.undo()
    with Translog.open(folder, UUID) as t2:
        assert set(acked) <= {o["seq_no"] for o in t2.read_ops()}


def test_tragic_event_in_async_syncer(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Translog.create(folder, UUID, durability="async", sync_interval=0.02)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full")))
    t.add([op(0)])
    deadline = time.monotonic() + 5
    while t.is_open:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(AlreadyClosedError) as ei:
        t.add([op(1)])
    assert isinstance(ei.value.cause, DiskFullError) and ei.value.cause.errno == errno.ENOSPC
    t.close()


def test_failure_while_rolling_is_tragic_and_recoverable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Translog.create(folder, UUID)
    t.add([op(0), op(1)])
    import segstore.translog.translog as mod

    def fail(*a: object, **k: object) -> None:
        raise OSError(errno.EIO, "cannot create the next generation")

    monkeypatch.setattr(mod, "_new_generation_file", fail)
    with pytest.raises(StorageIOError):
        t.roll_generation()
    with pytest.raises(AlreadyClosedError):
        t.add([op(2)])
    monkeypatch.undo()
    with Translog.open(folder, UUID) as t2:  # the copied checkpoint equals translog.ckp: a clean recovery
        assert [o["seq_no"] for o in t2.read_ops()] == [0, 1]


# --------------------------------------------------------------------------------------- inspect/repair


def test_inspect_reports_first_bad_offset_and_truncate_drops_exact_count(folder: Path) -> None:
    ops = build(folder, [4, 5, 3])
    tlog = folder / "translog-2.tlog"
    bad_offset = tlog_header_length(2) + sum(record_size(o) for o in ops[4:6])  # third record of gen 2
    data = bytearray(tlog.read_bytes())
    data[bad_offset + 6] ^= 0x80
    tlog.write_bytes(bytes(data))

    before = snapshot(folder)
    report = Translog.inspect(folder)
    assert snapshot(folder) == before  # read-only
    assert not report["clean"]
    assert report["first_bad"]["generation"] == 2 and report["first_bad"]["offset"] == bad_offset
    gens = {g["generation"]: g for g in report["generations"]}
    assert gens[1]["error"] is None and gens[1]["operations"] == 4
    assert gens[2]["first_bad_offset"] == bad_offset and gens[2]["operations"] == 2
    assert gens[3]["operations"] == 3 and report["checkpoint"]["generation"] == 3

    with pytest.raises(TranslogCorruptedError):
        Translog.open(folder, UUID)  # never automatic
    assert Translog.truncate_corrupt_tail(folder) == 3 + 3  # rest of gen 2, all of gen 3
    assert Translog.inspect(folder)["clean"]
    assert Translog.truncate_corrupt_tail(folder) == 0
    with Translog.open(folder, UUID) as t:
        assert list(t.read_ops()) == ops[:6]
        t.add([op(6)])
    with Translog.open(folder, UUID) as t:
        assert [o["seq_no"] for o in t.read_ops()] == list(range(7))


def test_truncate_after_truncated_current_generation(folder: Path) -> None:
    ops = build(folder, [3, 4])
    tlog = folder / "translog-2.tlog"
    tlog.write_bytes(tlog.read_bytes()[:-2])  # the last record lost its CRC bytes
    assert Translog.inspect(folder)["first_bad"]["offset"] == tlog_header_length(2) + sum(
        record_size(o) for o in ops[3:6])
    assert Translog.truncate_corrupt_tail(folder) == 1
    with Translog.open(folder, UUID) as t:
        assert list(t.read_ops()) == ops[:6]


def test_truncate_with_bad_header_drops_generation(folder: Path) -> None:
    ops = build(folder, [2, 3, 1])
    tlog = folder / "translog-2.tlog"
    data = bytearray(tlog.read_bytes())
    data[2] ^= 0xFF
    tlog.write_bytes(bytes(data))
    first_bad = Translog.inspect(folder)["first_bad"]
    assert (first_bad["generation"], first_bad["file"], first_bad["offset"]) == (2, "translog-2.tlog", 0)
    assert "header" in first_bad["error"]
    assert Translog.truncate_corrupt_tail(folder) == 4
    with Translog.open(folder, UUID) as t:
        assert list(t.read_ops()) == ops[:2]


def test_inspect_of_unreadable_checkpoint(folder: Path) -> None:
    build(folder, [1])
    (folder / "translog.ckp").write_bytes(b"junk")
    report = Translog.inspect(folder)
    assert not report["clean"] and "translog.ckp" in report["error"]
    with pytest.raises(TranslogCorruptedError):
        Translog.truncate_corrupt_tail(folder)


def test_unconsumed_snapshot_releases_files(folder: Path) -> None:
    import gc
    import warnings

    with Translog.create(folder, UUID) as t:
        t.add([op(0)])
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            it = t.read_ops()
            del it  # never iterated: files must still be closed, without a ResourceWarning
            gc.collect()
            snap = t.read_ops()
            assert next(snap)["seq_no"] == 0
            del snap  # partly consumed
            gc.collect()
