"""``segstore stats | warmup``: what an index holds and what its graphs cost in memory. Read-only.

* ``stats``: ``_stats``-style counts, k-NN stats per field and disk usage per component.
* ``warmup``: loads every graph (and quantized codes) and reports their memory; in this process that
  verifies every graph loads and leaves the files in the OS page cache for the next process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    add_command,
    command,
    emit,
    human_bytes,
    index_reports,
    open_targets,
    progress_enabled,
)
from segstore_tools.segment_handles import (
    open_segments,
    segment_rows,
    translog_summary_of,
)

__all__ = ["index_stats", "register"]


# ------------------------------------------------------------------------------------------ stats


def index_stats(catalog: Any, loc: Any) -> dict[str, Any]:
    from segstore.index.check import COMPONENTS

    with open_segments(catalog, loc) as (record, handles):
        rows = segment_rows(loc, record, handles)
    by_component: dict[str, int] = {}
    store = 0
    fields: dict[str, dict[str, Any]] = {}
    for r in rows:
        store += r["size"]
        for c, n in r["bytes_by_component"].items():
            by_component[c] = by_component.get(c, 0) + n
        for f in r["fields"]:
            agg = fields.setdefault(f["field"], {
                "dimension": f["dimension"], "data_type": f["data_type"], "space_type": f["space_type"],
                "vectors": 0, "segments": 0, "graphs": 0, "graph_bytes_on_disk": 0, "quantized_bytes_on_disk": 0,
                "graph_kinds": [], "compression": f["compression"], "mode": f["mode"], "derived": f["derived"]})
            agg["vectors"] += f["vectors"] or 0
            agg["segments"] += 1
            if f["graph_file"]:
                agg["graphs"] += 1
                agg["graph_bytes_on_disk"] += f["graph_bytes"]
                if f["graph"] not in agg["graph_kinds"]:
                    agg["graph_kinds"].append(f["graph"])
            if f["quantization"]:
                agg["quantized_bytes_on_disk"] += f["quantization"].get("bytes") or 0
    for agg in fields.values():
        agg["graph_bytes_per_vector"] = round(agg["graph_bytes_on_disk"] / agg["vectors"], 2) if agg["vectors"] else 0
    tl = translog_summary_of(loc, record)
    tl_bytes = tl.get("size_in_bytes", 0)
    by_component["translog"] = tl_bytes
    committed_gen = int(record.get("translog_generation", 0) or 0)
    uncommitted_bytes = sum(int(g.get("size") or 0) for g in tl.get("generations") or []
                            if int(g.get("generation", 0)) >= committed_gen)
    _ = COMPONENTS
    return {
        "index": loc.name, "uuid": loc.uuid.hex(),
        "docs": {"count": sum(r["docs.count"] for r in rows), "deleted": sum(r["docs.deleted"] for r in rows),
                 "ids": catalog.pk_count(loc.uuid)},
        "store": {"size_in_bytes": store, "size": human_bytes(store)},
        "segments": {"count": len(rows), "max_doc": sum(r["max_doc"] for r in rows),
                     "errors": [r["segment"] for r in rows if r["error"]]},
        "translog": {"operations": tl.get("operations", 0),
                     "uncommitted_operations": tl.get("uncommitted_operations", 0),
                     "size_in_bytes": tl_bytes, "uncommitted_size_in_bytes": uncommitted_bytes,
                     "generations": [g["generation"] for g in tl.get("generations") or []], "clean": tl.get("clean")},
        "commit": {"generation": record.get("generation"), "max_seq_no": record.get("max_seq_no")},
        "knn": {"fields": fields, "graph_bytes_on_disk": sum(a["graph_bytes_on_disk"] for a in fields.values())},
        "disk_usage": dict(sorted(by_component.items())),
    }


def _stats_text(r: dict[str, Any]) -> str:
    lines = []
    for s in r["indices"]:
        lines.append(f"index [{s['index']}]: {s['docs']['count']} docs ({s['docs']['deleted']} deleted, "
                     f"{s['docs']['ids']} ids), {s['segments']['count']} segments, store {s['store']['size']}, "
                     f"commit gen {s['commit']['generation']}")
        t = s["translog"]
        lines.append(f"  translog: {t['operations']} ops ({t['uncommitted_operations']} uncommitted), "
                     f"{human_bytes(t['size_in_bytes'])}, generations {t['generations']}")
        lines.append("  disk usage: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in s["disk_usage"].items()))
        for name, f in s["knn"]["fields"].items():
            lines.append(f"  knn field [{name}]: {f['vectors']} vectors, dim {f['dimension']} {f['data_type']} "
                         f"{f['space_type']}, {f['graphs']} graph(s) {','.join(f['graph_kinds']) or '-'} "
                         f"{human_bytes(f['graph_bytes_on_disk'])} ({f['graph_bytes_per_vector']} B/vector)"
                         + (f", quantized {human_bytes(f['quantized_bytes_on_disk'])}" if f["quantized_bytes_on_disk"]
                            else "") + (f", derived ({f['derived']})" if f["derived"] else ""))
    c = r["catalog"]
    lines.append(f"catalog: {human_bytes(c['used_bytes'])} used, entries {c['entries']}")
    return "\n".join(lines)


@command
def _cmd_stats(args: argparse.Namespace) -> int:
    result = index_reports(args, index_stats)
    emit(args, result, _stats_text)
    return PROBLEM if any(s["segments"]["errors"] for s in result["indices"]) else OK


# ------------------------------------------------------------------------------------------ warmup


@command
def _cmd_warmup(args: argparse.Namespace) -> int:
    from segstore.errors import SegstoreError

    results = []
    failures = 0
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            t0 = time.monotonic()
            fields: dict[str, dict[str, Any]] = {}
            errors = []
            with open_segments(catalog, loc) as (_record, handles):
                work = [(h, f) for h in handles if h.leaf is not None for f in h.leaf.core.graphs.fields()]
                errors += [{"segment": h.name, "error": h.error} for h in handles if h.leaf is None]
                with Progress(len(work), f"warmup {loc.name}", enabled=progress_enabled(args)) as bar:
                    for h, name in work:
                        agg = fields.setdefault(name, {"graphs": 0, "graph_bytes": 0, "quantized_bytes": 0,
                                                       "vectors": 0, "seconds": 0.0})
                        g0 = time.monotonic()
                        try:
                            graph = h.leaf.graph(name)
                            agg["graph_bytes"] += int(graph.memory_bytes()) if graph is not None else 0
                            q = h.leaf.quantized(name)
                            if q is not None:
                                agg["quantized_bytes"] += int(q.memory_bytes())
                            agg["graphs"] += 1
                            values = h.leaf.vector_values(name)
                            agg["vectors"] += values.size if values is not None else 0
                        except (SegstoreError, OSError, ValueError) as e:
                            errors.append({"segment": h.name, "field": name, "error": f"{type(e).__name__}: {e}"})
                        agg["seconds"] = round(agg["seconds"] + time.monotonic() - g0, 4)
                        bar.update(1, f"warmup {loc.name} {h.name}/{name}")
            failures += len(errors)
            total = sum(f["graph_bytes"] + f["quantized_bytes"] for f in fields.values())
            results.append({"index": loc.name, "graphs_loaded": sum(f["graphs"] for f in fields.values()),
                            "memory_bytes": total, "fields": fields, "errors": errors,
                            "seconds": round(time.monotonic() - t0, 3)})

    def text(r: dict[str, Any]) -> str:
        lines = []
        for x in r["indices"]:
            lines.append(f"index [{x['index']}]: {x['graphs_loaded']} graph(s) loaded, "
                         f"{human_bytes(x['memory_bytes'])} "
                         f"in memory, {x['seconds']} s")
            for name, f in x["fields"].items():
                lines.append(f"  {name}: {f['graphs']} graph(s), {f['vectors']} vectors, graph "
                             f"{human_bytes(f['graph_bytes'])}" + (f", quantized {human_bytes(f['quantized_bytes'])}"
                                                                  if f["quantized_bytes"] else ""))
            for e in x["errors"]:
                lines.append(f"  ERROR {e}")
        return "\n".join(lines)

    emit(args, {"indices": results}, text)
    return PROBLEM if failures else OK


# --------------------------------------------------------------------------------------- register


def register(sub: Any) -> None:
    """Add ``stats`` and ``warmup``."""
    add_command(sub, "stats", _cmd_stats, help_text="_stats-style counts, k-NN stats and disk usage per component",
                description="_stats-style document, store, segment and translog counts, k-NN stats per field "
                            "(vectors, graphs, bytes) and disk usage per component. Read-only.")

    p = add_command(sub, "warmup", _cmd_warmup, help_text="load every graph and report its memory",
                    description="Load every graph (and quantized codes) of the last commit and report the bytes "
                                "they take in memory. Verifies that every graph loads and leaves the files in the "
                                "OS page cache. Read-only.")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
