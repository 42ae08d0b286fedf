"""Concurrent load test of ``segstore serve`` through opensearch-py over loopback HTTP.

Starts ``segstore serve`` on a free 127.0.0.1 port with a temporary data directory (or ``--data``), creates
a k-NN index (``--dim``-d float vectors, faiss hnsw, plus a text field), then runs ``--clients`` threads,
each with its own ``opensearchpy.OpenSearch`` client, for ``--seconds``. Every request is either a
``_bulk`` of ``--batch`` new documents (``refresh=false``) or a kNN ``_search`` (k=10) with a random query
vector (``--search-ratio``). Every document id the server acknowledged (item status 201) is recorded.

Afterwards (``_refresh``) it checks:

* zero errors: no exception, no ``errors: true`` bulk, no item without 201, no search with more than k hits;
* every acknowledged id is present exactly once: ``_count`` equals the acknowledged count, ``_mget`` (without
  ``_source``) finds every acknowledged id, and ``_cat/indices`` agrees;
* the documents are intact: a sample read back with ``_source`` equals what was sent.

It prints a table (requests/s for bulk and search, docs/s indexed, p50/p99 latency) and writes the same as
JSON (``--out``). Exit code 0 when every check passed, 1 otherwise. Only loopback traffic; the run is
bounded by ``--seconds`` plus the verification (and a hard ``--timeout``).

    python tools/load_test.py --seconds 60 --clients 8 [--port P] [--out report.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

INDEX = "load-test"
K = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


class Server:
    """``segstore serve`` as a subprocess on 127.0.0.1 (also the REST suite's ``http`` front end); ``stop()``
    sends SIGTERM, then SIGKILL on timeout."""

    def __init__(self, data_dir: str, port: int | None = None, log_path: str | None = None,
                 start_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_path = log_path or os.path.join(data_dir, "..", f"serve-{self.port}.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "segstore_tools", "serve", "--data", data_dir, "--host", "127.0.0.1",
               "--port", str(self.port)]
        # cwd outside the checkout: ``python -m`` puts the cwd first on sys.path, and the repository root
        # holds a ``codecs/`` folder that must not shadow the standard library.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=os.path.dirname(os.path.abspath(data_dir)))
        deadline = time.monotonic() + start_timeout
        while not _answers(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"segstore serve exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"segstore serve did not answer GET / within {start_timeout}s: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        """The end of the server's output."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


@dataclass
class Worker:
    """One client thread's record."""

    wid: int
    bulk_lat: list[float] = field(default_factory=list)
    search_lat: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    docs_sent: int = 0


def _vector(rng: random.Random, dim: int) -> list[float]:
    return [round(rng.uniform(-1.0, 1.0), 4) for _ in range(dim)]


def _run_worker(w: Worker, port: int, stop_at: float, args: argparse.Namespace) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[{"host": "127.0.0.1", "port": port}], timeout=120)
    rng = random.Random(args.seed * 1000 + w.wid)
    seq = 0
    try:
        while time.monotonic() < stop_at:
            if rng.random() >= args.search_ratio:
                lines: list[str] = []
                batch: dict[str, dict[str, Any]] = {}
                for _ in range(args.batch):
                    doc_id = f"c{w.wid}-{seq}"
                    seq += 1
                    doc = {"v": _vector(rng, args.dim), "title": f"client {w.wid} doc {seq}", "n": seq}
                    batch[doc_id] = doc
                    lines.append(json.dumps({"index": {"_id": doc_id}}))
                    lines.append(json.dumps(doc))
                t0 = time.perf_counter()
                try:
                    resp = client.bulk(index=INDEX, body="\n".join(lines) + "\n", refresh="false")
                except Exception as e:  # noqa: BLE001 - every failure is recorded, never hidden
                    w.errors.append(f"bulk: {e!r}"[:300])
                    continue
                w.bulk_lat.append(time.perf_counter() - t0)
                w.docs_sent += len(batch)
                if resp.get("errors"):
                    w.errors.append("bulk errors=true: " + json.dumps(resp["items"][:2])[:300])
                for item in resp.get("items", []):
                    r = item.get("index", {})
                    if r.get("status") == 201 and "error" not in r:
                        w.acked.append(r["_id"])
                        if len(w.samples) < 50 and rng.random() < 0.02:
                            w.samples[r["_id"]] = batch[r["_id"]]
                    else:
                        w.errors.append("bulk item not created: " + json.dumps(item)[:300])
            else:
                body = {"size": K, "query": {"knn": {"v": {"vector": _vector(rng, args.dim), "k": K}}},
                        "_source": False}
                t0 = time.perf_counter()
                try:
                    resp = client.search(index=INDEX, body=body)
                except Exception as e:  # noqa: BLE001
                    w.errors.append(f"search: {e!r}"[:300])
                    continue
                w.search_lat.append(time.perf_counter() - t0)
                if len(resp["hits"]["hits"]) > K or resp.get("timed_out"):
                    w.errors.append("search returned more than k hits or timed out")
    finally:
        client.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[i] * 1000.0


