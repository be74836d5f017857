"""The public SKAT-family entry points: :func:`test` (QC + test) and :func:`test_prepared` (the numeric core).

The weighted scores of :mod:`bayesmages.skat.scores` are tested by
:mod:`bayesmages.skat.score_test` (exact tails by default, R's computation with ``compat="R"``);
binary traits can instead use the moment adjustment (:mod:`bayesmages.skat.adjusted`), efficient
resampling or saddlepoint p-values (:mod:`bayesmages.skat.binary`); ACAT-V and ACAT-O combine
tests of :func:`test_prepared` (:mod:`bayesmages.skat.acat`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.errors import InputError
from bayesmages.skat.acat import acat_o, acat_v
from bayesmages.skat.adjusted import adjusted_test
from bayesmages.skat.binary import BIN_METHODS, binary_test
from bayesmages.skat.null import NullModel
from bayesmages.skat.result import COMPAT, METHODS, TESTS, SKATResult
from bayesmages.skat.score_test import test_scores
from bayesmages.skat.scores import weighted_scores
from bayesmages.skat.variants import PreparedVariants, as_genotype_matrix, prepare_variants, variant_weights

__all__ = ["BIN_CHOICES", "resolve_method_bin", "test", "test_prepared"]

BIN_CHOICES = ("asymptotic", *BIN_METHODS)  # method_bin values; None resolves to one of them


def resolve_method_bin(method_bin: str | None, trait: str, test: str, compat: str | None = None) -> str:
    """The binary-trait method a SKAT-family test uses: ``method_bin`` checked, or the default for ``None``.

    The default is ``"hybrid"`` (ER/SPA, calibrated for unbalanced case-control designs) for binary
    traits with SKAT, burden and SKAT-O, and ``"asymptotic"`` (R ``SKAT()``'s computation: the
    moment adjustment when the null model carries it, else the chi-square-mixture test of
    ``method``) with ``compat="R"``, for continuous traits and for ACAT-V/ACAT-O, whose
    single-variant p-values are asymptotic. An explicit ER/SPA/hybrid choice for a continuous
    trait or for ACAT is refused with one clear line.
    """
    if method_bin is None:
        if trait == "binary" and compat != "R" and test in ("skat", "burden", "skat-o"):
            return "hybrid"
        return "asymptotic"
    _check_choice("method_bin", method_bin, BIN_CHOICES)
    if method_bin != "asymptotic":
        if trait != "binary":
            raise InputError(f"method_bin={method_bin!r} is for binary traits; the null model is {trait!r} "
                             "(fit it with trait='binary')")
        if test not in ("skat", "burden", "skat-o"):
            raise InputError(f"method_bin={method_bin!r} is not available with test={test!r} (ACAT's single-variant "
                             "p-values are asymptotic); use 'skat', 'burden' or 'skat-o'")
    return method_bin


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
    method_bin: str = "asymptotic",
    n_resampling: int = 1_000_000,
    seed: int = 0,
) -> SKATResult:
    """Run a test on QC'd, imputed genotypes ``G`` (n x p) with kernel weights ``w`` (p,).

    This is the numeric core behind :func:`test`, :func:`bayesmages.skat.ecskat` and the sets
    runner; it does no QC and chooses no default: ``method_bin`` is one of :data:`BIN_CHOICES`
    as :func:`resolve_method_bin` returns it (``"asymptotic"`` unless told otherwise, as this
    function also serves continuous traits). See :func:`test` for the arguments.
    """
    p = G.shape[1]
    n_variants = p if n_variants is None else n_variants
    if p == 0:
        return SKATResult(1.0, 0.0, 0, n_variants, test, "none")
    if method_bin != "asymptotic":
        return binary_test(G, w, null, test, method_bin, method=method, rho_grid=rho_grid, n_variants=n_variants,
                           skato_quadrature=skato_quadrature, n_resampling=n_resampling, seed=seed)
    if null.adjustment and null.trait == "binary":
        return adjusted_test(G, w, null, test, rho_grid=rho_grid, n_variants=n_variants, quadrature=skato_quadrature)
    S, W = weighted_scores(G, w, null)
    return test_scores(S, W, null.s2, test, method, rho_grid=rho_grid, n_variants=n_variants,
                       skato_quadrature=skato_quadrature)


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
    method_bin: str | None = None,
    n_resampling: int = 1_000_000,
    estimate_maf: int = 1,
    included: Any = None,
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
        (n, p) genotypes: allele counts 0/1/2 or dosages in [0, 2] (major-allele columns are
        flipped); NaN or 9 = missing. QC, imputation and flipping follow R SKAT
        (:mod:`bayesmages.skat.variants`). With ``included``, the rows are all genotyped samples
        and ``included`` says which of them the null model was fitted to.
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
        For ``method="davies"``/``"liu"``/``"liu.mod"`` SKAT-O and for the moment-adjusted
        binary SKAT-O, the final integral of R's formula: ``"gk"`` (what None means) accurate and
        fast; ``"qags"`` (what None means with ``compat="R"``) R's QUADPACK computation, which
        reproduces R's values including its quadrature error (:mod:`bayesmages.skat.skato`).
    method_bin : {None, "hybrid", "er", "spa", "asymptotic"}
        Binary traits (:mod:`bayesmages.skat.binary`). ``None`` (default) means ``"hybrid"`` for
        SKAT, burden and SKAT-O, and ``"asymptotic"`` with ``compat="R"`` and for ACAT-V/ACAT-O
        (:func:`resolve_method_bin`). ``"hybrid"``: ER when the set has at most 40 minor alleles
        or carriers or its carriers expect at most 10 of the rarer outcome, SPA otherwise; its
        type-I error is within the binomial 95 % interval at alpha 1e-3 and 1e-4 from 0.5 % to
        20 % cases (n = 5,000, bench/skat_binary.py), where the asymptotic test's is 14x alpha at
        1e-3 with 1 % cases. ``"er"``: efficient resampling, exact when the carriers have at most
        2^20 phenotype configurations, adaptive resampling beyond. ``"spa"``: saddlepoint-adjusted
        scores (per-variant SPA, SKATBinary_Robust's variance adjustment), tested by ``method``
        (exact tails by default). ``"asymptotic"``: R ``SKAT()``'s behaviour, i.e. the
        small-sample moment adjustment when the null model carries it (``fit_null``'s default for
        n < 2,000, :mod:`bayesmages.skat.adjusted`; it is R's computation in both modes and
        ignores ``method``, as R does), else the chi-square-mixture test of ``method``;
        miscalibrated for rare variants in unbalanced designs. ER, SPA and hybrid are not
        available with ACAT-V/ACAT-O.
    n_resampling : int
        Largest number of ER draws when the law is not enumerated (R: 2e6).
    estimate_maf : {1, 2}
        R's ``estimate_MAF``: 1 (default) estimates MAFs (and imputes and flips) from all rows of
        ``Z``; 2 from the ``included`` rows only. The same when ``included`` is ``None``.
    included : array-like of bool, optional
        (Z's rows,) mask of the samples of the null model (R's ``id_include``: the samples
        without a missing phenotype or covariate); ``None``: every row of ``Z``.
    seed : int
        Seed of ``impute="random"`` and of ER resampling.
    compat : {None, "R"}
        ``"R"``: compute every p-value as R SKAT 2.2.5 does (Davies at R's accuracy with its
        fallbacks, SKAT-O's Liu-mod thresholds, rho = 1 taken as 0.999 and R's QUADPACK
        integration), reproducing R's numbers (tested to 1e-6 relative on the reference cases)
        including R's own numerical errors; for binary traits R ``SKAT()``'s asymptotic (or
        moment-adjusted) test unless ``method_bin`` says otherwise. ``None`` (default): exact
        tails, and ER/SPA (``method_bin="hybrid"``) for binary traits.
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
    method_bin = resolve_method_bin(method_bin, null.trait, test, compat)
    if estimate_maf not in (1, 2):
        raise InputError(f"estimate_maf must be 1 (all samples) or 2 (the null model's samples), got {estimate_maf!r}")
    if compat == "R":
        if method == "exact":
            raise InputError("method='exact' is not an R SKAT method: with compat='R' use 'davies', 'liu' "
                             "or 'liu.mod'")
        if skato_quadrature not in (None, "qags"):
            raise InputError(f"compat='R' integrates SKAT-O as R does (skato_quadrature='qags'), "
                             f"got {skato_quadrature!r}")
        skato_quadrature = "qags"
    keep = None
    if included is not None:
        keep = np.asarray(included)
        if keep.dtype != bool or keep.ndim != 1 or int(keep.sum()) != null.n:
            raise InputError(f"included must be a boolean mask with one True per sample of the null model "
                             f"({null.n}), got dtype {keep.dtype}, shape {keep.shape}")
    G = as_genotype_matrix(Z, n=null.n if keep is None else None)
    if keep is not None and G.shape[0] != keep.size:
        raise InputError(f"included has {keep.size} values but Z has {G.shape[0]} rows")
    if keep is not None and estimate_maf == 2:
        G, keep = G[keep], None
    pv = prepare_variants(G, impute=impute, missing_cutoff=missing_cutoff, max_maf=max_maf, seed=seed,
                          _validated=True)
    w = variant_weights(pv, weights_beta, weights)
    if keep is not None:
        Gt = pv.G[keep]
        poly = np.ptp(Gt, axis=0) > 0  # R: variants monomorphic among the included samples are dropped
        pv = PreparedVariants(G=Gt[:, poly], maf=pv.maf[poly], kept=pv.kept[poly], flipped=pv.flipped,
                              n_input=pv.n_input)
        w = w[poly]
    wb = None if weights is not None else weights_beta
    if test == "acat-v":
        return acat_v(pv, w, null, test_prepared, weights_beta=wb, method=method, mac_threshold=mac_threshold)
    if test == "acat-o":
        return acat_o(pv, null, test_prepared, user_weights=None if weights is None else w, maf_masks=maf_masks,
                      method=method, mac_threshold=mac_threshold, extra_pvalues=extra_pvalues)
    return test_prepared(pv.G, w, null, test, method, rho_grid=rho_grid, n_variants=pv.n_input,
                         skato_quadrature=skato_quadrature or "gk", method_bin=method_bin,
                         n_resampling=n_resampling, seed=seed)
