"""Saddlepoint (SPA) binary-trait set tests: per-variant adjusted scores (Zhao et al. 2020).

With few carriers or unbalanced case-control ratios the asymptotic SKAT null (a chi-square
mixture) is wrong in the tail; :mod:`bayesmages.skat.binary` chooses between this remedy and
efficient resampling (:mod:`bayesmages.skat.er`). Both serve SKAT, burden and SKAT-O.

**SPA** (Zhao, Lee et al. 2020, *AJHG* 107:1109-1124, R ``SKATBinary_Robust``; the per-variant
variance adjustment is that of SAIGE-GENE, Zhou et al. 2020, *Nat Genet* 52:634-639). Each
variant's score ``s_j = g~_j' (y - mu)`` (g~ the covariate-adjusted genotype) gets a two-sided
p-value: normal when |z| <= 2; otherwise the saddlepoint approximation of Dey et al. (2017, *AJHG*
101:37-49; Barndorff-Nielsen's form, each tail solved separately) of the Bernoulli score, or the
exact single-variant ER when the variant's minor-allele count is below 200. Zhao et al. switch to
ER below 10 only; but the score of a rare variant is a lattice variable (one step per carrier
case) and the continuous saddlepoint misses its atoms: at 1 % cases it gives 0.4-0.6x the exact
tail at a minor-allele count of 14, 0.5-0.7x at 30 and 0.7-0.8x at 80 (0.94-1.06x at 400;
``tests/test_skat_binary.py``). For hard-called genotypes the exact single-variant ER costs O(m)
(the score depends only on the numbers of cases among the carriers of each genotype value), so it
replaces SPA up to 200 minor alleles, unless the non-carriers' law would need the direct
computation (see :mod:`bayesmages.skat.er`) with n * n_case > 5e7 (biobank sizes with many expected case
carriers, where the saddlepoint's lattice error is small); dosages with more than two distinct
values use SPA from 10.
There the ordinary p-value P(|S| >= |s|) is used, not R's mid-p: for an ultra-rare variant the
mid-p makes the smallest attainable p-value half its probability (a singleton carried by a case:
mid-p mu/2, probability mu), and in sets of such variants that doubled the type-I error (0.5 %
cases, n = 5,000: P(p < 0.01) = 0.021 with mid-p, 0.011 with the ordinary p; 2,000 sets). For
these rare variants the exact law also replaces the normal from |z| > 1 (not 2): with ~0.2
expected case carriers, one case carrier has z ~ 1.7, normal p 0.09 but exact p 0.2, and several
such variants left at their normal variance made SPA-SKAT's type-I error 2.7x alpha at 1e-3
(0.5 % cases, bench/skat_binary.py); in 1 < |z| <= 2 the exact law may only widen the variance.
Each variant's variance is then replaced by ``s_j^2 / qchisq(1 - p_j, 1)``, and the weighted
covariance Phi is scaled to ``D^1/2 Phi D^1/2`` with ``D = adjusted / original variance`` (R
scales the columns only, leaving Phi non-symmetric; the symmetric form keeps the same diagonal).
Finally the burden score (the weighted sum of the adjusted genotypes) gets its own SPA p-value
p_b; if its implied variance ``(w's)^2 / qchisq(1 - p_b, 1)`` exceeds ``1' Phi 1``, Phi is
inflated by that ratio (never deflated). SKAT, burden and SKAT-O then run on the weighted scores
with the adjusted Phi (:func:`bayesmages.skat.score_test.test_scores`); a single-variant test
thus returns that variant's p-value (SPA or exact ER), a burden test the burden score's SPA
p-value unless the adjusted per-variant variances already imply a larger burden variance.

Where SPA's guarantee stops: the variance adjustment matches each variant's tail at its *observed*
score only. When the expected number of case carriers per variant is well below one (0.5 % cases,
n = 5,000, 10 variants with 2-100 minor alleles: 22 cases), a variant with an unremarkable score
keeps its normal variance although its exact law has a far heavier tail (0.34 expected case
carriers: P(>= 3) = 5e-3, the normal gives 5e-6), so SKAT and SKAT-O, which sum over variants,
come out too small: 2.4x alpha at 1e-3 in bench/skat_binary.py at 0.5 % cases, and at 1 % cases
(49 cases, 40,000 null genes, exact tails) 1.35x for SKAT (outside the binomial 95 % interval) and
1.15x for SKAT-O (inside); burden, a single score, is calibrated.
ER has no such limit (it uses the exact joint law of the set): use ``method_bin="er"`` there, or
``"hybrid"``, which does so automatically.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import expit, ndtr, ndtri

from bayesmages.skat.er import _check_binary, _deconv_max_log_gain, er_pvalue
from bayesmages.skat.null import NullModel

__all__ = ["spa_pvalue", "spa_scores"]

_SPA_CUTOFF = 2.0  # |z| beyond which the saddlepoint replaces the normal (SPAtest's default)
_ER_CUTOFF = 1.0  # |z| beyond which a rare variant's exact law replaces the normal (see the docstring)
_SPA_MIN_MAC = 200  # hard calls below: exact single-variant ER instead of SPA (see the docstring)
_ER_SINGLE_MAC = 10  # any genotypes below: exact single-variant ER (Zhao et al. 2020)
_DIRECT_MAX_WORK = 5e7  # SPA: largest n * n_case for a single variant's directly computed exact law


def _spa_tail(s: float, g: np.ndarray, mu: np.ndarray, eta: np.ndarray) -> float:
    """Saddlepoint P(S >= s) for s > E S = 0, or P(S <= s) for s < 0, with S = g'(y - mu)."""
    gmu = float(g @ mu)

    def k1(t: float) -> float:
        return float(g @ expit(eta + g * t)) - gmu - s

    var = float(np.sum(g * g * mu * (1 - mu)))
    t0 = s / var
    lo, hi = (0.0, t0) if s > 0 else (t0, 0.0)
    for _ in range(200):  # widen until K'(t) - s changes sign
        if k1(lo) <= 0 <= k1(hi):
            break
        lo, hi = (lo, 2 * hi + 1e-3) if s > 0 else (2 * lo - 1e-3, hi)
    else:
        return 0.0  # s beyond the support's reach: probability below double precision
    t = optimize.brentq(k1, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=200)
    m1 = expit(eta + g * t)
    K = float(np.sum(np.logaddexp(np.log1p(-mu), np.log(mu) + g * t))) - t * gmu
    K2 = float(np.sum(g * g * m1 * (1 - m1)))
    w2 = 2.0 * (t * s - K)
    if w2 <= 0 or K2 <= 0 or t == 0:
        return float(ndtr(-abs(s) / math.sqrt(var)))
    w = math.copysign(math.sqrt(w2), t)
    v = t * math.sqrt(K2)
    z = w + math.log(v / w) / w
    return float(ndtr(-z) if s > 0 else ndtr(z))


