"""The contract every per-field format reader shares (vector values, graphs, doc values)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["FieldsReader"]

T = TypeVar("T")


class FieldsReader(ABC, Generic[T]):
    """Opened once per segment: ``get`` a field's data, the field names, a full CRC pass, and ``close``
    (idempotent). Cheap checks happen on open; ``check_integrity`` reads every byte."""

    @abstractmethod
    def get(self, field: str) -> T | None: ...

    @abstractmethod
    def fields(self) -> list[str]: ...

    @abstractmethod
    def check_integrity(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...
