"""The repairs of ``segstore repair`` that rewrite the commit's segments or the primary-key map. Each
writes at most one new catalog commit and deletes the files it wrote if that commit does not happen.

``--rebuild-graphs`` (no data loss). Segments are write-once and every file header carries the segment id,
so a graph file cannot be replaced in place. Each segment whose only damage is in graph (``.hnsw``/``.ivf``)
or quantization-state (``.qst``) files is rewritten through ``SegmentMerger`` as a one-input merge into a
new segment: stored fields and canonical vectors are copied (after their full CRC), graphs are rebuilt and
quantization states retrained from the vectors, deleted documents are dropped. Then one catalog commit
swaps the old segment for the new one at the same position and moves every id of the primary-key map to its
new location. A crash before that commit leaves only unreferenced files (removed by the next writer open).

``--exorcise`` (loses data). Writes a new commit without the corrupt segments and removes their ids from the
primary-key map; the report lists every lost id (from the primary-key map, which stays readable whatever
happened to the segment files). Their files are left in place, like Lucene's ``-exorcise``; the next writer
open deletes them.

``--rebuild-live-docs`` (no data loss). A damaged ``.liv`` file is rebuilt from the catalog's primary-key
map, which is committed in the same transaction as the segment list and so names exactly the live documents
of each segment; the rebuilt delete count must equal the commit's, else the command refuses. The new bitset
is written as the next live-docs generation (files are write-once) and published by a new commit.

``--rebuild-pk`` (no data loss). Rewrites the catalog's primary-key map from the live documents of the
segments (the check level is raised to 2).
"""

from __future__ import annotations

import time
from typing import Any

from segstore_tools.progress import Progress

__all__ = ["rebuild_and_exorcise", "rebuild_live_docs", "rebuild_pk"]


def _reader_for_rebuild(directory: Any, sci: Any) -> Any:
    """A ``SegmentReader`` whose ``check_integrity`` (called by the merger before it copies anything) skips
    the graph and quantization files: those are the damaged ones, and they are rebuilt, never copied."""
    from segstore.index.segment_reader import SegmentReader

    class _RebuildReader(SegmentReader):
        def check_integrity(self) -> None:
            self.core.stored.check_integrity()
            self.core.vectors.check_integrity()
            self.core.doc_values.check_integrity()

    return _RebuildReader(directory, sci)


