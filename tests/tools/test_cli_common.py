"""Shared helpers of the ``segstore`` operator-tool tests, plus the cross-cutting conventions: every
subcommand's ``--json`` output parses, usage errors exit 2, progress stays quiet off a terminal.

The subcommand modules are registered on the real parser of :mod:`segstore_tools.cli` (its ``_MODULES``
list is extended for the test, de-duplicated once cli.py lists them itself), and ``cli.main`` runs in
process.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

TOOL_MODULES = ["segstore_tools.inspect_index", "segstore_tools.inspect_documents", "segstore_tools.inspect_stats",
                "segstore_tools.check", "segstore_tools.repair", "segstore_tools.recover", "segstore_tools.maintenance"]
INDEX = "s"
N_BIG, N_SMALL = 120, 40
DELETED = ("3", "130")
MAPPINGS = {"properties": {
    "v": {"type": "knn_vector", "dimension": 8},
    "b": {"type": "knn_vector", "dimension": 8, "data_type": "byte", "method": {"name": "hnsw", "engine": "faiss"}},
    "q": {"type": "knn_vector", "dimension": 16, "mode": "on_disk", "compression_level": "32x"},
    "title": {"type": "keyword"},
    "parts": {"type": "nested", "properties": {"pv": {"type": "knn_vector", "dimension": 4}}},
}}
SETTINGS = {"index.knn": True}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """Run ``segstore <argv>`` in process; usage errors (SystemExit) become their exit code."""
    from segstore_tools import cli

    saved = list(cli._MODULES)
    cli._MODULES[:] = list(dict.fromkeys(saved + TOOL_MODULES))
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        cli._MODULES[:] = saved
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def make_source(i: int, rng: np.random.Generator) -> dict[str, Any]:
    src: dict[str, Any] = {"v": rng.standard_normal(8).round(3).tolist(), "b": rng.integers(-100, 100, 8).tolist(),
                           "q": rng.standard_normal(16).round(3).tolist(), "title": f"t{i}"}
    if i % 10 == 0:
        src["parts"] = [{"pv": rng.standard_normal(4).round(3).tolist()},
                        {"pv": rng.standard_normal(4).round(3).tolist()}]
    return src


def build_sample(data_dir: str, seed: int = 0, uncommitted: int = 0) -> dict[str, dict[str, Any]]:
    """Two committed segments (``_0``: 120 docs, ``_1``: 40) with one delete each, float (hnswlib), byte
    (faiss), binary-quantized (``.qst``), keyword and nested vector fields; ``uncommitted`` more documents
    only in the translog. Returns the expected live sources by id."""
    import segstore
    from segstore.index.operations import DeleteOp, IndexOp

    rng = np.random.default_rng(seed)
    sources = {str(i): make_source(i, rng) for i in range(N_BIG + N_SMALL + uncommitted)}
    w = segstore.create_index(data_dir, INDEX, settings=SETTINGS, mappings=MAPPINGS)
    try:
        w.bulk([IndexOp(str(i), sources[str(i)]) for i in range(N_BIG)])
        w.refresh()
        w.bulk([IndexOp(str(i), sources[str(i)]) for i in range(N_BIG, N_BIG + N_SMALL)])
        w.commit()
        w.bulk([DeleteOp(d) for d in DELETED])
        w.commit()
        if uncommitted:
            w.bulk([IndexOp(str(i), sources[str(i)]) for i in range(N_BIG + N_SMALL, N_BIG + N_SMALL + uncommitted)])
    finally:
        w.close(commit=False)
    for d in DELETED:
        sources.pop(d)
    return sources


@pytest.fixture(scope="module")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, Any]]]:
    path = str(tmp_path_factory.mktemp("sample") / "data")
    return path, build_sample(path, uncommitted=3)


@pytest.fixture
def sample(sample_template: tuple[str, dict[str, Any]], tmp_path: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """A fresh copy of the sample data directory (and the expected live sources, incl. 3 uncommitted)."""
    src, sources = sample_template
    dst = str(tmp_path / "data")
    shutil.copytree(src, dst)
    return dst, sources


def index_dir(data_dir: str) -> str:
    (uuid,) = os.listdir(os.path.join(data_dir, "indices"))
    return os.path.join(data_dir, "indices", uuid, "index")


def translog_dir(data_dir: str) -> str:
    return os.path.join(os.path.dirname(index_dir(data_dir)), "translog")


def live_sources(capsys: pytest.CaptureFixture[str], data_dir: str) -> dict[str, Any]:
    """``{id: _source}`` of the last commit, through ``segstore dump --json``."""
    r = run_cli(capsys, "dump", data_dir, "--json")
    assert r.code == 0, r.err
    return {d["_id"]: d["_source"] for d in r.json()["docs"]}


# ------------------------------------------------------------------------------------------------ tests


def test_every_subcommand_json_parses(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any],
                                      tmp_path: Any) -> None:
    data, _ = sample
    out = tmp_path / "export.ndjson"
    commands = [
        ["info", data], ["segments", data, "--files"], ["files", data, "--verify"], ["doc", data, "7"],
        ["dump", data, "--limit", "3"], ["stats", data], ["warmup", data], ["check", data, "--level", "3"],
        ["verify", data], ["repair", data], ["recover", data, "--dry-run"], ["translog", data],
        ["translog", data, "truncate"], ["export", data, "-o", str(out)], ["recover", data],
        ["force-merge", data, "--max-segments", "1"], ["import", str(tmp_path / "new"), str(out), "--index", "copy",
                                                        "--auto-create"],
    ]
    seen = set()
    for argv in commands:
        r = run_cli(capsys, *argv, "--json")
        assert r.code in (0, 1), (argv, r.code, r.err)
        doc = r.json()  # exactly one JSON document on stdout
        assert isinstance(doc, dict), argv
        assert "\r" not in r.err, argv  # no progress bar off a terminal
        seen.add(argv[0])
    from segstore_tools import cli

    registered = set()
    saved = list(cli._MODULES)
    cli._MODULES[:] = list(dict.fromkeys(saved + TOOL_MODULES))
    try:
        parser = cli.build_parser()
    finally:
        cli._MODULES[:] = saved
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        registered.update(action.choices)
    mine = {"info", "segments", "files", "doc", "dump", "stats", "warmup", "check", "verify", "repair", "recover",
            "translog", "force-merge", "export", "import"}
    assert mine <= registered
    assert mine <= seen


@pytest.mark.parametrize("argv", [
    ["check"],                                   # DIR missing
    ["check", "{data}", "--level", "4"],         # invalid choice
    ["check", "{data}", "--threads", "0"],
    ["check", "{data}", "--no-such-flag"],
    ["check", "{tmp}"],                          # not a data directory
    ["info", "{data}", "--index", "nope"],       # unknown index
    ["segments", "{data}", "--commit", "99"],    # no such commit
    ["doc", "{data}"],                           # ID missing
    ["force-merge", "{data}", "--max-segments", "0"],
    ["force-merge", "{data}", "--max-segments", "2", "--only-expunge-deletes"],
    ["import", "{data}", "{tmp}/missing.ndjson", "--index", "x"],
    ["translog", "{data}", "shrink"],
    ["repair", "{data}", "--level", "9"],
    ["export", "{data}", "--format", "xml"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any], tmp_path: Any,
                             argv: list[str]) -> None:
    data, _ = sample
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{data}", data).replace("{tmp}", str(empty)) for a in argv]
    r = run_cli(capsys, *args)
    assert r.code == 2, (args, r.out, r.err)
    assert "error" in r.err.lower()
    if "--no-such-flag" not in args and len(args) > 1:
        rj = run_cli(capsys, *args, "--json")
        assert rj.code == 2
        if rj.out.strip():  # errors found after parsing come as a JSON error document
            assert rj.json()["status"] == 2


def test_doc_needs_an_index_when_the_directory_holds_several(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Any) -> None:
    import segstore

    data = str(tmp_path / "two")
    for name in ("a", "b"):
        segstore.create_index(data, name, settings=SETTINGS,
                              mappings={"properties": {"v": {"type": "knn_vector", "dimension": 2}}}).close()
    r = run_cli(capsys, "doc", data, "1")
    assert r.code == 2 and "select one index with --index" in r.err
    r = run_cli(capsys, "info", data, "--json")
    assert [i["index"] for i in r.json()["indices"]] == ["a", "b"]
    # an index folder selects that index
    (uuid_a,) = [i["uuid"] for i in r.json()["indices"] if i["index"] == "a"]
    r = run_cli(capsys, "check", os.path.join(data, "indices", uuid_a, "index"), "--json")
    assert r.code == 0 and [i["index"] for i in r.json()["indices"]] == ["a"]


def test_progress_bar_only_on_a_terminal() -> None:
    from segstore_tools.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    with Progress(4, "work", stream=tty) as bar, Progress(4, "work", stream=pipe) as quiet:
        for _ in range(4):
            bar.update(1)
            quiet.update(1)
    assert "work [" in tty.getvalue() and "4/4" in tty.getvalue()
    assert pipe.getvalue() == ""
    assert not Progress(3, "x", stream=pipe).enabled and Progress(3, "x", stream=tty).enabled
