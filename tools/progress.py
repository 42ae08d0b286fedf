"""Console plumbing shared by the operator subcommands: progress bars, output, confirmation, targets.

Conventions (reliability.md §10): exit code 0 = OK, 1 = a problem was found (or the work failed), 2 = usage
error. Every subcommand accepts ``--json``; then stdout carries exactly one JSON document (``dump`` and
``export`` without ``--json`` write NDJSON instead). Progress goes to stderr, only when stderr is a terminal
and ``--json`` is off: ``tqdm`` draws it when installed, else a plain one-line bar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TextIO

from segstore.errors import IndexNotFoundError, LockObtainFailedError, SegstoreError

__all__ = [
    "OK",
    "PROBLEM",
    "USAGE",
    "Progress",
    "UsageError",
    "add_command",
    "add_common_args",
    "command",
    "confirm",
    "countdown",
    "emit",
    "fail",
    "human_bytes",
    "index_reports",
    "is_tty",
    "open_targets",
    "print_json",
    "progress_enabled",
    "table",
]

OK, PROBLEM, USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments the parser could not see (unknown index, not a data directory): exit code 2."""


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_enabled(args: argparse.Namespace | None = None, stream: Any = None) -> bool:
    """True when a bar should be drawn: stderr (or ``stream``) is a terminal and ``--json`` is off."""
    if args is not None and (getattr(args, "json", False) or getattr(args, "no_progress", False)):
        return False
    return is_tty(stream if stream is not None else sys.stderr)


class Progress:
    """A progress bar on stderr; a no-op when disabled. Use as a context manager.

    ``tqdm`` is used when it is installed; otherwise ``label [#####.....] 12/40 30%`` redrawn in place at most
    ten times a second. ``total`` may be 0 or None (unknown): then only the count is shown.
    """

    def __init__(self, total: int | None, label: str = "", *, enabled: bool | None = None,
                 stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = progress_enabled(None, self.stream) if enabled is None else enabled
        self.total = total or 0
        self.label = label
        self.done = 0
        self.width = width
        self._last = 0.0
        self._tqdm: Any = None
        self._drawn = False
        if self.enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-not-found]

                self._tqdm = tqdm(total=self.total or None, desc=label, file=self.stream, leave=False)
            except ImportError:
                self._tqdm = None

    def update(self, n: int = 1, label: str | None = None) -> None:
        self.done += n
        if label is not None:
            self.label = label
        if not self.enabled:
            return
        if self._tqdm is not None:
            if label is not None:
                self._tqdm.set_description(label)
            self._tqdm.update(n)
            return
        now = time.monotonic()
        if now - self._last < 0.1 and not (self.total and self.done >= self.total):
            return
        self._last = now
        self._draw()

    def set(self, done: int, total: int | None = None, label: str | None = None) -> None:
        if total is not None:
            self.total = total
            if self._tqdm is not None:
                self._tqdm.total = total
        self.update(done - self.done, label)

    def _draw(self) -> None:
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\r{self.label} [{bar}] {self.done}/{self.total} {frac:4.0%}"
        else:
            text = f"\r{self.label} {self.done}"
        self.stream.write(text[:200])
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def callback(self) -> Callable[[int, int, str], None]:
        """A ``(done, total, what)`` callback for library code (CheckIndex)."""
        return lambda done, total, what: self.set(done, total, what)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ arguments


def add_common_args(p: argparse.ArgumentParser, *, index_help: str | None = None, path: bool = True) -> None:
    """``DIR`` (a data directory, or an index folder ``<data>/indices/<uuid>`` inside one), ``--index``
    (repeatable; default: every index, or the one whose folder was given) and ``--json``."""
    if path:
        p.add_argument("path", metavar="DIR", help="data directory (or an index folder <DIR>/indices/<uuid>)")
    p.add_argument("--index", "-i", action="append", default=None, metavar="NAME",
                   help=index_help or "index name (repeatable; default: every index of DIR)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def add_command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], *, help_text: str,
                description: str, **common: Any) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func``, with the common arguments (:func:`add_common_args` with
    ``common``); returns its parser for the command's own arguments."""
    p = sub.add_parser(name, help=help_text, description=description)
    add_common_args(p, **common)
    p.set_defaults(func=func)
    return p


# --------------------------------------------------------------------------------------------- output


def _default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o).hex()
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def print_json(obj: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(obj, indent=2, default=_default, ensure_ascii=False) + "\n")


