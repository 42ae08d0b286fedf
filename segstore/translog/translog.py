"""The translog (write-ahead log): durable, ordered operations between index commits, after OpenSearch's.

Folder layout (file grammars in :mod:`segstore.translog.tlog_file` and :mod:`segstore.translog.checkpoint`)::

    translog-<gen>.tlog   operations of one generation, append-only
    translog-<gen>.ckp    final checkpoint of a rolled generation (written once, when it rolls)
    translog.ckp          checkpoint of the current generation, rewritten in place on every sync

Live generations are ``min_translog_generation .. generation`` of ``translog.ckp``. An operation is
acknowledged once the ``.tlog`` was fsynced and a checkpoint covering it was fsynced; recovery reads up to the
checkpointed offsets only and treats any damage below them as fatal (never silently truncated).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, Any, NoReturn

from segstore.errors import AlreadyClosedError, SegstoreError, TranslogCorruptedError
from segstore.store.fs_directory import fsync_dir
from segstore.translog.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    ckp_name,
    write_checkpoint_atomically,
    write_checkpoint_in_place,
)
from segstore.translog.folder import inspect_folder, truncate_folder, verify_folder
from segstore.translog.snapshot import OpsSnapshot
from segstore.translog.tlog_file import (
    encode_ops,
    list_translog_files,
    tlog_header,
    tlog_name,
    wrap_os_error,
)

__all__ = ["Translog", "TranslogStats"]

log = logging.getLogger(__name__)

_DURABILITIES = ("request", "async")


@dataclass(frozen=True)
class TranslogStats:
    """A point-in-time view of the translog's counters (in memory: includes written but unsynced ops)."""

    operations: int
    uncommitted_operations: int  # ops in generations >= the committed generation given to stats()
    size_in_bytes: int  # logical bytes (headers + records written), over all live generations
    uncommitted_size_in_bytes: int
    generations: list[int]
    current_generation: int
    current_offset: int  # bytes written to the current generation (synced or not)
    earliest_seq_no: int | None  # None when there are no operations
    latest_seq_no: int | None


