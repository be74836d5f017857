"""ACAT-V and ACAT-O: Cauchy combinations of variant-level and set-level p-values.

ACAT-V (Liu et al. 2019, AJHG 104: 410-421) combines the single-variant score-test p-values of a
set with the Cauchy combination (:func:`bayesmages.stats.multitest.cauchy`), with weights
``w_j^2 MAF_j (1 - MAF_j)`` (``w_j`` the variant's kernel weight, Beta(1, 25) of its MAF by
default): the weights that make the combination behave like SKAT's weighting of score statistics.
Very rare variants (minor-allele count ``<= mac_threshold``, 10 by default, the rule of the
authors' R package ``ACAT::ACAT_V``) have unreliable single-variant p-values, so they enter as one
burden test (with their kernel weights), weighted as a variant at their mean MAF (Beta weights) or
by their mean ACAT weight (user weights). A p-value of exactly 1 is left out, as in the R package.

ACAT-O (the omnibus test of STAAR, SAIGE-GENE+ and REGENIE) is the equal-weight Cauchy combination
of burden, SKAT and ACAT-V, each with Beta(1, 25) and Beta(1, 1) weights by default, within each
MAF mask if masks are given, plus any extra p-values the caller supplies (e.g. ecSKAT's).

Single-variant p-values are score tests ``z_j = S_j / sqrt(s2 W_jj)``, two-sided normal: the
statistic SKAT is built from (the R package uses a t-test for continuous traits, which differs at
small n). With a moment-adjusted binary null the single-variant p-values stay asymptotic (the
SKAT and burden components use the adjustment, as :func:`bayesmages.skat.test` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from bayesmages.errors import InputError
from bayesmages.skat.null import NullModel
from bayesmages.skat.result import SKATResult
from bayesmages.skat.variants import PreparedVariants, beta_weights
from bayesmages.stats import multitest

__all__ = ["ACAT_WEIGHTS", "acat_o", "acat_v", "single_variant_pvalues"]

ACAT_WEIGHTS = ((1.0, 25.0), (1.0, 1.0))  # ACAT-O's weight choices (STAAR-O's Beta(1,25) and Beta(1,1))

#: the numeric core of a SKAT or burden test: (G, w, null, test, method) -> SKATResult
RunTest = Callable[..., SKATResult]


def single_variant_pvalues(G: np.ndarray, null: NullModel) -> np.ndarray:
    """Two-sided score-test p-values of each column of ``G`` (unweighted; weights cancel)."""
    S, W = null.scores_and_cov(G)
    var = np.clip(np.diag(W), 0.0, None) * null.s2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, np.abs(S) / np.sqrt(var), 0.0)
    return 2.0 * sps.norm.sf(z)


def _label(wb: tuple[float, float] | None) -> str:
    return "user" if wb is None else f"b{wb[0]:g}_{wb[1]:g}"


def acat_v(
    pv: PreparedVariants,
    w: np.ndarray,
    null: NullModel,
    run_test: RunTest,
    *,
    weights_beta: tuple[float, float] | None,
    method: str = "exact",
    mac_threshold: float = 10,
) -> SKATResult:
    """ACAT-V on prepared variants with kernel weights ``w`` (see the module docstring).

    Parameters
    ----------
    pv : PreparedVariants
        QC'd, imputed, flipped genotypes and their MAFs.
    w : numpy.ndarray
        Kernel weights (p_kept,).
    null : NullModel
        The null model.
    run_test : callable
        :func:`bayesmages.skat.test_prepared` (the burden test of the very rare variants).
    weights_beta : (float, float) or None
        The Beta parameters ``w`` came from (the very-rare group is weighted at its mean MAF), or
        None for user weights (the group gets its members' mean ACAT weight).
    method : str
        Null distribution of the burden test (as in :func:`bayesmages.skat.test`).
    mac_threshold : float
        Variants with minor-allele count ``<= mac_threshold`` form the very-rare burden group.

    Returns
    -------
    SKATResult
        ``test="acat-v"``, ``statistic`` the Cauchy statistic; ``extra``: ``p_very_rare_burden``
        (NaN without such variants), ``n_very_rare``, ``p_min_single`` and ``n_single``.
    """
    G, maf = pv.G, pv.maf
    p_kept = G.shape[1]
    if p_kept == 0:
        return SKATResult(1.0, 0.0, 0, pv.n_input, "acat-v", "none")
    mac = G.sum(axis=0)
    rare = mac <= mac_threshold
    acat_w = w * w * maf * (1.0 - maf)
    pvals, weights = [], []
    extra: dict[str, Any] = {"n_very_rare": int(rare.sum()), "n_single": int((~rare).sum()),
                             "p_very_rare_burden": float("nan"), "p_min_single": float("nan")}
    if rare.any():
        p_b = run_test(G[:, rare], w[rare], null, "burden", method).p_value
        extra["p_very_rare_burden"] = p_b
        if not (~rare).any():  # only very rare variants: ACAT-V is their burden test
            return SKATResult(p_b, float("nan"), p_kept, pv.n_input, "acat-v", "burden", extra=extra)
        if weights_beta is not None:
            m = float(maf[rare].mean())
            w_group = float(beta_weights(np.array([m]), weights_beta)[0]) ** 2 * m * (1.0 - m)
        else:
            w_group = float(acat_w[rare].mean())
        pvals.append(p_b)
        weights.append(w_group)
    p_single = single_variant_pvalues(G[:, ~rare], null)
    extra["p_min_single"] = float(p_single.min())
    pvals.extend(p_single.tolist())
    weights.extend(acat_w[~rare].tolist())
    pa, wa = np.array(pvals), np.array(weights)
    keep = (pa < 1.0) & (wa > 0)
    if not keep.any():
        return SKATResult(1.0, float("nan"), p_kept, pv.n_input, "acat-v", "cauchy", extra=extra)
    stat = multitest.cauchy_statistic(pa[keep], wa[keep])
    return SKATResult(float(np.arctan2(1.0, stat) / np.pi), stat, p_kept, pv.n_input, "acat-v", "cauchy",
                      extra=extra)


def acat_o(
    pv: PreparedVariants,
    null: NullModel,
    run_test: RunTest,
    *,
    weights_list: Sequence[tuple[float, float]] = ACAT_WEIGHTS,
    user_weights: np.ndarray | None = None,
    maf_masks: Sequence[float] | None = None,
    method: str = "exact",
    mac_threshold: float = 10,
    extra_pvalues: Mapping[str, float] | None = None,
) -> SKATResult:
    """ACAT-O: equal-weight Cauchy combination of burden, SKAT and ACAT-V over weights and masks.

    Parameters
    ----------
    pv : PreparedVariants
        QC'd variants.
    null : NullModel
        The null model.
    run_test : callable
        :func:`bayesmages.skat.test_prepared`.
    weights_list : sequence of (float, float)
        Beta weight choices (default Beta(1, 25) and Beta(1, 1)); ignored with ``user_weights``.
    user_weights : numpy.ndarray, optional
        Kernel weights of the kept variants (one weight choice).
    maf_masks : sequence of float, optional
        MAF upper bounds; each mask keeps the variants with MAF < bound (default: one mask, all).
    method : str
        Null distribution of burden and SKAT.
    mac_threshold : float
        ACAT-V's very-rare rule.
    extra_pvalues : mapping, optional
        Further p-values to combine (e.g. ``{"ecskat": p}``).

    Returns
    -------
    SKATResult
        ``test="acat-o"``, ``extra["components"]``: name -> p-value of every combined test
        (names like ``"skat_b1_25"``, ``"acat-v_b1_1_maf<0.01"``, ``"ecskat"``).
    """
    masks: list[float | None] = [None] if not maf_masks else [float(m) for m in maf_masks]
    if any(m is not None and not 0 < m <= 1 for m in masks):
        raise InputError(f"maf_masks must be MAF bounds in (0, 1], got {list(maf_masks or [])!r}")
    choices: list[tuple[float, float] | None] = [None] if user_weights is not None else list(weights_list)
    comps: dict[str, float] = {}
    for mask in masks:
        sel = np.ones(pv.maf.size, dtype=bool) if mask is None else pv.maf < mask
        if not sel.any():
            continue
        sub = PreparedVariants(G=pv.G[:, sel], maf=pv.maf[sel], kept=pv.kept[sel], flipped=pv.flipped,
                               n_input=pv.n_input)
        suffix = "" if mask is None else f"_maf<{mask:g}"
        for wb in choices:
            w = beta_weights(sub.maf, wb) if wb is not None else np.asarray(user_weights)[sel]
            tag = _label(wb) + suffix
            comps[f"burden_{tag}"] = run_test(sub.G, w, null, "burden", method).p_value
            comps[f"skat_{tag}"] = run_test(sub.G, w, null, "skat", method).p_value
            comps[f"acat-v_{tag}"] = acat_v(sub, w, null, run_test, weights_beta=wb, method=method,
                                            mac_threshold=mac_threshold).p_value
    for name, p in (extra_pvalues or {}).items():
        if not 0 <= float(p) <= 1:
            raise InputError(f"extra_pvalues[{name!r}] must be a p-value in [0, 1], got {p!r}")
        comps[str(name)] = float(p)
    n_tested = pv.G.shape[1]
    if not comps:
        return SKATResult(1.0, float("nan"), n_tested, pv.n_input, "acat-o", "none", extra={"components": comps})
    p_all = np.array(list(comps.values()))
    keep = p_all < 1.0  # a p-value of exactly 1 carries no evidence and would pin the combination at 1
    if not keep.any():
        return SKATResult(1.0, float("nan"), n_tested, pv.n_input, "acat-o", "cauchy", extra={"components": comps})
    stat = multitest.cauchy_statistic(p_all[keep])
    p_val = float(np.arctan2(1.0, stat) / np.pi)
    return SKATResult(p_val, stat, n_tested, pv.n_input, "acat-o", "cauchy", extra={"components": comps})
