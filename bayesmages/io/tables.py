"""Generic tables, atomic writers and shared validation helpers.

Atomic writes: every writer writes to a temporary file in the destination folder and renames
it over the target only when the content is complete, so a failed run never leaves a
half-written result.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = [
    "atomic_dir",
    "atomic_path",
    "read_table",
    "write_json",
    "write_npz",
    "write_table",
    "write_text",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{target}: the output folder {parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Build a whole output folder under a temporary name; move it into place on success.

    On an exception the temporary folder is deleted and an existing ``path`` is untouched.
    """
    import shutil

    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        if target.exists():
            if not overwrite:
                raise InputError(f"{target}: already exists")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], *, index: bool = False) -> Path:
    """Write a DataFrame atomically: CSV (``.csv``, ``.tsv``, optionally ``.gz``) or Parquet.

    Parquet (``.parquet``) needs pyarrow.
    """
    target = Path(path)
    name = target.name.lower()
    with atomic_path(target) as tmp:
        if name.endswith(".parquet"):
            try:
                df.to_parquet(tmp, index=index)
            except ImportError as exc:
                raise InputError(f"{target}: writing Parquet needs pyarrow ({exc}); use .csv") from None
        else:
            sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
            compression: Literal["gzip"] | None = "gzip" if name.endswith(".gz") else None
            df.to_csv(tmp, sep=sep, index=index, compression=compression, float_format="%.10g")
    return target


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write JSON atomically (numpy scalars and arrays are converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=default, sort_keys=False) + "\n")
    return target


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write text atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def write_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """Write a compressed ``.npz`` atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return target


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def sniff_delimiter(path: Path) -> str | None:
    """The delimiter of a text table: tab, comma, semicolon, or ``None`` for whitespace."""
    try:
        with _open_text(path) as fh:
            head = "".join(fh.readline() for _ in range(5))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read as a text table ({exc})") from None
    if not head.strip():
        raise InputError(f"{path}: the file is empty")
    try:
        return csv.Sniffer().sniff(head, delimiters="\t,;").delimiter
    except csv.Error:
        return None


def read_table(
    path: str | os.PathLike[str],
    *,
    required: list[str] | None = None,
    what: str = "table",
) -> pd.DataFrame:
    """Read a delimited text table (comma, tab, semicolon or whitespace; gzip ok) or Parquet.

    Parameters
    ----------
    path : str or path-like
        The file.
    required : list of str, optional
        Columns that must be present (case-insensitive); a missing one is an InputError.
    what : str
        What the table is, for error messages.

    Returns
    -------
    pandas.DataFrame
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such {what} file")
    if p.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(p)
        except ImportError as exc:
            raise InputError(f"{p}: reading Parquet needs pyarrow ({exc})") from None
    else:
        sep = sniff_delimiter(p)
        try:
            df = pd.read_csv(p, sep=sep if sep else r"\s+", engine="c" if sep else "python",
                             compression="infer", na_values=["NA", "NaN", "nan", ".", ""])
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{p}: cannot parse the {what} ({exc})") from None
    if df.empty:
        raise InputError(f"{p}: the {what} has no rows")
    df.columns = [str(c).strip() for c in df.columns]
    if required:
        upper = {c.upper() for c in df.columns}
        missing = [c for c in required if c.upper() not in upper]
        if missing:
            raise InputError(f"{p}: missing required column(s) {missing}; found {list(df.columns)}")
    return df


def numeric_column(df: pd.DataFrame, column: str, path: Path | str, *, allow_nan: bool = False) -> np.ndarray:
    """Column as float64; an InputError names the first non-numeric or non-finite row."""
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & raw.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: column {column} has a non-numeric value {raw.iloc[row]!r} at row {row + 1}")
    if not allow_nan:
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise InputError(f"{path}: column {column} has a missing or infinite value at row {row + 1}")
    return values


def find_column(columns: Mapping[str, str] | list[str], aliases: tuple[str, ...]) -> str | None:
    """The first column (case-insensitive) among ``aliases``, or ``None``."""
    lookup = {c.upper(): c for c in columns}
    for alias in aliases:
        if alias.upper() in lookup:
            return lookup[alias.upper()]
    return None
