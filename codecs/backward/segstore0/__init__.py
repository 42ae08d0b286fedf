"""``SegStore0``: the filter-based derived-source format (OpenSearch 2.19's ``KNN9120Codec``).

Segments of this generation hold the SegStore1 file formats unchanged, except that the stored ``_source``
had its ``knn_vector`` keys *removed* when it was written (no placeholder), and the derived fields are marked
by the field attribute :data:`LEGACY_FIELD_ATTRIBUTE` instead of segment attributes
(derived-source.md §3). Reading injects the vectors back (see :mod:`.stored_fields_reader`); there is no
writer. Importing this package registers the codec under :data:`CODEC_NAME`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segstore.codec.registry import codecs as _codecs
from segstore.errors import SegstoreError

if TYPE_CHECKING:
    from segstore_codecs.backward.segstore0.codec import SegStore0Codec

__all__ = ["CODEC_NAME", "LEGACY_FIELD_ATTRIBUTE", "ReadOnlyCodecError", "codec_factory", "register"]

CODEC_NAME = "SegStore0"
# FieldInfo attribute that marks a vector field whose values were removed from the stored _source.
LEGACY_FIELD_ATTRIBUTE = "segstore.derived_source.legacy"


class ReadOnlyCodecError(SegstoreError):
    """A write was attempted through the legacy (read-only) codec."""

    error_type = "unsupported_operation_exception"

    def __init__(self, what: str) -> None:
        super().__init__(f"codec [{CODEC_NAME}] is read-only: it cannot write {what} "
                         "(old segments are migrated by merges into the current codec)")


def codec_factory() -> SegStore0Codec:
    from segstore_codecs.backward.segstore0.codec import SegStore0Codec

    return SegStore0Codec()


def register() -> None:
    """Register the codec by name; a no-op if ``segstore_codecs`` (or an entry point) already did."""
    try:
        _codecs.register(CODEC_NAME, codec_factory)
    except ValueError:
        pass  # already registered with another factory of the same codec


register()
