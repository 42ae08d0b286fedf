"""``tools/load_test.py`` as a test: 8 concurrent opensearch-py HTTP clients doing ``_bulk`` and kNN
``_search`` against a real ``segstore serve``, then every acknowledged id must be present exactly once.

The 10 s run is part of the fast suite; the 60 s run is marked ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools",
                    "load_test.py")


def _run(tmp_path, seconds: int, clients: int = 8) -> dict:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, TOOL, "--seconds", str(seconds), "--clients", str(clients),
                           "--out", str(out)], capture_output=True, text=True, timeout=seconds + 600,
                          cwd=str(tmp_path))
    assert out.exists(), f"no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(out.read_text())
    print(proc.stdout)
    assert proc.returncode == 0, f"{report['problems']}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert report["ok"] is True and report["problems"] == []
    assert report["errors"] == 0
    v = report["verify"]
    assert v["acked"] > 0 and v["count"] == v["acked"] == v["cat_docs_count"] and v["mget_missing"] == 0
    assert report["bulk"]["requests"] > 0 and report["search"]["requests"] > 0
    assert report["server_exit_code"] == 0
    assert "RESULT: OK" in proc.stdout and "_bulk" in proc.stdout and "p99 ms" in proc.stdout
    return report


def test_load_10s(tmp_path):
    _run(tmp_path, 10)


@pytest.mark.slow
def test_load_60s(tmp_path):
    report = _run(tmp_path, 60)
    assert report["elapsed_s"] >= 60