def emit(args: argparse.Namespace, result: Any, text: Callable[[Any], str]) -> None:
    """Print ``result`` as JSON (``--json``) or through ``text``."""
    if getattr(args, "json", False):
        print_json(result)
    else:
        s = text(result)
        if s:
            sys.stdout.write(s if s.endswith("\n") else s + "\n")


def table(rows: list[dict[str, Any]], cols: list[str], fmt: dict[str, Any] | None = None,
          indent: str = "") -> list[str]:
    """``rows`` as text lines: a header of ``cols``, then one line per row, every column padded to its
    widest cell and every line prefixed by ``indent``. A cell is ``fmt[col](value)`` when ``fmt`` has the
    column, ``true``/``false`` for a bool (``_cat`` style), ``-`` for None, else ``str(value)``."""
    fmt = fmt or {}
    def cell(r: dict[str, Any], c: str) -> str:
        v = r.get(c)
        if c in fmt:
            return str(fmt[c](v))
        if isinstance(v, bool):
            return str(v).lower()  # _cat style
        return "-" if v is None else str(v)

    cells = [[cell(r, c) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return [indent + line for line in out]


def fail(args: argparse.Namespace, code: int, message: str, error_type: str = "error", **extra: Any) -> int:
    """Report an error (stderr text, or a JSON error document on stdout) and return ``code``."""
    if getattr(args, "json", False):
        print_json({"error": {"type": error_type, "reason": message, **extra}, "status": code})
    else:
        cmd = getattr(args, "command", None) or "segstore"
        sys.stderr.write(f"segstore {cmd}: error: {message}\n")
    return code


def command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand: usage problems exit 2, engine errors exit 1 with a clear message."""
    from segstore.index.check import NotADataDirectoryError

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (UsageError, NotADataDirectoryError, IndexNotFoundError) as e:
            return fail(args, USAGE, str(e), type(e).__name__)
        except LockObtainFailedError as e:
            return fail(args, PROBLEM, f"{e} - stop the process that holds the index (a segstore server or "
                                       "writer) and try again", type(e).__name__)
        except SegstoreError as e:
            return fail(args, PROBLEM, f"{type(e).__name__}: {e}", getattr(e, "error_type", type(e).__name__))
        except BrokenPipeError:  # e.g. `segstore dump ... | head`
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")
            return OK

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@contextlib.contextmanager
def open_targets(args: argparse.Namespace, *, single: bool = False) -> Iterator[tuple[Any, list[Any]]]:
    """``(catalog, [IndexLocation])`` for ``args.path`` / ``args.index``; the catalog is closed on exit.
    ``single``: exactly one index must be selected (else a usage error)."""
    from segstore.index.catalog import Catalog
    from segstore.index.check import find_data_dir, locate

    data_dir, uuid_hex = find_data_dir(args.path)
    catalog = Catalog.open(data_dir)
    try:
        targets = locate(catalog, data_dir, args.index, uuid_hex)
        if single and len(targets) != 1:
            names = ", ".join(t.name for t in targets) or "none"
            raise UsageError(f"select one index with --index (indices in {data_dir}: {names})")
        yield catalog, targets
    finally:
        catalog.close()


def index_reports(args: argparse.Namespace, report: Callable[[Any, Any], dict[str, Any]]) -> dict[str, Any]:
    """``{"indices": [report(catalog, location) for every target], "catalog": catalog.stats()}``."""
    with open_targets(args) as (catalog, targets):
        return {"indices": [report(catalog, loc) for loc in targets], "catalog": catalog.stats()}


# ---------------------------------------------------------------------------------------- interaction


def confirm(prompt: str, *, stdin: Any = None, out: Any = None) -> bool:
    """Ask ``prompt [y/N]`` on a terminal; False when stdin is not a terminal."""
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    if not is_tty(stdin):
        return False
    out.write(f"{prompt} [y/N] ")
    out.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")


def countdown(seconds: float, message: str, out: Any = None) -> None:
    """Lucene CheckIndex's last chance: print ``message`` and count down (Ctrl+C aborts)."""
    out = out or sys.stderr
    if seconds <= 0 or not is_tty(out):
        return
    out.write(message + "\n")
    for left in range(int(seconds), 0, -1):
        out.write(f"  {left}...\n")
        out.flush()
        time.sleep(1)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("b", "kb", "mb", "gb", "tb"):
        if abs(value) < 1024 or unit == "tb":
            return f"{int(value)}{unit}" if unit == "b" else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)
