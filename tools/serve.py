"""``segstore serve``: an OpenSearch-compatible HTTP endpoint on a data directory."""

from __future__ import annotations

import argparse
import signal
import sys

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from segstore.rest.server import serve  # noqa: PLC0415

    # SIGTERM becomes KeyboardInterrupt so the node commits and closes cleanly.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"segstore serving {args.data} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        serve(args.data, args.host, args.port, args.threads)
    except KeyboardInterrupt:
        pass
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve a data directory over HTTP with OpenSearch's REST API")
    p.add_argument("--data", default="./segstore-data", help="data directory (default ./segstore-data)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--threads", type=int, default=8, help="HTTP worker threads")
    p.add_argument("--json", action="store_true", help="(accepted for uniformity; serve prints no report)")
    p.set_defaults(func=_run)
