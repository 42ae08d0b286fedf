"""Resolves write operations against the current document versions, and applies them.

Resolution (under the writer lock, before anything is logged) decides each operation's outcome: version
conflicts are rejected here, accepted operations get their sequence number and version. Applying happens
only after the translog has the operations. Replay of the translog goes through the same ``apply_*``
methods, so a replayed operation has exactly the effect the original had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from segstore.errors import ValidationError, VersionConflictError
from segstore.index.operations import (
    PRIMARY_TERM,
    BufferedDoc,
    DeleteOp,
    IndexOp,
    OpResult,
)
from segstore.index.version_map import VersionValue
from segstore.mapping.document_parser import ParsedDocument

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["OpResolver"]

_DTYPES = {"float": np.float32, "byte": np.int8, "binary": np.uint8}


def _seq_no_conflict(doc_id: str, cur: VersionValue | None, if_seq_no: int | None,
                     if_primary_term: int | None) -> VersionConflictError | None:
    if if_seq_no is None and if_primary_term is None:
        return None
    term = PRIMARY_TERM if if_primary_term is None else if_primary_term
    if cur is None or cur.deleted:
        return VersionConflictError(
            f"[{doc_id}]: version conflict, required seqNo [{if_seq_no}], primary term [{term}]. "
            "but no document was found")
    if cur.seq_no != if_seq_no or term != PRIMARY_TERM:
        return VersionConflictError(
            f"[{doc_id}]: version conflict, required seqNo [{if_seq_no}], primary term [{term}]. current "
            f"document has seqNo [{cur.seq_no}] and primary term [{PRIMARY_TERM}]")
    return None


def _external_conflict(doc_id: str, cur: VersionValue | None, version: int | None,
                       version_type: str) -> VersionConflictError | None:
    """``VersionType.EXTERNAL[_GTE]#isVersionConflictForWrites``: the current version (a delete's tombstone
    counts while it is kept) must be below the given one (``external``) or not above it (``external_gte``)."""
    if version_type == "internal" or cur is None:
        return None
    assert version is not None
    if version_type == "external" and cur.version >= version:
        return VersionConflictError(f"[{doc_id}]: version conflict, current version [{cur.version}] is higher or "
                                    f"equal to the one provided [{version}]")
    if version_type == "external_gte" and cur.version > version:
        return VersionConflictError(f"[{doc_id}]: version conflict, current version [{cur.version}] is higher than "
                                    f"the one provided [{version}]")
    return None


def _next_version(cur: VersionValue | None, version: int | None, version_type: str) -> int:
    """Internal versioning counts from 1; external versioning takes the request's version."""
    if version_type != "internal":
        assert version is not None
        return version
    return cur.version + 1 if cur is not None else 1


