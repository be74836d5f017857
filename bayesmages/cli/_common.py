"""Helpers shared by CLI commands: common options and run metadata."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_common", "positive_int", "run_metadata", "seed_type"]


def seed_type(text: str) -> int:
    """Parse a non-negative integer seed (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """Parse a positive integer (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_common(parser: argparse.ArgumentParser, *, seed: bool = True, workers: bool = False) -> None:
    """Add ``--seed``, ``--quiet`` (and ``--workers``/``--scheduler``) to a sub-command."""
    if seed:
        parser.add_argument("--seed", type=seed_type, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    if workers:
        parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
        parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                            help="Dask distributed scheduler address, e.g. tcp://127.0.0.1:8786")


def run_metadata(args: argparse.Namespace, started: float, **extra: Any) -> dict[str, Any]:
    """``run.json`` content: version, arguments, seeds, timings, platform."""
    from bayesmages import __version__

    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    return {
        "bayesmages_version": __version__,
        "command": " ".join(["bayesmages", *sys.argv[1:]]),
        "arguments": clean,
        "seconds": round(time.perf_counter() - started, 3),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **extra,
    }
