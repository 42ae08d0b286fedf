"""The embedded client: an ``opensearchpy.OpenSearch`` whose transport calls the router in process.

No socket and no JSON round trip: request bodies that opensearch-py hands over as dicts reach the router
as dicts, and response dicts come back as they are. NDJSON (``_bulk``) arrives as the text the client
built. Errors are raised as the same opensearch-py exception classes a cluster would produce (by status),
so ``except NotFoundError`` and friends work unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from opensearchpy import OpenSearch, Transport
from opensearchpy.exceptions import HTTP_EXCEPTIONS, TransportError

from segstore.node import Node
from segstore.rest.router import Router

__all__ = ["EmbeddedTransport", "connect"]


class EmbeddedTransport(Transport):
    """An opensearch-py ``Transport`` over an in-process :class:`Router`."""

    def __init__(self, hosts: Any = None, *, node: Node | None = None, data_dir: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__([{"host": "embedded", "port": 0}], **kwargs)
        if node is None:
            node = Node(data_dir or "./segstore-data")
        self.node = node
        self.router = Router(node)

    def perform_request(self, method: str, url: str, params: Any = None, body: Any = None,
                        timeout: Any = None, ignore: Any = (), headers: Any = None) -> Any:
        params = dict(params or {})
        for key in ("request_timeout", "timeout"):
            params.pop(key, None) if key == "request_timeout" else None
        ignore = params.pop("ignore", ignore) or ()
        if isinstance(ignore, int):
            ignore = (ignore,)
        resp = self.router.handle(method, url, params, body, dict(headers or {}))
        if method == "HEAD":
            if 200 <= resp.status < 300:
                return True
            if resp.status == 404:
                return False
        if not 200 <= resp.status < 300 and resp.status not in ignore:
            info = resp.body
            error = info
            if isinstance(info, dict):
                error = info.get("error", info)
                if isinstance(error, dict) and "type" in error:
                    error = error["type"]
            raise HTTP_EXCEPTIONS.get(resp.status, TransportError)(resp.status, error, info)
        return resp.body

    def close(self) -> None:
        self.node.close()


def connect(path: str | os.PathLike[str] = "./segstore-data", **kwargs: Any) -> OpenSearch:
    """An opensearch-py client over the data directory ``path``; ``client.close()`` closes the node."""
    return OpenSearch(transport_class=EmbeddedTransport, data_dir=os.fspath(path), **kwargs)
