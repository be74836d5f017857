"""SKAT and burden score tests (R SKAT 2.2.5 conventions), and the public :func:`test` entry point.

For weighted genotypes ``Gw = G diag(w)`` and null residuals r, the scores are ``S = Gw' r`` and
``Q = S'S / (2 s2)`` (SKAT) or ``(1'S)^2 / (2 s2)`` (burden, R's ``r.corr = 1``); under H0, Q is a
mixture of chi-square(1) with weights the eigenvalues of ``Gw' P0 Gw / 2`` (p x p). Tail
probabilities come from :mod:`bayesmages.stats.quadform` (the project's single engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from bayesmages.errors import InputError
from bayesmages.skat.null import NullModel
from bayesmages.skat.variants import as_genotype_matrix, prepare_variants, variant_weights

__all__ = ["METHODS", "TESTS", "SKATResult", "davies_pvalue", "mixture_pvalue", "test", "test_prepared"]

TESTS = ("skat", "burden", "skat-o")
METHODS = ("davies", "liu", "liu.mod")
DAVIES_ACC = 1e-6
DAVIES_LIM = 10_000
RHO_DEFAULT = (0.0, 0.01, 0.04, 0.09, 0.25, 0.5, 1.0)  # R's SKAT-O "optimal.adj" grid


@dataclass
class SKATResult:
    """Result of one SKAT-family test.

    Attributes
    ----------
    p_value : float
        The p-value.
    statistic : float
        R's Q for SKAT and burden; for SKAT-O the minimum per-rho p-value (its test statistic;
        R reports no Q there).
    n_tested : int
        Variants that passed QC (R's ``param$n.marker.test``).
    n_variants : int
        Input variants.
    test : str
        ``"skat"``, ``"burden"``, ``"skat-o"`` or ``"ecskat"``.
    method : str
        How the p-value was computed (e.g. ``"davies"``, ``"liu.mod"``, ``"optimal.adj"``,
        ``"moment-adjusted"``).
    rho, rho_grid, p_each_rho, q_each_rho
        SKAT-O: the selected rho (``rho_est``), the grid and per-rho p-values and statistics.
    p_value_noadj : float or None
        With a moment-adjusted binary null: the unadjusted p-value for comparison.
    davies_fault : int or None
        Davies fault code (0 = fine); a fallback to liu.mod happened when ``method`` says so.
    extra : dict
        Anything else (ecSKAT puts its weights and split here).
    """

    p_value: float
    statistic: float
    n_tested: int
    n_variants: int
    test: str
    method: str
    rho: float | None = None
    rho_grid: np.ndarray | None = None
    p_each_rho: np.ndarray | None = None
    q_each_rho: np.ndarray | None = None
    p_value_noadj: float | None = None
    davies_fault: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _quadform() -> Any:
    try:
        from bayesmages.stats import quadform
    except ImportError as exc:  # pragma: no cover - only while the engine is being written
        raise ImportError("bayesmages.stats.quadform (the quadratic-form engine) is not available") from exc
    return quadform


def truncate_eigenvalues(lam: np.ndarray) -> np.ndarray:
    """R SKAT's ``Get_Lambda`` rule: keep eigenvalues >= 0 and > mean(non-negative ones) / 1e5."""
    lam = np.asarray(lam, dtype=np.float64)
    nonneg = lam[lam >= 0]
    if nonneg.size == 0 or nonneg.max() <= 0:
        return np.empty(0)
    return lam[lam > nonneg.mean() / 1e5]


def mixture_pvalue(q: float, lam_all: np.ndarray, method: str) -> tuple[float, str, int | None]:
    """P(sum lam_k chi2_1 > q) as R SKAT computes it for ``method``.

    ``lam_all`` are all eigenvalues of W1/2. ``"davies"`` uses the truncated eigenvalues, exact
    chi-square(1) (liu.mod) for a single one, and falls back to liu.mod only when the Davies
    value is outside (0, 1]. ``"liu"``/``"liu.mod"`` use all eigenvalues (R's trace formulas).

    Returns
    -------
    p, method used, Davies fault code (None when Davies did not run)
    """
    qf = _quadform()
    lam_pos = np.clip(lam_all, 0.0, None)
    if method in ("liu", "liu.mod"):
        if lam_pos.max(initial=0.0) <= 0:
            return 1.0, "none", None
        fn = qf.liu if method == "liu" else qf.liu_mod
        return float(np.ravel(fn(q, lam_pos))[0]), method, None
    return davies_pvalue(q, truncate_eigenvalues(lam_all))


def davies_pvalue(q: float, lam: np.ndarray) -> tuple[float, str, int | None]:
    """R's ``Get_PValue.Lambda`` on already truncated eigenvalues: Davies, liu.mod outside (0, 1]."""
    qf = _quadform()
    if lam.size == 0:
        return 1.0, "none", None
    if lam.size == 1:
        return float(sps.chi2.sf(q / lam[0], 1)), "liu.mod", None
    p, fault = davies1(q, lam)
    if not 0 < p <= 1:
        return float(np.ravel(qf.liu_mod(q, lam))[0]), "liu.mod", fault
    return p, "davies", fault


def davies1(q: float, lam: np.ndarray) -> tuple[float, int]:
    """Davies' p-value (R SKAT's acc 1e-6, lim 10,000) for one quantile: ``(p, fault)``."""
    p, fault = _quadform().davies(q, lam, acc=DAVIES_ACC, lim=DAVIES_LIM)
    return float(p[0]), int(fault[0])


# ----------------------------------------------------------------------------- small-sample adjustment
def _boot_scores(null: NullModel, Z1: np.ndarray) -> np.ndarray:
    """Bootstrap scores ``T* = Z~' (y* - mu)`` (p x B), Z~ = Z1 / sqrt(V): the linearised null scores."""
    cache = null.__dict__.setdefault("_boot_cache", {})
    if "Yc" not in cache:
        assert null.y_boot is not None  # only moment-adjusted nulls get here, and they carry y_boot
        # centred bootstrap phenotypes, kept as float32 to halve the memory of an (n, B) matrix
        cache["Yc"] = (null.y_boot.astype(np.float32) - null.fitted[:, None].astype(np.float32))
    Zt = (Z1 / null.sqrt_var[:, None]).astype(np.float32)
    return (Zt.T @ cache["Yc"]).astype(np.float64)


def moment_params(null: NullModel, Z1: np.ndarray, R: np.ndarray, T_boot: np.ndarray) -> tuple[float, float, float]:
    """Mean, variance and df of ``Q = S' R S / 2`` under a Bernoulli null (Lee et al. 2012 moment matching).

    The mean and variance are exact for independent Bernoulli outcomes given the linearised,
    covariate-projected scores (the variance includes the fourth-moment term
    ``sum_i (m4_i - 3 v_i^2) A_ii^2``); the degrees of freedom come from the excess kurtosis of
    the bootstrap statistics, ``df = 12 / kurtosis``.
    """
    Omega = Z1.T @ Z1
    RO = R @ Omega / 2.0
    mu = float(np.trace(RO))
    v = null.var
    a = 0.5 * np.einsum("ij,jk,ik->i", Z1, R, Z1)  # z1_i' R z1_i / 2 (z1 whitened)
    var = 2.0 * float(np.sum(RO * RO.T)) + float(np.sum((1.0 / v - 6.0) * a * a))
    qb = 0.5 * np.einsum("jb,jk,kb->b", T_boot, R, T_boot)
    c = qb - qb.mean()
    kurt = float(np.mean(c**4) / np.mean(c**2) ** 2 - 3.0)
    df = 12.0 / kurt if kurt > 0 else 1e5
    return mu, max(var, 1e-300), df


def moment_pvalue(q: float, params: tuple[float, float, float]) -> float:
    """P-value of ``q`` under the scaled chi-square with matched mean, variance and df."""
    mu, var, df = params
    return float(sps.chi2.sf((q - mu) / np.sqrt(var) * np.sqrt(2 * df) + df, df))


# ----------------------------------------------------------------------------- SKAT and burden
def _check_choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise InputError(f"{name} must be one of {list(options)}, got {value!r}")


def test_prepared(
    G: np.ndarray,
    w: np.ndarray,
    null: NullModel,
    test: str = "skat",
    method: str = "davies",
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
    if adjusted:
        Gw = G * w[None, :]
        S = Gw.T @ null.residuals
        Z1 = null.project(Gw)
        W = Z1.T @ Z1
    else:
        # the weights are applied to the p x p products, not to an n x p copy of G
        S, W = null.scores_and_cov(G)
        S, W = w * S, w[:, None] * W * w[None, :]
        Z1 = None
    if test == "skat-o" and p > 1:
        from bayesmages.skat.skato import skato

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
        params = moment_params(null, Z1, R, _boot_scores(null, Z1))
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
    method: str = "davies",
    *,
    impute: str = "fixed",
    missing_cutoff: float = 0.15,
    max_maf: float = 1.0,
    rho_grid: Any = None,
    skato_quadrature: str = "gk",
    seed: int = 0,
) -> SKATResult:
    """SKAT, burden or SKAT-O test of a variant set against a fitted null model.

    Parameters
    ----------
    Z : array-like
        (n, p) genotypes 0/1/2 (minor-allele counts; major-allele columns are flipped); NaN or 9
        = missing. QC, imputation and flipping follow R SKAT (:mod:`bayesmages.skat.variants`).
    null : NullModel
        From :func:`bayesmages.skat.fit_null` on the same samples, in the same order.
    test : {"skat", "burden", "skat-o"}
        SKAT (linear weighted kernel), burden (R's ``r.corr = 1``) or SKAT-O.
    weights_beta : (float, float)
        Beta(a1, a2) density weights of the MAF (R default (1, 25); (1, 1) = unweighted).
    weights : array-like, optional
        User weights, one per column of ``Z`` (overrides ``weights_beta``).
    method : {"davies", "liu", "liu.mod"}
        Null distribution of Q. For SKAT-O, ``"davies"`` is R's ``"optimal.adj"`` and
        ``"liu"``/``"liu.mod"`` are R's ``"optimal.moment.adj"``. Ignored (as in R) when the null
        model carries the binary small-sample adjustment.
    impute : {"fixed", "bestguess", "random"}
        Missing-genotype imputation (R ``impute.method``).
    missing_cutoff, max_maf : float
        Variant QC thresholds (R's ``missing_cutoff`` 0.15, ``max_maf`` 1).
    rho_grid : sequence of float, optional
        SKAT-O rho grid (default R's optimal.adj grid 0, .01, .04, .09, .25, .5, 1).
    skato_quadrature : {"gk", "qags"}
        SKAT-O's final integral: ``"gk"`` (default) accurate and fast; ``"qags"`` R's QUADPACK
        computation, which reproduces R's values including its quadrature error (up to ~1 %
        at p ~ 1e-5; :mod:`bayesmages.skat.skato`).
    seed : int
        Seed of ``impute="random"``.

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
    _check_choice("method", method, METHODS)
    G = as_genotype_matrix(Z, n=null.n)
    pv = prepare_variants(G, impute=impute, missing_cutoff=missing_cutoff, max_maf=max_maf, seed=seed,
                          _validated=True)
    w = variant_weights(pv, weights_beta, weights)
    return test_prepared(pv.G, w, null, test, method, rho_grid=rho_grid, n_variants=pv.n_input,
                         skato_quadrature=skato_quadrature)
