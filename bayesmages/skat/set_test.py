"""The public SKAT-family entry points: :func:`test` (QC + test) and :func:`test_prepared` (the numeric core).

``Q = S'S / (2 s2)`` (SKAT) or ``(1'S)^2 / (2 s2)`` (burden, R's ``r.corr = 1``) from the weighted
scores of :mod:`bayesmages.skat.scores`; p-values from :mod:`bayesmages.skat.pvalues`; SKAT-O in
:mod:`bayesmages.skat.skato`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.errors import InputError
from bayesmages.skat.acat import acat_o, acat_v
from bayesmages.skat.null import NullModel
from bayesmages.skat.pvalues import mixture_pvalue, moment_params, moment_pvalue
from bayesmages.skat.result import COMPAT, METHODS, RHO_DEFAULT, TESTS, SKATResult
from bayesmages.skat.scores import boot_scores, weighted_scores
from bayesmages.skat.skato import skato
from bayesmages.skat.variants import as_genotype_matrix, prepare_variants, variant_weights

__all__ = ["test", "test_prepared"]


def _check_choice(name: str, value: Any, options: tuple[str | None, ...]) -> None:
    if value not in options:
        raise InputError(f"{name} must be one of {list(options)}, got {value!r}")


def test_prepared(
    G: np.ndarray,
    w: np.ndarray,
    null: NullModel,
    test: str = "skat",
    method: str = "exact",
    *,
    rho_grid: Any = None,
    n_variants: int | None = None,
    skato_quadrature: str = "gk",
) -> SKATResult:
    """Run a test on QC'd, imputed genotypes ``G`` (n x p) with kernel weights ``w`` (p,).

    This is the numeric core behind :func:`test`, :func:`bayesmages.skat.ecskat` and the sets
    runner; it does no QC. See :func:`test` for the arguments.
    """
    p = G.shape[1]
    n_variants = p if n_variants is None else n_variants
    if p == 0:
        return SKATResult(1.0, 0.0, 0, n_variants, test, "none")
    adjusted = null.adjustment and null.trait == "binary"
    S, W, Z1 = weighted_scores(G, w, null)
    if test == "skat-o" and p > 1:
        return skato(S, W, null, rho_grid=rho_grid, method=method, Z1=Z1, n_variants=n_variants,
                     quadrature=skato_quadrature)
    if test == "skat-o":
        # one variant: every Q_rho is the same multiple of S^2, so SKAT-O is the SKAT test
        res = test_prepared(G, w, null, "skat", method, n_variants=n_variants)
        res.test = "skat-o"
        res.rho_grid = np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64)
        res.p_each_rho = np.full(res.rho_grid.size, res.p_value)
        res.rho = float(res.rho_grid[0])
        return res
    if test == "burden":
        Q = float(S.sum() ** 2 / (2.0 * null.s2))
        lam_all = np.array([W.sum() / 2.0])
        R = np.ones((p, p))
    else:
        Q = float(S @ S / (2.0 * null.s2))
        lam_all = np.linalg.eigvalsh(W / 2.0)
        R = np.eye(p)
    p_val, used, fault = mixture_pvalue(Q, lam_all, method)
    res = SKATResult(p_val, Q, p, n_variants, test, used, davies_fault=fault)
    if adjusted:
        assert Z1 is not None  # set above for adjusted nulls
        params = moment_params(null, Z1, R, boot_scores(null, Z1))
        # R reports the unadjusted liu.mod value next to the adjusted one
        res.p_value_noadj = mixture_pvalue(Q, lam_all, "liu.mod")[0]
        res.p_value = moment_pvalue(Q, params)
        res.method = "moment-adjusted"
    return res


def test(
    Z: Any,
    null: NullModel,
    test: str = "skat",
    weights_beta: tuple[float, float] = (1.0, 25.0),
    weights: Any = None,
    method: str | None = None,
    *,
    impute: str = "fixed",
    missing_cutoff: float = 0.15,
    max_maf: float = 1.0,
    rho_grid: Any = None,
    skato_quadrature: str | None = None,
    seed: int = 0,
    compat: str | None = None,
    maf_masks: Any = None,
    mac_threshold: float = 10,
    extra_pvalues: Any = None,
) -> SKATResult:
    """SKAT, burden or SKAT-O test of a variant set against a fitted null model.

    Parameters
    ----------
    Z : array-like
        (n, p) genotypes 0/1/2 (minor-allele counts; major-allele columns are flipped); NaN or 9
        = missing. QC, imputation and flipping follow R SKAT (:mod:`bayesmages.skat.variants`).
    null : NullModel
        From :func:`bayesmages.skat.fit_null` on the same samples, in the same order.
    test : {"skat", "burden", "skat-o", "acat-v", "acat-o"}
        SKAT (linear weighted kernel), burden (R's ``r.corr = 1``), SKAT-O, ACAT-V (Cauchy
        combination of single-variant p-values, very rare variants as one burden) or ACAT-O
        (Cauchy combination of burden, SKAT and ACAT-V with Beta(1, 25) and Beta(1, 1) weights,
        or the user's ``weights``, within each MAF mask); see :mod:`bayesmages.skat.acat`.
    weights_beta : (float, float)
        Beta(a1, a2) density weights of the MAF (R default (1, 25); (1, 1) = unweighted).
    weights : array-like, optional
        User weights, one per column of ``Z`` (overrides ``weights_beta``).
    method : {None, "exact", "davies", "liu", "liu.mod"}
        Null distribution of Q. None means ``"exact"`` (``"davies"`` with ``compat="R"``): the exact
        tail of :func:`bayesmages.stats.quadform.pvalue` (relative accuracy ~1e-7 at any p); for
        SKAT-O, exact per-rho p-values and the exact null probability of their minimum
        (:mod:`bayesmages.skat.skato_exact`). ``"davies"`` is R's Davies (absolute accuracy 1e-6,
        liu.mod fallback), for SKAT-O R's ``"optimal.adj"``; ``"liu"``/``"liu.mod"`` are R's
        moment approximations, for SKAT-O R's ``"optimal.moment.adj"``. Ignored (as in R) when
        the null model carries the binary small-sample adjustment.
    impute : {"fixed", "bestguess", "random"}
        Missing-genotype imputation (R ``impute.method``).
    missing_cutoff, max_maf : float
        Variant QC thresholds (R's ``missing_cutoff`` 0.15, ``max_maf`` 1).
    rho_grid : sequence of float, optional
        SKAT-O rho grid (default R's optimal.adj grid 0, .01, .04, .09, .25, .5, 1).
    skato_quadrature : {None, "gk", "qags"}
        For ``method="davies"``/``"liu"``/``"liu.mod"`` SKAT-O only, the final integral of R's
        formula: ``"gk"`` (what None means) accurate and fast; ``"qags"`` (what None means with
        ``compat="R"``) R's QUADPACK computation, which reproduces R's values including its
        quadrature error (:mod:`bayesmages.skat.skato`).
    seed : int
        Seed of ``impute="random"``.
    compat : {None, "R"}
        ``"R"``: compute every p-value as R SKAT 2.2.5 does (Davies at R's accuracy with its
        fallbacks, SKAT-O's Liu-mod thresholds, rho = 1 taken as 0.999 and R's QUADPACK
        integration), reproducing R's numbers (tested to 1e-6 relative on the reference cases)
        including R's own numerical errors. ``None`` (default): exact tails.
    maf_masks : sequence of float, optional
        ACAT-O: MAF upper bounds (e.g. ``[0.01, 0.001]``); each mask's variants (MAF < bound) are
        tested separately and all results combined. Default: one mask with every variant.
    mac_threshold : float
        ACAT-V/ACAT-O: variants with minor-allele count ``<= mac_threshold`` enter as one burden.
    extra_pvalues : mapping of str to float, optional
        ACAT-O: further p-values to combine, e.g. ``{"ecskat": bm.skat.ecskat(Z, y, X).p_value}``.

    Returns
    -------
    SKATResult
        ``p_value``, ``statistic`` (Q), ``n_tested``; for SKAT-O also ``rho``, ``p_each_rho``.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(1)
    >>> n = 400; X = rng.normal(size=(n, 2)); y = X[:, 0] + rng.normal(size=n)
    >>> Z = rng.binomial(2, 0.02, size=(n, 10)).astype(float)
    >>> null = bm.skat.fit_null(y, X, trait="continuous")
    >>> res = bm.skat.test(Z, null, test="skat")
    >>> 0 < res.p_value <= 1
    True
    """
    if not isinstance(null, NullModel):
        raise InputError(f"null must be a NullModel from bayesmages.skat.fit_null, got {type(null).__name__}")
    _check_choice("test", test, TESTS)
    _check_choice("compat", compat, COMPAT)
    if method is None:
        method = "davies" if compat == "R" else "exact"
    _check_choice("method", method, METHODS)
    if compat == "R":
        if method == "exact":
            raise InputError("method='exact' is not an R SKAT method: with compat='R' use 'davies', 'liu' "
                             "or 'liu.mod'")
        if skato_quadrature not in (None, "qags"):
            raise InputError(f"compat='R' integrates SKAT-O as R does (skato_quadrature='qags'), "
                             f"got {skato_quadrature!r}")
        skato_quadrature = "qags"
    G = as_genotype_matrix(Z, n=null.n)
    pv = prepare_variants(G, impute=impute, missing_cutoff=missing_cutoff, max_maf=max_maf, seed=seed,
                          _validated=True)
    w = variant_weights(pv, weights_beta, weights)
    wb = None if weights is not None else weights_beta
    if test == "acat-v":
        return acat_v(pv, w, null, test_prepared, weights_beta=wb, method=method, mac_threshold=mac_threshold)
    if test == "acat-o":
        return acat_o(pv, null, test_prepared, user_weights=None if weights is None else w, maf_masks=maf_masks,
                      method=method, mac_threshold=mac_threshold, extra_pvalues=extra_pvalues)
    return test_prepared(pv.G, w, null, test, method, rho_grid=rho_grid, n_variants=pv.n_input,
                         skato_quadrature=skato_quadrature or "gk")
