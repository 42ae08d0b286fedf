"""Shared fixtures. Also maps ``segstore_codecs``/``segstore_tools`` to ``codecs/``/``tools/`` when the
package is not installed, so ``pytest`` works from a bare checkout."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _map_package(import_name: str, folder: str) -> None:
    try:
        importlib.import_module(import_name)
        return
    except ImportError:
        pass
    path = os.path.join(_ROOT, folder)
    spec = importlib.util.spec_from_file_location(
        import_name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[import_name] = module
    spec.loader.exec_module(module)


if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
_map_package("segstore_codecs", "codecs")
_map_package("segstore_tools", "tools")

SHARED = os.path.join(os.path.dirname(_ROOT), "shared")


@pytest.fixture
def shared_data() -> str:
    """Path of ../shared/data (real vectors with ground truth)."""
    path = os.path.join(SHARED, "data")
    if not os.path.isdir(path):
        pytest.skip("../shared/data is not present")
    return path


@pytest.fixture(params=["memory", "fs"])
def directory(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    """Each Directory implementation, for conformance tests."""
    from segstore.store import FSDirectory, MemoryDirectory

    if request.param == "memory":
        return MemoryDirectory()
    return FSDirectory(tmp_path / "dir")
