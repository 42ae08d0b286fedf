"""The mapping side of an ``IndexWriter``'s write path: parsing a batch's documents against the index
mappings, and updating those mappings (``put_mapping``, and OpenSearch's dynamic mappings for fields a
document introduces).

Parsing runs before the writer lock is taken and before anything is logged: a document the mapping rejects
writes nothing. New mappings are persisted in the catalog (under ``_lock``) before any document that needs
them reaches the translog, so a replayed operation always finds its fields mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from segstore.errors import ValidationError
from segstore.index.operations import DeleteOp, IndexOp
from segstore.mapping.document_parser import DocumentParser, ParsedDocument
from segstore.mapping.dynamic import dynamic_properties, merge_properties
from segstore.mapping.mappings import Mappings

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["parse_documents", "apply_dynamic_mappings", "put_mapping"]


def parse_documents(w: "IndexWriter", ops: Sequence[IndexOp | DeleteOp]
                    ) -> dict[int, ParsedDocument | ValidationError]:
    """The parsed document (or the error that rejects it) of every index operation of ``ops``, by slot;
    unmapped fields of the accepted documents are added to the mapping first."""
    index_ops = [(i, op) for i, op in enumerate(ops) if isinstance(op, IndexOp)]
    pairs = [(str(op.doc_id), op.source) for _, op in index_ops]
    w.mappings  # noqa: B018 - resolves model fields whose model was created since (new parser)
    parsed = w.parser.parse(pairs)
    # Dynamic mappings come only from documents that passed validation; then those documents are
    # parsed again so their doc values follow the new mapping (a later document of the batch that
    # conflicts with a type introduced earlier is rejected there).
    accepted = [j for j, p in enumerate(parsed) if not isinstance(p, ValidationError)]
    rejected = w._apply_dynamic_mappings([index_ops[j][1] for j in accepted])
    if rejected or w._mapping_changed:
        w._mapping_changed = False
        for pos, err in rejected.items():
            parsed[accepted[pos]] = err
        redo = [j for j in accepted if not isinstance(parsed[j], ValidationError)]
        for j, p in zip(redo, w.parser.parse([pairs[j] for j in redo])):
            parsed[j] = p
    return {i: p for (i, _), p in zip(index_ops, parsed)}


def apply_dynamic_mappings(w: "IndexWriter", ops: Sequence[IndexOp]) -> dict[int, ValidationError]:
    """Add OpenSearch's dynamic mappings for unmapped fields (persisted before anything is logged);
    returns the ops rejected by a ``strict`` mapping, by position."""
    new: dict[str, Any] = {}
    rejected: dict[int, ValidationError] = {}
    for j, op in enumerate(ops):
        if isinstance(op.source, dict):
            try:
                new = merge_properties(new, dynamic_properties(op.source, w.mappings))
            except ValidationError as e:
                rejected[j] = e
    if new:
        w.put_mapping({"properties": new})
    return rejected


def put_mapping(w: "IndexWriter", body: dict[str, Any]) -> None:
    """Add fields to the mapping (existing fields keep their definition), validate, persist."""
    with w._lock:
        current = dict(w.meta.get("mappings") or {})
        merged = dict(current)
        merged["properties"] = merge_properties(current.get("properties") or {}, body.get("properties") or {})
        if merged == current:
            return
        mappings = Mappings.parse(merged, index_knn=w.settings.knn)
        meta = dict(w.meta)
        meta["mappings"] = merged
        w.catalog.put_index_metadata(w.index_name, {k: v for k, v in meta.items() if k != "uuid"})
        w.meta = meta
        w.mappings = mappings
        w.parser = DocumentParser(w.mappings, w._derived_paths())
        w._mapping_changed = True
