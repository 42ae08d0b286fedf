"""The realtime GET of an ``IndexWriter``: like OpenSearch's GET, it sees every applied operation, including
documents still in the RAM buffer or in a segment being flushed, not only what the last refresh made
searchable.

The version map says where the current version of a document lives: in the buffer (no location), in a
segment being flushed (``_flushing``: served from the buffered document, since no reader has the segment
yet), or in a segment of the current reader. The lookup runs under the writer's ``_lock``; a segment is read
outside it, through a reference on the point-in-time reader. Buffered documents whose vectors are derived
from ``_source`` get them injected back, as a reader of the flushed segment would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segstore.derived_source.mask import inject_source
from segstore.index.operations import BufferedDoc, GetResult
from segstore.index.segment_reader import vector_to_json

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["get", "buffered_get"]


def get(w: "IndexWriter", doc_id: str) -> GetResult | None:
    """Realtime get: sees buffered documents too, like OpenSearch's GET."""
    w._ensure_open()
    with w._lock:
        vv = w._resolver.current(doc_id)
        if vv is None or vv.deleted:
            return None
        if vv.location is None:
            return buffered_get(w, w._buffer[doc_id])
        seg, doc = vv.location
        flushing = w._flushing.get(doc_id)
        if flushing is not None and flushing[0] == seg:
            return buffered_get(w, flushing[2])
        reader = w._reader.inc_ref()
    try:
        leaf = reader.leaf(seg)
        if leaf is None:  # the segment was merged away between the lookup and the ref
            return w.get(doc_id)
        record = leaf.stored_document(doc)
        return GetResult.from_record(doc_id, record, leaf.source(doc, record))
    finally:
        reader.dec_ref()


def buffered_get(w: "IndexWriter", d: BufferedDoc) -> GetResult:
    """The GET result of a buffered document (its derived vectors injected into ``_source``)."""
    source = d.stored_source
    if source is not None and w.parser.derived_paths:
        suppliers = {}
        for path in w.parser.derived_paths:
            dt = w.mappings.vector_fields[path].data_type
            if w.mappings.nested_scope(path) is None:
                rows = [vector_to_json(dt, d.vectors[path])] if path in d.vectors else []
            else:  # nested vectors: in block order, one per child that has one
                rows = [vector_to_json(dt, vecs[path]) for _, vecs in d.children if path in vecs]
            suppliers[path] = (lambda rows=rows: iter(rows))
        source = inject_source(source, suppliers)
    return GetResult(d.doc_id, d.version, d.seq_no, source, routing=d.routing)
