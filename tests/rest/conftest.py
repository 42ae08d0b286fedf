"""Fixtures for the OpenSearch-interface suite: one ``client`` fixture, two front ends.

``client`` is parametrised over

* ``embedded``: ``segstore.connect(data_dir)``, the in-process opensearch-py transport;
* ``http``: a real ``segstore serve`` subprocess on a free loopback port, reached by a stock
  ``opensearchpy.OpenSearch``.

Both are module-scoped (one node / one server per test module and variant) so the suite stays fast; every
test gets its own index name from ``index_name`` (deleted again at teardown, so one test's indices never
leak into another's ``_cat`` output). The same test code runs against both variants.

``raw`` sends a request below opensearch-py and returns ``(status, content_type, body)``: over a real
socket for ``http``, straight into the router for ``embedded``. Tests use it where the HTTP status or the
exact bytes matter (``201 Created``, ``HEAD`` bodies, ``application/x-ndjson``).
"""

from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from segstore_tools.load_test import Server  # the one `segstore serve` subprocess helper

VARIANTS = ("embedded", "http")


def http_client(port: int) -> OpenSearch:
    return OpenSearch(hosts=[{"host": "127.0.0.1", "port": port}], timeout=60)


@pytest.fixture(scope="module", params=VARIANTS)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearch]:
    """An opensearch-py client on a fresh data directory, embedded or over HTTP."""
    import segstore

    data = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "embedded":
        c = segstore.connect(data)
        c.variant = "embedded"  # type: ignore[attr-defined]
        c.port = None  # type: ignore[attr-defined]
        try:
            yield c
        finally:
            c.close()
        return
    server = Server(str(data))
    c = http_client(server.port)
    c.variant = "http"  # type: ignore[attr-defined]
    c.port = server.port  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        c.close()
        code = server.stop()
        assert code == 0, f"segstore serve exited with {code} on SIGTERM: {server.log()}"


@pytest.fixture
def start_server() -> Iterator[Callable[[str], tuple[Server, OpenSearch]]]:
    """``start_server(data_dir) -> (server, http client)``: an extra ``segstore serve`` for this test only
    (stopped at teardown if the test did not stop it)."""
    started: list[tuple[Server, OpenSearch]] = []

    def start(data_dir: str) -> tuple[Server, OpenSearch]:
        server = Server(data_dir)
        started.append((server, http_client(server.port)))
        return started[-1]
    yield start
    for server, c in started:
        c.close()
        server.stop()


@pytest.fixture
def variant(client: OpenSearch) -> str:
    return client.variant  # type: ignore[attr-defined,no-any-return]


_NAME_BAD = re.compile(r"[^a-z0-9_-]+")


@pytest.fixture
def index_name(request: pytest.FixtureRequest, client: OpenSearch) -> Iterator[str]:
    """A unique, valid index name for this test; the index (and any ``<name>-*`` siblings) is deleted at
    teardown."""
    base = _NAME_BAD.sub("-", request.node.originalname.lower()).strip("-_")[:40] or "t"
    name = f"{base}-{uuid.uuid4().hex[:8]}"
    yield name
    for target in (f"{name}-*", name):
        try:
            client.indices.delete(index=target)
        except (NotFoundError, TransportError):
            pass


Raw = Callable[..., tuple[int, str, Any]]


@pytest.fixture
def raw(client: OpenSearch) -> Raw:
    """``raw(method, path, body=None, headers=None, params=None) -> (status, content_type, body)``.

    ``body`` may be a dict (sent as JSON) or str/bytes (sent verbatim). The returned body is parsed JSON
    for JSON responses, text for text responses, ``b""``-like empty for HEAD.
    """
    def _raw(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> tuple[int, str, Any]:
        if client.variant == "embedded":  # type: ignore[attr-defined]
            resp = client.transport.router.handle(method, path, params or {}, body, headers or {})
            # like the wire: a HEAD response has no body (the WSGI layer drops it too)
            return resp.status, resp.content_type, None if method == "HEAD" else resp.body
        from urllib.parse import urlencode

        url = path + ("?" + urlencode(params) if params else "")
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)  # type: ignore[attr-defined]
        try:
            conn.request(method, url, body=data, headers=hdrs)
            r = conn.getresponse()
            payload = r.read()
            ctype = r.getheader("content-type") or ""
        finally:
            conn.close()
        if method == "HEAD" or not payload:
            return r.status, ctype, None
        if ctype.startswith("application/json"):
            return r.status, ctype, json.loads(payload)
        return r.status, ctype, payload.decode("utf-8")
    return _raw


@pytest.fixture
def xfail_when(request: pytest.FixtureRequest) -> Callable[[bool, str], None]:
    """``xfail_when(cond, reason)``: mark the running test a strict xfail when ``cond`` holds (for engine bugs
    that show in one variant only, e.g. HTTP path decoding). Strict: the test fails once the bug is fixed,
    so the marker gets removed."""
    def mark(when: bool, reason: str) -> None:
        if when:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    return mark


KNN_SETTINGS = {"index.knn": True}


@pytest.fixture
def knn_index(client: OpenSearch) -> Callable[..., dict[str, Any]]:
    """``knn_index(name, dim=2, space="l2", engine="faiss", refresh_interval=None, extra_props=None)``:
    create a k-NN index with one float hnsw vector field ``v``; returns the mappings used."""
    return lambda name, dim=2, **kw: _knn_index(client, name, dim, **kw)


def _knn_index(client: OpenSearch, name: str, dim: int = 2, *, space: str = "l2", engine: str = "faiss",
               refresh_interval: str | None = None, extra_props: dict[str, Any] | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = dict(KNN_SETTINGS)
    if refresh_interval is not None:
        settings["index.refresh_interval"] = refresh_interval
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": dim, "space_type": space,
                                     "method": {"name": "hnsw", "engine": engine}},
                               **(extra_props or {})}}
    client.indices.create(index=name, body={"settings": settings, "mappings": mappings})
    return mappings
