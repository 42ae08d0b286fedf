"""``CheckIndex``: verify an index and say exactly what is wrong and what a repair would cost.

After Lucene's ``CheckIndex`` (reliability.md §5.1) and §8 rows 10-15 and 30. ``CheckIndex(...).run()``
returns a :class:`Status`; every :class:`Problem` names the commit, segment, file, component (``commit``,
``catalog``, ``pk``, ``segment_info``, ``field_infos``, ``vectors``, ``graph``, ``quantization``, ``stored``,
``live_docs``, ``doc_values``, ``attributes``, ``derived_source``, ``translog``), the error type, and the
expected and actual values when there are any. Levels:

1. **checksums**: every file of every segment of the last commit is opened through
   :class:`~segstore.codec.framing.FramedInput` (magic, format name, version range, segment id, suffix,
   footer shape, exact length where a metadata file records it) and fully CRC-checked; every catalog value
   of the index (index entry, commit records, primary-key entries) is CRC-checked; the translog is
   inspected (:meth:`Translog.inspect`).
2. **logical checks**: each segment is opened through its codec; document counts (segment info, stored
   fields, commit), live docs against the delete count, ord->doc maps, no NaN/Inf (and no zero vector for
   ``cosinesimil``), field infos and attributes against the mapping, graphs and quantization states load
   and match the vector counts, stored records carry ``_id``/``_version``/``_seq_no`` within the commit's
   ``max_seq_no``, the commit's ``segment_counter`` is above every segment name, and the catalog's
   primary-key map equals the live documents of the segments.
3. **slow checks**: HNSW connectivity per level (hnswlib graphs are reconstructed from the validated blob,
   faiss graphs from faiss's ``hnsw`` arrays), a recall sample of the graph against exact search, and a
   full derived-``_source`` round trip (re-parse the derived source; the masked source and the vectors must
   come back bit for bit).

Each segment ends up ``ok``, ``rebuildable`` (only graph or quantization files are damaged: the canonical
vectors can rebuild them; or only its live-docs file is: the catalog's primary-key map, committed in the same
transaction as the segment list, names every live document; no document is lost) or ``corrupt`` (exorcising
it loses its live documents,
whose ids are taken from the catalog's primary-key map, which stays readable whatever happened to the
segment's files). :attr:`Status.repair_plan` lists the repairs ``segstore repair`` would run.

The check is read-only. It does not take the write lock itself; the ``segstore check`` command does (like
Lucene's CheckIndex), unless told not to.

Modules, one per concern: :mod:`.check_index` (``CheckIndex``: the order of the checks),
:mod:`.segment`, :mod:`.fields`, :mod:`.round_trip` (per-segment checks, levels 1-3), :mod:`.catalog`
(commit records and the primary-key map), :mod:`.translog`, :mod:`.files` (one file's header, footer and
CRC), :mod:`.graph` (graph connectivity and exact distances), :mod:`.status` (the report types),
:mod:`.formats` (file types, format names and versions) and :mod:`.location` (finding an index on disk).
"""

from __future__ import annotations

from segstore.index.check.catalog import read_pk_map
from segstore.index.check.check_index import CheckIndex, ProgressFn
from segstore.index.check.files import inspect_file, inspect_translog_file, read_header
from segstore.index.check.formats import COMPONENTS, FORMAT_VERSIONS, component_of
from segstore.index.check.graph import exact_distances, graph_connectivity, graph_rows
from segstore.index.check.location import (
    IndexLocation,
    NotADataDirectoryError,
    find_data_dir,
    locate,
)
from segstore.index.check.status import (
    FieldStatus,
    FileReport,
    Problem,
    SegmentStatus,
    Status,
)
from segstore.index.check.translog import iter_translog_ops, translog_summary

__all__ = [
    "COMPONENTS",
    "FORMAT_VERSIONS",
    "CheckIndex",
    "FieldStatus",
    "FileReport",
    "IndexLocation",
    "NotADataDirectoryError",
    "Problem",
    "ProgressFn",
    "SegmentStatus",
    "Status",
    "component_of",
    "exact_distances",
    "find_data_dir",
    "graph_connectivity",
    "graph_rows",
    "inspect_file",
    "inspect_translog_file",
    "iter_translog_ops",
    "locate",
    "read_header",
    "read_pk_map",
    "translog_summary",
]
