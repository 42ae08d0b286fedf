"""``SegStore1QuantizationState``: one field's quantization state and its quantized codes.

File ``<segment>_f<field number>.qst`` (suffix ``f<number>``)::

    File   := Header("SegStore1QuantizationState"), MetaLength:u32, Meta, Pad64, Thresholds?, Pad64, Codes, Footer
    Meta   := msgpack {"kind": "binary"|"fp16"|"sq7", "bits": int, "dimension": int, "normalize": bool,
                       "lower": float, "upper": float, "clip": bool, "count": int, "code_width": int,
                       "thresholds_offset": int, "codes_offset": int}
    Thresholds := float32le[bits, dimension]          (binary only)
    Codes      := uint8[count, code_width], row i = the code of vector ordinal i (fp16: float16le pairs)

The state is small and parsed on open with a full CRC of the file, after which the file is unmapped again.
The codes are mapped (a zero-copy view, footer check only) the first time something reads them: the exact
scan of a segment searched without its graph. A segment searched through its graph scores its candidates
from the codes the graph itself stores, so its ``.qst`` codes are never resident next to the graph's copy
(which would count the codes twice); the full-precision vectors stay in the vector values file until
rescoring reads them.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

import msgpack
import numpy as np

from segstore.codec.framing import FramedInput, pad_to, write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.field_infos import FieldInfo
from segstore.index.file_names import segment_file_name
from segstore.index.segment_info import SegmentInfo
from segstore.quantization.state import QuantizationState
from segstore.store.directory import Directory

__all__ = ["SegStore1QuantizationStateFormat", "QuantizedValues"]

CODEC = "SegStore1QuantizationState"
VERSION_START = 1
VERSION_CURRENT = VERSION_START


class QuantizedValues:
    """A field's state plus its codes (ordinal order). ``codes`` is mapped on first access when the values
    were read with an ``opener``; ``memory_bytes()`` counts the codes only once they are mapped."""

    def __init__(self, state: QuantizationState, codes: np.ndarray | None = None, framed: FramedInput | None = None,
                 opener: Callable[[], tuple[np.ndarray, FramedInput]] | None = None) -> None:
        if codes is None and opener is None:
            raise ValueError("QuantizedValues needs codes or an opener")
        self.state = state
        self._codes = codes
        self._framed = framed
        self._opener = opener
        self._lock = threading.Lock()
        self._closed = False

    @property
    def codes(self) -> np.ndarray:
        codes = self._codes
        if codes is not None:
            return codes
        with self._lock:
            if self._codes is None:
                if self._closed:
                    raise ValueError("quantized values are closed")
                assert self._opener is not None
                self._codes, self._framed = self._opener()
            return self._codes

    def memory_bytes(self) -> int:
        thresholds = 0 if self.state.thresholds is None else int(self.state.thresholds.nbytes)
        return thresholds + (int(self._codes.nbytes) if self._codes is not None else 0)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._codes = None
            if self._framed is not None:
                self._framed.close()
                self._framed = None


def file_name(segment: str, field: FieldInfo) -> str:
    return segment_file_name(segment, f"f{field.number}", "qst")


class SegStore1QuantizationStateFormat:
    name = "SegStore1QuantizationState"

    def write(self, directory: Directory, info: SegmentInfo, field: FieldInfo, state: QuantizationState,
              codes: np.ndarray) -> str:
        name = file_name(info.name, field)
        out = directory.create_output(name)
        try:
            write_header(out, CODEC, VERSION_CURRENT, info.segment_id, f"f{field.number}")
            codes = np.ascontiguousarray(codes)
            width = int(codes.nbytes // codes.shape[0]) if codes.shape[0] else state.code_width
            thresholds = state.thresholds
            meta_len_pos = out.file_pointer
            meta = {"kind": state.kind, "bits": state.bits, "dimension": state.dimension,
                    "normalize": state.normalize, "lower": state.lower, "upper": state.upper, "clip": state.clip,
                    "count": int(codes.shape[0]), "code_width": width, "thresholds_offset": 0, "codes_offset": 0}
            # Offsets depend on the meta's own length; msgpack ints of fixed magnitude keep it stable, so
            # compute the layout with placeholders first, then with the real offsets.
            for _ in range(2):
                blob = msgpack.packb(meta, use_bin_type=True)
                pos = meta_len_pos + 4 + len(blob)
                pos += (-pos) % 64
                meta["thresholds_offset"] = pos if thresholds is not None else 0
                if thresholds is not None:
                    pos += thresholds.nbytes
                pos += (-pos) % 64
                meta["codes_offset"] = pos
            blob = msgpack.packb(meta, use_bin_type=True)
            out.write(struct.pack(">I", len(blob)) + blob)
            pad_to(out, 64)
            if thresholds is not None:
                out.write(thresholds.astype("<f4").tobytes())
            pad_to(out, 64)
            if out.file_pointer != meta["codes_offset"]:
                raise AssertionError("quantization state layout drifted")
            out.write(codes.tobytes())
            write_footer(out)
        except BaseException:
            out.abort()
            raise
        out.close()
        return name

    def read(self, directory: Directory, info: SegmentInfo, field: FieldInfo) -> QuantizedValues | None:
        name = file_name(info.name, field)
        if name not in info.files:
            return None
        framed = FramedInput(directory, name, CODEC, VERSION_START, VERSION_CURRENT, info.segment_id,
                             f"f{field.number}", verify_checksum=True)  # full CRC once; unmapped right after
        try:
            buf = framed.buffer
            (meta_len,) = struct.unpack_from(">I", buf, framed.data_offset)
            meta = framed.parse(lambda p: msgpack.unpackb(bytes(p[4:4 + meta_len]), raw=False))
            state = QuantizationState(meta["kind"], int(meta["bits"]), int(meta["dimension"]),
                                      bool(meta["normalize"]), None, float(meta["lower"]), float(meta["upper"]),
                                      bool(meta["clip"]))
            count, width = int(meta["count"]), int(meta["code_width"])
            end = len(buf) - 16
            if meta["kind"] == "binary":
                n = state.bits * state.dimension
                off = int(meta["thresholds_offset"])
                if off + 4 * n > end:
                    raise CorruptIndexError("thresholds extend past the data", name)
                state.thresholds = np.frombuffer(buf, "<f4", n, off).reshape(state.bits, state.dimension).copy()
            codes_off = int(meta["codes_offset"])
            if codes_off + count * width != end:
                raise CorruptIndexError(f"codes length mismatch: expected {count}x{width} bytes", name)
            dtype = np.float16 if state.kind == "fp16" else np.uint8
            cols = width // np.dtype(dtype).itemsize
        except (KeyError, TypeError, ValueError, struct.error) as e:
            raise CorruptIndexError(f"invalid quantization state: {e!r}", name) from e
        finally:
            framed.close()
        expected_length = end + 16

        def opener() -> tuple[np.ndarray, FramedInput]:
            f = FramedInput(directory, name, CODEC, VERSION_START, VERSION_CURRENT, info.segment_id,
                            f"f{field.number}", expected_length=expected_length)
            try:
                return np.frombuffer(f.buffer, dtype, count * cols, codes_off).reshape(count, cols), f
            except BaseException:
                f.close()
                raise

        return QuantizedValues(state, opener=opener)
