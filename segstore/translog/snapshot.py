"""Reading operations back: an iterator over a fixed set of generation files, each verified as it is read
(header, then every record up to the offset the translog had synced when the snapshot was taken).

The files are opened by :meth:`Translog.read_ops` under the translog's lock, so trimming cannot delete them
first (an open file stays readable); the snapshot owns them from then on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from segstore.translog.tlog_file import iter_records, read_tlog_header

__all__ = ["OpsSnapshot"]


class OpsSnapshot(Iterator[dict[str, Any]]):
    """Iterator over a fixed set of already-open generation files; closes them when exhausted, on
    ``close()`` / ``with``, or when garbage-collected (even if never iterated, unlike a generator)."""

    def __init__(self, uuid: bytes, plan: list[tuple[int, int]], files: list[IO[bytes]]) -> None:
        self._files = files
        self._ops = self._generate(uuid, plan, files)

    @staticmethod
    def _generate(uuid: bytes, plan: list[tuple[int, int]], files: list[IO[bytes]]) -> Iterator[dict[str, Any]]:
        for (g, end), fh in zip(plan, files):
            start = read_tlog_header(fh, fh.name, uuid, g)
            for _, op in iter_records(fh, fh.name, start, end):
                yield op

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self._ops)
        except BaseException:  # exhausted or failed: release the files right away
            self.close()
            raise

    def close(self) -> None:
        for fh in self._files:
            fh.close()

    def __enter__(self) -> OpsSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
