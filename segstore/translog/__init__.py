"""The translog (write-ahead log): see :mod:`segstore.translog.translog` for the folder layout,
:mod:`segstore.translog.tlog_file` and :mod:`segstore.translog.checkpoint` for the file grammars."""

from __future__ import annotations

from segstore.translog.checkpoint import Checkpoint
from segstore.translog.translog import Translog, TranslogStats

__all__ = ["Translog", "Checkpoint", "TranslogStats"]