def rebuild_and_exorcise(catalog: Any, loc: Any, status: Any, *, exorcise: bool, rebuild: bool,
                         progress: Progress | None = None) -> dict[str, Any]:
    """Apply ``--exorcise`` and/or ``--rebuild-graphs`` in one new commit; returns what was done."""
    from segstore.codec.registry import default_codec
    from segstore.errors import SegstoreError
    from segstore.index.file_names import segment_name
    from segstore.index.index_files import IndexFiles
    from segstore.index.segment_merger import SegmentMerger
    from segstore.index.writer_recovery import load_commit_segments
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid)
    if record is None or int(record.get("generation", 0)) != status.generation:
        raise SegstoreError(f"index [{loc.name}] changed since it was checked (generation "
                            f"{None if record is None else record.get('generation')} != {status.generation})")
    bad = {s.name: s for s in status.bad_segments} if exorcise else {}
    rebuild_names = {s.name for s in status.rebuildable_segments
                     if s.needs("graph", "quantization") and not s.needs("live_docs")} if rebuild else set()
    if not bad and not rebuild_names:
        return {"commit_generation": None, "exorcised": [], "rebuilt": [], "lost_ids": [], "docs_lost": 0}
    directory = FSDirectory(loc.index_dir)
    settings, _mappings = IndexFiles.parse_metadata(catalog.get_index(loc.name) or {})
    threshold = max(1, settings.approximate_threshold)
    codec = default_codec()

    def build_graph(fi: Any, count: int) -> bool:
        return fi.attributes.get("knn") == "true" and count >= threshold

    counter = int(record.get("segment_counter", 0))
    entries: list[dict[str, Any]] = []
    pk_updates: dict[str, tuple[Any, ...] | None] = {}
    created: list[str] = []
    rebuilt: list[dict[str, Any]] = []
    lost_ids: list[str] = []
    docs_lost = 0
    try:
        for entry in record.get("segments") or []:
            name = entry["name"]
            if name in bad:
                lost_ids.extend(bad[name].ids_to_lose)
                docs_lost += int(entry["max_doc"]) - int(entry["del_count"])
                for doc_id in bad[name].ids_to_lose:
                    pk_updates[doc_id] = None
                continue
            if name not in rebuild_names:
                entries.append(dict(entry))
                continue
            t0 = time.monotonic()
            (sci,) = load_commit_segments(directory, {"segments": [entry]}, f"catalog:commits/{loc.name}")
            new_name = segment_name(counter)
            counter += 1
            reader = _reader_for_rebuild(directory, sci)
            try:
                result = SegmentMerger(codec, directory, [reader], new_name, build_graph).merge()
            finally:
                reader.dec_ref()
            info = result.commit_info.info
            created.extend(result.commit_info.files())
            moved = 0
            for doc, doc_id in enumerate(result.ids):
                if doc_id is not None:
                    pk_updates[doc_id] = (new_name, doc, int(result.versions[doc]), int(result.seq_nos[doc]))
                    moved += 1
            entries.append({"name": new_name, "id": info.segment_id, "codec": info.codec, "max_doc": info.max_doc,
                            "del_gen": 0, "del_count": 0})
            rebuilt.append({"segment": name, "new_segment": new_name, "docs": info.max_doc, "ids_moved": moved,
                            "deleted_docs_dropped": int(entry["del_count"]),
                            "seconds": round(time.monotonic() - t0, 3)})
            if progress is not None:
                progress.update(1, f"rebuilt {name} -> {new_name}")
        new_record = {k: v for k, v in record.items() if k != "generation"}
        new_record["segments"] = entries
        new_record["segment_counter"] = counter
        new_record["timestamp"] = time.time()
        user_data = dict(record.get("user_data") or {})
        user_data["segstore.repair"] = ",".join(
            (["exorcise:" + "+".join(sorted(bad))] if bad else [])
            + (["rebuild-graphs:" + "+".join(sorted(rebuild_names))] if rebuild_names else []))
        new_record["user_data"] = user_data
        gen = catalog.commit(loc.uuid, new_record, pk_updates)
    except BaseException:
        for f in created:  # nothing references them: the commit never happened
            try:
                directory.delete_file(f)
            except OSError:
                pass
        raise
    return {"commit_generation": gen, "exorcised": sorted(bad), "rebuilt": rebuilt, "lost_ids": sorted(lost_ids),
            "docs_lost": docs_lost}