def _verify(port: int, workers: list[Worker]) -> dict[str, Any]:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[{"host": "127.0.0.1", "port": port}], timeout=300)
    acked = [i for w in workers for i in w.acked]
    problems: list[str] = []
    if len(set(acked)) != len(acked):
        problems.append(f"the server acknowledged {len(acked) - len(set(acked))} ids more than once")
    client.indices.refresh(index=INDEX)
    count = client.count(index=INDEX)["count"]
    if count != len(acked):
        problems.append(f"_count is {count}, acknowledged {len(acked)}")
    cat = client.cat.indices(index=INDEX, format="json")
    cat_count = int(cat[0]["docs.count"]) if cat else -1
    if cat_count != len(acked):
        problems.append(f"_cat/indices docs.count is {cat_count}, acknowledged {len(acked)}")
    missing: list[str] = []
    for start in range(0, len(acked), 1000):
        chunk = acked[start:start + 1000]
        docs = client.mget(index=INDEX, body={"ids": chunk}, _source="false")["docs"]
        missing.extend(d["_id"] for d in docs if not d.get("found"))
    if missing:
        problems.append(f"{len(missing)} acknowledged ids not found by _mget, e.g. {missing[:5]}")
    samples = {k: v for w in workers for k, v in w.samples.items()}
    if samples:
        got = client.mget(index=INDEX, body={"ids": list(samples)})["docs"]
        bad = [d["_id"] for d in got if d.get("_source") != samples[d["_id"]]]
        if bad:
            problems.append(f"{len(bad)} sampled documents differ from what was sent, e.g. {bad[:3]}")
    ids_hits = client.search(index=INDEX, body={"size": 0, "query": {"ids": {"values": acked[:500]}}})
    if ids_hits["hits"]["total"]["value"] != len(acked[:500]):
        problems.append("ids query does not find each acknowledged id exactly once")
    client.close()
    return {"acked": len(acked), "count": count, "cat_docs_count": cat_count, "mget_missing": len(missing),
            "samples_checked": len(samples), "problems": problems}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="segstore-load-")
    data = args.data or os.path.join(tmp, "data")
    port = args.port or free_port()
    server = Server(data, port, os.path.join(tmp, "serve.log"))
    report: dict[str, Any] = {"seconds": args.seconds, "clients": args.clients, "dim": args.dim,
                              "batch": args.batch, "search_ratio": args.search_ratio, "port": port}
    try:
        from opensearchpy import OpenSearch

        admin = OpenSearch(hosts=[{"host": "127.0.0.1", "port": port}], timeout=60)
        admin.indices.create(index=INDEX, body={
            "settings": {"index.knn": True},
            "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": args.dim,
                                              "method": {"name": "hnsw", "engine": "faiss"}},
                                        "title": {"type": "text"}, "n": {"type": "long"}}}})
        admin.close()
        workers = [Worker(i) for i in range(args.clients)]
        t0 = time.monotonic()
        stop_at = t0 + args.seconds
        threads = [threading.Thread(target=_run_worker, args=(w, port, stop_at, args), name=f"load-{w.wid}",
                                    daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, stop_at + args.timeout - time.monotonic()))
        elapsed = time.monotonic() - t0
        hung = [t.name for t in threads if t.is_alive()]
        bulk_lat = [x for w in workers for x in w.bulk_lat]
        search_lat = [x for w in workers for x in w.search_lat]
        docs = sum(len(w.acked) for w in workers)
        errors = [e for w in workers for e in w.errors] + [f"client thread did not finish: {n}" for n in hung]
        report.update({
            "elapsed_s": round(elapsed, 3),
            "bulk": {"requests": len(bulk_lat), "requests_per_s": round(len(bulk_lat) / elapsed, 2),
                     "docs_per_s": round(docs / elapsed, 1), "p50_ms": _pct(bulk_lat, 50),
                     "p99_ms": _pct(bulk_lat, 99)},
            "search": {"requests": len(search_lat), "requests_per_s": round(len(search_lat) / elapsed, 2),
                       "p50_ms": _pct(search_lat, 50), "p99_ms": _pct(search_lat, 99)},
            "errors": len(errors), "error_samples": errors[:10],
        })
        report["verify"] = _verify(port, workers) if not hung else {"problems": ["skipped: clients hung"]}
    finally:
        code = server.stop()
        report["server_exit_code"] = code
        report["server_log_tail"] = server.log()[-1500:] if code not in (0, None) else ""
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    problems = list(report.get("verify", {}).get("problems", []))
    if report.get("errors"):
        problems.insert(0, f"{report['errors']} errors during the run")
    if report.get("server_exit_code") != 0:
        problems.append(f"segstore serve exited with {report.get('server_exit_code')} on SIGTERM")
    if not report.get("bulk", {}).get("requests") or not report.get("search", {}).get("requests"):
        problems.append("no bulk or no search request completed")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}"


