"""What the association types are computed from: LD-deconvolved, unshrunk effects with known noise (issue 13).

The shrinker's posterior means are poor observations for typing. The weaker effect of a variant that
is causal in two traits is shrunk to about zero with a small posterior sd, so a shared signal looks
trait-specific with certainty; and LD can put a shared signal's two traits on different copies of
the same haplotype. The GWAS effects keep the weak half but carry every neighbour's signal through
LD. Subtracting the neighbours' shrunk effects removes that part and keeps the variant's own effect
unshrunk (the setting of mash: an observation of the true effect with known noise):

``x_tj = beta_hat_tj - se_tj sum_{k != j} R_jk b_tk / se_tk``

per trait t and variant j of an LD block, with ``b`` the shrinker's posterior means. Under the RSS
likelihood (``z_hat = R z + e``, ``e ~ N(0, R)``, ``z = beta / se``) this is
``x_tj / se_tj = z_tj + sum_{k != j} R_jk (z_tk - b_tk / se_tk) + e_j``: when the neighbours' effects are
estimated well, ``x_tj ~ N(beta_tj, se_tj^2)``, a tag of a causal variant carries noise only and a
causal variant carries its own effect, however small. Every trait uses the same blocks, so the
traits of a shared signal land on the same variant. The noise is taken as ``se^2`` (the error in
the neighbours' estimates is ignored; ``bench/multitrait.py`` measures what that costs in calibration).

**When the shrinker's means do not explain the data.** The subtraction is right only for a shrinker
whose posterior means are *joint* effects (``susie``: ``R b / se`` reproduces ``z_hat`` up to noise).
The neural shrinker (``nn``) spreads a causal effect over its LD tags (a marginal-like smoothing:
``sum_k |b_k / se_k|`` of a block was 5-10x its largest ``|b_k / se_k|`` on ``bench/multitrait.py``'s
data), so ``R b`` counts a signal several times and ``x`` carries that misfit. :func:`deconvolved_observations`
therefore inflates the noise of each block and trait by the block's misfit, ``max(1, mean_j r_j^2)``
with ``r = z_hat - R b / se`` (``E r_j^2 = R_jj = 1`` when ``b`` is right), which keeps the typing
honest but does not make the ``nn`` means usable (see docs/cluster.md for the numbers).

At R = I (no LD) ``x = beta_hat``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayesmages.errors import InputError
from bayesmages.shrink.intervals import neighbour_sum

__all__ = ["deconvolved_effects", "deconvolved_observations"]


def deconvolved_effects(beta_hat: np.ndarray, se: np.ndarray, beta_shrunk: np.ndarray,
                        blocks: Sequence[np.ndarray]) -> np.ndarray:
    """(m, p) GWAS effects minus the LD contribution of every other variant's shrunk effect.

    ``x_tj = beta_hat_tj - se_tj sum_{k != j} R_jk b_tk / se_tk`` within each LD block (see the module
    docstring): one matrix product per block for all traits together.

    Parameters
    ----------
    beta_hat, se, beta_shrunk : numpy.ndarray
        (m, p) GWAS effects, their standard errors (positive) and the shrinker's posterior means, one
        column per trait, rows in data order.
    blocks : sequence of numpy.ndarray
        LD correlation blocks in data order that together cover the m rows (the same blocks for every
        trait).

    Returns
    -------
    numpy.ndarray
        (m, p) observations whose noise variance is ``se^2``.

    Raises
    ------
    InputError
        Shapes disagree, the blocks do not cover the rows, ``se`` not positive, values not finite.

    Examples
    --------
    >>> R = np.array([[1.0, 0.9], [0.9, 1.0]])
    >>> bh, se = np.array([[0.5], [0.45]]), np.full((2, 1), 0.1)
    >>> deconvolved_effects(bh, se, np.array([[0.5], [0.0]]), [R]).round(3).ravel().tolist()
    [0.5, 0.0]
    """
    return _deconvolve(beta_hat, se, beta_shrunk, blocks)[0]


def deconvolved_observations(beta_hat: np.ndarray, se: np.ndarray, beta_shrunk: np.ndarray,
                             blocks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The observations of :func:`deconvolved_effects` and their noise variances.

    The noise of variant j in trait t is ``se_tj^2 max(1, c_bt)``, with ``c_bt`` the mean of
    ``(z_hat - R b / se)^2`` over the variants of j's block b in trait t (1 in expectation when the
    shrunk effects explain the GWAS effects; see the module docstring).

    Parameters
    ----------
    beta_hat, se, beta_shrunk, blocks
        As in :func:`deconvolved_effects`.

    Returns
    -------
    tuple of numpy.ndarray
        (m, p) observations and (m, p) noise variances.

    Examples
    --------
    >>> bh, se = np.array([[0.3], [-0.1]]), np.full((2, 1), 0.1)
    >>> x, nv = deconvolved_observations(bh, se, np.zeros((2, 1)), [np.eye(2)])
    >>> x.ravel().tolist(), nv.round(3).ravel().tolist()  # z = (3, -1): misfit (9 + 1) / 2 = 5
    ([0.3, -0.1], [0.05, 0.05])
    """
    x, S, misfit = _deconvolve(beta_hat, se, beta_shrunk, blocks)
    return x, S**2 * np.maximum(misfit, 1.0)


def _deconvolve(beta_hat: np.ndarray, se: np.ndarray, beta_shrunk: np.ndarray,
                blocks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, se, per-row misfit of its block and trait) with the checks of :func:`deconvolved_effects`."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (beta_hat, se, beta_shrunk)]
    B, S, b = (a[:, None] if a.ndim == 1 else a for a in arrays)
    if B.ndim != 2 or S.shape != B.shape or b.shape != B.shape:
        raise InputError(f"deconvolved_effects: beta_hat, se and beta_shrunk must share one (m, p) shape, got "
                         f"{B.shape}, {S.shape}, {b.shape}")
    if not (np.all(np.isfinite(B)) and np.all(np.isfinite(b)) and np.all(np.isfinite(S))) or np.any(S <= 0):
        raise InputError("deconvolved_effects: effects must be finite and standard errors positive and finite")
    sizes = [int(np.shape(R)[0]) for R in blocks]
    if sum(sizes) != B.shape[0]:
        raise InputError(f"deconvolved_effects: the LD blocks cover {sum(sizes)} rows, the effects have {B.shape[0]}")
    out = np.empty_like(B)
    misfit = np.empty_like(B)
    zb = b / S
    a = 0
    for R, n in zip(blocks, sizes):
        R = np.asarray(R, dtype=np.float64)
        if R.shape != (n, n):
            raise InputError(f"deconvolved_effects: LD block of shape {R.shape} is not square")
        part = zb[a:a + n]
        # the LD-conditional estimate of bayesmages.shrink.intervals (traits as rows there), on the effect scale
        neighbours = neighbour_sum(R, part.T).T
        out[a:a + n] = B[a:a + n] - S[a:a + n] * neighbours
        resid = B[a:a + n] / S[a:a + n] - neighbours - np.diagonal(R)[:, None] * part  # z_hat - R b / se
        misfit[a:a + n] = np.mean(resid**2, axis=0)
        a += n
    return out, S, misfit
