"""``PUT /<index>/_settings``: validate a settings update against OpenSearch's rules, persist it, apply it.

``MetadataUpdateSettingsService#updateSettings``: keys are normalised to ``index.*`` and checked in order
(unknown settings, private settings, then each value); non-dynamic settings of an open index are refused as a
whole (``Can't update non dynamic settings [[k]] for open indices [[name/uuid]]``). A ``null`` value resets the
setting to its default. The new settings are written to the catalog (the commit point, so they survive a
restart) and take effect at once: the writer's :class:`IndexSettings` is replaced (searches read ef_search and
``max_result_window`` from it, the node's refresh loop reads ``refresh_interval``), the translog switches
durability, and the tiered merge policy and merge scheduler are rebuilt from the new values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.index.index_files import IndexFiles
from segstore.index.merge_policy import TieredMergePolicy
from segstore.index.merge_scheduler import ConcurrentMergeScheduler
from segstore.index.settings import DYNAMIC, KNOWN, PRIVATE, IndexSettings

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["check_update", "merged_settings", "apply_settings"]


def check_update(changes: dict[str, Any], open_indices: list[str]) -> None:
    """Raise what OpenSearch raises for these keys (values are checked by :func:`merged_settings`)."""
    for key in sorted(changes):
        if key not in KNOWN:
            raise IllegalArgumentError(
                f"unknown setting [{key}] please check that any required plugins are installed, or check the "
                "breaking changes documentation for removed settings")
        if key in PRIVATE:
            raise ValidationError(f"can not update private setting [{key}]; this setting is managed by OpenSearch",
                                  "settings_exception")
    static = sorted(k for k in changes if k not in DYNAMIC)
    if static and open_indices:
        raise IllegalArgumentError(f"Can't update non dynamic settings [[{', '.join(static)}]] for open indices "
                                   f"[{', '.join(f'[{i}]' for i in open_indices)}]")


def merged_settings(current: dict[str, Any], changes: dict[str, Any], preserve_existing: bool,
                    source_enabled: bool) -> tuple[dict[str, Any], IndexSettings]:
    """The stored flat settings after the update, and their validated form (raises on a bad value)."""
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif not (preserve_existing and key in out):
            out[key] = value
    return out, IndexSettings.parse(out, source_enabled=source_enabled)


def apply_settings(w: "IndexWriter", flat: dict[str, Any]) -> None:
    """Persist ``flat`` as the index's settings and make the running writer use them."""
    with w._lock:
        meta = dict(w.meta)
        meta["settings"] = flat
        settings, _ = IndexFiles.parse_metadata(meta)
        w.catalog.put_index_metadata(w.index_name, {k: v for k, v in meta.items() if k != "uuid"})
        w.meta = meta
        w.settings = settings
        w.translog.set_durability(settings.durability, settings.sync_interval)
        if isinstance(w.merge_policy, TieredMergePolicy):
            w.merge_policy = TieredMergePolicy.from_settings(settings)
        if isinstance(w.merge_scheduler, ConcurrentMergeScheduler):
            w.merge_scheduler.max_thread_count = ConcurrentMergeScheduler.from_settings(settings).max_thread_count