def table(report: dict[str, Any]) -> str:
    b, s = report["bulk"], report["search"]
    rows = [
        ("op", "requests", "req/s", "docs/s", "p50 ms", "p99 ms"),
        ("_bulk", _fmt(b["requests"]), _fmt(b["requests_per_s"]), _fmt(b["docs_per_s"]), _fmt(b["p50_ms"]),
         _fmt(b["p99_ms"])),
        ("_search knn", _fmt(s["requests"]), _fmt(s["requests_per_s"]), "-", _fmt(s["p50_ms"]), _fmt(s["p99_ms"])),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    v = report.get("verify", {})
    lines.append("")
    lines.append(f"{report['clients']} clients, {report['elapsed_s']:.1f} s, dim {report['dim']}, batch "
                 f"{report['batch']}: acked {_fmt(v.get('acked'))} docs, _count {_fmt(v.get('count'))}, "
                 f"_mget missing {_fmt(v.get('mget_missing'))}, errors {report['errors']}")
    lines.append("RESULT: " + ("OK" if report["ok"] else "FAILED: " + "; ".join(report["problems"])))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="load_test.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="duration of the load phase (default 60)")
    p.add_argument("--clients", type=int, default=8, help="concurrent opensearch-py clients (default 8)")
    p.add_argument("--port", type=int, default=0, help="loopback port for segstore serve (default: a free one)")
    p.add_argument("--out", default=None, help="write the report as JSON to this file")
    p.add_argument("--dim", type=int, default=64, help="vector dimension (default 64)")
    p.add_argument("--batch", type=int, default=100, help="documents per _bulk (default 100)")
    p.add_argument("--search-ratio", type=float, default=0.5, help="share of requests that are kNN searches")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=None, help="data directory (default: a temporary one, removed afterwards)")
    p.add_argument("--timeout", type=float, default=120.0, help="grace period for in-flight requests (s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (data + server log)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or not 0.0 <= args.search_ratio <= 1.0:
        print("load_test.py: --clients >= 1, --seconds > 0 and 0 <= --search-ratio <= 1", file=sys.stderr)
        return 2
    report = run(args)
    print(table(report))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
