"""Write operations and their results (the units the translog logs and the writer applies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import numpy as np

__all__ = ["PRIMARY_TERM", "BufferedDoc", "DeleteOp", "GetResult", "IndexOp", "OpResult"]

PRIMARY_TERM = 1  # one shard, one primary: the term never changes


@dataclass
class IndexOp:
    """Index ``source`` under ``doc_id``. ``op_type`` "create" fails if the id exists. ``routing`` is stored
    with the document and returned as ``_routing`` (segstore has one shard, so it never moves the document)."""

    doc_id: str
    source: Any
    op_type: str = "index"
    if_seq_no: int | None = None
    if_primary_term: int | None = None
    routing: str | None = None
    # External versioning: the document takes ``version``, which must be higher than the current one
    # (``external``) or at least as high (``external_gte``). ``internal``: the writer counts versions.
    version: int | None = None
    version_type: str = "internal"


@dataclass
class DeleteOp:
    doc_id: str
    if_seq_no: int | None = None
    if_primary_term: int | None = None
    version: int | None = None
    version_type: str = "internal"


@dataclass
class OpResult:
    """Outcome of one operation: ``result`` is created / updated / deleted / not_found."""

    doc_id: str
    result: str
    version: int
    seq_no: int
    primary_term: int = PRIMARY_TERM

    @property
    def status(self) -> int:
        return {"created": 201, "not_found": 404}.get(self.result, 200)


@dataclass
class GetResult:
    doc_id: str
    version: int
    seq_no: int
    source: dict[str, Any] | None
    primary_term: int = PRIMARY_TERM
    routing: str | None = None

    @classmethod
    def from_record(cls, doc_id: str, record: dict[str, Any], source: dict[str, Any] | None) -> "GetResult":
        """The GET view of a stored record (``_routing`` is optional: older records have none)."""
        return cls(doc_id, int(record["_version"]), int(record["_seq_no"]), source, routing=record.get("_routing"))


class BufferedDoc(NamedTuple):
    """A document accepted by the writer and not yet flushed into a segment.

    A named tuple, not a dataclass: one is made per indexed document on the bulk path, and a tuple costs
    about half as much to create."""

    doc_id: str
    seq_no: int
    version: int
    stored_source: dict[str, Any] | None
    vectors: dict[str, np.ndarray]
    doc_values: dict[str, list[Any]]
    # Nested child documents in block order: (nested path, vectors of the fields in that scope).
    children: tuple[tuple[str, dict[str, np.ndarray]], ...] = ()
    routing: str | None = None

    def stored_record(self) -> dict[str, Any]:
        """The stored-fields record: ``_source`` is kept as msgpack bytes so merges copy it undecoded.
        ``_routing`` is present only when the document was indexed with a routing value: records are
        msgpack maps, so segments written before it existed read the same (no ``_routing``)."""
        rec: dict[str, Any] = {"_id": self.doc_id, "_seq_no": self.seq_no, "_version": self.version}
        if self.routing is not None:
            rec["_routing"] = self.routing
        if self.stored_source is not None:
            rec["_source"] = msgpack.packb(self.stored_source, use_bin_type=True)
        return rec

    def to_translog(self) -> dict[str, Any]:
        children = [[path, {p: v.tobytes() for p, v in vecs.items()}] for path, vecs in self.children]
        op: dict[str, Any] = {"op": "index", "seq_no": self.seq_no, "version": self.version, "id": self.doc_id,
                              "source": self.stored_source, "vectors": {p: v.tobytes() for p, v in self.vectors.items()},
                              "dv": self.doc_values, "children": children}
        if self.routing is not None:  # optional key: translogs written before routing existed still replay
            op["routing"] = self.routing
        return op