def spa_pvalue(s: float, g: np.ndarray, null: NullModel, cutoff: float = _SPA_CUTOFF) -> float:
    """Two-sided saddlepoint p-value of the score ``s = g' (y - mu)`` (g covariate-adjusted).

    Normal when ``|z| <= cutoff``; otherwise the two tails P(S >= |s|) + P(S <= -|s|) by the
    saddlepoint approximation (Dey et al. 2017).
    """
    _check_binary(null, "spa")
    mu = np.clip(null.fitted, 1e-12, 1 - 1e-12)
    var = float(np.sum(g * g * mu * (1 - mu)))
    if var <= 0 or s == 0:
        return 1.0
    z = s / math.sqrt(var)
    if abs(z) <= cutoff:
        return float(2.0 * ndtr(-abs(z)))
    eta = np.log(mu) - np.log1p(-mu)
    a = abs(s)
    return min(1.0, _spa_tail(a, g, mu, eta) + _spa_tail(-a, g, mu, eta))


def _n_case(null: NullModel) -> int:
    """The observed number of cases, kept on the null model (every variant of every set asks for it)."""
    cache = null.__dict__.setdefault("_er_cache", {})
    if "n_case" not in cache:
        cache["n_case"] = int(np.rint(null.fitted + null.residuals).sum())
    return cache["n_case"]


def _exact_affordable(null: NullModel, carriers: np.ndarray) -> bool:
    """Whether a single variant's exact law is cheap to compute.

    It is when the carriers' removal is well-conditioned, or when the direct O(n n_case) computation
    of the non-carriers' law (:func:`_noncarrier_log_pmf`) is small. Beyond that (biobank n with many
    cases among the carriers) SPA keeps the saddlepoint, whose lattice error shrinks as the expected
    case count grows.
    """
    p = np.clip(null.fitted[carriers], 1e-12, 1 - 1e-12)
    with np.errstate(divide="ignore"):
        log_gain = float(-np.log(np.abs(1.0 - 2.0 * p)).sum())
    return log_gain <= _deconv_max_log_gain(null) or null.n * float(_n_case(null)) <= _DIRECT_MAX_WORK


def _chi2_1_isf(p: np.ndarray) -> np.ndarray:
    """Upper quantile of chi-square(1) (the square of the normal's), without scipy.stats' overhead."""
    return ndtri(np.asarray(p) / 2.0) ** 2


