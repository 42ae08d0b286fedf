"""The ``segstore`` command line: one console script, one subcommand per module.

Exit codes: 0 = OK, 1 = a problem was found, 2 = usage error. Every subcommand accepts ``--json``.
Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

# Subcommand modules, in help order. A module that is missing is skipped (it may come with a later issue).
_MODULES = ["segstore_tools.serve", "segstore_tools.bench", "segstore_tools.inspect_index",
            "segstore_tools.inspect_documents", "segstore_tools.inspect_stats", "segstore_tools.check",
            "segstore_tools.repair", "segstore_tools.recover", "segstore_tools.maintenance",
            "segstore_tools.bench_merge", "segstore_tools.estimate_memory", "segstore_tools.quantize"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors; keep that, say it clearly
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="segstore", description="segstore: segment storage engine for vector search")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--log-level", default=None, help="logging level name (overrides -v)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or ("DEBUG" if args.verbose > 1 else "INFO" if args.verbose else "WARNING")
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
