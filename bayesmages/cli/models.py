"""``bayesmages models``: list the model registry."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``models`` sub-command."""
    p = sub.add_parser("models", help="list the registered models", description="List the model registry.")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print one line per registered model: name and the first line of its docstring."""
    from bayesmages.registry import get_model_class, list_models

    for name in list_models():
        doc = (get_model_class(name).__doc__ or "").strip().splitlines()
        print(f"{name:<20} {doc[0] if doc else ''}")
    return 0
