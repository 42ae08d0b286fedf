"""``SegStore1FieldInfos``: the field infos file ``<segment>.fnm``.

Grammar (framing per :mod:`segstore.codec.framing`; the payload is one msgpack map)::

    File      := Header("SegStore1FieldInfos", Version, SegmentId, Suffix=""), Payload, Footer
    Payload   := msgpack map { "format_version": int (= header Version), "fields": array of Field }
    Field     := msgpack map {
                   "name": str (non-empty, unique), "number": int (0 <= number < 2**31, unique),
                   "vector_dimension": int (0..16000; 0 = no vectors; a multiple of 8 for "binary"),
                   "vector_data_type": str (one of VECTOR_DATA_TYPES), "vector_space_type": str (non-empty),
                   "attributes": map str -> str
                 }

Fields are written in field-number order. The file is small, so the full CRC is verified on open, and every
value is validated: an impossible value that passed the CRC means a bug wrote it, and reading on would build
wrong vector readers, so we raise :class:`CorruptIndexError` naming the file.
"""

from __future__ import annotations

from typing import Any

import msgpack

from segstore.codec.base import FieldInfosFormat
from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.field_infos import VECTOR_DATA_TYPES, FieldInfo, FieldInfos
from segstore.index.file_names import segment_file_name
from segstore.index.segment_info import SegmentInfo
from segstore.store.directory import Directory

__all__ = ["SegStore1FieldInfosFormat", "MAX_DIMENSION"]

CODEC_NAME = "SegStore1FieldInfos"
EXTENSION = "fnm"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_CURRENT = 1
MAX_DIMENSION = 16000  # OpenSearch k-NN's maximum dimension for every engine
MAX_FIELD_NUMBER = 2**31

_FIELD_KEYS = frozenset(
    ("name", "number", "vector_dimension", "vector_data_type", "vector_space_type", "attributes")
)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _field_problem(f: Any) -> str | None:
    """First reason the decoded map ``f`` is not a valid field, or None. Also used on write, so the writer
    never publishes what the reader refuses."""
    if not isinstance(f, dict) or set(f) != _FIELD_KEYS:
        keys = sorted(map(str, f)) if isinstance(f, dict) else type(f).__name__
        return f"field entry keys mismatch: expected={sorted(_FIELD_KEYS)} actual={keys}"
    name, number, dim = f["name"], f["number"], f["vector_dimension"]
    dtype, space, attrs = f["vector_data_type"], f["vector_space_type"], f["attributes"]
    if not isinstance(name, str) or not name:
        return f"invalid field name: {name!r}"
    if not _is_int(number) or not 0 <= number < MAX_FIELD_NUMBER:
        return f"field [{name}]: invalid number, expected an int in [0, {MAX_FIELD_NUMBER}), actual={number!r}"
    if not _is_int(dim) or not 0 <= dim <= MAX_DIMENSION:
        return f"field [{name}]: invalid vector_dimension, expected 0..{MAX_DIMENSION}, actual={dim!r}"
    if dtype not in VECTOR_DATA_TYPES:
        return f"field [{name}]: invalid vector_data_type, expected one of {VECTOR_DATA_TYPES}, actual={dtype!r}"
    # Binary vectors are stored as packed bytes (dimension / 8 per vector): other dimensions cannot exist.
    if dtype == "binary" and dim % 8:
        return f"field [{name}]: binary vector_dimension must be a multiple of 8, actual={dim}"
    if not isinstance(space, str) or not space:
        return f"field [{name}]: invalid vector_space_type: {space!r}"
    if not isinstance(attrs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
        return f"field [{name}]: attributes must map str to str, actual={attrs!r}"
    return None


def _duplicates_problem(fields: list[dict[str, Any]]) -> str | None:
    names = [f["name"] for f in fields]
    numbers = [f["number"] for f in fields]
    if len(set(names)) != len(names):
        return f"duplicate field names: {sorted(n for n in set(names) if names.count(n) > 1)}"
    if len(set(numbers)) != len(numbers):
        return f"duplicate field numbers: {sorted(n for n in set(numbers) if numbers.count(n) > 1)}"
    return None


def _encode_field(fi: FieldInfo) -> dict[str, Any]:
    return {
        "name": fi.name,
        "number": fi.number,
        "vector_dimension": fi.vector_dimension,
        "vector_data_type": fi.vector_data_type,
        "vector_space_type": fi.vector_space_type,
        "attributes": dict(fi.attributes),
    }


class SegStore1FieldInfosFormat(FieldInfosFormat):
    """Writes and reads ``<segment>.fnm`` (see the module grammar)."""

    name = "SegStore1FieldInfos"

    def write(self, directory: Directory, info: SegmentInfo, field_infos: FieldInfos) -> str:
        file_name = segment_file_name(info.name, "", EXTENSION)
        fields = [_encode_field(fi) for fi in field_infos]  # FieldInfos iterates in number order
        for f in fields:
            problem = _field_problem(f)
            if problem is not None:
                raise ValueError(f"cannot write field infos [{file_name}]: {problem}")
        payload = msgpack.packb({"format_version": VERSION_CURRENT, "fields": fields}, use_bin_type=True)
        out = directory.create_output(file_name)
        try:
            write_header(out, CODEC_NAME, VERSION_CURRENT, info.segment_id)
            out.write(payload)
            write_footer(out)
        except BaseException:
            out.abort()
            raise
        out.close()
        return file_name

    def read(self, directory: Directory, info: SegmentInfo) -> FieldInfos:
        file_name = segment_file_name(info.name, "", EXTENSION)
        with FramedInput(
            directory, file_name, CODEC_NAME, VERSION_START, VERSION_CURRENT, info.segment_id, verify_checksum=True
        ) as inp:
            header_version = inp.version

            def decode(payload: memoryview) -> FieldInfos:
                body = msgpack.unpackb(payload, raw=False, strict_map_key=True)
                if not isinstance(body, dict) or set(body) != {"format_version", "fields"}:
                    raise CorruptIndexError("field infos payload is not a {format_version, fields} map", file_name)
                if body["format_version"] != header_version:
                    raise CorruptIndexError(
                        f"format version mismatch: header={header_version} payload={body['format_version']!r}",
                        file_name,
                    )
                fields = body["fields"]
                if not isinstance(fields, list):
                    raise CorruptIndexError(f"fields is not an array: {type(fields).__name__}", file_name)
                for f in fields:
                    problem = _field_problem(f)
                    if problem is not None:
                        raise CorruptIndexError(problem, file_name)
                problem = _duplicates_problem(fields)
                if problem is not None:
                    raise CorruptIndexError(problem, file_name)
                return FieldInfos(
                    [
                        FieldInfo(
                            name=f["name"],
                            number=f["number"],
                            vector_dimension=f["vector_dimension"],
                            vector_data_type=f["vector_data_type"],
                            vector_space_type=f["vector_space_type"],
                            attributes=f["attributes"],
                        )
                        for f in fields
                    ]
                )

            return inp.parse(decode)
