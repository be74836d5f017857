"""Efficient resampling (ER): exact and resampled binary-trait set tests from the carriers' conditional law.

With few carriers or unbalanced case-control ratios the asymptotic SKAT null (a chi-square
mixture) is wrong in the tail; :mod:`bayesmages.skat.binary` chooses between this remedy and the
saddlepoint one (:mod:`bayesmages.skat.spa`). Both serve SKAT, burden and SKAT-O.

**ER** (Lee, Fuchsberger, Kim and Scott 2016, *Biostatistics* 17:1-15; R ``SKATBinary`` methods
``"ER"``/``"ER.A"``). Only carriers (samples with a non-zero genotype in the set) contribute to
the scores ``S = Gw' (y - mu)``, so the null distribution of any statistic is the law of the
carriers' phenotypes. Conditioning on the total number of cases (which removes the intercept)
and treating the fitted mu as known, independent Bernoulli(mu_i) outcomes given their sum give

    P(y_c) ∝ prod_{i in c} mu_i^{y_i} (1 - mu_i)^{1 - y_i} · P(sum of the non-carriers = n_case - |y_c|),

the last factor a Poisson-binomial probability (from the pmf of all n outcomes, computed once per
null model, divided by each carrier's factor). Without covariates this is the permutation law. R
approximates the non-carrier factor by binning carriers into ten probability groups
(``SKATExactBin.ComputeProb_Group``); here it is exact. With at most ``ER_EXACT_MAX`` (2^20)
carrier configurations the law is enumerated and the p-value is the exact mid-p (R's
``p - P(tie)/2``, ties |Q* - Q| <= 1e-6 on R's scale ``S'S``); beyond that configurations are
drawn from the same law: the number of case carriers k first, then k distinct case carriers (k
draws with probabilities proportional to the odds mu/(1 - mu), redrawn while two coincide, which
is exact; carrier by carrier where coincidences are likely), in rounds (2,000 draws, then doubling)
until 25 draws are at least as extreme or ``n_resampling`` draws are made (R's ``ER.A`` rule), and
the p-value is ``(#{more extreme} + (#{ties} + 1) / 2) / (B + 1)``. A draw costs O(k), so a set
whose carriers expect few cases costs a few milliseconds (bench genes at 1 % cases, n = 5,000,
~250 carriers: ~5 ms CPU per test; SKAT, burden and SKAT-O of one set share the carriers' law).
Removing the carriers' factors from the total pmf amplifies rounding by up to prod 1/|1 - 2 mu|;
past 1e4 the non-carriers' pmf is computed directly instead. Both the total pmf and that direct
computation are Poisson-binomial pmfs (:mod:`bayesmages.stats.poibin`): the direct recursion up to
n (n_case + 1) = 1e8, FFT divide and conquer beyond (O(n log^2 n), absolute error < 1e-14 per entry,
where the removal's gain is capped at 10), so ER runs at biobank n (n = 100,000, 1 % cases: total
pmf 0.11 s CPU once per null model, 0.1-0.2 s per ER test of a 20-variant set with ~900 carriers;
the direct recursion's total pmf alone took ~9 s there). SKAT-O's statistic is the
minimum over rho of the per-rho *exact* tail probabilities (R instead standardises each Q_rho by
simulated moments), referred to its own exact law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from bayesmages.errors import InputError
from bayesmages.skat.null import NullModel
from bayesmages.skat.result import RHO_DEFAULT
from bayesmages.stats import poibin

__all__ = ["ER_EXACT_MAX", "er_pvalue"]

ER_EXACT_MAX = 2**20  # carrier configurations enumerated exactly (R enumerates up to 2e6)
_ER_TIE = 1e-6  # R's epsilon: |Q* - Q| <= 1e-6 on the scale S'S counts as a tie
_ER_CRITICAL = 25  # R's r.critical: resampling stops once B * p >= 25
_ER_ROUND = 2_000  # first resampling round; each further round doubles the total (R's stopping rule decides)
_DECONV_MAX_LOG_GAIN = math.log(1e4)  # ER: largest error gain of removing the carriers from the total pmf
_DECONV_MAX_LOG_GAIN_FFT = math.log(10.0)  # the same when the total pmf came from the FFT (absolute error)
# Case count above which the non-carriers' law is tried by FFT (O(n log^2 n), ~0.45 us per sample)
# rather than by the compiled direct recursion (O(n n_case)); measured at n = 10,000: 582 cases 2.0 ms
# direct / 4.8 ms FFT, 1,006 cases 9.0 / 4.6 ms, 2,196 cases 69 / 4.7 ms; n = 50,000, 501 cases 7.5 / 20 ms
_NONCARRIER_FFT_MIN_CASES = 800
_FFT_MIN_READ = 1e-6  # smallest non-carrier pmf entry that ER may read from the FFT (absolute error 1e-14)


def _check_binary(null: NullModel, what: str) -> None:
    if null.trait != "binary":
        raise InputError(f"method_bin={what!r} needs a binary null model (fit_null(..., trait='binary')); "
                         f"this one is {null.trait!r}")


# ---------------------------------------------------------------------------------------------
# ER: the exact conditional law of the carriers' phenotypes


def _total_pmf(null: NullModel) -> np.ndarray:
    """The pmf (n + 1,) of the number of cases among n independent Bernoulli(mu_i), cached on the null.

    By :func:`bayesmages.stats.poibin.pmf`: FFT divide and conquer beyond small n (absolute error
    ~1e-16 per entry; ER reads it near the observed case count, its mode), so biobank n costs
    milliseconds, not the O(n^2) of the direct recursion.
    """
    cache = null.__dict__.setdefault("_er_cache", {})
    if "pmf" not in cache:
        cache["pmf"] = poibin.pmf(null.fitted)
    return cache["pmf"]


def _deconv_max_log_gain(null: NullModel) -> float:
    """Largest log error gain allowed for removing carriers from the total pmf (else the direct computation).

    The direct recursion's total pmf has a relative error of ~n eps per entry, so a gain of 1e4 keeps
    the non-carriers' law to ~1e-12 relative near its mode. The FFT's total (large n) has an
    *absolute* error below 1e-14 per entry (:mod:`bayesmages.stats.poibin`); amplified by the gain
    it is an absolute error on the non-carriers' law, and the ER p-value's absolute error is at most
    that over P(total = n_case) (~0.01 at n = 100,000 and 1 % cases). A gain of at most 10 keeps
    that below ~1e-11; past it the non-carriers' pmf is computed directly (by FFT, no removal).
    """
    total_work = null.n * (null.n + 1.0)
    return _DECONV_MAX_LOG_GAIN if total_work <= poibin.FFT_MIN_WORK else _DECONV_MAX_LOG_GAIN_FFT


def _remove(pmf: np.ndarray, p: float) -> np.ndarray:
    """Deconvolve one Bernoulli(p) from a pmf (c = a * [1 - p, p]), in the numerically stable direction.

    Forward ``a_j = (c_j - p a_{j-1}) / (1 - p)`` shrinks errors by p / (1 - p) per step when
    p <= 1/2; otherwise the same recursion runs from the top. Both are linear filters.
    """
    if p <= 0.5:
        a = signal.lfilter([1.0 / (1.0 - p)], [1.0, p / (1.0 - p)], pmf[:-1])
    else:
        a = signal.lfilter([1.0 / p], [1.0, (1.0 - p) / p], pmf[:0:-1])[::-1]
    return np.maximum(a, 0.0)


@dataclass
class _CarrierLaw:
    """The conditional law of the carriers' phenotypes given the total number of cases."""

    p: np.ndarray  # (m,) fitted probabilities of the carriers
    log_nc: np.ndarray  # (m + 1,) log P(non-carriers have n_case - k cases), k = 0..m
    y_obs: np.ndarray  # (m,) observed 0/1
    pb: np.ndarray | None = None  # (m + 1,) the carriers' own case-count pmf, where log_nc is finite (or None)

    @property
    def m(self) -> int:
        return int(self.p.size)

    def log_prob(self, Y: np.ndarray) -> np.ndarray:
        """Unnormalised log-probabilities of 0/1 configurations (rows of Y)."""
        lp, lq = np.log(self.p), np.log1p(-self.p)
        return Y @ (lp - lq) + lq.sum() + self.log_nc[Y.sum(1).astype(np.int64)]

    def log_pb_suffix(self) -> np.ndarray:
        """(m + 1, m + 1) log Poisson-binomial pmf of carriers i..m-1 (row i), for sequential sampling."""
        m = self.m
        L = np.full((m + 1, m + 1), -np.inf)
        L[m, 0] = 0.0
        lp, lq = np.log(self.p), np.log1p(-self.p)
        for i in range(m - 1, -1, -1):
            L[i] = np.logaddexp(lq[i] + L[i + 1], np.concatenate([[-np.inf], lp[i] + L[i + 1, :-1]]))
        return L

    def sample_cases(self, B: int, rng: np.random.Generator) -> np.ndarray:
        """B configurations drawn from the law, as (B, k_max) indices of the case carriers (padded with m).

        The number of case carriers k is drawn first. Given k, a configuration's probability is
        proportional to the product of its case carriers' odds p/(1 - p), which is the law of k
        independent draws with probabilities proportional to the odds *given that they are
        distinct*: so k draws with replacement, rejected and redrawn while two coincide, are an exact
        sample, in O(k) per draw instead of the O(m) of the sequential sampler. That pays where k
        is small against the carriers (low expected case counts, the ER regime of the hybrid rule);
        values of k whose acceptance exp(-k(k-1)/2 sum pi^2) would be below 1/4 use the sequential
        sampler (:meth:`_sample_given_k`).
        """
        m = self.m
        if self.pb is None:
            self.pb = poibin.pmf(self.p, int(np.isfinite(self.log_nc).nonzero()[0].max()))
        with np.errstate(divide="ignore"):
            lk = np.log(self.pb) + self.log_nc
        pk = np.exp(lk - lk.max())
        k = rng.choice(m + 1, size=B, p=pk / pk.sum())
        k_max = int(k.max()) if B else 0
        out = np.full((B, max(k_max, 1)), m, dtype=np.int64)
        odds = self.p / (1.0 - self.p)
        pi = odds / odds.sum()
        collide = float(pi @ pi)
        dense_rows: list[np.ndarray] = []
        for kk in np.unique(k):
            rows = np.flatnonzero(k == kk)
            if kk == 0:
                continue
            if kk * (kk - 1) / 2 * collide > math.log(4.0):
                dense_rows.append(rows)
                continue
            todo = rows
            while todo.size:
                idx = rng.choice(m, size=(todo.size, kk), p=pi)
                srt = np.sort(idx, axis=1)
                ok = np.all(srt[:, 1:] != srt[:, :-1], axis=1) if kk > 1 else np.ones(todo.size, dtype=bool)
                out[todo[ok], :kk] = srt[ok]
                todo = todo[~ok]
        if dense_rows:
            rows = np.concatenate(dense_rows)
            Y = self._sample_given_k(k[rows], rng)
            r_i, c_i = np.nonzero(Y)
            pos = np.arange(r_i.size) - np.searchsorted(r_i, r_i)  # rank of each case within its row
            out[rows[r_i], pos] = c_i
        return out

    def sample(self, B: int, rng: np.random.Generator) -> np.ndarray:
        """B configurations (B x m uint8) drawn from the law (:meth:`sample_cases`, as 0/1 rows)."""
        idx = self.sample_cases(B, rng)
        Y = np.zeros((B, self.m + 1), dtype=np.uint8)
        Y[np.arange(B)[:, None], idx] = 1
        return Y[:, : self.m]

    def _sample_given_k(self, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Configurations with k[b] case carriers each, carrier by carrier (the sequential sampler)."""
        L = self.log_pb_suffix()
        B = k.size
        Y = np.zeros((B, self.m), dtype=np.uint8)
        lp = np.log(self.p)
        rem = k.copy()
        for i in range(self.m):
            with np.errstate(invalid="ignore"):
                lp1 = np.where(rem > 0, lp[i] + L[i + 1, np.maximum(rem - 1, 0)] - L[i, rem], -np.inf)
            take = rng.random(B) < np.exp(lp1)
            Y[take, i] = 1
            rem = rem - take
        return Y


def _noncarrier_log_pmf(
    null: NullModel, carriers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Carriers' probabilities, log P(non-carriers have n_case - k cases) for k = 0..m, n_case, and more.

    The fourth value is the carriers' own case-count pmf up to n_case when it was computed on the
    way (else None). The last result is kept on the null model (a set's tests, and a variant's mid-p
    and ordinary p-value, ask for the same carriers in a row).
    """
    cache = null.__dict__.setdefault("_er_cache", {})
    key = carriers.tobytes()
    last = cache.get("noncarrier")
    if last is not None and last[0] == key:
        return last[1]
    out = _noncarrier_log_pmf_uncached(null, carriers)
    cache["noncarrier"] = (key, out)
    return out


def _noncarrier_log_pmf_uncached(
    null: NullModel, carriers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    y = np.rint(null.fitted + null.residuals)
    n_case = int(y.sum())
    p = np.clip(null.fitted[carriers], 1e-12, 1 - 1e-12)
    pmf = _total_pmf(null)
    pb = None
    # Removing a Bernoulli(p) factor amplifies rounding errors by up to 1 / |1 - 2p| (the inverse
    # filter's gain at the alternating frequency), so removing many carriers with p near 1/2, or
    # with a large expected case count, turns the total's 1e-16 rounding into garbage (at 20 % cases
    # and ~300 carriers: entries of 1e32). Past a gain of 1e4 the non-carriers' pmf is computed
    # directly instead (a forward convolution of positive terms, O(n n_case), or by FFT at large n,
    # see bayesmages.stats.poibin).
    with np.errstate(divide="ignore"):
        log_gain = float(-np.log(np.abs(1.0 - 2.0 * p)).sum())
    if log_gain > _deconv_max_log_gain(null):
        rest = np.ones(null.n, dtype=bool)
        rest[carriers] = False
        pmf = _noncarrier_pmf(np.clip(null.fitted[rest], 1e-12, 1 - 1e-12), n_case, p.size)
    elif np.all(p <= 0.5):
        # Deconvolve all carriers at once: the forward recursion of _remove for the product of
        # their factors (a stable filter: every pole -p/(1 - p) lies inside the unit circle), and
        # entry j needs only entries <= j of the total, so only j <= n_case is computed.
        pb = poibin.pmf(p, n_case)
        pmf = np.maximum(signal.lfilter([1.0], pb[: n_case + 1], pmf[: n_case + 1]), 0.0)
    else:
        for pi in p:
            pmf = _remove(pmf, float(pi))
    j = n_case - np.arange(p.size + 1)
    ok = (j >= 0) & (j < pmf.size)
    with np.errstate(divide="ignore"):
        log_nc = np.where(ok, np.log(np.where(ok, pmf[np.clip(j, 0, pmf.size - 1)], 1.0)), -np.inf)
    return p, log_nc, n_case, pb


def _noncarrier_pmf(p_rest: np.ndarray, n_case: int, m: int) -> np.ndarray:
    """The non-carriers' pmf, entries 0..n_case; ER reads entries n_case - m..n_case.

    By FFT divide and conquer (absolute error below 1e-14 per entry, :mod:`bayesmages.stats.poibin`)
    when there are more than :data:`_NONCARRIER_FFT_MIN_CASES` cases, as long as every entry read is at least
    :data:`_FFT_MIN_READ` (so its relative error stays below 1e-8; the carriers' own law, computed
    directly, carries the far tail of a small p-value: measured at n = 10,000 and 20 % cases, single-
    variant p-values down to 1e-53 equal the direct computation's to 7e-16 relative); else directly.
    """
    if n_case > _NONCARRIER_FFT_MIN_CASES:
        pmf = poibin.pmf_fft(p_rest, n_case)[: n_case + 1]
        if pmf[max(n_case - m, 0):].min() >= _FFT_MIN_READ:
            return pmf
    return poibin.pmf_direct(p_rest, n_case)[: n_case + 1]


def _carrier_law(null: NullModel, carriers: np.ndarray) -> _CarrierLaw:
    """The carriers' law; the last one is kept on the null model, as SKAT, burden and SKAT-O of one set share it."""
    _check_binary(null, "er")
    cache = null.__dict__.setdefault("_er_cache", {})
    key = carriers.tobytes()
    last = cache.get("law")
    if last is not None and last[0] == key:
        return last[1]
    p, log_nc, _, pb = _noncarrier_log_pmf(null, carriers)
    law = _CarrierLaw(p=p, log_nc=log_nc, y_obs=np.rint(null.fitted + null.residuals)[carriers], pb=pb)
    cache["law"] = (key, law)
    return law


def _single_variant_er(g: np.ndarray, null: NullModel, mid: bool = True) -> float | None:
    """Exact ER mid-p of one variant whose carriers have at most two genotype values (hard calls).

    The score then depends on the phenotypes only through the numbers of cases (k1, k2) among the
    carriers of each value, whose law is ``PB_1(k1) PB_2(k2) P(non-carriers = n_case - k1 - k2)``
    up to normalisation (the law of :class:`_CarrierLaw`, summed over configurations): O(m) values
    instead of 2^m. ``None`` when the variant has more than two distinct non-zero values (dosages).
    """
    carriers = np.flatnonzero(g != 0)
    vals = np.unique(g[carriers])
    if carriers.size == 0 or vals.size > 2:
        return None if carriers.size else 1.0
    p, log_nc, _, _ = _noncarrier_log_pmf(null, carriers)
    y = np.rint(null.fitted + null.residuals)[carriers]
    gc = g[carriers]
    v1, v2 = vals[0], vals[-1]
    in2 = (gc == v2) & (v2 != v1)
    pb1, pb2 = poibin.pmf(p[~in2]), poibin.pmf(p[in2])
    k1, k2 = np.arange(pb1.size)[:, None], np.arange(pb2.size)[None, :]
    with np.errstate(divide="ignore"):
        lp = np.log(pb1)[:, None] + np.log(pb2)[None, :] + log_nc[k1 + k2]
    prob = np.exp(lp - lp.max())
    prob /= prob.sum()
    S = (v1 * k1 + v2 * k2 - float(gc @ p)).astype(np.float64)
    s_obs = v1 * float(y[~in2].sum()) + v2 * float(y[in2].sum()) - float(gc @ p)
    return _midp(s_obs**2, np.broadcast_to(S**2, prob.shape).ravel(), prob.ravel(), larger=True, mid=mid)


def _stats(Y: np.ndarray, Gc: np.ndarray, p: np.ndarray, kind: str, r: np.ndarray) -> np.ndarray:
    """Statistics on R's scale (no /2) for configurations Y: (N,) for skat/burden, (N, n_rho) for skat-o."""
    return _stats_of_scores(Y.astype(np.float64) @ Gc - p @ Gc, kind, r)


def _stats_of_cases(idx: np.ndarray, Gc: np.ndarray, p: np.ndarray, kind: str, r: np.ndarray) -> np.ndarray:
    """:func:`_stats` for configurations given as case-carrier indices (padded with m, see ``sample_cases``)."""
    Gpad = np.vstack([Gc, np.zeros((1, Gc.shape[1]))])
    S = np.zeros((idx.shape[0], Gc.shape[1]))
    for col in range(idx.shape[1]):  # column by column: no (N, k_max, p) temporary
        S += Gpad[idx[:, col]]
    return _stats_of_scores(S - p @ Gc, kind, r)


def _stats_of_scores(S: np.ndarray, kind: str, r: np.ndarray) -> np.ndarray:
    if kind == "burden":
        return S.sum(1) ** 2
    ss = np.einsum("ij,ij->i", S, S)
    if kind == "skat":
        return ss
    return (1.0 - r)[None, :] * ss[:, None] + r[None, :] * (S.sum(1) ** 2)[:, None]


def _tails(q: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """P(Q* >= q_i - tie) for each i under the discrete law (q, prob)."""
    order = np.argsort(-q, kind="stable")
    qs, cs = q[order], np.cumsum(prob[order])
    # all values >= q_i - tie: the last position in the descending order with qs >= q_i - tie
    pos = np.searchsorted(-qs, -(q - _ER_TIE * np.maximum(1.0, np.abs(q))), side="right") - 1
    return cs[pos]


def _midp(t_obs: float, t: np.ndarray, prob: np.ndarray, larger: bool, mid: bool = True) -> float:
    """Mid-p of an observed statistic, P(more extreme) + P(tie) / 2; with ``mid=False`` P(at least as extreme)."""
    tol = _ER_TIE * max(1.0, abs(t_obs)) if larger else 1e-9 * max(t_obs, 1e-300)
    tie = np.abs(t - t_obs) <= tol
    more = (t > t_obs) & ~tie if larger else (t < t_obs) & ~tie
    return float(prob[more].sum() + (0.5 if mid else 1.0) * prob[tie].sum())


def _enumerated(law: _CarrierLaw, Gc: np.ndarray, kind: str, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities and statistics of all 2^m carrier configurations, in chunks of 2^16."""
    m = law.m
    lps, qs = [], []
    for start in range(0, 2**m, 2**16):
        codes = np.arange(start, min(start + 2**16, 2**m), dtype=np.int64)
        Y = ((codes[:, None] >> np.arange(m)) & 1).astype(np.uint8)
        lps.append(law.log_prob(Y))
        qs.append(_stats(Y, Gc, law.p, kind, r))
    return np.concatenate(lps), np.concatenate(qs)


def er_pvalue(
    Gw: np.ndarray,
    null: NullModel,
    test: str = "skat",
    *,
    rho_grid: Any = None,
    n_resampling: int = 1_000_000,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """Efficient-resampling p-value of SKAT, burden or SKAT-O for weighted genotypes ``Gw`` (n x p).

    Exact (enumeration of the carriers' conditional law) when there are at most
    :data:`ER_EXACT_MAX` configurations, else adaptive resampling from it. See the module docstring.

    Returns
    -------
    p-value, details
        The mid-p (R's), and ``m`` carriers, ``exact``, ``n_draws`` and ``p_standard``, the
        ordinary p-value P(at least as extreme), which is never below its level (valid, discrete).
    """
    carriers = np.flatnonzero(np.any(Gw != 0, axis=1))
    m = carriers.size
    if m == 0:
        return 1.0, {"m": 0, "exact": True, "n_draws": 0}
    if Gw.shape[1] == 1:
        _check_binary(null, "er")
        p1 = _single_variant_er(Gw[:, 0], null)
        if p1 is not None:
            p_std = _single_variant_er(Gw[:, 0], null, mid=False)
            return p1, {"m": m, "exact": True, "n_draws": 0, "p_standard": p_std}
    law = _carrier_law(null, carriers)
    Gc = Gw[carriers]
    r = np.minimum(np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64).ravel(), 0.999)
    kind = test if Gw.shape[1] > 1 else "skat"
    obs = _stats(law.y_obs[None, :], Gc, law.p, kind, r)[0]
    if 2**m <= ER_EXACT_MAX:
        lp, q = _enumerated(law, Gc, kind, r)
        prob = np.exp(lp - lp.max())
        prob /= prob.sum()
        if kind != "skat-o":
            return _midp(float(obs), q, prob, larger=True), {
                "m": m, "exact": True, "n_draws": 0, "p_standard": _midp(float(obs), q, prob, larger=True, mid=False)}
        T = np.min(np.column_stack([_tails(q[:, i], prob) for i in range(r.size)]), axis=1)
        t_obs = min(float(_tails(np.append(q[:, i], obs[i]), np.append(prob, 0.0))[-1]) for i in range(r.size))
        return _midp(t_obs, T, prob, larger=False), {
            "m": m, "exact": True, "n_draws": 0, "p_standard": _midp(t_obs, T, prob, larger=False, mid=False)}
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    total = 0
    while True:
        B = _ER_ROUND if total == 0 else min(total, n_resampling - total)
        draws.append(_stats_of_cases(law.sample_cases(B, rng), Gc, law.p, kind, r))
        total += B
        q = np.concatenate([obs[None, ...], *draws])  # the observed value is one member of the pool
        w = np.full(q.shape[0], 1.0 / q.shape[0])
        if kind == "skat-o":
            T = np.min(np.column_stack([_tails(q[:, i], w) for i in range(r.size)]), axis=1)
            t_obs, T = float(T[0]), T[1:]
            tie = np.abs(T - t_obs) <= 1e-9 * t_obs
            n_more, n_tie = int(((T < t_obs) & ~tie).sum()), int(tie.sum())
        else:
            t_obs, T = float(q[0]), q[1:]
            tie = np.abs(T - t_obs) <= _ER_TIE * max(1.0, t_obs)
            n_more, n_tie = int(((T > t_obs) & ~tie).sum()), int(tie.sum())
        if n_more + n_tie >= _ER_CRITICAL or total >= n_resampling:
            p = (n_more + 0.5 * (n_tie + 1)) / (total + 1)
            return p, {"m": m, "exact": False, "n_draws": total, "p_standard": (n_more + n_tie + 1) / (total + 1)}


