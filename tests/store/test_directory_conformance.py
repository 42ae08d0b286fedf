"""Directory conformance: every implementation (memory, filesystem) honours the same contract.

Write-once names, publish-on-close only (abort leaves nothing, not even a temp file), listing, lengths,
deletion, and the write lock: refused to a second holder in this process and in another process, released by
the kernel when the holder is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zlib

import pytest

from segstore.errors import AlreadyClosedError, LockObtainFailedError
from segstore.store import Directory, FSDirectory, MemoryDirectory


def _temp_files(directory: Directory) -> list[str]:
    if isinstance(directory, FSDirectory):
        return sorted(n for n in os.listdir(directory.path) if n.endswith(".tmp"))
    return []


def _raw_names(directory: Directory) -> list[str]:
    """Everything physically present (for FS: including temp names), minus lock files."""
    if isinstance(directory, FSDirectory):
        return sorted(n for n in os.listdir(directory.path) if n != "write.lock")
    return directory.list_all()


# ------------------------------------------------------------------------------------ write-once, publish


def test_write_then_read_exact_bytes(directory: Directory) -> None:
    data = bytes(range(256)) * 3
    directory.write_bytes("_0.fdt", data)
    assert directory.read_bytes("_0.fdt") == data
    assert directory.file_length("_0.fdt") == 768
    with directory.open_input("_0.fdt") as inp:
        assert len(inp) == 768
        assert bytes(inp.buffer[10:13]) == bytes([10, 11, 12])
        assert inp.buffer.readonly


def test_empty_file(directory: Directory) -> None:
    out = directory.create_output("empty")
    out.close()
    assert directory.file_exists("empty")
    assert directory.file_length("empty") == 0
    assert directory.read_bytes("empty") == b""


def test_write_once_refuses_existing_name(directory: Directory) -> None:
    directory.write_bytes("a", b"first")
    with pytest.raises(FileExistsError):
        directory.create_output("a")
    with pytest.raises(FileExistsError):
        directory.write_bytes("a", b"second")
    assert directory.read_bytes("a") == b"first"
    assert _temp_files(directory) == []


def test_two_outputs_racing_for_one_name(directory: Directory) -> None:
    """Both outputs were created before either published: the second publish fails, the first wins."""
    o1 = directory.create_output("x")
    o2 = directory.create_output("x")
    o1.write(b"one")
    o2.write(b"two!")
    o1.close()
    with pytest.raises(FileExistsError):
        o2.close()
    assert directory.read_bytes("x") == b"one"
    assert directory.list_all() == ["x"]
    assert _temp_files(directory) == []


def test_name_invisible_until_close(directory: Directory) -> None:
    out = directory.create_output("seg.vec")
    out.write(b"abc")
    out.write(memoryview(b"defg"))
    assert not directory.file_exists("seg.vec")
    assert "seg.vec" not in directory.list_all()
    with pytest.raises(FileNotFoundError):
        directory.open_input("seg.vec")
    with pytest.raises(FileNotFoundError):
        directory.file_length("seg.vec")
    assert out.file_pointer == 7
    assert out.checksum == zlib.crc32(b"abcdefg")
    out.close()
    assert directory.file_exists("seg.vec")
    assert directory.list_all() == ["seg.vec"]
    assert directory.read_bytes("seg.vec") == b"abcdefg"
    assert directory.file_length("seg.vec") == 7
    assert _temp_files(directory) == []


def test_close_is_idempotent_and_write_after_close_fails(directory: Directory) -> None:
    out = directory.create_output("f")
    out.write(b"12")
    out.close()
    out.close()
    with pytest.raises(AlreadyClosedError):
        out.write(b"3")
    assert directory.read_bytes("f") == b"12"


def test_abort_leaves_nothing(directory: Directory) -> None:
    out = directory.create_output("f")
    out.write(b"x" * 10_000)
    if isinstance(directory, FSDirectory):
        assert len(_temp_files(directory)) == 1  # the unpublished temp file exists while writing
        assert directory.list_all() == []  # ... but is never listed
    out.abort()
    out.abort()
    out.close()  # close after abort publishes nothing
    assert not directory.file_exists("f")
    assert directory.list_all() == []
    assert _raw_names(directory) == []
    assert _temp_files(directory) == []
    # The name is still free.
    directory.write_bytes("f", b"ok")
    assert directory.read_bytes("f") == b"ok"


def test_context_manager_aborts_on_error(directory: Directory) -> None:
    with pytest.raises(RuntimeError):
        with directory.create_output("g") as out:
            out.write(b"partial")
            raise RuntimeError("boom")
    assert not directory.file_exists("g")
    assert _raw_names(directory) == []
    with directory.create_output("g") as out:
        out.write(b"whole")
    assert directory.read_bytes("g") == b"whole"


def test_list_all_sorted_delete_and_missing_files(directory: Directory) -> None:
    for name in ["_b.si", "_a.fdt", "_a.si", "_10.vec"]:
        directory.write_bytes(name, name.encode())
    assert directory.list_all() == ["_10.vec", "_a.fdt", "_a.si", "_b.si"]
    directory.delete_file("_a.fdt")
    assert directory.list_all() == ["_10.vec", "_a.si", "_b.si"]
    assert not directory.file_exists("_a.fdt")
    with pytest.raises(FileNotFoundError):
        directory.delete_file("_a.fdt")
    with pytest.raises(FileNotFoundError):
        directory.open_input("_a.fdt")
    with pytest.raises(FileNotFoundError):
        directory.read_bytes("nope")
    with pytest.raises(FileNotFoundError):
        directory.file_length("nope")
    # A deleted name can be written again (write-once applies to live names).
    directory.write_bytes("_a.fdt", b"again")
    assert directory.read_bytes("_a.fdt") == b"again"
    assert directory.file_length("_10.vec") == len(b"_10.vec")


def test_open_input_survives_delete(directory: Directory) -> None:
    """A reader keeps its bytes after the file is deleted (POSIX unlink semantics on FS)."""
    data = os.urandom(4096)
    directory.write_bytes("_0.vec", data)
    inp = directory.open_input("_0.vec")
    directory.delete_file("_0.vec")
    assert bytes(inp.buffer) == data
    inp.close()


# ------------------------------------------------------------------------------------------ write lock


def test_lock_refuses_second_holder_in_process(directory: Directory) -> None:
    lock = directory.obtain_lock("write.lock")
    lock.ensure_valid()
    with pytest.raises(LockObtainFailedError):
        directory.obtain_lock("write.lock")
    other = directory.obtain_lock("other.lock")  # a different lock name is independent
    other.close()
    lock.close()
    lock.close()  # idempotent
    with pytest.raises(AlreadyClosedError):
        lock.ensure_valid()
    again = directory.obtain_lock("write.lock")
    again.ensure_valid()
    again.close()


def test_lock_context_manager_releases(directory: Directory) -> None:
    with directory.obtain_lock("write.lock"):
        with pytest.raises(LockObtainFailedError):
            directory.obtain_lock("write.lock")
    directory.obtain_lock("write.lock").close()


def test_fs_lock_refused_through_a_second_directory_instance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d1 = FSDirectory(tmp_path / "idx")
    d2 = FSDirectory(str(tmp_path / "idx") + "/")  # same folder, another object (and spelling)
    lock = d1.obtain_lock("write.lock")
    with pytest.raises(LockObtainFailedError) as ei:
        d2.obtain_lock("write.lock")
    assert str(os.getpid()) in str(ei.value)
    lock.close()
    d2.obtain_lock("write.lock").close()


_TRY_LOCK = textwrap.dedent("""
    import sys
    from segstore.errors import LockObtainFailedError
    from segstore.store import FSDirectory
    try:
        lock = FSDirectory(sys.argv[1]).obtain_lock("write.lock")
    except LockObtainFailedError as e:
        print("REFUSED", e)
        sys.exit(3)
    print("GOT")
    lock.close()
