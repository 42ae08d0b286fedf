"""Shared fixtures of the search tests."""

from __future__ import annotations

from typing import Any

import pytest

from segstore.index.segment_reader import SegmentReader


class GraphSpy:
    """Counts ``SegmentReader.graph`` calls that returned a graph: the kNN query asks for the graph only when
    a segment takes the graph path (small or filtered segments are scanned without asking for it)."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


@pytest.fixture
def graph_spy(monkeypatch: pytest.MonkeyPatch) -> GraphSpy:
    spy = GraphSpy()
    original = SegmentReader.graph

    def graph(self: SegmentReader, field: str) -> Any:
        g = original(self, field)
        if g is not None:
            spy.count += 1
        return g
    monkeypatch.setattr(SegmentReader, "graph", graph)
    return spy
