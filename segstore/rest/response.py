"""REST request/response values and OpenSearch's error body."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import IndexNotFoundError, SegstoreError, ValidationError

__all__ = ["RestRequest", "RestResponse", "error_response", "render_error", "apply_filter_path"]


@dataclass
class RestRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any  # dict/list (embedded client), str/bytes (HTTP), or None
    headers: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def bool_param(self, name: str, default: bool = False) -> bool:
        v = self.params.get(name)
        if v is None:
            return default
        if v in ("", "true"):
            return True
        if v == "false":
            return False
        raise ValidationError(f"Failed to parse value [{v}] as only [true] or [false] are allowed.")


@dataclass
class RestResponse:
    status: int
    body: Any = None
    content_type: str = "application/json; charset=UTF-8"

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": self.content_type}


def _cause_of(e: BaseException) -> SegstoreError | None:
    """The error rendered as ``caused_by``: an explicit ``caused_by``, else a request error raised ``from``
    another one (the mapping layer wraps its messages in ``Failed to parse mapping [_doc]: ...`` that way)."""
    cause = getattr(e, "caused_by", None)
    if isinstance(cause, SegstoreError):
        return cause
    if isinstance(e, ValidationError) and isinstance(e.__cause__, ValidationError):
        return e.__cause__
    return None


def render_error(e: SegstoreError, *, skip_cause: bool = False) -> dict[str, Any]:
    """OpenSearch's ``generateThrowableXContent``: type, reason, metadata, then ``caused_by`` (recursively)."""
    c: dict[str, Any] = {"type": e.error_type, "reason": e.message}
    if isinstance(e, IndexNotFoundError):
        c.update({"index": e.index, "resource.id": e.index, "resource.type": "index_or_alias",
                  "index_uuid": "_na_"})
    extra = getattr(e, "extra", None)
    if extra:
        c.update(extra)
    cause = _cause_of(e)
    if cause is not None and not skip_cause:
        c["caused_by"] = render_error(cause)
    return c


def error_response(e: SegstoreError) -> RestResponse:
    """OpenSearch's ``{"error": {"root_cause": [...], "type", "reason", ...}, "status": N}``.

    ``root_cause`` entries never carry ``caused_by``; an error may name its own root causes (a search phase
    failure lists those of its shard failures)."""
    roots = getattr(e, "root_causes", None) or [render_error(e, skip_cause=True)]
    err = {"root_cause": roots, **render_error(e)}
    status = e.status if isinstance(e, ValidationError) or e.status else 500
    return RestResponse(status, {"error": err, "status": status})


def apply_filter_path(body: Any, filter_path: str) -> Any:
    """Keep only the dotted paths matching the comma-separated ``filter_path`` patterns (``*`` and ``**``)."""
    patterns = [p.strip() for p in filter_path.split(",") if p.strip()]
    includes = [p for p in patterns if not p.startswith("-")]
    excludes = [p[1:] for p in patterns if p.startswith("-")]

    def match(path: list[str], pats: list[str]) -> bool:
        dotted = ".".join(path)
        return any(fnmatch.fnmatchcase(dotted, p.replace("**", "*")) for p in pats)

    def prefix_ok(path: list[str]) -> bool:
        for p in includes:
            parts = p.split(".")
            if "**" in parts[: len(path)] or all(fnmatch.fnmatchcase(a, b) for a, b in zip(path, parts)):
                return True
        return False

    def walk(node: Any, path: list[str]) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                p = path + [k]
                if excludes and match(p, excludes):
                    continue
                if not includes or match(p, includes):
                    out[k] = v if not excludes else walk(v, p)
                elif prefix_ok(p):
                    sub = walk(v, p)
                    if sub not in (None, {}, []):
                        out[k] = sub
            return out
        if isinstance(node, list):
            items = [walk(v, path) for v in node]
            return [i for i in items if i not in (None, {}, [])]
        return None

    return walk(body, []) if patterns else body
