"""LD (correlation) blocks."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bayesmages.errors import InputError

__all__ = ["LDBlock", "read_ld", "validate_ld"]

#: tolerances for matrices read from text with ~6 decimals
SYMMETRY_ATOL = 1e-5
DIAGONAL_ATOL = 1e-5
#: how far below zero the smallest eigenvalue of an LD block may be. LD computed from one reference
#: panel without missing genotypes is a Gram matrix, positive semi-definite up to rounding; real LD
#: files are slightly indefinite through pairwise-complete estimates (missing genotypes), rounding to
#: a few decimals, or mixing panels, with smallest eigenvalues down to about -0.01 to -0.05 in blocks
#: of thousands of variants. Those are accepted (downstream code tolerates them). A block below -0.1,
#: a tenth of a variant's unit variance, is no correlation matrix at all and is refused.
PSD_TOLERANCE = 0.1


@dataclass(frozen=True)
class LDBlock:
    """An LD block: correlation matrix ``R`` (m x m, float64) and optional variant ids.

    Attributes
    ----------
    R : numpy.ndarray
        Symmetric correlation matrix with unit diagonal.
    ids : numpy.ndarray or None
        Variant identifiers in row order, when the file carried them.
    source : str
        Where the block came from (for error messages).
    """

    R: np.ndarray
    ids: np.ndarray | None = None
    source: str = ""

    @property
    def m(self) -> int:
        """Number of variants."""
        return int(self.R.shape[0])

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: object = None) -> np.ndarray:
        return self.R if dtype is None else self.R.astype(dtype)


def validate_ld(R: np.ndarray, source: str = "LD matrix", n_variants: int | None = None) -> np.ndarray:
    """Check that ``R`` is a correlation matrix; return it as float64 (exactly symmetric).

    Raises
    ------
    InputError
        Not square, non-finite entries, asymmetric, diagonal != 1, |r| > 1, or size !=
        ``n_variants``. The message names the property and the first offending entry.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise InputError(f"{source}: LD matrix must be square, got shape {R.shape}")
    if R.shape[0] == 0:
        raise InputError(f"{source}: LD matrix is empty")
    if not np.isfinite(R).all():
        i, j = np.argwhere(~np.isfinite(R))[0]
        raise InputError(f"{source}: LD matrix has a non-finite entry at row {i + 1}, column {j + 1}")
    asym = np.abs(R - R.T)
    if asym.max() > SYMMETRY_ATOL:
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        raise InputError(
            f"{source}: LD matrix is not symmetric (R[{i + 1},{j + 1}]={R[i, j]:.6g} vs "
            f"R[{j + 1},{i + 1}]={R[j, i]:.6g})"
        )
    diag = np.diag(R)
    if np.abs(diag - 1).max() > DIAGONAL_ATOL:
        i = int(np.argmax(np.abs(diag - 1)))
        raise InputError(f"{source}: LD matrix diagonal must be 1, got {diag[i]:.6g} at row {i + 1}")
    if np.abs(R).max() > 1 + SYMMETRY_ATOL:
        i, j = np.unravel_index(int(np.argmax(np.abs(R))), R.shape)
        raise InputError(f"{source}: LD entries must lie in [-1, 1], got {R[i, j]:.6g} at row {i + 1}, column {j + 1}")
    if n_variants is not None and R.shape[0] != n_variants:
        raise InputError(f"{source}: LD matrix has {R.shape[0]} variants but {n_variants} were expected")
    R = 0.5 * (R + R.T)
    _check_psd(R, source)
    np.fill_diagonal(R, 1.0)
    return np.clip(R, -1.0, 1.0)


def _check_psd(R: np.ndarray, source: str) -> None:
    """Reject a matrix that is clearly not positive semi-definite (smallest eigenvalue < -PSD_TOLERANCE)."""
    shifted = R + PSD_TOLERANCE * np.eye(R.shape[0])
    try:
        # Cholesky of R + tol*I succeeds exactly when the smallest eigenvalue exceeds -tol, at a third
        # of the cost of an eigendecomposition; the eigenvalue itself is computed only for the message.
        np.linalg.cholesky(shifted)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(R)[0])
        raise InputError(
            f"{source}: LD matrix is not positive semi-definite (smallest eigenvalue {low:.3g}, below "
            f"-{PSD_TOLERANCE:g}); it is not a correlation matrix of any set of variants (a wrong or "
            "corrupted file, or rows and columns in different orders?)") from None


def read_ld(
    path: str | os.PathLike[str],
    *,
    n_variants: int | None = None,
    ids: np.ndarray | list[str] | None = None,
) -> LDBlock:
    """Read an LD block: ``.ld``/text (whitespace or comma), ``.npy`` or ``.npz`` (key ``R``, optional ``ids``).

    Parameters
    ----------
    path : str or path-like
        The file.
    n_variants : int, optional
        Expected number of variants (e.g. the GWAS rows it covers).
    ids : sequence of str, optional
        Variant ids in GWAS order; when the file has ids, the matrix is re-ordered to them
        (every id must be present).

    Returns
    -------
    LDBlock

    Examples
    --------
    >>> block = read_ld("chr22_block0.ld")  # doctest: +SKIP
    >>> block.R.shape  # doctest: +SKIP
    (603, 603)
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such LD file")
    file_ids = None
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            R = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "R" not in z:
                    raise InputError(f"{p}: .npz LD file needs an array named 'R'; found {list(z.keys())}")
                R = z["R"]
                file_ids = z["ids"].astype(str) if "ids" in z else None
        else:
            R = _read_text_matrix(p)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zlib.error) as exc:  # EOFError: an empty or truncated .npy/.npz
        raise InputError(f"{p}: cannot read the LD matrix: not a valid {suffix or 'text'} file ({exc})") from None
    R = validate_ld(R, source=str(p))
    if file_ids is not None and len(file_ids) != R.shape[0]:
        raise InputError(f"{p}: {len(file_ids)} ids for an LD matrix of {R.shape[0]} variants")
    if ids is not None:
        ids = np.asarray(ids).astype(str)
        if file_ids is not None:
            pos = {v: i for i, v in enumerate(file_ids)}
            missing = [v for v in ids if v not in pos]
            if missing:
                raise InputError(f"{p}: variant id {str(missing[0])!r} (and {len(missing) - 1} more) "
                                 "not in the LD file")
            order = np.array([pos[v] for v in ids])
            R = R[np.ix_(order, order)]
            file_ids = ids
        elif len(ids) != R.shape[0]:
            raise InputError(f"{p}: LD matrix has {R.shape[0]} variants but {len(ids)} ids were given")
        else:
            file_ids = ids
    if n_variants is not None and R.shape[0] != n_variants:
        raise InputError(f"{p}: LD matrix has {R.shape[0]} variants but {n_variants} were expected")
    return LDBlock(R=R, ids=file_ids, source=str(p))


def _read_text_matrix(p: Path) -> np.ndarray:
    with open(p, encoding="utf-8") as fh:
        first = fh.readline()
    delimiter = "," if "," in first else None
    try:
        return np.loadtxt(p, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{p}: LD text file must be a numeric square matrix ({exc})") from None
