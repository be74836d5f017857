"""The ``bayesmages`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> argparse.ArgumentParser`` (setting ``func`` via ``set_defaults``);
modules are discovered automatically, so adding a command never edits this file.

All commands share one error path: an :class:`~bayesmages.errors.InputError` or an operating-system
error (a missing file, no permission, a full disk) prints one line ``bayesmages <command>: error: ...``
on stderr and exits with status 2; SIGTERM and Ctrl-C clean up and exit with 143 and 130.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

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


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that temporary files are removed on the way out."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    name = args.command
    # SIGTERM (what job schedulers and `timeout` send) becomes an exception in the main thread, so the
    # work in progress is cleaned up like on Ctrl-C; SIGKILL cannot be caught: the next run cleans up.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = args.func(args)
    except (InputError, OSError) as exc:
        print(f"bayesmages {name}: error: {_one_line(_describe(exc, getattr(args, 'out', None)))}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except BayesmagesError as exc:
        print(f"bayesmages {name}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bayesmages {name}: interrupted{_resume_hint(name)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"bayesmages {name}: terminated (SIGTERM){_resume_hint(name)}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:
        if os.environ.get("BAYESMAGES_DEBUG"):
            raise
        print(f"bayesmages {name}: internal error: {type(exc).__name__}: {_one_line(str(exc))} (a bug: please "
              "report it; BAYESMAGES_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(status or 0)


def _resume_hint(name: str) -> str:
    return "; run the same command again to resume" if name == "run" else ""


def _describe(exc: BaseException, out: Any = None) -> str:
    """The message of an InputError, or ``<what went wrong>: <file>`` for an OSError (disk full, permissions)."""
    if isinstance(exc, InputError) or not isinstance(exc, OSError):
        return str(exc)
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        what = "cannot write the results: no space left on the device"
    files = [f for f in (exc.filename, exc.filename2) if f]
    if files:
        return f"{what}: {files[0]}"
    return f"{what} (writing --out {out})" if out is not None else what


def _one_line(msg: str) -> str:
    return " ".join(msg.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
