"""``SegStore1LiveDocs``: one live-docs bitset per delete generation, ``<segment>_<gen base36>.liv``.

Grammar (framing per :mod:`segstore.codec.framing`; integers big-endian)::

    File     := Header("SegStore1LiveDocs", Version, SegmentId, Suffix=base36(Gen)), Payload, Footer
    Payload  := MaxDoc:u32, DelCount:u32, Bits:byte[ceil(MaxDoc / 8)]
    Bits     := np.packbits(live, bitorder="little"): doc d is bit (d & 7) of byte (d >> 3), 1 = live;
                the padding bits after MaxDoc are 0

The generation is the header suffix, so a ``.liv`` file renamed to another generation (or swapped in from
another segment) fails the header check with :class:`SegmentIdMismatchError`. The file is small (max_doc / 8
bytes), so the full CRC is verified on open; then the stored counts are checked against the segment and the
commit, because a bitset with the wrong number of deletes would silently change search results.
"""

from __future__ import annotations

import struct

import numpy as np

from segstore.codec.base import LiveDocsFormat
from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.file_names import live_docs_file_name, to_base36
from segstore.index.segment_info import SegmentInfo
from segstore.store.directory import Directory

__all__ = ["SegStore1LiveDocsFormat"]

CODEC_NAME = "SegStore1LiveDocs"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_CURRENT = 1
_COUNTS = struct.Struct(">II")


def _check_gen(gen: int) -> None:
    # Generation 0 means "no deletes file" in SegmentCommitInfo, so a file for it can never be referenced.
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 1:
        raise ValueError(f"live docs generation must be an int >= 1, got {gen!r}")


class SegStore1LiveDocsFormat(LiveDocsFormat):
    """Writes and reads live-docs generations (see the module grammar)."""

    name = "SegStore1LiveDocs"

    def write(self, directory: Directory, info: SegmentInfo, live: np.ndarray, del_count: int, gen: int) -> str:
        _check_gen(gen)
        file_name = live_docs_file_name(info.name, gen)
        live = np.asarray(live)
        # Strict dtype: an int array of 0/1/2 would pack "2" as live without anyone noticing.
        if live.dtype != np.bool_ or live.ndim != 1:
            raise ValueError(f"live docs must be a 1-d bool array, got dtype={live.dtype} shape={live.shape}")
        if live.shape[0] != info.max_doc:
            raise ValueError(f"live docs length mismatch: expected max_doc={info.max_doc} actual={live.shape[0]}")
        actual_dels = int(info.max_doc - np.count_nonzero(live))
        if actual_dels != del_count:
            raise ValueError(f"del_count mismatch: expected={del_count} actual (False count)={actual_dels}")
        bits = np.packbits(live, bitorder="little")
        out = directory.create_output(file_name)
        try:
            write_header(out, CODEC_NAME, VERSION_CURRENT, info.segment_id, to_base36(gen))
            out.write(_COUNTS.pack(info.max_doc, del_count))
            out.write(bits.tobytes())
            write_footer(out)
        except BaseException:
            out.abort()
            raise
        out.close()
        return file_name

    def read(self, directory: Directory, info: SegmentInfo, gen: int, del_count: int) -> np.ndarray:
        _check_gen(gen)
        file_name = live_docs_file_name(info.name, gen)
        with FramedInput(
            directory,
            file_name,
            CODEC_NAME,
            VERSION_START,
            VERSION_CURRENT,
            info.segment_id,
            to_base36(gen),
            verify_checksum=True,
        ) as inp:

            def decode(payload: memoryview) -> np.ndarray:
                if len(payload) < _COUNTS.size:
                    raise CorruptIndexError(
                        f"live docs payload too short: expected>={_COUNTS.size} actual={len(payload)}", file_name
                    )
                max_doc, stored_dels = _COUNTS.unpack_from(payload, 0)
                if max_doc != info.max_doc:
                    raise CorruptIndexError(
                        f"live docs max_doc mismatch: expected={info.max_doc} actual={max_doc}", file_name
                    )
                n_bytes = (max_doc + 7) // 8
                if len(payload) - _COUNTS.size != n_bytes:
                    raise CorruptIndexError(
                        f"live docs bitset length mismatch: expected={n_bytes} bytes "
                        f"actual={len(payload) - _COUNTS.size}",
                        file_name,
                    )
                if stored_dels != del_count:
                    raise CorruptIndexError(
                        f"live docs del_count mismatch: expected (commit)={del_count} actual (file)={stored_dels}",
                        file_name,
                    )
                bits = np.frombuffer(payload, dtype=np.uint8, count=n_bytes, offset=_COUNTS.size)
                # unpackbits copies, so the result does not pin the (possibly memory-mapped) file.
                live = np.unpackbits(bits, count=max_doc, bitorder="little").view(np.bool_)
                zeros = int(max_doc - np.count_nonzero(live))
                if zeros != stored_dels:
                    raise CorruptIndexError(
                        f"live docs bitset has {zeros} deleted docs but the file says del_count={stored_dels} "
                        f"(expected={stored_dels} actual={zeros})",
                        file_name,
                    )
                if max_doc % 8 and int(bits[-1]) >> (max_doc % 8):
                    raise CorruptIndexError(
                        f"live docs padding bits after max_doc={max_doc} are not zero: last byte={int(bits[-1]):#04x}",
                        file_name,
                    )
                live.flags.writeable = False
                return live

            return inp.parse(decode)
