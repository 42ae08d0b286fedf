"""Typed errors raised by segstore.

Every error is a :class:`SegstoreError`. Errors that stand for an OpenSearch REST error carry the REST
``error_type`` (for example ``mapper_parsing_exception``) and HTTP ``status`` so that the REST layer can
render OpenSearch's error body without guessing.

Storage errors name the file they concern (``.file``), and the message says what was expected and what was
found, following Lucene's ``CorruptIndexException`` ("... (resource=<file>)").
"""

from __future__ import annotations

__all__ = [
    "SegstoreError",
    "StorageIOError",
    "DiskFullError",
    "CorruptIndexError",
    "TruncatedFileError",
    "ChecksumMismatchError",
    "SegmentIdMismatchError",
    "IndexFormatError",
    "IndexFormatTooOldError",
    "IndexFormatTooNewError",
    "TranslogCorruptedError",
    "LockObtainFailedError",
    "AlreadyClosedError",
    "CatalogError",
    "MapFullError",
    "ValidationError",
    "MapperParsingError",
    "IllegalArgumentError",
    "ParseError",
    "IndexNotFoundError",
    "ResourceAlreadyExistsError",
    "VersionConflictError",
    "DocumentMissingError",
    "RoutingMissingError",
]


class SegstoreError(Exception):
    """Base class of every error segstore raises on purpose."""

    error_type: str = "exception"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ----------------------------------------------------------------------------------------------- storage


class StorageIOError(SegstoreError):
    """An operating-system I/O error, wrapped so callers can tell storage faults from bugs."""

    def __init__(self, message: str, cause: OSError | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.errno = cause.errno if cause is not None else None


class DiskFullError(StorageIOError):
    """No space left on device (ENOSPC), or a configured quota was reached."""


class CorruptIndexError(SegstoreError):
    """A file's bytes are not what its format promises. ``file`` names the damaged file."""

    error_type = "corrupt_index_exception"

    def __init__(self, message: str, file: str) -> None:
        super().__init__(f"{message} (resource={file})")
        self.file = file
        self.detail = message


class TruncatedFileError(CorruptIndexError):
    """The file is shorter (or longer) than its framing says: the footer is not where it must be."""


class ChecksumMismatchError(CorruptIndexError):
    """The CRC32 in the footer does not match the file's bytes."""

    def __init__(self, file: str, expected: int, actual: int) -> None:
        super().__init__(
            f"checksum failed (hardware problem?) : expected={expected:#010x} actual={actual:#010x}", file
        )
        self.expected = expected
        self.actual = actual


class SegmentIdMismatchError(CorruptIndexError):
    """The header names another segment (or suffix): a file was swapped in from elsewhere."""

    def __init__(self, file: str, what: str, expected: str, actual: str) -> None:
        super().__init__(f"file mismatch, expected {what}={expected}, got={actual}", file)
        self.expected = expected
        self.actual = actual


class IndexFormatError(SegstoreError):
    """The file is intact but written in a format version this code cannot read."""

    error_type = "index_format_exception"

    def __init__(self, message: str, file: str, version: int, min_version: int, max_version: int) -> None:
        super().__init__(f"{message} (resource={file})")
        self.file = file
        self.version = version
        self.min_version = min_version
        self.max_version = max_version


class IndexFormatTooOldError(IndexFormatError):
    """The file's format version is older than the oldest this code reads."""

    error_type = "index_format_too_old_exception"


class IndexFormatTooNewError(IndexFormatError):
    """The file's format version is newer than this code knows: written by a newer segstore."""

    error_type = "index_format_too_new_exception"


class TranslogCorruptedError(CorruptIndexError):
    """The write-ahead log is damaged inside its checkpointed (acknowledged) range."""

    error_type = "translog_corrupted_exception"


class LockObtainFailedError(SegstoreError):
    """Another writer (in this process or another) holds the index write lock."""

    error_type = "lock_obtain_failed_exception"


class AlreadyClosedError(SegstoreError):
    """The object was closed; if a fatal ("tragic") error closed it, ``cause`` carries that error."""

    error_type = "already_closed_exception"

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        if cause is not None:
            message = f"{message}; tragic cause: {cause!r}"
        super().__init__(message)
        self.__cause__ = cause
        self.cause = cause


class CatalogError(SegstoreError):
    """The LMDB catalog refused an operation."""


class MapFullError(CatalogError):
    """The LMDB map is full and could not grow; raise ``catalog.map_size`` (or free disk space)."""


# -------------------------------------------------------------------------------------- REST-typed errors


class ValidationError(SegstoreError):
    """Bad input rejected before anything is written. Carries OpenSearch's error type and status."""

    error_type = "illegal_argument_exception"
    status = 400

    def __init__(
        self,
        message: str,
        error_type: str | None = None,
        status: int | None = None,
        caused_by: "ValidationError | None" = None,
    ) -> None:
        super().__init__(message)
        if error_type is not None:
            self.error_type = error_type
        if status is not None:
            self.status = status
        self.caused_by = caused_by

    def __str__(self) -> str:
        if self.caused_by is None:
            return self.message
        return f"{self.message}; caused by: {self.caused_by}"


class MapperParsingError(ValidationError):
    """OpenSearch's ``mapper_parsing_exception``: an invalid mapping or a document that does not fit it."""

    error_type = "mapper_parsing_exception"


class IllegalArgumentError(ValidationError):
    """OpenSearch's ``illegal_argument_exception``."""

    error_type = "illegal_argument_exception"


class ParseError(ValidationError):
    """OpenSearch's ``parse_exception``: the request body is not valid JSON or NDJSON."""

    error_type = "parse_exception"


class IndexNotFoundError(ValidationError):
    """OpenSearch's ``index_not_found_exception`` (404)."""

    error_type = "index_not_found_exception"
    status = 404

    def __init__(self, index: str) -> None:
        super().__init__(f"no such index [{index}]")
        self.index = index


class ResourceAlreadyExistsError(ValidationError):
    """OpenSearch's ``resource_already_exists_exception`` (400)."""

    error_type = "resource_already_exists_exception"


class VersionConflictError(ValidationError):
    """OpenSearch's ``version_conflict_engine_exception`` (409)."""

    error_type = "version_conflict_engine_exception"
    status = 409


class DocumentMissingError(ValidationError):
    """OpenSearch's ``document_missing_exception`` (404), raised by updates of absent documents."""

    error_type = "document_missing_exception"
    status = 404


class RoutingMissingError(ValidationError):
    """OpenSearch's ``routing_missing_exception`` (400): the mapping says ``_routing.required`` and the request
    named no routing. Like ``OpenSearchException#setIndex(String)``, it carries the index and an unknown uuid."""

    error_type = "routing_missing_exception"

    def __init__(self, index: str, doc_id: str) -> None:
        super().__init__(f"routing is required for [{index}]/[{doc_id}]")
        self.extra = {"index_uuid": "_na_", "index": index}
