"""Levels 1 and 2 of one segment (:class:`SegmentChecks`), after Lucene's ``testSegmentInfo``,
``testLiveDocs``, ``testStoredFields`` and ``testDocValues``.

Level 1: the segment info (``.si``) reads with the commit's segment id and ``max_doc``, and every file it
lists (plus the commit's live-docs file ``_<seg>_<del_gen>.liv``) passes :func:`inspect_file`; the exact
length of a big data file is taken from the metadata file that records it::

    .vem (SegStore1VectorValuesMeta): msgpack map with "vec_length" -> length of .vec
    .dvm (SegStore1DocValuesMeta):    msgpack map with "dvd_length" -> length of .dvd
    .fdx (SegStore1StoredFieldsIndex): NumDocs:u32, NumBlocks:u32, FdtLength:u64, ... -> length of .fdt

Level 2 opens the segment: live docs against the commit's delete count, every stored record decodes (roots
carry ``_id``/``_version``/``_seq_no``, nested children ``_nested_path``), ``_root`` doc values; then the
vector fields (:mod:`~segstore.index.check.fields`) and at level 3 the derived-source round trip
(:mod:`~segstore.index.check.round_trip`).
"""

from __future__ import annotations

import re
import struct
from typing import Any

import msgpack
import numpy as np

from segstore.codec.framing import FramedInput
from segstore.errors import CorruptIndexError, SegstoreError
from segstore.index.check.base import _FailFast
from segstore.index.check.fields import VectorFieldChecks
from segstore.index.check.files import inspect_file
from segstore.index.check.formats import FORMAT_VERSIONS
from segstore.index.check.round_trip import RoundTripChecks
from segstore.index.check.status import Problem, SegmentStatus, problem_from_error
from segstore.index.file_names import live_docs_file_name, parse_segment_name
from segstore.index.segment_info import SegmentCommitInfo, SegmentInfo

__all__ = ["SegmentChecks", "sci_liv"]


