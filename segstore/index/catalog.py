"""The LMDB catalog: segstore's single commit point (one LMDB environment per data directory).

A commit is published by exactly one durable LMDB write transaction (``sync`` and ``metasync`` on), after the
segment files it names were fsynced (reliability.md §7.1 invariant 4). Nothing else records which segments are
live. The environment lives at ``<data_dir>/catalog/`` (``data.mdb`` + ``lock.mdb``).

Sub-databases and their grammar (every value is framed ``Crc:u32 BE || msgpack``, see :mod:`.catalog_codec`;
integers in keys are big-endian so byte order is numeric order)::

    indices : IndexName:utf8[1..511]                -> {"uuid": bin[16], "metadata": map}
    commits : IndexUuid:byte[16]                    -> {"name": str}   (marker: the uuid belongs to a live index)
              IndexUuid:byte[16] Generation:u64     -> CommitRecord   (the newest two generations are kept)
    pk      : IndexUuid:byte[16] DocId:utf8[1..495] -> array, e.g. [segment_name, doc, version, seq_no]
    models  : ModelId:utf8[1..511]                  -> map
    meta    : Key:utf8[1..511]                      -> any msgpack value

    CommitRecord := map with "generation": int (equal to the key's) and, optionally, "segments":
                    [{name: str, id: bin[16], codec: str, max_doc: int >= 0, del_gen: int >= 0,
                      del_count: 0..max_doc, ...}, ...], plus any caller-defined entries (user data)

The latest commit is the highest generation of the uuid; a commit to a uuid without its marker (a deleted
index) is refused, so a late flush cannot resurrect orphan records. Commit records are validated on every
read (invariant 2): an impossible record raises :class:`CorruptIndexError` instead of being used.

The environment itself (opened once per process, reader checks, map growth with whole-transaction retry)
is :mod:`.catalog_env`; value framing and key encoding are :mod:`.catalog_codec`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import lmdb

from segstore.errors import AlreadyClosedError, CatalogError, CorruptIndexError
from segstore.index.catalog_codec import (
    MAX_DOC_ID_BYTES,
    check_uuid,
    commit_generation,
    commit_key,
    decode_value,
    encode_value,
    key_repr,
    name_key,
    pk_key,
    validate_commit,
)
from segstore.index.catalog_env import (
    DEFAULT_MAP_SIZE,
    DEFAULT_MAX_MAP_SIZE,
    DEFAULT_MAX_READERS,
    Dbs,
    SharedEnv,
    delete_prefix,
    iter_prefix,
)

__all__ = ["Catalog", "DEFAULT_MAP_SIZE", "DEFAULT_MAX_MAP_SIZE", "MAX_DOC_ID_BYTES"]

_COMMIT_KEY_LEN = 24
_SNAP = struct.Struct(">HI")  # pk_items snapshot entry: key length, value length
T = TypeVar("T")


def _last_commit_key(txn: lmdb.Transaction, db: Any, uuid: bytes) -> bytes | None:
    cur = txn.cursor(db=db)
    # Seek past the uuid's range (no real generation is 2**64-1), then step back onto its last key.
    moved = cur.prev() if cur.set_range(commit_key(uuid, 2**64 - 1)) else cur.last()
    key = cur.key() if moved else b""
    return key if key.startswith(uuid) and len(key) == _COMMIT_KEY_LEN else None


def _pk_value(data: bytes, key: bytes) -> tuple[Any, ...]:
    value = decode_value(data, key_repr("pk", key))
    if not isinstance(value, list):
        raise CorruptIndexError(f"pk value must be an array, got {type(value).__name__}", key_repr("pk", key))
    return tuple(value)


class Catalog:
    """A handle on the shared catalog of one data directory; get one with :meth:`Catalog.open`.

    Every handle must be closed once; closing one never affects another handle of the same directory.
    Methods are thread-safe. Reads see the latest committed state, each call one consistent snapshot.
    """

    def __init__(self, shared: SharedEnv) -> None:
        """Internal: use :meth:`open`."""
        self._shared_env: SharedEnv | None = shared
        self._path = shared.path

    @classmethod
    def open(
        cls, data_dir: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE, max_readers: int = DEFAULT_MAX_READERS,
    ) -> Catalog:
        """Open (or create) ``<data_dir>/catalog``. If this process already has it open, the options are
        ignored and the environment is shared (``max_readers`` is fixed by the first process to create it)."""
        return cls(SharedEnv.acquire(os.path.join(os.fspath(data_dir), "catalog"), map_size, max_map_size,
                                     max_readers))

    def close(self) -> None:
        """Release this handle (idempotent); the environment closes with the process's last handle."""
        shared, self._shared_env = self._shared_env, None
        if shared is not None:
            shared.release()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self._path!r}{', closed' if self._shared_env is None else ''})"

    @property
    def path(self) -> str:
        """The environment directory (``<data_dir>/catalog``, resolved)."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._shared_env is None

    @property
    def env(self) -> lmdb.Environment:
        """The shared ``lmdb.Environment`` (for tools and tests; never close it directly)."""
        return self._shared().env

    def _shared(self) -> SharedEnv:
        shared = self._shared_env
        if shared is None:
            raise AlreadyClosedError(f"catalog [{self._path}] is closed")
        shared.check_usable()
        return shared

    def _write(self, fn: Callable[[lmdb.Transaction, Dbs], T]) -> T:
        return self._shared().write(fn)

    def _read(self, fn: Callable[[lmdb.Transaction, Dbs], T]) -> T:
        return self._shared().read(fn)

    # ------------------------------------------------------------------------------------------- indices

    def create_index(self, name: str, index_uuid: bytes, metadata: dict[str, Any]) -> None:
        """Register an index; :class:`CatalogError` if the name or the uuid is taken."""
        key, uuid = name_key("index name", name), check_uuid(index_uuid)
        value = encode_value({"uuid": uuid, "metadata": dict(metadata)}, key_repr("indices", key))
        marker = encode_value({"name": name}, key_repr("commits", uuid))

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> None:
            if txn.get(key, db=dbs["indices"]) is not None:
                raise CatalogError(f"index [{name}] already exists in the catalog")
            if txn.get(uuid, db=dbs["commits"]) is not None:
                raise CatalogError(f"index uuid {uuid.hex()} is already used by another index")
            txn.put(key, value, db=dbs["indices"])
            txn.put(uuid, marker, db=dbs["commits"])

        self._write(fn)

    @staticmethod
    def _index_entry(txn: lmdb.Transaction, dbs: Dbs, key: bytes) -> dict[str, Any] | None:
        data = txn.get(key, db=dbs["indices"])
        if data is None:
            return None
        where = key_repr("indices", key)
        entry = decode_value(data, where)
        if not (isinstance(entry, dict) and isinstance(entry.get("uuid"), bytes) and len(entry["uuid"]) == 16
                and isinstance(entry.get("metadata"), dict)):
            raise CorruptIndexError("index entry must be {uuid: bin[16], metadata: map}", where)
        return entry

    def get_index(self, name: str) -> dict[str, Any] | None:
        """The index's metadata plus ``"uuid"``, or ``None``."""
        key = name_key("index name", name)
        entry = self._read(lambda txn, dbs: self._index_entry(txn, dbs, key))
        return None if entry is None else {**entry["metadata"], "uuid": entry["uuid"]}

    def list_indices(self) -> list[str]:
        """Index names in UTF-8 byte order."""
        return self._read(lambda txn, dbs: [
            k.decode("utf-8") for k in txn.cursor(db=dbs["indices"]).iternext(keys=True, values=False)
        ])

    def put_index_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replace the index's metadata (its uuid is kept); :class:`CatalogError` if there is no such index."""
        key = name_key("index name", name)

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> None:
            entry = self._index_entry(txn, dbs, key)
            if entry is None:
                raise CatalogError(f"no index [{name}] in the catalog")
            value = {"uuid": entry["uuid"], "metadata": dict(metadata)}
            txn.put(key, encode_value(value, key_repr("indices", key)), db=dbs["indices"])

        self._write(fn)

    def delete_index(self, name: str) -> None:
        """Remove the index's metadata, every commit and every pk entry of its uuid, in one transaction."""
        key = name_key("index name", name)

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> None:
            entry = self._index_entry(txn, dbs, key)
            if entry is None:
                raise CatalogError(f"no index [{name}] in the catalog")
            txn.delete(key, db=dbs["indices"])
            delete_prefix(txn, dbs["commits"], entry["uuid"])  # the marker and every generation
            delete_prefix(txn, dbs["pk"], entry["uuid"])

        self._write(fn)

    # ------------------------------------------------------------------------------------------- commits

    def commit(
        self, index_uuid: bytes, record: Mapping[str, Any],
        pk_updates: Mapping[str, tuple[Any, ...] | None] | None = None,
    ) -> int:
        """Publish ``record`` as generation latest+1 and apply ``pk_updates`` (tuple: put, None: delete),
        all in one durable transaction; older generations except the previous one are dropped."""
        uuid = check_uuid(index_uuid)
        updates = [(pk_key(uuid, doc_id), value) for doc_id, value in (pk_updates or {}).items()]
        for key, value in updates:
            if value is not None and not isinstance(value, (tuple, list)):
                raise CatalogError(f"pk value of {key_repr('pk', key)} must be a tuple or None, got {value!r}")

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> int:
            commits, pk = dbs["commits"], dbs["pk"]
            if txn.get(uuid, db=commits) is None:
                raise CatalogError(f"no index with uuid {uuid.hex()} in the catalog (deleted?); commit refused")
            last = _last_commit_key(txn, commits, uuid)
            gen = commit_generation(last) + 1 if last else 1
            rec, where = {**record, "generation": gen}, key_repr("commits", commit_key(uuid, gen))
            problem = validate_commit(rec, where)
            if problem:
                raise CatalogError(f"refusing to commit an impossible record to {where}: {problem}")
            txn.put(commit_key(uuid, gen), encode_value(rec, where), db=commits)
            # Keep this generation and the previous one (tools compare them); drop anything older.
            cur = txn.cursor(db=commits)
            if cur.set_range(commit_key(uuid, 0)):
                while cur.key().startswith(uuid) and commit_generation(cur.key()) < gen - 1:
                    cur.delete()
            for key, value in updates:
                if value is None:
                    txn.delete(key, db=pk)
                else:
                    txn.put(key, encode_value(list(value), key_repr("pk", key)), db=pk)
            return gen

        return self._write(fn)

    @staticmethod
    def _decode_commit(key: bytes, data: bytes) -> dict[str, Any]:
        where = key_repr("commits", key)
        record = decode_value(data, where)
        problem = validate_commit(record, where, generation=commit_generation(key))
        if problem:
            raise CorruptIndexError(problem, where)
        return record  # type: ignore[no-any-return]

    def latest_commit(self, index_uuid: bytes) -> dict[str, Any] | None:
        """The highest generation's record (validated), or ``None`` if the index never committed."""
        uuid = check_uuid(index_uuid)

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> dict[str, Any] | None:
            key = _last_commit_key(txn, dbs["commits"], uuid)
            return None if key is None else self._decode_commit(key, txn.get(key, db=dbs["commits"]))

        return self._read(fn)

    def get_commit(self, index_uuid: bytes, generation: int) -> dict[str, Any] | None:
        key = commit_key(check_uuid(index_uuid), generation)
        data = self._read(lambda txn, dbs: txn.get(key, db=dbs["commits"]))
        return None if data is None else self._decode_commit(key, data)

    def list_commits(self, index_uuid: bytes) -> list[int]:
        """Stored generations, oldest first (at most two)."""
        uuid = check_uuid(index_uuid)
        return self._read(lambda txn, dbs: [
            commit_generation(k) for k in iter_prefix(txn, dbs["commits"], uuid, values=False)
            if len(k) == _COMMIT_KEY_LEN
        ])

    # ---------------------------------------------------------------------------------- primary-key map

    def pk_get(self, index_uuid: bytes, doc_id: str) -> tuple[Any, ...] | None:
        key = pk_key(check_uuid(index_uuid), doc_id)
        data = self._read(lambda txn, dbs: txn.get(key, db=dbs["pk"]))
        return None if data is None else _pk_value(data, key)

    def pk_get_many(self, index_uuid: bytes, ids: list[str]) -> list[tuple[Any, ...] | None]:
        """Look up many ids in one read transaction (one snapshot)."""
        uuid = check_uuid(index_uuid)
        keys = [pk_key(uuid, doc_id) for doc_id in ids]
        datas = self._read(lambda txn, dbs: [txn.get(k, db=dbs["pk"]) for k in keys])
        return [None if d is None else _pk_value(d, k) for k, d in zip(keys, datas)]

    def pk_items(self, index_uuid: bytes) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Every (doc id, value) of the index in key order, as of the moment of this call.

        The snapshot is copied out of one short read transaction into a single compact buffer (about the
        stored size, not one Python object per entry) and decoded lazily while iterating, so no read
        transaction outlives this call: a long reader would pin pages and block map growth.
        """
        uuid = check_uuid(index_uuid)

        def fn(txn: lmdb.Transaction, dbs: Dbs) -> bytearray:
            buf = bytearray()
            for key, value in iter_prefix(txn, dbs["pk"], uuid):
                buf += _SNAP.pack(len(key), len(value))
                buf += key
                buf += value
            return buf

        return self._iter_snapshot(self._read(fn))

    @staticmethod
    def _iter_snapshot(buf: bytearray) -> Iterator[tuple[str, tuple[Any, ...]]]:
        pos, view = 0, memoryview(buf)
        while pos < len(buf):
            klen, vlen = _SNAP.unpack_from(buf, pos)
            pos += _SNAP.size
            key, value = bytes(view[pos : pos + klen]), bytes(view[pos + klen : pos + klen + vlen])
            pos += klen + vlen
            yield key[16:].decode("utf-8"), _pk_value(value, key)

    def pk_count(self, index_uuid: bytes) -> int:
        """Number of pk entries of the index (a key scan: O(entries), no values decoded)."""
        uuid = check_uuid(index_uuid)
        return self._read(lambda txn, dbs: sum(1 for _ in iter_prefix(txn, dbs["pk"], uuid, values=False)))

    # ------------------------------------------------------------------------------------ models & meta

    def put_model(self, model_id: str, record: dict[str, Any]) -> None:
        key = name_key("model id", model_id)
        value = encode_value(dict(record), key_repr("models", key))
        self._write(lambda txn, dbs: txn.put(key, value, db=dbs["models"]))

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        key = name_key("model id", model_id)
        data = self._read(lambda txn, dbs: txn.get(key, db=dbs["models"]))
        return None if data is None else decode_value(data, key_repr("models", key))  # type: ignore[no-any-return]

    def delete_model(self, model_id: str) -> bool:
        """Remove a model record; ``False`` if there was none."""
        key = name_key("model id", model_id)
        return bool(self._write(lambda txn, dbs: txn.delete(key, db=dbs["models"])))

    def list_models(self) -> list[dict[str, Any]]:
        """Every model record in id order, each with ``"model_id"`` set (from the key when absent)."""
        items = self._read(lambda txn, dbs: list(txn.cursor(db=dbs["models"]).iternext()))
        out = []
        for key, data in items:
            record = decode_value(data, key_repr("models", key))
            if not isinstance(record, dict):
                raise CorruptIndexError("model record must be a map", key_repr("models", key))
            record.setdefault("model_id", key.decode("utf-8"))
            out.append(record)
        return out

    def get_meta(self, key: str) -> Any:
        raw = name_key("meta key", key)
        data = self._read(lambda txn, dbs: txn.get(raw, db=dbs["meta"]))
        return None if data is None else decode_value(data, key_repr("meta", raw))

    def put_meta(self, key: str, value: Any) -> None:
        raw = name_key("meta key", key)
        framed = encode_value(value, key_repr("meta", raw))
        self._write(lambda txn, dbs: txn.put(raw, framed, db=dbs["meta"]))

    # -------------------------------------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        """Map size, bytes in use, reader slots and entries per sub-db."""
        shared = self._shared()
        entries = self._read(lambda txn, dbs: {name: txn.stat(db)["entries"] for name, db in dbs.items()})
        info, psize = shared.env.info(), shared.env.stat()["psize"]
        return {
            "path": self._path,
            "map_size": info["map_size"],
            "max_map_size": shared.max_map_size,
            "used_bytes": (info["last_pgno"] + 1) * psize,
            "page_size": psize,
            "num_readers": info["num_readers"],
            "max_readers": info["max_readers"],
            "stale_readers_cleared": shared.stale_readers_cleared,
            "entries": entries,
        }
