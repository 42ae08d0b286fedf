"""Key encoding, value framing and commit-record validation for the LMDB catalog (:mod:`.catalog`).

LMDB stores bytes and has no checksums of its own, so every value the catalog writes is framed::

    Value   := Crc:u32 (big-endian zlib CRC32 of Payload), Payload
    Payload := msgpack (use_bin_type: ``bytes`` stay bin, ``str`` stay str; tuples come back as lists)

A frame that is too short, fails its CRC or is not valid msgpack raises :class:`CorruptIndexError` (the CRC
case :class:`ChecksumMismatchError`) whose ``file`` is ``"catalog:<db>/<key>"``, so a damaged entry is named
exactly. A value that cannot be encoded (a type msgpack does not know) raises :class:`CatalogError` before
anything is stored.

Keys (grammar of every sub-db is in :mod:`.catalog`): names are UTF-8; per-index keys start with the 16-byte
index uuid so one index's entries are a contiguous range; generations are u64 big-endian so that byte order is
numeric order. LMDB keys are at most 511 bytes (``mdb_env_get_maxkeysize`` of the default build), hence doc ids
of at most 511 - 16 = :data:`MAX_DOC_ID_BYTES` UTF-8 bytes.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgpack

from segstore.errors import CatalogError, ChecksumMismatchError, CorruptIndexError

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_DOC_ID_BYTES",
    "UUID_BYTES",
    "encode_value",
    "decode_value",
    "name_key",
    "check_uuid",
    "commit_key",
    "commit_generation",
    "pk_key",
    "key_repr",
    "validate_commit",
]

MAX_KEY_BYTES = 511
UUID_BYTES = 16
MAX_DOC_ID_BYTES = MAX_KEY_BYTES - UUID_BYTES  # 495
_CRC = struct.Struct(">I")
_GEN = struct.Struct(">Q")


def encode_value(value: Any, where: str) -> bytes:
    """Frame ``value`` as ``crc32 || msgpack``; ``where`` ("catalog:<db>/<key>") names it in errors."""
    try:
        payload = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise CatalogError(f"cannot encode the value of {where} as msgpack: {e}") from e
    return _CRC.pack(zlib.crc32(payload)) + payload


def decode_value(data: bytes, where: str) -> Any:
    """Verify the CRC of a frame and decode its payload; damage raises :class:`CorruptIndexError`."""
    if len(data) < _CRC.size + 1:  # msgpack's shortest value is one byte
        raise CorruptIndexError(f"catalog value too short: {len(data)} bytes", where)
    (expected,) = _CRC.unpack_from(data)
    payload = memoryview(data)[_CRC.size :]
    actual = zlib.crc32(payload)
    if actual != expected:
        raise ChecksumMismatchError(where, expected, actual)
    try:
        # strict_map_key=False: metadata may legitimately use int keys; the CRC already vouches for the bytes.
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types for malformed input
        raise CorruptIndexError(f"catalog value is not valid msgpack: {e}", where) from e


def name_key(kind: str, name: str) -> bytes:
    """UTF-8 key for an index name, model id or meta key; must be 1..511 bytes."""
    if not isinstance(name, str):
        raise CatalogError(f"{kind} must be a str, got {type(name).__name__}")
    key = name.encode("utf-8")
    if not 0 < len(key) <= MAX_KEY_BYTES:
        raise CatalogError(f"{kind} must be 1..{MAX_KEY_BYTES} UTF-8 bytes, got {len(key)}: {name[:64]!r}")
    return key


def check_uuid(index_uuid: bytes) -> bytes:
    if not isinstance(index_uuid, (bytes, bytearray)) or len(index_uuid) != UUID_BYTES:
        raise CatalogError(f"index_uuid must be {UUID_BYTES} bytes, got {index_uuid!r}")
    return bytes(index_uuid)


def commit_key(index_uuid: bytes, generation: int) -> bytes:
    return index_uuid + _GEN.pack(generation)


def commit_generation(key: bytes) -> int:
    return int(_GEN.unpack_from(key, UUID_BYTES)[0])


def pk_key(index_uuid: bytes, doc_id: str) -> bytes:
    if not isinstance(doc_id, str):
        raise CatalogError(f"doc id must be a str, got {type(doc_id).__name__}")
    raw = doc_id.encode("utf-8")
    if not 0 < len(raw) <= MAX_DOC_ID_BYTES:
        raise CatalogError(
            f"doc id must be 1..{MAX_DOC_ID_BYTES} UTF-8 bytes (LMDB keys are at most {MAX_KEY_BYTES} bytes, "
            f"{UUID_BYTES} of them the index uuid), got {len(raw)} bytes: {doc_id[:64]!r}..."
        )
    return index_uuid + raw


def key_repr(db: str, key: bytes) -> str:
    """``catalog:<db>/<key>`` for error messages: uuid keys as ``<hex>/<generation|doc id>``."""
    if db in ("commits", "pk") and len(key) >= UUID_BYTES:
        head, rest = key[:UUID_BYTES].hex(), key[UUID_BYTES:]
        if db == "commits":
            tail = str(commit_generation(key)) if len(rest) == _GEN.size else "marker"
        else:
            tail = rest.decode("utf-8", "replace")
        return f"catalog:{db}/{head}/{tail}"
    return f"catalog:{db}/{key.decode('utf-8', 'replace')}"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_commit(record: Any, where: str, generation: int | None = None) -> str | None:
    """Return why a commit record is impossible, or ``None`` if it is well formed.

    Like Lucene's ``SegmentInfos.readCommit`` this rejects impossible counts before anything uses them
    (reliability.md §7.1 invariant 2). ``generation``, when given, must match the record's own.
    """
    if not isinstance(record, dict):
        return f"commit record must be a map, got {type(record).__name__}"
    if generation is not None and record.get("generation") != generation:
        return f"commit record says generation={record.get('generation')!r} but is stored as {generation}"
    segments = record.get("segments")
    if segments is None:
        return None
    if not isinstance(segments, list):
        return f"segments must be a list, got {type(segments).__name__}"
    for i, seg in enumerate(segments):
        if not isinstance(seg, dict):
            return f"segment #{i} must be a map, got {type(seg).__name__}"
        name = seg.get("name")
        if not isinstance(name, str) or not name:
            return f"segment #{i} has no name"
        seg_id, codec = seg.get("id"), seg.get("codec")
        if not isinstance(seg_id, bytes) or len(seg_id) != 16:
            return f"segment {name} has an invalid id={seg_id!r} (16 bytes expected)"
        if not isinstance(codec, str) or not codec:
            return f"segment {name} has an invalid codec={codec!r}"
        max_doc, del_gen, del_count = seg.get("max_doc"), seg.get("del_gen"), seg.get("del_count")
        if not _is_int(max_doc) or max_doc < 0:
            return f"segment {name} has an impossible max_doc={max_doc!r}"
        if not _is_int(del_gen) or del_gen < 0:
            return f"segment {name} has an impossible del_gen={del_gen!r}"
        if not _is_int(del_count) or not 0 <= del_count <= max_doc:
            return f"segment {name} has an impossible del_count={del_count!r} for max_doc={max_doc}"
        if del_gen == 0 and del_count:  # deletes need a live-docs generation to say which docs they are
            return f"segment {name} has del_count={del_count} but no live-docs generation (del_gen=0)"
    return None
