"""The doc-values contract: per-document values of keyword, numeric, date and boolean fields.

Formats implement :class:`DocValuesFormat`; readers hand out :class:`DocValues`, whose masks let filters
run as numpy operations over a whole segment instead of parsing stored sources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from segstore.codec.fields_reader import FieldsReader
from segstore.index.write_state import SegmentReadState, SegmentWriteState

__all__ = ["DocValuesFormat", "DocValuesWriterBase", "DocValuesReaderBase", "NUMERIC", "KEYWORD"]

NUMERIC = "numeric"
KEYWORD = "sorted_set"


class DocValuesWriterBase(ABC):
    @abstractmethod
    def add_numeric(self, name: str, docs: np.ndarray, values: np.ndarray) -> None: ...

    @abstractmethod
    def add_keyword(self, name: str, docs: np.ndarray, values: list[str]) -> None: ...

    @abstractmethod
    def finish(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class DocValuesReaderBase(FieldsReader[Any]):
    """``get`` returns the field's ``DocValues`` (with ``term_mask``/``range_mask``/``exists_mask``), or None."""


class DocValuesFormat(ABC):
    name: str

    @abstractmethod
    def fields_writer(self, state: SegmentWriteState) -> DocValuesWriterBase: ...

    @abstractmethod
    def fields_reader(self, state: SegmentReadState) -> DocValuesReaderBase: ...
