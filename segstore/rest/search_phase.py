"""The query phase of ``_search`` / ``_count``: one shard per index, shard failures as OpenSearch reports them.

The request body is parsed once up front (a parse error, such as an unknown query or a malformed ``knn``
clause, fails the request directly). What a shard finds wrong fails that shard only:

* building the query against the shard's mapping (field type, vector dimension, method parameters...)
  raises inside ``QueryShardContext#toQuery``, which wraps it as ``query_shard_exception``
  ``failed to create query: <reason>`` (with the original as ``caused_by``);
* ``from + size`` beyond the index's ``index.max_result_window`` is rejected as is
  (``illegal_argument_exception``, ``DefaultSearchContext#preProcess``).

Failed shards are listed in ``_shards.failures``; when every shard failed the request fails with
``search_phase_execution_exception`` ``all shards failed`` (``phase``, ``grouped``, ``failed_shards``), whose
root causes are the shard failures' and whose ``caused_by`` is rendered only when it is not already one of
them (``SearchPhaseExecutionException#toXContent``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from segstore.errors import IllegalArgumentError, SegstoreError, ValidationError
from segstore.node import Node
from segstore.rest.response import render_error
from segstore.search.inner_hits import DEFAULT_MAX_INNER_WINDOW
from segstore.search.query_dsl import ParsedQuery
from segstore.search.searcher import Hit, IndexSearcher

__all__ = ["Shard", "ShardFailure", "SearchPhaseError", "run_query_phase", "node_id"]


@dataclass
class Shard:
    searcher: IndexSearcher
    uuid: str

    @property
    def index(self) -> str:
        return self.searcher.index


@dataclass
class ShardFailure:
    index: str
    node: str
    cause: SegstoreError
    wrapped: bool  # the cause is an OpenSearchException of its own (not re-rendered as caused_by)

    @property
    def status(self) -> int:
        return self.cause.status if isinstance(self.cause, ValidationError) else 500

    def json(self) -> dict[str, Any]:
        return {"shard": 0, "index": self.index, "node": self.node, "reason": render_error(self.cause)}


class SearchPhaseError(ValidationError):
    """``SearchPhaseExecutionException`` with its shard failures."""

    error_type = "search_phase_execution_exception"

    def __init__(self, message: str, failures: list[ShardFailure], phase: str = "query") -> None:
        super().__init__(message)
        self.status = failures[0].status
        for f in failures[1:]:
            if f.status >= 500:
                self.status = f.status
        self.root_causes = [render_error(f.cause, skip_cause=True) for f in failures]
        self.extra = {"phase": phase, "grouped": True, "failed_shards": [f.json() for f in failures]}
        first = failures[0]
        self.caused_by = None if first.wrapped else first.cause  # type: ignore[assignment]


def node_id(node: Node) -> str:
    """A stable 22-character node id (the shape of OpenSearch's), derived from the data directory."""
    return base64.urlsafe_b64encode(hashlib.sha1(node.data_dir.encode()).digest()).decode("ascii")[:22]


def _query_shard_error(shard: Shard, e: ValidationError) -> ValidationError:
    wrapped = ValidationError(f"failed to create query: {e.message}", "query_shard_exception", e.status, caused_by=e)
    wrapped.extra = {"index": shard.index, "index_uuid": shard.uuid}  # type: ignore[attr-defined]
    return wrapped


def _window_error(shard: Shard, window: int) -> IllegalArgumentError | None:
    limit = int(shard.searcher.settings.get("index.max_result_window") or 10000)
    if window <= limit:
        return None
    return IllegalArgumentError(
        f"Result window is too large, from + size must be less than or equal to: [{limit}] but was [{window}]. "
        "See the scroll api for a more efficient way to request large data sets. This limit can be set by "
        "changing the [index.max_result_window] index level setting.")


def _inner_window_error(shard: Shard, pq: ParsedQuery) -> IllegalArgumentError | None:
    """``InnerHitContextBuilder#build``: the inner hits' ``from + size`` against ``index.max_inner_result_window``.
    The message names the inner hit definition's own ``name``, which is ``null`` when it has none."""
    spec = pq.knn.nested.inner_hits if pq.knn is not None and pq.knn.nested is not None else None
    if spec is None:
        return None
    limit = int(shard.searcher.settings.get("index.max_inner_result_window") or DEFAULT_MAX_INNER_WINDOW)
    window = spec.from_ + spec.size
    if window <= limit:
        return None
    return IllegalArgumentError(
        f"Inner result window is too large, the inner hit definition's [{'null' if spec.name is None else spec.name}]'s from + size must be less "
        f"than or equal to: [{limit}] but was [{window}]. This limit can be set by changing the "
        "[index.max_inner_result_window] index level setting.")


def shard_exception(shard: Shard, e: ValidationError) -> ValidationError:
    """A ``query_shard_exception`` raised by a shard, with the index it names."""
    e.extra = {"index": shard.index, "index_uuid": shard.uuid}  # type: ignore[attr-defined]
    return e


def run_query_phase(node: Node, shards: list[Shard], parsed: list[ParsedQuery], window: int | None,
                    allow_partial: bool = True, check: Callable[[int, Shard], None] | None = None,
                    ) -> tuple[list[tuple[int, int, list[Hit]]], list[ShardFailure]]:
    """``[(shard number, total, hits)]`` of the shards that succeeded, and the failures. Raises when every
    shard failed (or any did and partial results are not allowed). ``check(shard number, shard)`` runs the
    request's other per-shard validation (sort, aggregations): a ``query_shard_exception`` it raises is
    reported as is, with the index; any other error as the shard's failure."""
    ok: list[tuple[int, int, list[Hit]]] = []
    failures: list[ShardFailure] = []
    nid = node_id(node)
    for si, (shard, pq) in enumerate(zip(shards, parsed)):
        err = _window_error(shard, window) if window is not None else None
        err = err or _inner_window_error(shard, pq)
        if err is not None:
            failures.append(ShardFailure(shard.index, nid, err, wrapped=False))
            continue
        if check is not None:
            try:
                check(si, shard)
            except ValidationError as e:
                shard_level = e.error_type == "query_shard_exception"
                failures.append(ShardFailure(shard.index, nid, shard_exception(shard, e) if shard_level else e,
                                             wrapped=shard_level))
                continue
        try:
            total, hits = shard.searcher.hits(pq)
        except ValidationError as e:
            if e.error_type == "parsing_exception":  # QueryShardContext rethrows parsing errors unwrapped
                failures.append(ShardFailure(shard.index, nid, e, wrapped=True))
            else:
                failures.append(ShardFailure(shard.index, nid, _query_shard_error(shard, e), wrapped=True))
            continue
        except SegstoreError as e:
            failures.append(ShardFailure(shard.index, nid, e, wrapped=False))
            continue
        ok.append((si, total, hits))
    if failures and not ok:
        raise SearchPhaseError("all shards failed", failures)
    if failures and not allow_partial:
        raise SearchPhaseError("Partial shards failure", failures)
    return ok, failures


def shards_json(total: int, failures: list[ShardFailure]) -> dict[str, Any]:
    out: dict[str, Any] = {"total": total, "successful": total - len(failures), "skipped": 0, "failed": len(failures)}
    if failures:
        out["failures"] = [f.json() for f in failures]
    return out
