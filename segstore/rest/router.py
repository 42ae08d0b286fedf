"""The one REST router: ``(method, path, params, body) -> (status, headers, JSON body)``.

Both front ends (the in-process opensearch-py transport and ``segstore serve``) call :meth:`Router.handle`.
Routes declare the query parameters they accept; any other parameter is rejected as OpenSearch does
(``request [...] contains unrecognized parameter: [...]``, with ``-> did you mean [...]?`` suggestions).
Static path segments win over placeholders. Bodies are parsed here (strict UTF-8 JSON).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

from segstore.errors import IllegalArgumentError, ParseError, SegstoreError, ValidationError
from segstore.node import Node
from segstore.rest.response import RestRequest, RestResponse, apply_filter_path, error_response

__all__ = ["Router", "Route", "json_body", "parse_json", "decode_text", "JsonSyntaxError", "unrecognized"]

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
        from segstore.rest import handlers_docs, handlers_indices, handlers_knn, handlers_models, handlers_search  # noqa: PLC0415

        # handlers_models before handlers_knn: GET /_plugins/_knn/models/{model_id} and GET
        # /_plugins/_knn/{nodeId}/stats tie on specificity and the first registered wins; OpenSearch's path trie
        # prefers the static "models" segment (so /_plugins/_knn/models/stats is a model id, not node stats)
        for module in (handlers_indices, handlers_docs, handlers_search, handlers_models, handlers_knn):
            module.register(self)

    def add(self, method: str, path: str, handler: Handler, params: str = "") -> None:
        parts = tuple(p for p in path.split("/") if p)
        self._routes.append(Route(method, parts, handler, frozenset(params.split()) | _COMMON))
        self._routes.sort(key=lambda r: r.specificity, reverse=True)

    def handle(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
               headers: dict[str, str] | None = None) -> RestResponse:
        """``path`` is the raw (still percent-encoded) request path: it is split on ``/`` first and each
        segment is decoded once, so an encoded ``/`` (``%2F``) stays inside its segment."""
        method = method.upper()
        raw_path = path.split("?", 1)[0]
        parts = [unquote(p) for p in raw_path.split("/") if p]
        shown_path = unquote(raw_path)
        params = {k: _param_str(v) for k, v in (params or {}).items()}
        allowed_methods = []
        for route in self._routes:
            pp = route.match(parts)
            if pp is None:
                continue
            if route.method != method:
                allowed_methods.append(route.method)
                continue
            unknown = set(params) - route.params
            if unknown:
                # candidates: every parameter the handler consumes, path parameters included
                names = route.params | {p[1:-1] for p in route.pattern if p.startswith("{")}
                return error_response(IllegalArgumentError(unrecognized(shown_path, unknown, names)))
            req = RestRequest(method, shown_path, params, body, dict(headers or {}), pp)
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


def _similarity(a: str, b: str) -> float:
    """Lucene's ``LevenshteinDistance#getDistance``: 1 - edits / max(length), in float32 as Java computes it."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0 if n == m else 0.0
    prev = list(range(n + 1))
    for j in range(1, m + 1):
        cur = [j] + [0] * n
        for i in range(1, n + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[i] = min(cur[i - 1] + 1, prev[i] + 1, prev[i - 1] + cost)
        prev = cur
    return float(np.float32(1.0) - np.float32(prev[n]) / np.float32(max(n, m)))


def unrecognized(path: str, invalids: set[str], candidates: frozenset[str] | set[str],
                 detail: str = "parameter") -> str:
    """``BaseRestHandler#unrecognized``: ``[a], [b]`` in sorted order, each with ``-> did you mean [x]?``
    naming the accepted ``detail``s (parameters, k-NN stats) more than 50 % similar (best first, then by name)."""
    what = detail + ("s" if len(invalids) > 1 else "")
    parts = []
    for invalid in sorted(invalids):
        scored = [(s, c) for c in candidates if (s := _similarity(invalid, c)) > 0.5]
        keys = [c for _, c in sorted(scored, key=lambda t: (-t[0], t[1]))]
        text = f"[{invalid}]"
        if len(keys) == 1:
            text += f" -> did you mean [{keys[0]}]?"
        elif keys:
            text += f" -> did you mean any of [{', '.join(keys)}]?"
        parts.append(text)
    return f"request [{path}] contains unrecognized {what}: {', '.join(parts)}"


def _param_str(v: Any) -> str:
    """Query parameter values as text (opensearch-py hands some over as bytes, callers may pass bools)."""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8")
    if isinstance(v, (list, tuple)):
        return ",".join(_param_str(x) for x in v)
    return str(v)


class JsonSyntaxError(Exception):
    """A request body that is not JSON (or not UTF-8); ``detail`` is the parser's message."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def as_cause(self) -> ValidationError:
        return ValidationError(self.detail, "json_parse_exception")


def decode_text(body: bytes | bytearray) -> str:
    """Strict UTF-8 (OpenSearch's parser rejects malformed UTF-8 instead of replacing it)."""
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonSyntaxError(f"Invalid UTF-8 ({e.reason}) at byte offset {e.start}: 0x{body[e.start]:02x}"
                              ) from None


def parse_json(body: Any) -> Any:
    """The body as JSON values (None when empty); raises :class:`JsonSyntaxError`."""
    if isinstance(body, (bytes, bytearray)):
        body = decode_text(body)
    if isinstance(body, str):
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except json.JSONDecodeError as e:
            raise JsonSyntaxError(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    return body


def json_body(req: RestRequest, *, required: bool = False) -> Any:
    """The request body as JSON values (parsed here when it arrived as text or bytes)."""
    try:
        body = parse_json(req.body)
    except JsonSyntaxError as e:
        raise ParseError(f"Failed to parse content to map: {e.detail}", caused_by=e.as_cause()) from None
    if body is None and required:
        raise ParseError("request body is required")
    return body
