"""What CheckIndex knows about the files of codec ``SegStore1``: the component each file type belongs to,
the format name its header must carry, and the version range every format name supports.

Segment files are named ``_<segment>[_<suffix>].<ext>`` (:mod:`segstore.index.file_names`); the extension
decides the component::

    si -> segment_info    fnm -> field_infos    vec, vem -> vectors    hnsw, ivf -> graph
    fdt, fdx -> stored    liv -> live_docs      dvd, dvm -> doc_values qst -> quantization

:data:`FORMAT_VERSIONS` is read from the format modules themselves (``CODEC_NAME``/``VERSION_START``/
``VERSION_CURRENT``), plus the two translog formats, so a new format version needs no change here.
"""

from __future__ import annotations

__all__ = [
    "COMPONENTS",
    "EXPECTED_FORMAT",
    "FORMAT_VERSIONS",
    "GRAPH_COMPONENTS",
    "REBUILDABLE",
    "component_of",
]

#: Component of a segment file, by extension.
COMPONENTS = {
    "si": "segment_info", "fnm": "field_infos", "vec": "vectors", "vem": "vectors", "hnsw": "graph",
    "ivf": "graph", "fdt": "stored", "fdx": "stored", "liv": "live_docs", "dvd": "doc_values",
    "dvm": "doc_values", "qst": "quantization",
}
#: Components rebuilt from the canonical vectors without losing a document (``repair --rebuild-graphs``).
REBUILDABLE = frozenset(("graph", "quantization", "live_docs"))
#: Components ``repair --rebuild-graphs`` rebuilds (``live_docs``: ``repair --rebuild-live-docs``).
GRAPH_COMPONENTS = frozenset(("graph", "quantization"))
#: Format name written in the header of each file type of codec ``SegStore1``.
EXPECTED_FORMAT = {
    "si": "SegStore1SegmentInfo", "fnm": "SegStore1FieldInfos", "vec": "SegStore1VectorValuesData",
    "vem": "SegStore1VectorValuesMeta", "hnsw": "SegStore1HnswGraph", "ivf": "SegStore1IvfGraph",
    "fdt": "SegStore1StoredFieldsData", "fdx": "SegStore1StoredFieldsIndex", "liv": "SegStore1LiveDocs",
    "dvd": "SegStore1DocValuesData", "dvm": "SegStore1DocValuesMeta", "qst": "SegStore1QuantizationState",
}


def _format_versions() -> dict[str, tuple[int, int]]:
    """Supported version range of every known format name, read from the format modules themselves."""
    out: dict[str, tuple[int, int]] = {}
    mods = {
        "segment_info_format": ["CODEC_NAME"], "field_infos_format": ["CODEC_NAME"],
        "vector_values_format": ["DATA_CODEC", "META_CODEC"], "graph_format": ["CODEC_NAME"],
        "stored_fields_format": ["DATA_CODEC", "INDEX_CODEC"], "live_docs_format": ["CODEC_NAME"],
        "doc_values_format": ["META_CODEC", "DATA_CODEC"], "quantization_state_format": ["CODEC"],
        "ivf_graph": ["CODEC_NAME"],
    }
    import importlib

    for mod, names in mods.items():
        try:
            m = importlib.import_module(f"segstore_codecs.segstore1.{mod}")
        except Exception:  # noqa: BLE001 - a format module that is missing or broken is just unknown
            continue
        for attr in names:
            name = getattr(m, attr, None)
            if isinstance(name, str):
                out[name] = (int(getattr(m, "VERSION_START", 1)), int(getattr(m, "VERSION_CURRENT", 1)))
    try:
        from segstore.translog import checkpoint as ck

        out[ck.CHECKPOINT_FORMAT] = (ck.VERSION, ck.VERSION)
        out[ck.TLOG_FORMAT] = (ck.VERSION, ck.VERSION)
    except Exception:  # noqa: BLE001 - no translog formats then
        pass
    return out


FORMAT_VERSIONS = _format_versions()


def component_of(file_name: str) -> str:
    ext = file_name.rsplit(".", 1)[-1] if "." in file_name else ""
    return COMPONENTS.get(ext, "other")
