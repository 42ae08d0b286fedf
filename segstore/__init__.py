"""segstore: a Lucene-style segment storage engine for vector search with OpenSearch k-NN semantics.

Low-level API (Lucene vocabulary)::

    import segstore
    with segstore.create_index("data", "docs", settings={"index.knn": True},
                               mappings={"properties": {"v": {"type": "knn_vector", "dimension": 3}}}) as w:
        w.index("1", {"v": [1.0, 2.0, 3.0], "title": "hello"})
        w.refresh()
        with w.acquire_reader() as reader:
            top = segstore.knn_search(reader, "v", np.array([1, 2, 3], "f4"), k=10)
"""

from __future__ import annotations

import logging

from segstore.codec.base import Codec, FilterCodec
from segstore.codec.registry import codec_for_name, default_codec
from segstore.index.catalog import Catalog
from segstore.index.directory_reader import DirectoryReader
from segstore.index.index_store import create_index, delete_index, open_index, open_reader
from segstore.index.index_writer import IndexWriter
from segstore.index.merge_policy import MergePolicy, NoMergePolicy
from segstore.index.merge_scheduler import MergeScheduler, SerialMergeScheduler
from segstore.index.operations import DeleteOp, IndexOp
from segstore.index.segment_merger import SegmentMerger
from segstore.search.knn_query import TopDocs, knn_search
from segstore.store import Directory, FSDirectory, MemoryDirectory
from segstore.node import Node

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = [
    "Catalog", "Codec", "FilterCodec", "Directory", "FSDirectory", "MemoryDirectory", "DirectoryReader",
    "IndexWriter", "SegmentMerger", "MergePolicy", "NoMergePolicy", "MergeScheduler", "SerialMergeScheduler",
    "IndexOp", "DeleteOp", "TopDocs", "create_index", "open_index", "open_reader", "delete_index",
    "knn_search", "codec_for_name", "default_codec", "Node", "connect",
]


def connect(path: str = "./segstore-data", **kwargs):  # type: ignore[no-untyped-def]
    """An ``opensearchpy.OpenSearch`` client running on the data directory ``path`` in this process."""
    from segstore.rest.transport import connect as _connect  # noqa: PLC0415 - opensearch-py is heavy

    return _connect(path, **kwargs)
