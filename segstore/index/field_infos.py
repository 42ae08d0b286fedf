"""``FieldInfo`` / ``FieldInfos``: the per-segment schema of fields that have index structures.

Only fields with per-document index data appear here (vector fields today; doc-values fields later). Each
``FieldInfo`` carries string ``attributes`` for per-field choices persisted by name (engine, method, HNSW
parameters), never class paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["FieldInfo", "FieldInfos", "VECTOR_DATA_TYPES"]

VECTOR_DATA_TYPES = ("float", "byte", "binary")


@dataclass(frozen=True)
class FieldInfo:
    """One field of a segment. ``vector_dimension`` 0 means the field has no vectors."""

    name: str
    number: int
    vector_dimension: int = 0
    vector_data_type: str = "float"
    vector_space_type: str = "l2"
    attributes: dict[str, str] = field(default_factory=dict, compare=True, hash=False)

    @property
    def has_vectors(self) -> bool:
        return self.vector_dimension > 0

    def attribute(self, key: str, default: str | None = None) -> str | None:
        return self.attributes.get(key, default)


class FieldInfos:
    """An ordered, immutable collection of :class:`FieldInfo` addressable by name and number."""

    def __init__(self, infos: list[FieldInfo]) -> None:
        self._by_name: dict[str, FieldInfo] = {}
        self._by_number: dict[int, FieldInfo] = {}
        for fi in infos:
            if fi.name in self._by_name:
                raise ValueError(f"duplicate field name [{fi.name}]")
            if fi.number in self._by_number:
                raise ValueError(f"duplicate field number [{fi.number}] for [{fi.name}]")
            self._by_name[fi.name] = fi
            self._by_number[fi.number] = fi

    def __iter__(self) -> Iterator[FieldInfo]:
        return iter(sorted(self._by_number.values(), key=lambda f: f.number))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldInfos) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"FieldInfos({list(self)!r})"

    def get(self, name: str) -> FieldInfo | None:
        return self._by_name.get(name)

    def by_number(self, number: int) -> FieldInfo | None:
        return self._by_number.get(number)

    def vector_fields(self) -> list[FieldInfo]:
        return [f for f in self if f.has_vectors]