def rebuild_live_docs(catalog: Any, loc: Any, status: Any) -> dict[str, Any]:
    """Apply ``--rebuild-live-docs``: a new live-docs generation for every segment whose live-docs file is
    damaged, from the primary-key map (committed in the same LMDB transaction as the segment list, so the ids
    it places in a segment are exactly that segment's live documents; nested children follow their root).
    Refuses a segment whose rebuilt delete count differs from the commit's."""
    import numpy as np

    from segstore.codec.registry import codec_for_name
    from segstore.errors import SegstoreError
    from segstore.index.check import read_pk_map
    from segstore.index.file_names import live_docs_file_name
    from segstore.index.segment_info import SegmentCommitInfo
    from segstore.index.segment_reader import SegmentReader, read_segment_info
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid)
    if record is None or int(record.get("generation", 0)) != status.generation:
        raise SegstoreError(f"index [{loc.name}] changed since it was checked")
    targets = {s.name for s in status.rebuildable_segments if s.needs("live_docs")}
    if not targets:
        return {"commit_generation": None, "segments": []}
    directory = FSDirectory(loc.index_dir)
    roots: dict[str, list[int]] = {n: [] for n in targets}
    values, bad = read_pk_map(catalog, loc.uuid)
    if bad:
        raise SegstoreError(f"the primary-key map has {len(bad)} damaged entr(ies) ({sorted(bad)[:5]}): rebuild it "
                            "(--rebuild-pk) or exorcise the segment")
    for value in values.values():
        if value and value[0] in roots:
            roots[value[0]].append(int(value[1]))
    entries, done, written = [], [], []
    try:
        for entry in record.get("segments") or []:
            name = entry["name"]
            if name not in targets:
                entries.append(dict(entry))
                continue
            info = read_segment_info(directory, name, bytes(entry["id"]), entry["codec"])
            reader = SegmentReader(directory, SegmentCommitInfo(info, 0, 0))
            try:
                live = np.zeros(info.max_doc, dtype=bool)
                for root in roots[name]:
                    if not 0 <= root < info.max_doc:
                        raise SegstoreError(f"primary-key map places a document at doc {root} of segment {name}, "
                                            f"which has max_doc {info.max_doc}")
                    live[reader.block_start(root):root + 1] = True
            finally:
                reader.dec_ref()
            del_count = int(info.max_doc - live.sum())
            if del_count != int(entry["del_count"]):
                raise SegstoreError(
                    f"cannot rebuild the live docs of segment {name}: the primary-key map leaves {del_count} deleted "
                    f"docs, the commit says {entry['del_count']}; use --exorcise")
            gen = 0
            if del_count:
                gen = int(entry["del_gen"]) + 1
                while directory.file_exists(live_docs_file_name(name, gen)):
                    gen += 1  # write-once names: skip leftovers
                codec_for_name(info.codec).live_docs_format.write(directory, info, live, del_count, gen)
                written.append(live_docs_file_name(name, gen))
            entries.append({**entry, "del_gen": gen})
            done.append({"segment": name, "live_docs": int(live.sum()), "deleted": del_count, "new_del_gen": gen,
                         "file": live_docs_file_name(name, gen) if gen else None})
        new_record = {k: v for k, v in record.items() if k != "generation"}
        user_data = dict(record.get("user_data") or {})
        user_data["segstore.repair"] = "rebuild-live-docs:" + "+".join(sorted(targets))
        new_record.update(segments=entries, user_data=user_data, timestamp=time.time())
        gen_no = catalog.commit(loc.uuid, new_record, {})
    except BaseException:
        for f in written:
            try:
                directory.delete_file(f)
            except OSError:
                pass
        raise
    return {"commit_generation": gen_no, "segments": done}


def rebuild_pk(catalog: Any, loc: Any, status: Any) -> dict[str, Any]:
    """Apply ``--rebuild-pk`` from a level-2 status of the current commit (every segment must be readable)."""
    from segstore.errors import SegstoreError
    from segstore.index.check import read_pk_map

    record = catalog.latest_commit(loc.uuid) or {}
    if int(record.get("generation", 0)) != status.generation:
        raise SegstoreError("the index changed since it was checked")
    expected: dict[str, tuple[Any, ...]] = {}
    for s in status.segments:
        if s.live_ids is None:
            raise SegstoreError(f"segment {s.name} could not be read; exorcise or rebuild it first")
        for doc_id, (doc, version, seq_no) in s.live_ids.items():
            expected.setdefault(doc_id, (s.name, doc, version, seq_no))
    actual, bad = read_pk_map(catalog, loc.uuid)
    bad_keys = set(bad)
    updates: dict[str, tuple[Any, ...] | None] = {}
    for doc_id, want in expected.items():
        have = actual.get(doc_id)
        if have is None or doc_id in bad_keys or [str(x) if i == 0 else int(x) for i, x in enumerate(have)] != [
                str(want[0]), int(want[1]), int(want[2]), int(want[3])]:
            updates[doc_id] = want
    for doc_id in [*actual, *bad_keys]:
        if doc_id not in expected:
            updates[doc_id] = None
    if not updates:
        return {"commit_generation": None, "entries_changed": 0}
    new_record = {k: v for k, v in record.items() if k != "generation"}
    user_data = dict(record.get("user_data") or {})
    user_data["segstore.repair"] = "rebuild-pk"
    new_record.update(user_data=user_data, timestamp=time.time())
    gen = catalog.commit(loc.uuid, new_record, updates)
    return {"commit_generation": gen, "entries_changed": len(updates),
            "entries_removed": sum(1 for v in updates.values() if v is None)}
