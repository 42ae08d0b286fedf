"""Level 3: the derived-``_source`` round trip of a segment (:class:`RoundTripChecks`).

Every live root document's derived ``_source`` (vectors re-injected from the vector values) goes back
through the :class:`~segstore.mapping.document_parser.DocumentParser`: the re-masked source must equal the
stored ``_source`` and each re-parsed vector the stored vector, bit for bit (see :func:`_same_vector` for
the one tolerated difference).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from segstore.errors import SegstoreError
from segstore.index.check.base import CheckBase
from segstore.index.check.status import Problem, SegmentStatus, problem_from_error

__all__ = ["RoundTripChecks"]


class RoundTripChecks(CheckBase):
    """``_check_round_trip`` of one open segment."""

    def _check_round_trip(self, st: SegmentStatus, leaf: Any) -> None:
        """Derived ``_source`` -> document parser -> masked source and vectors equal to what is stored."""
        from segstore.derived_source.attributes import derived_paths
        from segstore.errors import ValidationError
        from segstore.mapping.document_parser import DocumentParser

        if self._mappings is None:
            return
        root, nested = derived_paths(st.attributes)
        paths = [p for p in (*root, *nested) if p]
        parser = DocumentParser(self._mappings, paths)
        live = leaf.live
        docs = [int(d) for d in (leaf.roots if leaf.roots is not None else range(st.max_doc))
                if live is None or live[int(d)]]
        if self.round_trip_limit is not None:
            docs = docs[: self.round_trip_limit]
        fdt = f"{st.name}.fdt"
        n_bad = checked = 0
        for start in range(0, len(docs), 256):
            batch = docs[start:start + 256]
            pairs, stored, metas = [], [], []
            for doc in batch:
                rec = leaf.stored_document(doc)
                raw = rec.get("_source")
                if raw is None:
                    continue
                try:
                    derived = leaf.source(doc, rec)
                except SegstoreError as e:
                    self._add(st.problems, problem_from_error(e, "derived_source", segment=st.name, level=3))
                    n_bad += 1
                    continue
                pairs.append((str(rec.get("_id")), derived))
                stored.append(msgpack.unpackb(raw, raw=False, strict_map_key=False))
                metas.append(doc)
            for (doc_id, _src), want, doc, parsed in zip(pairs, stored, metas, parser.parse(pairs)):
                checked += 1
                if isinstance(parsed, ValidationError):
                    self._add(st.problems, Problem("derived_source", f"derived _source does not parse: {parsed}",
                                                   type(parsed).__name__, st.name, fdt, doc=doc, doc_id=doc_id,
                                                   level=3))
                    n_bad += 1
                    continue
                if parsed.stored_source != want:
                    self._add(st.problems, Problem("derived_source", "re-masked derived _source differs from the "
                                                   "stored _source", segment=st.name, file=fdt, doc=doc,
                                                   doc_id=doc_id, expected=want, actual=parsed.stored_source,
                                                   level=3))
                    n_bad += 1
                    continue
                for path in root:
                    values = leaf.vector_values(path)
                    if values is None or not path:
                        continue
                    o = int(values.doc_to_ord(np.array([doc]))[0])
                    got = parsed.vectors.get(path)
                    want_v = None if o < 0 else values.vectors[o]
                    if not _same_vector(got, want_v, leaf.field_infos.get(path)):
                        self._add(st.problems, Problem("derived_source", "vector re-parsed from the derived _source "
                                                       "differs from the stored vector", segment=st.name,
                                                       file=f"{st.name}.vec", field=path, doc=doc, doc_id=doc_id,
                                                       level=3))
                        n_bad += 1
                        break
            if n_bad and self.fail_fast:
                break
        st.tests["derived source"] = f"OK [{checked} docs round-tripped]" if not n_bad else f"FAILED [{n_bad}]"


def _same_vector(got: Any, want: Any, fi: Any) -> bool:
    """Bit-exact, except for fields the parser L2-normalises (faiss ``cosinesimil``): float32 normalisation
    is not idempotent, so re-parsing a derived unit vector may move components by an ulp (see the report)."""
    if got is None or want is None:
        return got is None and want is None
    a, b = np.asarray(got), np.asarray(want)
    if a.tobytes() == b.tobytes():
        return True
    normalised = (fi is not None and fi.vector_data_type == "float" and fi.vector_space_type == "cosinesimil"
                  and fi.attributes.get("engine", "faiss") == "faiss")
    return bool(normalised and a.shape == b.shape and np.max(np.abs(a.astype(np.float64) - b)) <= 4.8e-7)
