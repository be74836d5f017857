"""The ``bayesmages`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> argparse.ArgumentParser`` (setting ``func`` via ``set_defaults``);
modules are discovered automatically, so adding a command never edits this file.

All commands share one error path: an :class:`~bayesmages.errors.InputError` (or a missing
file) prints one line ``bayesmages <command>: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from bayesmages.errors import BayesmagesError, InputError

__all__ = ["build_parser", "main"]

EXIT_INPUT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (``bayesmages <cmd>: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {_one_line(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered sub-command."""
    from bayesmages import __version__

    parser = _Parser(
        prog="bayesmages",
        description="Bayesian genetic association analysis: shrinkage, clustering, gene-level and SKAT tests.",
    )
    parser.add_argument("--version", action="version", version=f"bayesmages {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    name = args.command
    try:
        status = args.func(args)
    except (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        msg = str(exc) if isinstance(exc, InputError) else f"{exc.strerror}: {exc.filename}"
        print(f"bayesmages {name}: error: {_one_line(msg)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except BayesmagesError as exc:
        print(f"bayesmages {name}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bayesmages {name}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def _one_line(msg: str) -> str:
    return " ".join(msg.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