def spa_scores(
    G: np.ndarray, w: np.ndarray, null: NullModel, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Weighted scores and their saddlepoint-adjusted covariance (see the module docstring).

    Parameters
    ----------
    G : numpy.ndarray
        (n, p) QC'd genotypes (minor-allele counts or dosages).
    w : numpy.ndarray
        (p,) kernel weights.
    null : NullModel
        A binary null model.
    seed : int
        Seed of the single-variant ER (used only when it has to resample).

    Returns
    -------
    Sw, Phi, info
        ``w * S`` (p,), the adjusted covariance (p x p) for
        :func:`bayesmages.skat.score_test.test_scores` with ``s2 = 1``, and ``info`` with the
        per-variant p-values, variance ratios and the burden inflation.
    """
    _check_binary(null, "spa")
    p = G.shape[1]
    A = null.project(G)  # P sqrt(V) G: its columns over sqrt(V) are the covariate-adjusted genotypes
    S = G.T @ null.residuals
    var = np.einsum("ij,ij->j", A, A)
    mac = G.sum(0)
    p_var = np.ones(p)
    Gt: np.ndarray | None = None
    moderate = np.zeros(p, dtype=bool)  # exact p-values with 1 < |z| <= 2: may only widen the variance
    GT: np.ndarray | None = None  # G's columns as contiguous rows (G is C-ordered: its columns are strided)
    for j in range(p):
        if var[j] <= 0 or S[j] == 0:
            continue
        z = S[j] / math.sqrt(var[j])
        exact = False
        if mac[j] < _SPA_MIN_MAC:
            if GT is None:
                GT = np.ascontiguousarray(G.T)
            carriers = np.flatnonzero(GT[j])
            # hard calls: at most three genotype values, 0 included (as np.unique(G[:, j]).size <= 3)
            hard = np.unique(GT[j, carriers]).size + (carriers.size < GT.shape[1]) <= 3
            exact = (mac[j] < _ER_SINGLE_MAC or hard) and _exact_affordable(null, carriers)
        if abs(z) <= (_ER_CUTOFF if exact else _SPA_CUTOFF):
            p_var[j] = 2.0 * ndtr(-abs(z))
        elif exact:
            # the ordinary, not the mid-p: see the module docstring
            p_var[j] = er_pvalue(G[:, [j]], null, "skat", seed=seed)[1]["p_standard"]
            moderate[j] = abs(z) <= _SPA_CUTOFF
        else:
            if Gt is None:
                Gt = A / null.sqrt_var[:, None]
            p_var[j] = spa_pvalue(float(S[j]), Gt[:, j], null)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = _chi2_1_isf(p_var)
        var_adj = np.where(p_var >= 1, var, np.where(p_var > 0, S**2 / chi, S**2 / 500.0))
        ratio = np.where(var > 0, var_adj / var, 1.0)
        ratio = np.where(moderate, np.maximum(ratio, 1.0), ratio)
    d = np.sqrt(ratio) * w
    Phi = d[:, None] * (A.T @ A) * d[None, :]
    Sw = w * S
    use = p_var < 1
    s_b = float(Sw[use].sum())
    inflate = 1.0
    if s_b != 0:
        ab = A[:, use] @ w[use]
        p_b = spa_pvalue(s_b, ab / null.sqrt_var, null)
        var_b = s_b**2 / float(_chi2_1_isf(np.array(p_b))) if p_b > 0 else s_b**2 / 500.0
        inflate = max(var_b / float(Phi.sum()), 1.0)
        Phi = Phi * inflate
    return Sw, Phi, {"p_variants": p_var, "variance_ratio": ratio, "burden_inflation": inflate}


def _spa_scores_cached(
    G: np.ndarray, w: np.ndarray, null: NullModel, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """:func:`spa_scores`, the last result kept on the null model.

    SKAT, burden and SKAT-O of one set ask for the same adjusted scores in a row (as they share
    ER's carrier law); the per-variant exact laws are most of their cost. Keyed by a digest of
    the genotypes, the weights and the seed.
    """
    cache = null.__dict__.setdefault("_er_cache", {})
    # rare-variant genotypes are mostly zeros: their non-zero positions and values identify them, at a
    # quarter of the cost of hashing every entry
    flat = np.ascontiguousarray(G, dtype=np.float64).ravel()
    nz = np.flatnonzero(flat)
    h = hashlib.blake2b(nz.tobytes(), digest_size=16)
    h.update(flat[nz].tobytes())
    h.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
    h.update(str((G.shape, seed)).encode())
    key = h.digest()
    last = cache.get("spa")
    if last is None or last[0] != key:
        last = cache["spa"] = (key, spa_scores(G, w, null, seed=seed))
    Sw, Phi, info = last[1]
    return Sw.copy(), Phi.copy(), dict(info)