class SegmentChecks(VectorFieldChecks, RoundTripChecks):
    """``_check_segment``: everything about one segment of the commit."""

    def _segment_files(self, st: SegmentStatus) -> list[str]:
        assert self.directory is not None
        out = []
        for f in self.directory.list_all():
            try:
                if parse_segment_name(f) == st.name:
                    out.append(f)
            except ValueError:
                continue
        return out

    def _check_segment(self, st: SegmentStatus, entry: dict[str, Any], record: dict[str, Any]) -> None:
        from segstore.index.segment_reader import read_segment_info

        assert self.directory is not None
        seg_id = bytes(entry["id"])
        info: SegmentInfo | None = None
        try:
            info = read_segment_info(self.directory, st.name, seg_id, st.codec)
        except (SegstoreError, FileNotFoundError, KeyError, OSError) as e:
            p = problem_from_error(e, "segment_info", segment=st.name)
            if isinstance(e, FileNotFoundError) or (isinstance(e, OSError) and not isinstance(e, SegstoreError)):
                p = Problem("segment_info", f"file is missing: {st.name}.si", "MissingFileError", st.name,
                            f"{st.name}.si")
            elif p.actual is None and p.error == "TruncatedFileError":
                p.actual = f"length={self.directory.file_length(f'{st.name}.si')}"
            self._add(st.problems, p)
            st.tests["segment info"] = "FAILED"
        if info is not None:
            st.files = list(info.files)
            st.diagnostics = dict(info.diagnostics)
            st.attributes = dict(info.attributes)
            if info.max_doc != st.max_doc:
                self._add(st.problems, Problem("segment_info", "max_doc in the commit differs from the segment info",
                                               segment=st.name, file=f"{st.name}.si", expected=st.max_doc,
                                               actual=info.max_doc))
            else:
                st.tests["segment info"] = "OK"
        else:
            st.files = sorted(f for f in self._segment_files(st) if not f.endswith(".liv"))
        sci = SegmentCommitInfo(info, st.del_gen, st.del_count) if info is not None else None
        liv = live_docs_file_name(st.name, st.del_gen) if st.del_gen else None
        if liv and liv not in st.files:
            st.files.append(liv)
        # level 1: every file's framing and CRC
        lengths = self._expected_lengths(st, seg_id) if info is not None else {}
        bad = 0
        for f in st.files:
            if f == f"{st.name}.si":
                if info is not None:
                    st.size_bytes += self.directory.file_length(f)
                continue  # fully verified (or reported) by read_segment_info
            rep = inspect_file(self.directory, f, segment=st.name, expected_id=seg_id,
                               expected_length=lengths.get(f))
            st.size_bytes += rep.size or 0
            if rep.problem is not None:
                bad += 1
                self._add(st.problems, rep.problem)
        st.tests["checksums"] = f"OK [{len(st.files)} files]" if not bad else f"FAILED [{bad} of {len(st.files)} files]"
        if bad and info is not None:
            self._name_fields(st, info)
        if self.level < 2 or sci is None:
            return
        non_rebuildable = [p for p in st.problems if not p.rebuildable]
        if non_rebuildable:
            st.tests["open reader"] = "skipped (files damaged)"
            return
        if st.needs("live_docs"):  # check the rest with every doc live; the live docs are reported already
            st.tests["live docs"] = "FAILED (rebuildable from the primary-key map)"
            self._check_segment_logic(st, SegmentCommitInfo(sci.info, 0, 0), record, live_docs=False)
            st.live_ids = None
            return
        self._check_segment_logic(st, sci, record)

    def _name_fields(self, st: SegmentStatus, info: SegmentInfo) -> None:
        """Give per-field file problems (``_3_f1.hnsw``) their field name, when the field infos read."""
        from segstore.codec.registry import codec_for_name

        assert self.directory is not None
        try:
            fis = codec_for_name(info.codec).field_infos_format.read(self.directory, info)
        except Exception:  # noqa: BLE001 - a damaged .fnm is reported on its own
            return
        for p in st.problems:
            m = re.search(r"_f(\d+)\.[a-z]+$", p.file or "")
            if m and p.field is None:
                fi = fis.by_number(int(m.group(1)))
                p.field = fi.name if fi is not None else None

    def _expected_lengths(self, st: SegmentStatus, seg_id: bytes) -> dict[str, int]:
        """Exact lengths that small metadata files record for big data files (.vec, .fdt, .dvd)."""
        assert self.directory is not None
        out: dict[str, int] = {}
        for meta, data, key, fmt in ((f"{st.name}.vem", f"{st.name}.vec", "vec_length", "SegStore1VectorValuesMeta"),
                                     (f"{st.name}.dvm", f"{st.name}.dvd", "dvd_length", "SegStore1DocValuesMeta")):
            if meta not in st.files:
                continue
            try:
                vmin, vmax = FORMAT_VERSIONS.get(fmt, (1, 1))
                with FramedInput(self.directory, meta, fmt, vmin, vmax, seg_id, verify_checksum=True) as inp:
                    doc = msgpack.unpackb(inp.payload, raw=False, strict_map_key=False)
                if isinstance(doc, dict) and isinstance(doc.get(key), int):
                    out[data] = int(doc[key])
            except Exception:  # noqa: BLE001 - the metadata file reports its own damage
                pass
        fdx = f"{st.name}.fdx"
        if fdx in st.files:
            try:
                vmin, vmax = FORMAT_VERSIONS.get("SegStore1StoredFieldsIndex", (1, 1))
                with FramedInput(self.directory, fdx, "SegStore1StoredFieldsIndex", vmin, vmax, seg_id,
                                 verify_checksum=True) as inp:
                    _n, _b, fdt_length = struct.unpack_from(">IIQ", inp.payload, 0)
                out[f"{st.name}.fdt"] = int(fdt_length)
            except Exception:  # noqa: BLE001 - the .fdx reports its own damage
                pass
        return out

    # -- level 2 and 3 of one segment

    def _check_segment_logic(self, st: SegmentStatus, sci: SegmentCommitInfo, record: dict[str, Any], *,
                             live_docs: bool = True) -> None:
        from segstore.index.segment_reader import SegmentReader

        assert self.directory is not None
        try:
            leaf = SegmentReader(self.directory, sci)
        except (SegstoreError, OSError, ValueError, KeyError) as e:
            st.open_reader_passed = False
            st.tests["open reader"] = "FAILED"
            self._add(st.problems, problem_from_error(e, segment=st.name, level=2))
            return
        st.open_reader_passed = True
        st.tests["open reader"] = "OK"
        try:
            if live_docs:
                self._check_live_docs(st, leaf)
            ids = self._check_stored(st, leaf, record, dup_check=live_docs)
            self._check_fields(st, leaf)
            self._check_doc_values(st, leaf)
            st.live_ids = ids
            if self.level >= 3:
                self._check_round_trip(st, leaf)
        finally:
            leaf.dec_ref()

    def _check_live_docs(self, st: SegmentStatus, leaf: Any) -> None:
        live = leaf.live
        if live is None:
            if st.del_count:
                self._add(st.problems, Problem("live_docs", "the commit counts deletes but names no live docs file",
                                               segment=st.name, expected=0, actual=st.del_count, level=2))
                return
            st.tests["live docs"] = "OK [no deletions]"
            return
        deleted = int(live.shape[0] - np.count_nonzero(live))
        if live.shape[0] != st.max_doc or deleted != st.del_count:
            self._add(st.problems, Problem("live_docs", "live docs disagree with the commit's delete count",
                                           segment=st.name, file=sci_liv(st), expected=st.del_count, actual=deleted,
                                           level=2))
            st.tests["live docs"] = "FAILED"
            return
        st.tests["live docs"] = f"OK [{deleted} deleted docs]"

    def _check_stored(self, st: SegmentStatus, leaf: Any, record: dict[str, Any], *,
                      dup_check: bool = True) -> dict[str, tuple[int, int, int]]:
        """Every stored record decodes; returns the live roots' ``id -> (doc, version, seq_no)``."""
        fdt = f"{st.name}.fdt"
        roots = leaf.roots
        root_set = None if roots is None else set(roots.tolist())
        max_seq = int(record.get("max_seq_no", -1))
        live = leaf.live
        ids: dict[str, tuple[int, int, int]] = {}
        n_bad = 0
        try:
            for doc, raw in enumerate(leaf.core.stored.raw_documents(range(st.max_doc))):
                head = msgpack.unpackb(raw, raw=False, strict_map_key=False)
                is_root = root_set is None or doc in root_set
                if not isinstance(head, dict):
                    raise CorruptIndexError(f"doc {doc}: stored record is not a map", fdt)
                if not is_root:
                    if "_nested_path" not in head:
                        self._add(st.problems, Problem("stored", "nested child record has no _nested_path",
                                                       segment=st.name, file=fdt, doc=doc, level=2))
                        n_bad += 1
                    continue
                doc_id, version, seq_no = head.get("_id"), head.get("_version"), head.get("_seq_no")
                if not isinstance(doc_id, str) or not isinstance(version, int) or not isinstance(seq_no, int):
                    self._add(st.problems, Problem("stored", "root record lacks _id/_version/_seq_no",
                                                   segment=st.name, file=fdt, doc=doc, level=2,
                                                   actual={k: head.get(k) for k in ("_id", "_version", "_seq_no")}))
                    n_bad += 1
                    continue
                if seq_no > max_seq:
                    self._add(st.problems, Problem("stored", "seq_no above the commit's max_seq_no", segment=st.name,
                                                   file=fdt, doc=doc, doc_id=doc_id, expected=f"<= {max_seq}",
                                                   actual=seq_no, level=2))
                if live is None or live[doc]:
                    if doc_id in ids and dup_check:
                        self._add(st.problems, Problem("stored", f"id [{doc_id}] is live twice in the segment",
                                                       segment=st.name, file=fdt, doc=doc, doc_id=doc_id,
                                                       expected=ids[doc_id][0], actual=doc, level=2))
                    ids[doc_id] = (doc, version, seq_no)
        except _FailFast:
            raise
        except (SegstoreError, ValueError, msgpack.UnpackException) as e:
            self._add(st.problems, problem_from_error(e, "stored", segment=st.name, level=2))
            st.tests["stored fields"] = "FAILED"
            return ids
        st.tests["stored fields"] = (f"OK [{st.max_doc} docs, {len(ids)} live ids]" if not n_bad
                                     else f"FAILED [{n_bad} bad records]")
        return ids

    def _check_doc_values(self, st: SegmentStatus, leaf: Any) -> None:
        roots = leaf.roots
        if roots is None:
            st.tests["doc values"] = f"OK [{len(leaf.core.doc_values.fields())} fields]"
            return
        r = np.asarray(roots, dtype=np.int64)
        ok = r.size > 0 and bool(np.all(r[1:] > r[:-1])) and r[0] >= 0 and r[-1] == st.max_doc - 1
        if not ok:
            self._add(st.problems, Problem("doc_values", "_root doc values are not strictly increasing and ending "
                                           "at max_doc - 1", segment=st.name, file=f"{st.name}.dvd",
                                           expected=st.max_doc - 1, actual=int(r[-1]) if r.size else None, level=2))
            st.tests["doc values"] = "FAILED"
            return
        st.tests["doc values"] = f"OK [{len(leaf.core.doc_values.fields())} fields, {r.size} roots]"


def sci_liv(st: SegmentStatus) -> str | None:
    return live_docs_file_name(st.name, st.del_gen) if st.del_gen else None
