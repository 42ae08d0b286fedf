"""Checks of the catalog's view of the index (:class:`CatalogChecks`): every stored commit record decodes,
every primary-key entry decodes (level 1), the commit's ``segment_counter`` is above every segment name,
and the primary-key map is exactly the live root documents of the segments (level 2).

A primary-key entry (LMDB database ``pk``, key ``<index uuid:16 bytes><doc id:utf-8>``) holds the
value ``Crc:u32, msgpack [segment, doc, version, seq_no]`` (framing in :mod:`segstore.index.catalog_codec`).
"""

from __future__ import annotations

from typing import Any

from segstore.errors import CorruptIndexError, SegstoreError
from segstore.index.catalog import Catalog
from segstore.index.catalog_codec import decode_value, key_repr
from segstore.index.catalog_env import iter_prefix
from segstore.index.check.base import CheckBase
from segstore.index.check.status import Problem, Status, problem_from_error
from segstore.index.file_names import from_base36

__all__ = ["CatalogChecks", "read_pk_map"]


def read_pk_map(catalog: Catalog, uuid: bytes) -> tuple[dict[str, tuple[Any, ...]], dict[str, SegstoreError]]:
    """Every primary-key entry of the index decoded on its own: ``(values by id, errors by id)`` (unlike
    ``Catalog.pk_items``, one damaged entry does not hide the others)."""

    def raw(txn: Any, dbs: Any) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in iter_prefix(txn, dbs["pk"], uuid)]

    items = catalog._read(raw)
    values: dict[str, tuple[Any, ...]] = {}
    bad: dict[str, SegstoreError] = {}
    for k, v in items:
        doc_id = k[16:].decode("utf-8", "replace")
        try:
            value = decode_value(v, key_repr("pk", k))
            if not (isinstance(value, list) and len(value) == 4):
                raise CorruptIndexError(f"pk value must be [segment, doc, version, seq_no], got {value!r}",
                                        key_repr("pk", k))
            values[doc_id] = tuple(value)
        except SegstoreError as e:
            bad[doc_id] = e
    return values, bad


class CatalogChecks(CheckBase):
    """``_check_catalog`` (level 1), ``_check_commit_record`` and ``_check_pk`` (level 2), and
    ``_lost_ids``: what exorcising each corrupt segment would lose."""

    def _check_catalog(self, status: Status) -> None:
        loc = self.location
        uuid = loc.uuid
        for gen in self.catalog.list_commits(uuid):
            try:
                self.catalog.get_commit(uuid, gen)
            except SegstoreError as e:
                sev = "error" if gen == status.generation else "warning"
                p = problem_from_error(e, "commit")
                p.severity = sev
                self._add(status.problems, p)

        self._pk_values, bad = read_pk_map(self.catalog, uuid)
        status.pk_entries = len(self._pk_values) + len(bad)
        for doc_id, err in bad.items():
            p = problem_from_error(err, "pk")
            p.doc_id = doc_id
            self._add(status.problems, p)

    # -- index level

    def _check_commit_record(self, status: Status, record: dict[str, Any]) -> None:
        counter = int(record.get("segment_counter", 0))
        where = f"catalog:commits/{self.location.uuid.hex()}/{status.generation}"
        for st in status.segments:
            try:
                n = from_base36(st.name[1:])
            except ValueError:
                continue
            if n >= counter:
                self._add(status.problems, Problem("commit", "segment_counter is not above every segment name "
                                                   "(the next flush would reuse a name)", file=where,
                                                   segment=st.name, expected=f"> {n}", actual=counter, level=2))

    def _check_pk(self, status: Status) -> None:
        """The catalog's primary-key map must be exactly the live roots of the segments."""
        expected: dict[str, tuple[str, int, int, int]] = {}
        complete = True
        for st in status.segments:
            ids = st.live_ids
            if ids is None:
                complete = False
                continue
            for doc_id, (doc, version, seq_no) in ids.items():
                prev = expected.get(doc_id)
                if prev is not None:
                    self._add(status.problems, Problem("pk", f"id [{doc_id}] is live in two segments",
                                                       doc_id=doc_id, segment=st.name, expected=list(prev[:2]),
                                                       actual=[st.name, doc], level=2))
                    continue
                expected[doc_id] = (st.name, doc, version, seq_no)
        actual = getattr(self, "_pk_values", {})  # entries that decoded (the others were reported at level 1)
        seg_ok = {st.name for st in status.segments if st.live_ids is not None}
        where = f"catalog:pk/{self.location.uuid.hex()}"
        mismatches = 0
        for doc_id, value in actual.items():
            want = expected.get(doc_id)
            if want is None:
                if not complete and value and value[0] not in seg_ok:
                    continue  # its segment could not be read: reported there
                self._add(status.problems, Problem("pk", "primary-key entry points to no live document",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=None,
                                                   actual=list(value), level=2))
                mismatches += 1
            elif [str(want[0]), int(want[1]), int(want[2]), int(want[3])] != [str(value[0]), int(value[1]),
                                                                               int(value[2]), int(value[3])]:
                self._add(status.problems, Problem("pk", "primary-key entry disagrees with the segments",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=list(want),
                                                   actual=list(value), level=2))
                mismatches += 1
        for doc_id, want in expected.items():
            if doc_id not in actual:
                self._add(status.problems, Problem("pk", "live document has no primary-key entry",
                                                   file=f"{where}/{doc_id}", doc_id=doc_id, expected=list(want),
                                                   actual=None, level=2))
                mismatches += 1

    def _lost_ids(self, status: Status) -> None:
        """Ids that exorcising each corrupt segment would lose, from the catalog's primary-key map."""
        bad = {s.name: s for s in status.segments if s.status == "corrupt"}
        if not bad:
            return
        for doc_id, value in getattr(self, "_pk_values", {}).items():
            if value and value[0] in bad:
                bad[value[0]].ids_to_lose.append(doc_id)
        for s in bad.values():
            s.ids_to_lose.sort()