""")

_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from segstore.store import FSDirectory
    lock = FSDirectory(sys.argv[1]).obtain_lock("write.lock")
    print("HELD", flush=True)
    time.sleep(120)
""")


def _try_lock_in_subprocess(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _TRY_LOCK, path], capture_output=True, text=True, timeout=60)


def test_fs_lock_refused_to_another_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "idx")
    lock = FSDirectory(path).obtain_lock("write.lock")
    try:
        res = _try_lock_in_subprocess(path)
        assert res.returncode == 3, res.stderr
        assert res.stdout.startswith("REFUSED")
        assert f"index locked by pid {os.getpid()}" in res.stdout  # names the holder
    finally:
        lock.close()
    res = _try_lock_in_subprocess(path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "GOT"
    # and after the other process released it, we can take it again
    FSDirectory(path).obtain_lock("write.lock").close()


def test_fs_lock_of_sigkilled_holder_does_not_block(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "idx")
    FSDirectory(path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(LockObtainFailedError) as ei:
            FSDirectory(path).obtain_lock("write.lock")
        assert f"pid {holder.pid}" in str(ei.value)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert os.path.exists(os.path.join(path, "write.lock"))  # the stale lock file is still there ...
    lock = FSDirectory(path).obtain_lock("write.lock")  # ... and does not block
    lock.ensure_valid()
    lock.close()


def test_memory_directories_are_independent() -> None:
    a, b = MemoryDirectory(), MemoryDirectory()
    a.write_bytes("f", b"1")
    assert b.list_all() == []
    la = a.obtain_lock("write.lock")
    b.obtain_lock("write.lock").close()  # another directory, another lock
    la.close()
