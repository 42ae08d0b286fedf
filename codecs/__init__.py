"""Concrete on-disk formats (import name ``segstore_codecs``), one package per codec generation.

Importing this package registers the built-in codecs by name.
"""

from segstore.codec.registry import codecs as _codecs

DEFAULT_CODEC = "SegStore1"


def _segstore1():  # type: ignore[no-untyped-def]
    from segstore_codecs.segstore1.codec import SegStore1Codec

    return SegStore1Codec()


def _segstore0():  # type: ignore[no-untyped-def]
    from segstore_codecs.backward.segstore0 import codec_factory

    return codec_factory()


_codecs.register("SegStore1", _segstore1)
_codecs.register("SegStore0", _segstore0)  # read-only: filter-based derived source (segstore_codecs.backward)

__all__ = ["DEFAULT_CODEC"]