class Translog:
    """An open translog folder. Build it with :meth:`create` or :meth:`open`; thread-safe.

    Lock order: ``_sync_lock`` (serializes fsync + checkpoint writes and file-set changes) before ``_lock``
    (guards the in-memory state and appends). Appends never wait for another thread's fsync.
    """

    def __init__(self, path: str, uuid: bytes, durability: str, sync_interval: float, current: Checkpoint,
                 rolled: dict[int, Checkpoint], tlog_fd: int, ckp_fd: int) -> None:
        self._path = path
        self._uuid = uuid
        self._durability = durability
        self._sync_interval = sync_interval
        self._current = current  # live state of the current generation (may be ahead of the disk)
        self._synced = current  # what translog.ckp durably says
        self._rolled = rolled  # final checkpoints of the live rolled generations
        self._tlog_fd: int | None = tlog_fd
        self._ckp_fd: int | None = ckp_fd
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._closed = False
        self._tragic: BaseException | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if durability == "async":
            self._syncer = threading.Thread(target=self._sync_loop, name=f"translog-sync[{path}]", daemon=True)
            self._syncer.start()

    # ------------------------------------------------------------------------------------ create / open

    @staticmethod
    def _check_args(uuid: bytes, durability: str, sync_interval: float) -> None:
        if not isinstance(uuid, bytes) or len(uuid) != 16:
            raise ValueError(f"translog uuid must be 16 bytes, got {uuid!r}")
        if durability not in _DURABILITIES:
            raise ValueError(f"durability must be one of {_DURABILITIES}, got {durability!r}")
        if not sync_interval > 0:
            raise ValueError(f"sync_interval must be > 0, got {sync_interval}")

    @classmethod
    def create(cls, path: str | os.PathLike[str], translog_uuid: bytes, durability: str = "request",
               sync_interval: float = 5.0, *, overwrite: bool = False) -> Translog:
        """Start an empty translog (generation 1) in ``path``. Refuses to replace an existing translog
        unless ``overwrite`` (then every translog file in the folder is deleted first)."""
        cls._check_args(translog_uuid, durability, sync_interval)
        folder = os.path.abspath(os.fspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
            tlogs, ckps, temps = list_translog_files(folder)
            if os.path.exists(os.path.join(folder, CHECKPOINT_NAME)) or tlogs or ckps:
                if not overwrite:
                    raise FileExistsError(f"a translog already exists in [{folder}] (pass overwrite=True)")
                for name in [*tlogs.values(), *ckps.values(), *temps, CHECKPOINT_NAME]:
                    _unlink_quietly(os.path.join(folder, name))
            ckp = Checkpoint.empty(1, 1, translog_uuid)
            tlog_fd = _new_generation_file(folder, translog_uuid, 1)
            write_checkpoint_atomically(folder, CHECKPOINT_NAME, ckp)  # also fsyncs the folder
            ckp_fd = os.open(os.path.join(folder, CHECKPOINT_NAME), os.O_RDWR)
        except OSError as e:
            if isinstance(e, FileExistsError):
                raise
            raise wrap_os_error(e, f"cannot create translog in [{folder}]") from e
        return cls(folder, translog_uuid, durability, sync_interval, ckp, {}, tlog_fd, ckp_fd)

    @classmethod
    def open(cls, path: str | os.PathLike[str], translog_uuid: bytes, durability: str = "request",
             sync_interval: float = 5.0, committed_generation: int | None = None) -> Translog:
        """Recover the translog in ``path`` (verifying everything first), then roll to a new generation.

        ``committed_generation`` is the first generation the last commit does not hold (its
        ``translog_generation``). Generations below it are trimmed without being read, as OpenSearch
        recovers from the commit's minimum generation: a crash between publishing a commit and trimming
        the translog leaves them behind, and damage there costs nothing."""
        cls._check_args(translog_uuid, durability, sync_interval)
        folder = os.path.abspath(os.fspath(path))
        ckp_path = os.path.join(folder, CHECKPOINT_NAME)
        ckp = Checkpoint.read(ckp_path)
        if ckp.translog_uuid != translog_uuid:
            raise TranslogCorruptedError(
                f"translog uuid mismatch: expected={translog_uuid.hex()} got={ckp.translog_uuid.hex()}", ckp_path)
        tlogs, ckps, temps = list_translog_files(folder)
        gen, low = ckp.generation, ckp.min_translog_generation
        if committed_generation is not None and committed_generation > low:
            low = min(committed_generation, gen)
        # Verify everything before changing anything, so a refused open leaves the evidence for repair.
        rolled = verify_folder(folder, ckp, tlogs, ckps, low)
        try:
            for g, name in sorted(tlogs.items()):
                if g > gen:
                    log.warning("deleting translog file [%s]: generation %d is newer than the checkpoint's %d "
                                "(left by a crash while rolling)", name, g, gen)
                    os.unlink(os.path.join(folder, name))
                elif g < low:
                    log.info("deleting leftover translog file [%s] below min generation %d", name, low)
                    os.unlink(os.path.join(folder, name))
            for g, name in ckps.items():
                if g > gen or g < low:
                    os.unlink(os.path.join(folder, name))
            for name in temps:
                os.unlink(os.path.join(folder, name))
            # Never append to the recovered generation: bytes past its offset may be garbage.
            write_checkpoint_atomically(folder, ckp_name(gen), ckp, sync_dir=False)
            rolled[gen] = ckp
            tlog_fd = _new_generation_file(folder, translog_uuid, gen + 1)
            current = Checkpoint.empty(gen + 1, low, translog_uuid)
            try:
                fsync_dir(folder)  # the new generation's name must be durable before translog.ckp names it
                ckp_fd = os.open(ckp_path, os.O_RDWR)
                try:
                    write_checkpoint_in_place(ckp_fd, current)
                except BaseException:
                    os.close(ckp_fd)
                    raise
            except BaseException:
                os.close(tlog_fd)
                raise
        except OSError as e:
            raise wrap_os_error(e, f"cannot recover translog in [{folder}]") from e
        return cls(folder, translog_uuid, durability, sync_interval, current, rolled, tlog_fd, ckp_fd)

    # --------------------------------------------------------------------------------------- properties

    @property
    def path(self) -> str:
        return self._path

    @property
    def uuid(self) -> bytes:
        return self._uuid

    @property
    def current_generation(self) -> int:
        return self._current.generation

    @property
    def min_generation(self) -> int:
        return self._current.min_translog_generation

    @property
    def is_open(self) -> bool:
        return not self._closed

    @property
    def tragic_exception(self) -> BaseException | None:
        """The error that closed this translog, if one did."""
        return self._tragic

    # ----------------------------------------------------------------------------------------- writing

    def add(self, ops: list[dict[str, Any]]) -> None:
        """Append ``ops`` (each a dict with an int ``seq_no``) as one write; durable on return if
        durability is ``request``."""
        self._ensure_open()
        if not ops:
            return
        data, lo, hi = encode_ops(ops)  # bad ops fail here, before anything is written
        with self._lock:
            self._ensure_open()
            assert self._tlog_fd is not None
            try:
                # pwrite at our own offset: a write interrupted before it was accounted is simply overwritten.
                _pwrite_all(self._tlog_fd, data, self._current.offset)
            except Exception as e:  # noqa: BLE001 - any failure here leaves the file in an unknown state
                self._tragic_event(e, f"cannot append to [{tlog_name(self._current.generation)}]")
            self._current = self._current.appended(len(data), len(ops), lo, hi)
            gen, end = self._current.generation, self._current.offset
        if self._durability == "request":
            with self._syncing():
                s = self._synced
                if s.generation == gen and s.offset < end:  # else another thread's fsync covered us
                    self._sync_locked()

    def set_durability(self, durability: str, sync_interval: float) -> None:
        """Change ``index.translog.durability`` / ``sync_interval`` of the open translog. Switching to
        ``request`` first makes everything written so far durable; ``async`` starts the periodic fsync."""
        self._check_args(self._uuid, durability, sync_interval)
        self._ensure_open()
        self._sync_interval = sync_interval
        if durability == "request" and self._durability != "request":
            self._durability = durability
            self.sync()
        self._durability = durability
        with self._lock:
            if durability == "async" and self._syncer is None:
                self._syncer = threading.Thread(target=self._sync_loop, name=f"translog-sync[{self._path}]",
                                                daemon=True)
                self._syncer.start()

    def sync(self) -> None:
        """fsync the current generation, then durably rewrite ``translog.ckp``."""
        with self._syncing():
            self._sync_locked()

    def roll_generation(self) -> int:
        """Seal the current generation and start the next one; return the new generation."""
        with self._syncing(), self._lock:
            self._sync_locked()  # translog.ckp now equals the sealed generation's final checkpoint
            final = self._current
            new_gen = final.generation + 1
            try:
                write_checkpoint_atomically(self._path, ckp_name(final.generation), final, sync_dir=False)
                fd = _new_generation_file(self._path, self._uuid, new_gen)
                try:
                    # translog.ckp must not name a generation whose files might vanish in a power loss.
                    fsync_dir(self._path)
                    current = Checkpoint.empty(new_gen, final.min_translog_generation, self._uuid)
                    assert self._ckp_fd is not None
                    write_checkpoint_in_place(self._ckp_fd, current)
                except BaseException:
                    os.close(fd)
                    raise
            except Exception as e:  # noqa: BLE001
                self._tragic_event(e, f"cannot roll translog generation {final.generation}")
            assert self._tlog_fd is not None
            os.close(self._tlog_fd)
            self._tlog_fd = fd
            self._rolled[final.generation] = final
            self._current = self._synced = current
            return new_gen

    def trim_below(self, min_generation: int) -> None:
        """Drop generations below ``min_generation`` (the checkpoint is updated durably first)."""
        with self._syncing(), self._lock:
            self._ensure_open()
            if min_generation > self._current.generation:
                raise ValueError(f"cannot trim below generation {min_generation}: current generation is "
                                 f"{self._current.generation}")
            old_min = self._current.min_translog_generation
            if min_generation <= old_min:
                return
            self._current = replace(self._current, min_translog_generation=min_generation)
            self._sync_locked()
            # From here the files are unreferenced: a failed delete is cleaned up by the next recovery.
            for g in range(old_min, min_generation):
                self._rolled.pop(g, None)
                for name in (tlog_name(g), ckp_name(g)):
                    _unlink_quietly(os.path.join(self._path, name))
            try:
                fsync_dir(self._path)
            except OSError as e:
                log.warning("cannot fsync translog folder [%s] after trimming: %s", self._path, e)

    def close(self) -> None:
        """Sync and release files; idempotent. After a tragic event it only releases files."""
        if self._syncer is not None and self._syncer is not threading.current_thread():
            self._stop.set()
            self._syncer.join()
        with self._syncing():
            if self._closed:
                return
            try:
                self._sync_locked()
            finally:
                with self._lock:
                    self._closed = True

    def __enter__(self) -> Translog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- reading

    def read_ops(self, min_generation: int | None = None) -> Iterator[dict[str, Any]]:
        """Operations of generations >= ``min_generation`` (default: all), in write order, up to the offsets
        synced when this is called; later appends are not seen."""
        with self._lock:
            self._ensure_open()
            low = self._current.min_translog_generation
            start = low if min_generation is None else min_generation
            if start < low:
                raise ValueError(f"generation {start} was trimmed; the oldest generation is {low}")
            plan = [(g, self._rolled[g].offset if g in self._rolled else self._synced.offset)
                    for g in range(start, self._current.generation + 1)]
            files: list[IO[bytes]] = []
            try:  # opened under the lock so trim_below cannot delete them first (an open file stays readable)
                for g, _ in plan:
                    files.append(open(os.path.join(self._path, tlog_name(g)), "rb"))  # noqa: SIM115
            except OSError as e:
                for fh in files:
                    fh.close()
                raise wrap_os_error(e, f"cannot open translog generation in [{self._path}]") from e
        return OpsSnapshot(self._uuid, plan, files)

    def stats(self, committed_generation: int | None = None) -> TranslogStats:
        """Counters; ``uncommitted_*`` count generations >= ``committed_generation`` (default: all)."""
        with self._lock:
            self._ensure_open()
            ckps = [*(self._rolled[g] for g in sorted(self._rolled)), self._current]
        since = ckps[0].generation if committed_generation is None else committed_generation
        seqs = [c for c in ckps if c.num_ops]
        return TranslogStats(
            operations=sum(c.num_ops for c in ckps),
            uncommitted_operations=sum(c.num_ops for c in ckps if c.generation >= since),
            size_in_bytes=sum(c.offset for c in ckps),
            uncommitted_size_in_bytes=sum(c.offset for c in ckps if c.generation >= since),
            generations=[c.generation for c in ckps],
            current_generation=ckps[-1].generation,
            current_offset=ckps[-1].offset,
            earliest_seq_no=min(c.min_seq_no for c in seqs) if seqs else None,
            latest_seq_no=max(c.max_seq_no for c in seqs) if seqs else None,
        )

    # ------------------------------------------------------------------------------------ repair tools

    @staticmethod
    def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Describe the translog in ``path`` without modifying anything (for the CLI)."""
        return inspect_folder(os.path.abspath(os.fspath(path)))

    @staticmethod
    def truncate_corrupt_tail(path: str | os.PathLike[str]) -> int:
        """Explicit repair: drop every operation from the first bad record on; return how many were dropped."""
        return truncate_folder(os.path.abspath(os.fspath(path)))

    # -------------------------------------------------------------------------------------- internals

    def _ensure_open(self) -> None:
        if self._closed:
            raise AlreadyClosedError(f"translog [{self._path}] is already closed", self._tragic)

    @contextmanager
    def _syncing(self) -> Iterator[None]:
        with self._sync_lock:
            try:
                yield
            finally:
                if self._closed:
                    self._release_files()

    def _sync_locked(self) -> None:
        """Make ``_current`` durable. Caller holds ``_sync_lock``; appends may continue during the fsync."""
        with self._lock:
            self._ensure_open()
            ckp, synced = self._current, self._synced
            tlog_fd, ckp_fd = self._tlog_fd, self._ckp_fd
        if ckp == synced:
            return
        assert tlog_fd is not None and ckp_fd is not None
        try:
            if ckp.offset != synced.offset:
                os.fsync(tlog_fd)  # records first: a checkpoint must never point at bytes not on disk
            write_checkpoint_in_place(ckp_fd, ckp)
        except Exception as e:  # noqa: BLE001
            self._tragic_event(e, f"cannot sync translog [{self._path}]")
        with self._lock:
            self._synced = ckp

    def _tragic_event(self, e: Exception, what: str) -> NoReturn:
        """Close for good, remember why, and raise the (typed) error."""
        err: Exception = e if isinstance(e, SegstoreError) or not isinstance(e, OSError) else wrap_os_error(e, what)
        with self._lock:
            if self._tragic is None:
                self._tragic = err
            self._closed = True
        self._stop.set()
        # Files are closed by whoever holds _sync_lock (it may be fsyncing them right now).
        if self._sync_lock.acquire(blocking=False):
            try:
                self._release_files()
            finally:
                self._sync_lock.release()
        log.error("translog [%s] closed by a tragic event: %s", self._path, err)
        if err is e:
            raise
        raise err from e

    def _release_files(self) -> None:
        with self._lock:
            for fd in (self._tlog_fd, self._ckp_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._tlog_fd = self._ckp_fd = None
        self._stop.set()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._sync_interval):
            if self._durability != "async":  # switched to request durability: every add syncs itself
                continue
            try:
                self.sync()
            except AlreadyClosedError:
                return
            except Exception:  # noqa: BLE001 - already recorded as the tragic exception
                return


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(0, "pwrite wrote nothing")
        view, offset = view[n:], offset + n


def _new_generation_file(folder: str, uuid: bytes, generation: int) -> int:
    """Create ``translog-<generation>.tlog`` holding just its header, fsynced; return a write fd."""
    fd = os.open(os.path.join(folder, tlog_name(generation)), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _pwrite_all(fd, tlog_header(uuid, generation), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot delete translog file [%s]: %s", path, e)