class OpResolver:
    """Version bookkeeping of one writer (its methods run under the writer's lock)."""

    def __init__(self, writer: "IndexWriter") -> None:
        self.w = writer

    def current(self, doc_id: str) -> VersionValue | None:
        vv = self.w._versions.get(doc_id)
        if vv is not None:
            return vv
        pk = self.w.catalog.pk_get(self.w.uuid, doc_id)
        return VersionValue.from_pk(pk) if pk is not None else None

    def resolve(
        self, ops: Sequence[IndexOp | DeleteOp], parsed: dict[int, ParsedDocument | ValidationError]
    ) -> tuple[list[OpResult | ValidationError], list[dict[str, Any]], list[Callable[[], None]]]:
        w = self.w
        unknown = list(dict.fromkeys(str(op.doc_id) for op in ops if str(op.doc_id) not in w._versions))
        committed = dict(zip(unknown, w.catalog.pk_get_many(w.uuid, unknown))) if unknown else {}
        local: dict[str, VersionValue | None] = {}
        results: list[OpResult | ValidationError] = []
        log_ops: list[dict[str, Any]] = []
        apply: list[Callable[[], None]] = []
        seq_no = w._max_seq_no
        for i, op in enumerate(ops):
            doc_id = str(op.doc_id)
            if doc_id in local:
                cur = local[doc_id]
            elif doc_id in w._versions:
                cur = w._versions[doc_id]
            else:
                pk = committed.get(doc_id)
                cur = VersionValue.from_pk(pk) if pk is not None else None
            exists = cur is not None and not cur.deleted
            conflict = _seq_no_conflict(doc_id, cur, op.if_seq_no, op.if_primary_term) \
                or _external_conflict(doc_id, cur, op.version, op.version_type)
            if isinstance(op, IndexOp):
                p = parsed[i]
                if isinstance(p, ValidationError):
                    results.append(p)
                    continue
                if op.op_type == "create" and exists:
                    assert cur is not None
                    conflict = VersionConflictError(
                        f"[{doc_id}]: version conflict, document already exists (current version [{cur.version}])")
                if conflict is not None:
                    results.append(conflict)
                    continue
                seq_no += 1
                version = _next_version(cur, op.version, op.version_type)
                doc = BufferedDoc(doc_id, seq_no, version, p.stored_source, p.vectors, p.doc_values,
                                  tuple((c.path, c.vectors) for c in p.children), op.routing)
                log_ops.append(doc.to_translog())
                results.append(OpResult(doc_id, "updated" if exists else "created", version, seq_no))
                apply.append(lambda doc=doc, cur=cur: self.apply_index(doc, cur))
                local[doc_id] = VersionValue(version, seq_no, None)
            else:
                if conflict is not None:
                    results.append(conflict)
                    continue
                seq_no += 1
                version = _next_version(cur, op.version, op.version_type)
                log_ops.append({"op": "delete", "seq_no": seq_no, "version": version, "id": doc_id})
                results.append(OpResult(doc_id, "deleted" if exists else "not_found", version, seq_no))
                apply.append(lambda d=doc_id, c=cur, v=version, s=seq_no: self.apply_delete(d, c, v, s))
                local[doc_id] = VersionValue.tombstone(version, seq_no)
        return results, log_ops, apply

    # -- effects (also used by translog replay)

    def _remove(self, doc_id: str, cur: VersionValue) -> None:
        if cur.location is None:
            popped = self.w._buffer.pop(doc_id, None)
            if popped is not None:
                self.w._graphs.removed(popped)
        else:
            seg, doc = cur.location
            # a document is its whole block: nested children first, the root last
            start = self.w._block_start(seg, doc)
            self.w._pending_deletes.setdefault(seg, []).extend(range(start, doc + 1))

    def apply_index(self, doc: BufferedDoc, cur: VersionValue | None) -> None:
        w = self.w
        if cur is not None and not cur.deleted:
            self._remove(doc.doc_id, cur)
        w._buffer[doc.doc_id] = doc
        w._graphs.buffered(doc)
        w._versions[doc.doc_id] = VersionValue(doc.version, doc.seq_no, None)
        w._max_seq_no = max(w._max_seq_no, doc.seq_no)

    def apply_delete(self, doc_id: str, cur: VersionValue | None, version: int, seq_no: int) -> None:
        w = self.w
        if cur is not None and not cur.deleted:
            self._remove(doc_id, cur)
        w._versions[doc_id] = VersionValue.tombstone(version, seq_no)
        w._max_seq_no = max(w._max_seq_no, seq_no)

    def _vectors(self, logged: dict[str, bytes]) -> dict[str, np.ndarray]:
        out = {}
        for path, raw in logged.items():
            fm = self.w.mappings.vector_fields[path]
            out[path] = np.frombuffer(raw, dtype=_DTYPES[fm.data_type]).copy()
        return out

    def replay(self, op: dict[str, Any]) -> None:
        """Re-apply one translog operation. Vectors come from the logged canonical bytes, never from the
        (possibly masked) logged source, so a mask is never indexed as data."""
        doc_id = op["id"]
        cur = self.current(doc_id)
        if op["op"] == "index":
            vectors = self._vectors(op.get("vectors") or {})
            children = tuple((path, self._vectors(vecs)) for path, vecs in (op.get("children") or []))
            self.apply_index(BufferedDoc(doc_id, op["seq_no"], op["version"], op.get("source"), vectors,
                                         op.get("dv") or {}, children, op.get("routing")), cur)
        elif op["op"] == "delete":
            self.apply_delete(doc_id, cur, op["version"], op["seq_no"])
        else:
            raise ValueError(f"unknown translog operation [{op['op']}]")
