"""Single-trait gene-level tests: the calibrated LD-conditional test (default) and the paper's gene-epsilon test.

``test(..., method="conditional")`` (default) and ``method="marginal"`` are described in
:mod:`bayesmages.genes.conditional`; their p-values are error rates. ``method="epsilon"`` is the
ML-MAGES paper's test, kept by name: for gene g with variants i in g, Q_g = sum_i beta_shrunk_i^2 is
compared with sum_k lambda_k chi2_1, lambda = eigvalsh(epsilon R_g), by
:func:`bayesmages.stats.quadform.pvalue` (the exact ``"auto"`` method; no flooring). It answers "are
the gene's shrunk effects larger than the non-prioritised cluster's variance epsilon?"; shrunk
effects are not N(0, epsilon R_g) under any null (the shrinker is non-linear and the cluster rule
picks a variance from the fit), so these p-values rank genes but are **not** error rates (measured in
docs/genes.md). q-values are Benjamini-Hochberg over the tested genes, for every test.

**LD across blocks.** LD blocks are independent by construction, so a gene whose variants fall
in several blocks gets the block-diagonal R_g (zero correlation between blocks); its eigenvalues
are the union of those of its per-block parts. Slightly negative eigenvalues (rounded or
shrunk LD matrices are not always positive semi-definite) are set to zero.

**Null variance epsilon** (when not given). A one-trait ``dp_mixture`` is fitted to all
``beta_shrunk`` values (or a fitted one is passed); its kept clusters are ordered by variance,
largest first, with weights pi. The rule, following the reference ML-MAGES: epsilon is the
variance of the **second** cluster when the largest-variance cluster is not negligible
(pi_0 > 0.01), else of the **third** (a tiny top cluster is a handful of outliers, and the
second then still holds signal). Guards: with K* = 2 and pi_0 <= 0.01 the second (last) cluster
is used; with K* = 1 (no separation between signal and null) epsilon is the variance of that
single cluster, which makes the test conservative, and a warning says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import AccuracyWarning, InputError
from bayesmages.genes.conditional import DEFAULT_THRESHOLD
from bayesmages.genes.mapping import GeneMap, map_genes
from bayesmages.genes.units import as_ld_blocks, conditional_pvalues, gene_eigenvalues, map_gene_units
from bayesmages.stats.multitest import bh

__all__ = ["CONDITIONAL_TESTS", "TESTS", "conditional_pvalues", "gene_eigenvalues", "null_variance_from_fit", "test",
           "test_traits"]

TOP_WEIGHT_MIN = 0.01  # pi_0 above which the 2nd cluster (by variance) is the null one


def null_variance_from_fit(cluster_fit: Any) -> tuple[float, str]:
    """Null variance epsilon from a fitted one-trait ``dp_mixture`` (rule in the module docstring).

    Parameters
    ----------
    cluster_fit : DPMixture
        Fitted, with ``weights_`` (K*,) and ``covariances_`` (K*, 1, 1) ordered by variance descending.

    Returns
    -------
    (float, str)
        epsilon and a one-line description of the choice.

    Examples
    --------
    >>> class Fit:  # any object with the fitted attributes works
    ...     weights_ = np.array([0.05, 0.25, 0.7]); covariances_ = np.array([[[4.0]], [[0.1]], [[0.001]]])
    >>> null_variance_from_fit(Fit())[0]
    0.1
    """
    try:
        w = np.asarray(cluster_fit.weights_, dtype=np.float64)
        cov = np.asarray(cluster_fit.covariances_, dtype=np.float64)
    except AttributeError:
        raise InputError("cluster_fit: expected a fitted dp_mixture (weights_, covariances_)") from None
    if cov.ndim != 3 or cov.shape[1:] != (1, 1) or cov.shape[0] != w.size or w.size == 0:
        raise InputError(
            f"cluster_fit: expected a one-trait fit with covariances_ of shape (K, 1, 1), got {cov.shape}"
        )
    var = cov[:, 0, 0]
    order = np.argsort(-var, kind="stable")  # already sorted by trace in dp_mixture; keep it explicit
    var, w = var[order], w[order]
    k = var.size
    if k == 1:
        warnings.warn(
            "cluster_fit has a single cluster: the null variance is the variance of all effects, "
            "which makes the enrichment test conservative", UserWarning, stacklevel=3,
        )
        return float(var[0]), "single cluster (K*=1): its variance (conservative)"
    j = 1 if w[0] > TOP_WEIGHT_MIN else 2
    j = min(j, k - 1)
    why = (f"cluster {j + 1} of {k} by variance (top cluster weight {w[0]:.3g} "
           f"{'>' if w[0] > TOP_WEIGHT_MIN else '<='} {TOP_WEIGHT_MIN})")
    return float(var[j]), why


def _fit_null_variance(beta: np.ndarray, seed: int, truncation: int) -> tuple[float, str]:
    from bayesmages.registry import get_model

    fit = get_model("dp_mixture", truncation=truncation).fit(beta.reshape(-1, 1), seed=seed)
    return null_variance_from_fit(fit)


#: The gene tests by name (``method=``, ``bayesmages enrich --test``, ``bayesmages run --gene-test``, and the ``test``
#: column of every gene table). ``"conditional+single"`` is the conditional test with its optional single-variant
#: part in the combination (docs/genes.md: +0.004-0.015 average precision, +0.007-0.012 false share of BH calls).
TESTS = ("conditional", "conditional+single", "marginal", "epsilon")
#: The tests that condition on the shrinker's selection (they need ``beta_shrunk``, ``beta_hat`` and ``se``).
CONDITIONAL_TESTS = ("conditional", "conditional+single")


def test(
    beta_shrunk: Sequence[float] | np.ndarray | pd.Series,
    ld_blocks: Any,
    genes: pd.DataFrame | GeneMap,
    null_variance: float | None = None,
    cluster_fit: Any = None,
    *,
    beta_hat: Sequence[float] | np.ndarray | pd.Series | None = None,
    se: Sequence[float] | np.ndarray | pd.Series | None = None,
    method: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    variants: pd.DataFrame | None = None,
    by: str = "auto",
    index_base: str = "chromosome",
    seed: int = 0,
    truncation: int = 20,
    workers: int = 1,
    scheduler: Any = None,
) -> pd.DataFrame:
    """Gene-level test of one trait: calibrated LD-conditional p-values by default.

    Four tests (``method``):

    * ``"conditional"`` (default): does the gene hold a causal variant? The gene's z-scores are
      residualised on the outside signals that the shrinker keeps (|beta_shrunk / se| > ``threshold``)
      and tested against the exact null of the residual (:mod:`bayesmages.genes.conditional`): the Cauchy
      combination of the exact p-values of its sum of squares Q_g and of its Wald form W_g. p-values
      are error rates: uniform or conservative under the null, and BH q-values control the FDR when
      other genes carry signal (docs/genes.md has the measured calibration and where it stops).
    * ``"conditional+single"``: the same with a third part in the combination, the Cauchy combination of
      the gene's exact one-variant p-values of the residual (each variant's r_i against N(0, C_ii)). Also
      exact given the conditioning set; it ranks associated genes a little better (average precision
      +0.004-0.015) but lets a little more spill-over through (false share of BH calls +0.007-0.012, up to
      0.052 in a tuning setting; docs/genes.md), hence not the default.
    * ``"marginal"``: the LD-aware test on raw effects (z_g'z_g against eig(R_g); fastBAT/MAGMA-style).
      Exact for "is the gene marginally associated", so it also calls genes that tag a causal neighbour.
    * ``"epsilon"``: the ML-MAGES paper's test, Q_g = sum of squared shrunk effects against
      sum_k lambda_k chi2_1 with lambda = eig(epsilon R_g). It answers "are the gene's shrunk effects
      larger than the non-prioritised cluster's variance epsilon?"; its p-values are **not** error rates
      (shrunk effects are not N(0, epsilon R_g) under any null), so use them for ranking only.

    Parameters
    ----------
    beta_shrunk : array_like
        (m,) shrunk effects in data order (the order of the LD blocks laid one after another).
    ld_blocks : array, LDBlock, sequence of them, or LDRefs
        LD correlation blocks covering the m variants in order; an
        :class:`~bayesmages.io.ldrefs.LDRefs` references blocks on disk (memory-mapped; with
        ``workers > 1`` or a scheduler each worker opens them itself).
    genes : pandas.DataFrame or GeneMap
        A gene table (positions or ML-MAGES index ranges, see :func:`~bayesmages.genes.mapping.map_genes`)
        or an already mapped :class:`~bayesmages.genes.mapping.GeneMap`.
    null_variance : float, optional
        epsilon of the ``"epsilon"`` test. When omitted there it comes from ``cluster_fit``, or from a
        one-trait ``dp_mixture`` fitted here (``truncation``, ``seed``) by the rule in the module docstring.
    cluster_fit : DPMixture, optional
        A fitted one-trait ``dp_mixture`` to take epsilon from (``"epsilon"`` test).
    beta_hat, se : array_like, optional
        (m,) observed effects and their standard errors (the shrinker's inputs); required by the
        ``"conditional"``, ``"conditional+single"`` and ``"marginal"`` tests.
    method : str, optional
        ``"conditional"``, ``"conditional+single"``, ``"marginal"`` or ``"epsilon"`` (:data:`TESTS`). When
        omitted: ``"epsilon"`` if ``null_variance`` or ``cluster_fit`` is given, else ``"conditional"``.
    threshold : float
        |beta_shrunk / se| above which an outside variant is conditioned on (the conditional tests).
    variants : pandas.DataFrame, optional
        Variant table (``CHR``, ``POS``) for positions mapping or multi-chromosome index mapping.
    by, index_base : str
        Passed to :func:`~bayesmages.genes.mapping.map_genes`.
    seed : int
        Seed of the ``dp_mixture`` fit (only used when epsilon is estimated here).
    truncation : int
        Truncation of that fit.
    workers : int
        Local worker processes (genes split into contiguous chunks, see :mod:`bayesmages.parallel`). The
        workers read the LD blocks from disk by reference: from ``ld_blocks`` when it is an
        :class:`~bayesmages.io.ldrefs.LDRefs`, else from temporary files written here (a block object
        repeated in ``ld_blocks`` is written once). Results are identical for any ``workers``.
    scheduler : str or dask.distributed.Client, optional
        Run the gene chunks on a Dask distributed cluster instead (see :mod:`bayesmages.parallel`);
        each chunk ships only the LD blocks its genes touch, or, when ``ld_blocks`` is an
        :class:`~bayesmages.io.ldrefs.LDRefs`, only their ids (the workers must then be able to read
        its files: a shared file system or a LocalCluster). Results are identical to a local run.

    Returns
    -------
    pandas.DataFrame
        ``GENE, CHR, n_variants, Q, p_value, q_value, test, p_method`` (and ``n_conditioned``, the number
        of outside variants conditioned on, for the conditional and marginal tests), one row per gene with at
        least one variant, in gene-table order. ``p_method`` says how the p-value was computed: ``"exact"``,
        ``"saddlepoint"`` (fallback when the exact integral did not converge; an
        :class:`~bayesmages.errors.AccuracyWarning` is issued) or ``"none"`` (p = 1: no variance under H0).
        ``Q`` is on the z scale for the conditional and marginal tests
        and on the effect scale for the epsilon test. ``df.attrs`` holds ``test``, ``null_variance`` and
        ``null_variance_rule`` (epsilon test; ``None`` otherwise) and ``unmapped`` (genes without variants).

    Raises
    ------
    InputError
        Lengths disagree, non-finite effects, ``se <= 0``, bad LD blocks, bad gene ranges, epsilon <= 0,
        an unknown method, or the conditional/marginal test without ``beta_hat`` and ``se``.

    Examples
    --------
    >>> R = np.eye(6)
    >>> genes = pd.DataFrame({"GENE": ["A", "B"], "CHR": [1, 1], "N_SNPS": [3, 3], "start_idx_chr": [0, 3],
    ...                       "end_idx_chr": [2, 5], "chr_start_idx_gw": [0, 0]})
    >>> bhat = np.array([0.001, 0.0, 0.0, 0.03, 0.02, 0.01]); se = np.full(6, 0.005)
    >>> res = test(np.array([0.0, 0.0, 0.0, 0.03, 0.02, 0.0]), R, genes, beta_hat=bhat, se=se)
    >>> res[["GENE", "n_variants", "test"]].values.tolist()
    [['A', 3, 'conditional'], ['B', 3, 'conditional']]
    >>> bool(res.p_value[1] < 1e-2 < res.p_value[0])
    True
    """
    beta = np.asarray(beta_shrunk, dtype=np.float64).ravel()
    if not np.all(np.isfinite(beta)):
        raise InputError("beta_shrunk: all effects must be finite")
    blocks = as_ld_blocks(ld_blocks)
    m = int(sum(b.shape[0] for b in blocks))
    if m != beta.size:
        raise InputError(f"beta_shrunk has {beta.size} values but the LD blocks cover {m} variants")
    if method is None:
        method = "epsilon" if (null_variance is not None or cluster_fit is not None) else "conditional"
    _check_method(method, null_variance is not None or cluster_fit is not None, workers, threshold)
    gmap = genes if isinstance(genes, GeneMap) else map_genes(
        genes, variants=variants, n_variants=m, by=by, index_base=index_base)
    eps: float | None = None
    rule: str | None = None
    if method == "epsilon":
        if null_variance is not None:
            eps, rule = float(null_variance), "given"
        elif cluster_fit is not None:
            eps, rule = null_variance_from_fit(cluster_fit)
        else:
            eps, rule = _fit_null_variance(beta, seed, truncation)
        traits = _epsilon_arrays({"": beta}, {"": eps}, gmap)
    else:
        traits = _z_arrays({"": beta}, {"": beta_hat}, {"": se}, m, method, threshold)
    return _run(gmap, ld_blocks, blocks, method, traits, [eps], [rule], workers, scheduler)[0]


def test_traits(
    beta_shrunk: Mapping[str, Sequence[float] | np.ndarray | pd.Series],
    ld_blocks: Any,
    genes: pd.DataFrame | GeneMap,
    *,
    beta_hat: Mapping[str, Sequence[float] | np.ndarray | pd.Series] | None = None,
    se: Mapping[str, Sequence[float] | np.ndarray | pd.Series] | None = None,
    null_variance: Mapping[str, float] | None = None,
    method: str = "conditional",
    threshold: float = DEFAULT_THRESHOLD,
    variants: pd.DataFrame | None = None,
    by: str = "auto",
    index_base: str = "chromosome",
    workers: int = 1,
    scheduler: Any = None,
) -> dict[str, pd.DataFrame]:
    """:func:`test` of several traits on one LD reference and gene table, computed together.

    Each trait's table equals ``test(...)`` of that trait alone, bit for bit. Done together, the genes are
    mapped once, each gene's rows and LD submatrices are cut once for all traits (and for the epsilon test
    each R_g is decomposed once and scaled by each trait's epsilon), and with ``workers > 1`` or a scheduler
    all traits share one map of work units (chunks of genes x all traits, :mod:`bayesmages.genes.units`):
    one wait for the slowest unit instead of one per trait.

    Parameters
    ----------
    beta_shrunk : mapping of str to array_like
        Trait name -> (m,) shrunk effects in data order.
    ld_blocks, genes, threshold, variants, by, index_base, workers, scheduler
        As in :func:`test`.
    beta_hat, se : mapping of str to array_like, optional
        Per trait (same keys as ``beta_shrunk``); required by every test but ``"epsilon"``.
    null_variance : mapping of str to float, optional
        Per-trait epsilon; required by ``method="epsilon"`` (take it from each trait's clustering with
        :func:`null_variance_from_fit`).
    method : str
        ``"conditional"`` (default), ``"conditional+single"``, ``"marginal"`` or ``"epsilon"``.

    Returns
    -------
    dict of str to pandas.DataFrame
        Trait name -> the table :func:`test` returns, in the order of ``beta_shrunk``.

    Raises
    ------
    InputError
        As :func:`test`; also when the mappings' keys disagree.

    Examples
    --------
    >>> genes = pd.DataFrame({"GENE": ["A", "B"], "CHR": [1, 1], "N_SNPS": [3, 3], "start_idx_chr": [0, 3],
    ...                       "end_idx_chr": [2, 5], "chr_start_idx_gw": [0, 0]})
    >>> bhat = {"T1": np.array([0.001, 0.0, 0.0, 0.03, 0.02, 0.01]), "T2": np.full(6, 0.001)}
    >>> se = {t: np.full(6, 0.005) for t in bhat}
    >>> out = test_traits({t: np.where(np.abs(b) > 0.015, b, 0.0) for t, b in bhat.items()}, np.eye(6), genes,
    ...                   beta_hat=bhat, se=se)
    >>> out["T1"].equals(test(np.where(np.abs(bhat["T1"]) > 0.015, bhat["T1"], 0.0), np.eye(6), genes,
    ...                       beta_hat=bhat["T1"], se=se["T1"]))
    True
    """
    names = list(beta_shrunk)
    if not names:
        raise InputError("beta_shrunk: expected at least one trait")
    blocks = as_ld_blocks(ld_blocks)
    m = int(sum(b.shape[0] for b in blocks))
    betas = {}
    for t in names:
        betas[t] = np.asarray(beta_shrunk[t], dtype=np.float64).ravel()
        if betas[t].size != m:
            raise InputError(f"beta_shrunk[{t!r}] has {betas[t].size} values but the LD blocks cover {m} variants")
        if not np.all(np.isfinite(betas[t])):
            raise InputError(f"beta_shrunk[{t!r}]: all effects must be finite")
    _check_method(method, False, workers, threshold)
    gmap = genes if isinstance(genes, GeneMap) else map_genes(
        genes, variants=variants, n_variants=m, by=by, index_base=index_base)
    if method == "epsilon":
        if null_variance is None:
            raise InputError("null_variance: the epsilon test needs each trait's epsilon (trait -> float)")
        eps = {t: float(v) for t, v in _per_trait(null_variance, names, "null_variance").items()}
        traits = _epsilon_arrays(betas, eps, gmap)
        eps_list: list[float | None] = [eps[t] for t in names]
        rules: list[str | None] = ["given"] * len(names)
    else:
        traits = _z_arrays(betas, _per_trait(beta_hat, names, "beta_hat"), _per_trait(se, names, "se"), m,
                           method, threshold)
        eps_list, rules = [None] * len(names), [None] * len(names)
    return dict(zip(names, _run(gmap, ld_blocks, blocks, method, traits, eps_list, rules, workers, scheduler)))


def _per_trait(values: Mapping[str, Any] | None, names: list[str], what: str) -> dict[str, Any]:
    if values is None:
        return {t: None for t in names}
    if set(values) != set(names):
        raise InputError(f"{what}: expected one entry per trait {names}, got {sorted(values)}")
    return {t: values[t] for t in names}


def _check_method(method: str, has_eps: bool, workers: Any, threshold: float) -> None:
    if method not in TESTS:
        raise InputError(f"method: expected one of {', '.join(TESTS)}; got {method!r}")
    if method != "epsilon" and has_eps:
        raise InputError(f"null_variance and cluster_fit belong to method='epsilon', not {method!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers: expected a positive integer, got {workers!r}")
    if method != "epsilon" and not (np.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold: expected a non-negative number, got {threshold!r}")


def _epsilon_arrays(betas: dict[str, np.ndarray], eps: dict[str, float], gmap: GeneMap) -> dict[str, Any]:
    for t, e in eps.items():
        if e is None or not (np.isfinite(e) and e > 0):
            raise InputError(f"null_variance{f'[{t!r}]' if t else ''}: expected a positive number, got {e!r}")
    q_stat = np.array([[float(np.sum(beta[ix] ** 2)) for ix in gmap.indices] for beta in betas.values()])
    return {"q_stat": q_stat.reshape(len(betas), len(gmap)), "eps": np.array([eps[t] for t in betas])}


def _z_arrays(betas: dict[str, np.ndarray], beta_hat: dict[str, Any], se: dict[str, Any], m: int, method: str,
              threshold: float) -> dict[str, Any]:
    z = np.stack([_z_scores(beta_hat[t], se[t], m, method) for t in betas])
    zeta = (np.stack([betas[t] / np.asarray(se[t], dtype=np.float64).ravel() for t in betas])
            if method in CONDITIONAL_TESTS else None)
    return {"z": z, "zeta": zeta, "threshold": float(threshold)}


def _run(gmap: GeneMap, ld_blocks: Any, blocks: list[np.ndarray], method: str, traits: dict[str, Any],
         eps: list[float | None], rules: list[str | None], workers: int, scheduler: Any) -> list[pd.DataFrame]:
    """Map the units and build each trait's table (BH q-values; saddlepoint fallbacks warned here)."""
    parts, stats = map_gene_units(gmap, ld_blocks, blocks, method, traits, workers=workers, scheduler=scheduler)
    out = []
    for part, e, rule in zip(parts, eps, rules):
        q_stat, p, p_method = part[:3]
        res = gmap.genes[["GENE", "CHR", "n_variants"]].copy()
        res["Q"] = q_stat
        res["p_value"] = p
        res["q_value"] = bh(p) if p.size else p
        res["test"] = method
        res["p_method"] = p_method
        if method != "epsilon":
            res["n_conditioned"] = part[3]
        approx = res["GENE"][p_method == "saddlepoint"].astype(str).tolist()
        if approx:
            # warned here, in the caller's thread, not inside worker threads or processes
            warnings.warn(
                f"gene test: the exact p-value integral did not converge for {len(approx)} gene(s) "
                f"({', '.join(approx[:5])}{', ...' if len(approx) > 5 else ''}); their p-values use the "
                "saddlepoint approximation (relative error up to ~15%) and are marked p_method='saddlepoint'",
                AccuracyWarning, stacklevel=3)
        res.attrs.update({"test": method, "null_variance": e, "null_variance_rule": rule,
                          "unmapped": list(gmap.unmapped), "units": stats})
        out.append(res)
    return out


def _z_scores(beta_hat: Any, se: Any, m: int, method: str) -> np.ndarray:
    if beta_hat is None or se is None:
        raise InputError(f"the {method} gene test needs beta_hat and se (the shrinker's inputs); "
                         "pass them, or method='epsilon' for the paper's test on shrunk effects alone")
    b = np.asarray(beta_hat, dtype=np.float64).ravel()
    s = np.asarray(se, dtype=np.float64).ravel()
    if b.size != m or s.size != m:
        raise InputError(f"beta_hat and se must have one value per variant ({m}), got {b.size} and {s.size}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(s))):
        raise InputError("beta_hat and se must be finite")
    if np.any(s <= 0):
        raise InputError(f"se must be positive (row {int(np.argmax(s <= 0))} is {float(s[s <= 0][0]):g})")
    return b / s


test.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test
