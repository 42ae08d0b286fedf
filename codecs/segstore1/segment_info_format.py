"""``SegStore1SegmentInfo``: the segment info file ``<segment>.si``.

Grammar (framing per :mod:`segstore.codec.framing`; the payload is one msgpack map)::

    File     := Header("SegStore1SegmentInfo", Version, SegmentId, Suffix=""), Payload, Footer
    Payload  := msgpack map {
                  "format_version": int   (= the header's Version, so a payload is never read by the wrong code),
                  "name":           str   (the segment, e.g. "_3"),
                  "max_doc":        int   (0 <= max_doc < 2**31),
                  "codec":          str   (the codec name resolved via the registry),
                  "attributes":     map str -> str,
                  "diagnostics":    map str -> str,
                  "files":          array of str (the segment's files, unique, all named "<name>..."; may
                                    list the .si itself, as the segment writer does)
                }

The file is small, so the full CRC is verified on open. Every value is validated: a file that passes the CRC
but holds an impossible value was written by a bug, and we refuse it with a :class:`CorruptIndexError` naming
the file rather than let a wrong ``max_doc`` or file list reach the index.
"""

from __future__ import annotations

from typing import Any

import msgpack

from segstore.codec.base import SegmentInfoFormat
from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.file_names import parse_segment_name, segment_file_name
from segstore.index.segment_info import SegmentInfo
from segstore.store.directory import Directory

__all__ = ["SegStore1SegmentInfoFormat"]

CODEC_NAME = "SegStore1SegmentInfo"
EXTENSION = "si"
# Version 1 is the first; version 0 is never written so that "version - 1" is still a valid u32 (a too-old file).
VERSION_START = 1
VERSION_CURRENT = 1
MAX_DOCS = 2**31  # doc ids are int32 everywhere (stored-fields index, vector ord->doc maps)

_KEYS = frozenset(("format_version", "name", "max_doc", "codec", "attributes", "diagnostics", "files"))


def _problems(info: dict[str, Any], segment: str) -> str | None:
    """First reason ``info`` cannot describe segment ``segment``, or None. Shared by write and read so that
    the writer never publishes a file the reader would refuse."""
    name, max_doc, codec = info.get("name"), info.get("max_doc"), info.get("codec")
    if not isinstance(name, str) or name != segment:
        return f"segment name mismatch: expected={segment!r} actual={name!r}"
    # bool is an int subclass; a True max_doc is a bug, not 1.
    if not isinstance(max_doc, int) or isinstance(max_doc, bool) or not 0 <= max_doc < MAX_DOCS:
        return f"invalid max_doc: expected an int in [0, {MAX_DOCS}), actual={max_doc!r}"
    if not isinstance(codec, str) or not codec:
        return f"invalid codec name: expected a non-empty str, actual={codec!r}"
    for key in ("attributes", "diagnostics"):
        value = info.get(key)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return f"invalid {key}: expected a map of str to str, actual={value!r}"
    files = info.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        return f"invalid files: expected a list of non-empty str, actual={files!r}"
    if len(set(files)) != len(files):
        return f"duplicate entries in files: {files!r}"
    for f in files:
        # A segment only owns files named after it; anything else would be deleted with the wrong segment.
        try:
            owner = parse_segment_name(f)
        except ValueError:
            owner = None
        if owner != segment or "/" in f:
            return f"file {f!r} does not belong to segment {segment!r}"
    return None


class SegStore1SegmentInfoFormat(SegmentInfoFormat):
    """Writes and reads ``<segment>.si`` (see the module grammar)."""

    name = "SegStore1SegmentInfo"

    def write(self, directory: Directory, info: SegmentInfo) -> str:
        file_name = segment_file_name(info.name, "", EXTENSION)
        body: dict[str, Any] = {
            "format_version": VERSION_CURRENT,
            "name": info.name,
            "max_doc": info.max_doc,
            "codec": info.codec,
            # Copies, so later mutation of ``info`` cannot race with packing.
            "attributes": dict(info.attributes),
            "diagnostics": dict(info.diagnostics),
            "files": list(info.files),
        }
        problem = _problems(body, info.name) if isinstance(info.name, str) else "segment name must be a str"
        if problem is not None:
            raise ValueError(f"cannot write segment info [{file_name}]: {problem}")
        payload = msgpack.packb(body, use_bin_type=True)
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

    def read(self, directory: Directory, segment: str, segment_id: bytes) -> SegmentInfo:
        file_name = segment_file_name(segment, "", EXTENSION)
        with FramedInput(
            directory, file_name, CODEC_NAME, VERSION_START, VERSION_CURRENT, segment_id, verify_checksum=True
        ) as inp:
            header_version = inp.version

            def decode(payload: memoryview) -> SegmentInfo:
                # unpackb rejects trailing bytes (ExtraData) and non-str map keys (strict_map_key).
                body = msgpack.unpackb(payload, raw=False, strict_map_key=True)
                if not isinstance(body, dict):
                    raise CorruptIndexError(f"segment info payload is not a map: {type(body).__name__}", file_name)
                if set(body) != _KEYS:
                    raise CorruptIndexError(
                        f"segment info keys mismatch: expected={sorted(_KEYS)} actual={sorted(map(str, body))}",
                        file_name,
                    )
                if body["format_version"] != header_version:
                    raise CorruptIndexError(
                        f"format version mismatch: header={header_version} payload={body['format_version']!r}",
                        file_name,
                    )
                problem = _problems(body, segment)
                if problem is not None:
                    raise CorruptIndexError(problem, file_name)
                return SegmentInfo(
                    name=body["name"],
                    segment_id=bytes(inp.segment_id),
                    max_doc=body["max_doc"],
                    codec=body["codec"],
                    attributes=body["attributes"],
                    diagnostics=body["diagnostics"],
                    files=body["files"],
                )

            return inp.parse(decode)
