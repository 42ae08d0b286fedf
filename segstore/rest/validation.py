"""Request checks shared by the REST handlers, with OpenSearch's messages.

* parameter parsing (``RestRequest#paramAsLong`` / ``paramAsInt``, ``WriteRequest.RefreshPolicy#parse``);
* ``ActionRequest#validate`` failures, collected and rendered as ``action_request_validation_exception``
  ``"Validation Failed: 1: ...;2: ...;"`` (``DocWriteRequest#validateSeqNoBasedCASParams`` and friends);
* JSON token names (``XContentParser.Token``) for parse errors that name the token they found;
* shard metadata (``index_uuid``, ``shard``, ``index``) that engine errors carry in OpenSearch.

All checks run before anything is written.
"""

from __future__ import annotations

import re
from typing import Any

from segstore.errors import (
    DocumentMissingError,
    IllegalArgumentError,
    SegstoreError,
    ValidationError,
    VersionConflictError,
)
from segstore.rest.response import RestRequest

__all__ = ["token_name", "validation_error", "refresh_policy", "long_param", "int_param", "cas_params",
           "cas_messages", "id_messages", "version_messages", "read_version", "with_shard", "UNASSIGNED_SEQ_NO"]

UNASSIGNED_SEQ_NO = -2  # SequenceNumbers.UNASSIGNED_SEQ_NO: an if_seq_no of -2 means "not set"
MAX_ID_BYTES = 512
_LONG = re.compile(r"[+-]?[0-9]+")
_VERSION_TYPES = ("internal", "external", "external_gte")
_MATCH_ANY, _MATCH_DELETED = -3, -4  # Versions.MATCH_ANY / MATCH_DELETED


def token_name(value: Any) -> str:
    """The XContent token a JSON value starts with."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER"
    return "VALUE_STRING"


def validation_error(messages: list[str]) -> ValidationError:
    """``ActionRequestValidationException``: ``Validation Failed: 1: a;2: b;``."""
    text = "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))
    return ValidationError(f"Validation Failed: {text}", "action_request_validation_exception")


def refresh_policy(req: RestRequest) -> str:
    """``false`` / ``true`` / ``wait_for`` (``RefreshPolicy#parse``: an empty value means ``true``)."""
    value = req.param("refresh")
    if value is None or value == "false":
        return "false"
    if value in ("", "true"):
        return "true"
    if value == "wait_for":
        return "wait_for"
    raise IllegalArgumentError(f"Unknown value for refresh: [{value}].")


def _number(req: RestRequest, name: str, kind: str, bits: int) -> int | None:
    value = req.param(name)
    if value is None:
        return None
    if _LONG.fullmatch(value) and -(1 << (bits - 1)) <= int(value) < (1 << (bits - 1)):
        return int(value)
    cause = ValidationError(f'For input string: "{value}"', "number_format_exception")
    raise IllegalArgumentError(f"Failed to parse {kind} parameter [{name}] with value [{value}]", caused_by=cause)


def long_param(req: RestRequest, name: str) -> int | None:
    return _number(req, name, "long", 64)


def int_param(req: RestRequest, name: str) -> int | None:
    return _number(req, name, "int", 32)


def cas_values(if_seq_no: int | None, if_primary_term: int | None) -> tuple[int | None, int | None]:
    """Apply ``setIfSeqNo`` / ``setIfPrimaryTerm``'s argument checks; unassigned values become None."""
    if if_seq_no is not None and if_seq_no < 0 and if_seq_no != UNASSIGNED_SEQ_NO:
        raise IllegalArgumentError(f"sequence numbers must be non negative. got [{if_seq_no}].")
    if if_primary_term is not None and if_primary_term < 0:
        raise IllegalArgumentError(f"primary term must be non negative. got [{if_primary_term}].")
    return (None if if_seq_no in (None, UNASSIGNED_SEQ_NO) else if_seq_no,
            None if if_primary_term in (None, 0) else if_primary_term)


def cas_params(req: RestRequest) -> tuple[int | None, int | None]:
    return cas_values(long_param(req, "if_seq_no"), long_param(req, "if_primary_term"))


def cas_messages(if_seq_no: int | None, if_primary_term: int | None) -> list[str]:
    """The seq-no half of ``DocWriteRequest#validateSeqNoBasedCASParams``."""
    if if_seq_no is not None and if_primary_term is None:
        return ["ifSeqNo is set, but primary term is [0]"]
    if if_seq_no is None and if_primary_term is not None:
        return [f"ifSeqNo is unassigned, but primary term is [{if_primary_term}]"]
    return []


def id_messages(doc_id: str | None) -> list[str]:
    if doc_id is not None and len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        n = len(doc_id.encode("utf-8"))
        return [f"id [{doc_id}] is too long, must be no longer than {MAX_ID_BYTES} bytes but was: {n}"]
    return []


def version_messages(version: int | None, version_type: str | None, *, if_seq_no: int | None,
                     create: bool = False) -> list[str]:
    """The versioning half of ``IndexRequest#validate`` / ``validateSeqNoBasedCASParams``.

    Internal versioning cannot be used for writes (OpenSearch's own rule). External versioning
    (``external``: the given version must be higher than the current one; ``external_gte``: at least as high)
    needs a version >= 0, cannot be combined with ``if_seq_no``, and not with ``create``."""
    if version_type is not None and version_type not in _VERSION_TYPES:
        raise IllegalArgumentError(f"No version type match [{version_type}]")
    if version_type in ("external", "external_gte"):
        if create:
            return ["create operations only support internal versioning. use index instead"]
        given = _MATCH_ANY if version is None else version
        msgs = [] if given >= 0 else [f"illegal version value [{given}] for version type [{version_type.upper()}]"]
        if if_seq_no is not None:
            msgs.append("compare and write operations can not use versioning")
        return msgs
    if version is None or version == _MATCH_ANY:
        return []
    if version == _MATCH_DELETED:
        raise IllegalArgumentError("version [-4] (create-if-absent) is not supported by segstore; use op_type=create")
    msgs = []
    if version <= 0:
        msgs.append(f"illegal version value [{version}] for version type [INTERNAL]")
    msgs.append("internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` "
                "and `if_primary_term` instead")
    if if_seq_no is not None:
        msgs.append("compare and write operations can not use versioning")
    return msgs


def external_version(version: int | None, version_type: str | None) -> tuple[int | None, str]:
    """``(version, version_type)`` for the writer: the version only matters for external versioning."""
    if version_type in ("external", "external_gte"):
        return version, version_type
    return None, "internal"


def read_version(req: RestRequest) -> int | None:
    """GET's ``version``/``version_type``: the version the document must have (None: any)."""
    version_type = req.param("version_type")
    if version_type is not None and version_type not in _VERSION_TYPES:
        raise IllegalArgumentError(f"No version type match [{version_type}]")
    version = long_param(req, "version")
    return None if version is None or version == _MATCH_ANY else version


def read_conflict(doc_id: str, current: int, expected: int) -> VersionConflictError:
    return VersionConflictError(f"[{doc_id}]: version conflict, current version [{current}] is different than the "
                                f"one provided [{expected}]")


def with_shard(e: SegstoreError, index: str, uuid: bytes) -> SegstoreError:
    """Engine errors carry their shard (``EngineException`` / ``DocumentMissingException`` metadata)."""
    if isinstance(e, (VersionConflictError, DocumentMissingError)) and not getattr(e, "extra", None):
        e.extra = {"index_uuid": uuid.hex(), "shard": "0", "index": index}  # type: ignore[attr-defined]
    return e
