"""``segstore serve``: the HTTP front end over the same router as the embedded client.

The server is waitress, a pure-Python production WSGI server: a thread pool for concurrent clients,
HTTP/1.1 keep-alive, and a request body limit (``max_request_body_size``) that it answers with ``413
Request Entity Too Large`` before reading the body. Bodies arrive as bytes; the router parses JSON and
NDJSON itself (strict UTF-8), whatever the ``content-type`` says (opensearch-py sends ``_bulk`` as
``application/json``). The path is taken from the raw request URI, so it is percent-decoded exactly once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from segstore.node import Node
from segstore.rest.router import Router

__all__ = ["make_wsgi_app", "request_target", "serve", "MAX_CONTENT_LENGTH"]

log = logging.getLogger(__name__)
MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # http.max_content_length default: 100mb


def request_target(environ: dict[str, Any]) -> tuple[str, str]:
    """``(raw path, raw query string)`` of the request line, still percent-encoded.

    WSGI's ``PATH_INFO`` is already percent-decoded (and latin-1): decoding it again in the router would
    decode ``%25xx`` twice, split ids on an encoded ``/`` and cut them at an encoded ``?``. The raw request
    URI (waitress: ``REQUEST_URI``, gunicorn: ``RAW_URI``) keeps the bytes the client sent; the router splits
    the path on ``/`` and decodes each segment once, as UTF-8."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw is None:  # a server without the raw URI: re-encode the decoded path
        path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/")
        return path or "/", environ.get("QUERY_STRING", "")
    target = raw.encode("latin-1").split(b"#", 1)[0]
    if not target.startswith(b"/"):  # absolute-form (``GET http://host/path``)
        parts = urlsplit(target)
        target = parts.path + (b"?" + parts.query if parts.query else b"")
    path, _, query = target.partition(b"?")
    return path.decode("utf-8", "replace") or "/", query.decode("utf-8", "replace")


def make_wsgi_app(router: Router) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path, query = request_target(environ)
        params = dict(parse_qsl(query, keep_blank_values=True))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None  # bytes: decoded (strictly) by the router
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        resp = router.handle(method, path, params, body, headers)
        if resp.body is None or method == "HEAD":
            payload = b""
        elif isinstance(resp.body, str):
            payload = resp.body.encode("utf-8")
        else:
            payload = json.dumps(resp.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        start_response(f"{resp.status} {reason}", [("content-type", resp.content_type),
                                                   ("content-length", str(len(payload)))])
        return [payload]
    return app


def serve(data_dir: str, host: str = "127.0.0.1", port: int = 9200, threads: int = 8,
          max_body: int = MAX_CONTENT_LENGTH) -> None:
    """Run the HTTP server until interrupted; the node is closed (committed) on the way out."""
    import waitress  # noqa: PLC0415 - only the server needs it

    node = Node(data_dir)
    try:
        waitress.serve(make_wsgi_app(Router(node)), host=host, port=port, threads=threads,
                       max_request_body_size=max_body, ident="segstore", clear_untrusted_proxy_headers=True,
                       channel_timeout=300)
    finally:
        node.close()
