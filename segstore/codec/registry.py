"""Name -> implementation registries for codecs (Lucene's ``Codec.forName``, zarr's ``Registry``).

Segments persist the codec *name*; this registry resolves it. Built-in codecs register themselves when
``segstore_codecs`` is imported; third-party codecs are found through the ``segstore.codecs`` entry-point
group the first time an unknown name is asked for.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from segstore.codec.framing import check_name

__all__ = ["Registry", "codecs", "codec_for_name", "default_codec"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A typed registry of factories, filled eagerly by ``register`` and lazily from entry points."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._group = entry_point_group
        self._factories: dict[str, Callable[[], T]] = {}
        self._instances: dict[str, T] = {}
        self._lock = threading.Lock()
        self._loaded_entry_points = False

    def register(self, name: str, factory: Callable[[], T]) -> None:
        check_name(name, f"{self.kind} name")
        with self._lock:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} [{name}] is already registered")
            self._factories[name] = factory

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def get(self, name: str) -> T:
        with self._lock:
            inst = self._instances.get(name)
        if inst is not None:
            return inst
        if name not in self._factories:
            self._load_entry_points()
        try:
            factory = self._factories[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} [{name}]; known: {sorted(self._factories)} "
                "(is the package that provides it installed?)"
            ) from None
        # Build outside the lock: a factory may import a module that registers more names.
        instance = factory()
        with self._lock:
            return self._instances.setdefault(name, instance)

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        # The built-in codecs live in segstore_codecs; importing it registers them even when the package
        # metadata (entry points) is not installed, e.g. when running from a source checkout.
        importlib.import_module("segstore_codecs")
        if self._group:
            for ep in entry_points(group=self._group):
                if ep.name not in self._factories:
                    self._factories[ep.name] = ep.load()


codecs: Registry["Codec"] = Registry("codec", "segstore.codecs")  # type: ignore[name-defined]  # noqa: F821


def codec_for_name(name: str) -> "Codec":  # type: ignore[name-defined]  # noqa: F821
    """Resolve a codec by the name a segment recorded."""
    return codecs.get(name)


def default_codec() -> "Codec":  # type: ignore[name-defined]  # noqa: F821
    """The current write codec."""
    mod = importlib.import_module("segstore_codecs")
    return codecs.get(mod.DEFAULT_CODEC)
