"""The one REST router: ``(method, path, params, body) -> (status, headers, JSON body)``.

Both front ends (the in-process opensearch-py transport and ``segstore serve``) call :meth:`Router.handle`.
Routes declare the query parameters they accept; any other parameter is rejected as OpenSearch does
(``request [...] contains unrecognized parameter: [...]``). Static path segments win over placeholders.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from segstore.errors import IllegalArgumentError, SegstoreError
from segstore.node import Node
from segstore.rest.response import RestRequest, RestResponse, apply_filter_path, error_response

__all__ = ["Router", "Route"]

log = logging.getLogger(__name__)
Handler = Callable[[Node, RestRequest], RestResponse]
_COMMON = {"pretty", "human", "error_trace", "filter_path", "master_timeout", "cluster_manager_timeout",
           "timeout", "wait_for_active_shards", "source", "source_content_type"}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Handler
    params: frozenset[str]

    @property
    def specificity(self) -> tuple[int, int]:
        return (sum(1 for p in self.pattern if not p.startswith("{")), len(self.pattern))

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.pattern):
            return None
        out = {}
        for want, got in zip(self.pattern, parts):
            if want.startswith("{"):
                if not got or (got.startswith("_") and want in ("{index}",)):
                    return None
                out[want[1:-1]] = got
            elif want != got:
                return None
        return out


class Router:
    """Dispatches requests to handlers; every route is registered by the handler modules."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._routes: list[Route] = []
        self._lock = threading.Lock()
        from segstore.rest import handlers_docs, handlers_indices, handlers_search  # noqa: PLC0415

        for module in (handlers_indices, handlers_docs, handlers_search):
            module.register(self)

    def add(self, method: str, path: str, handler: Handler, params: str = "") -> None:
        parts = tuple(p for p in path.split("/") if p)
        self._routes.append(Route(method, parts, handler, frozenset(params.split()) | _COMMON))
        self._routes.sort(key=lambda r: r.specificity, reverse=True)

    def handle(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
               headers: dict[str, str] | None = None) -> RestResponse:
        method = method.upper()
        raw_path = path.split("?", 1)[0]
        parts = [unquote(p) for p in raw_path.split("/") if p]
        params = {k: _param_str(v) for k, v in (params or {}).items()}
        allowed_methods = []
        for route in self._routes:
            pp = route.match(parts)
            if pp is None:
                continue
            if route.method != method:
                allowed_methods.append(route.method)
                continue
            unknown = sorted(set(params) - route.params)
            if unknown:
                what = "parameter" if len(unknown) == 1 else "parameters"
                return error_response(IllegalArgumentError(
                    f"request [{raw_path}] contains unrecognized {what}: [{', '.join(unknown)}]"))
            req = RestRequest(method, raw_path, params, body, dict(headers or {}), pp)
            try:
                resp = route.handler(self.node, req)
            except SegstoreError as e:
                return error_response(e)
            except Exception as e:  # noqa: BLE001 - a bug must become a 500, never kill the server
                log.exception("unhandled error for %s %s", method, raw_path)
                return RestResponse(500, {"error": {"root_cause": [{"type": "exception", "reason": repr(e)}],
                                                    "type": "exception", "reason": repr(e)}, "status": 500})
            if "filter_path" in params and isinstance(resp.body, (dict, list)):
                resp.body = apply_filter_path(resp.body, params["filter_path"])
            return resp
        if allowed_methods:
            return RestResponse(405, {"error": f"Incorrect HTTP method for uri [{raw_path}] and method "
                                      f"[{method}], allowed: {sorted(set(allowed_methods))}", "status": 405})
        return RestResponse(400, {"error": f"no handler found for uri [{raw_path}] and method [{method}]",
                                  "status": 400})


def _param_str(v: Any) -> str:
    """Query parameter values as text (opensearch-py hands some over as bytes, callers may pass bools)."""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8")
    if isinstance(v, (list, tuple)):
        return ",".join(_param_str(x) for x in v)
    return str(v)


def json_body(req: RestRequest, *, required: bool = False) -> Any:
    """The request body as JSON values (parsed here when it arrived as text)."""
    body = req.body
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        if not body.strip():
            body = None
        else:
            try:
                body = json.loads(body)
            except json.JSONDecodeError as e:
                from segstore.errors import ParseError  # noqa: PLC0415

                raise ParseError(f"Failed to parse content to map: {e.msg} at line {e.lineno} column {e.colno}"
                                 ) from None
    if body is None and required:
        from segstore.errors import ParseError  # noqa: PLC0415

        raise ParseError("request body is required")
    return body
