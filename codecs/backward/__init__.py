"""Read-only codecs of older segment formats (Lucene's ``backward-codecs``), one package per generation.

A segment records the name of the codec that wrote it and is always read by that codec, so a codec stays
here, read-only (``Codec.writable`` is False), for as long as indices written by it may still be opened.
Their writers live only under ``tests/backward/rw/``, where they produce the checked-in fixtures that keep
these readers honest. Merges migrate such segments to the current write codec.
"""
