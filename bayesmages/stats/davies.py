"""Davies' (1980) algorithm for the distribution of a positive quadratic form.

A re-implementation, from the published description (Davies 1980, Applied Statistics
algorithm AS 155), of the characteristic-function inversion that R's ``CompQuadForm::davies``
and R SKAT's ``SKAT_davies`` call with ``acc=1e-6, lim=10000`` (SKAT's settings). Only central
chi-square(1) terms with positive weights are needed here, but the bookkeeping follows the
general algorithm (degrees of freedom ``h`` = 1, non-centralities 0, no normal term) so that its
error control, auxiliary integrations with a convergence factor and fault codes behave like
the reference:

* ``ifault = 0``: the required accuracy was reached;
* ``ifault = 1``: the requested accuracy could not be obtained within ``lim`` integration terms;
* ``ifault = 2``: round-off error may be significant;
* ``ifault = 4``: the function-evaluation counter passed ``lim``.

With faults 1 and 4 the reference leaves its result at -1, so the p-value is 2 (R SKAT then
falls back to "liu.mod"); this is reproduced.

As in R, the returned p-value is ``1 - P(Q < q)``; it is an *absolute*-accuracy method (``acc``
bounds the absolute error) and is therefore unreliable below ``p ~ acc``, where it can even be
``<= 0``. Use :func:`bayesmages.stats.quadform.pvalue` with ``method="auto"`` for tails.

References
----------
Davies, R. B. (1980). Algorithm AS 155: The distribution of a linear combination of
chi-squared random variables. Applied Statistics 29, 323-333.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np

from bayesmages.stats._compiled import load_compiled

__all__ = ["davies_grid", "davies_many", "davies_one"]

_LOG28 = 0.0866  # log(2) / 8, used in the convergence-factor coefficient
_DIVIS = (2.0, 1.4, 1.2, 1.1)


_MEMO_WEIGHTS = 64  # weight vectors remembered (one SKAT-O integration uses one)
_MEMO_CALLS = 4096  # memoised steps per weight vector


class _LamMemo:
    """Quantities of one weight vector that do not depend on the quantile."""

    def __init__(self, lam: np.ndarray) -> None:
        self.mean = float(lam.sum())
        self.lmax = max(float(lam.max()), 0.0)
        self.lmin = min(float(lam.min()), 0.0)
        self.order = np.argsort(-np.abs(lam), kind="stable")
        self.sd2 = float(np.sum(2.0 * lam * lam))
        self.lam = lam
        self.nonneg = bool(np.all(lam >= 0.0))
        self.lam_ord = lam[self.order]
        self.calls: dict[tuple, Any] = {}
        # Sums over the weights at a point u (they do not depend on sigsq or q; the searches in
        # findu and ctff visit the same points again and again).
        self.errbd_sums: dict[float, tuple[float, float]] = {}
        self.trunc_sums: dict[float, tuple[float, float, float, float]] = {}
        self.jit_memo: Any = None  # the compiled path's tables of the same memo (_davies_jit.new_memo)

    # The Python implementation's lists, built when it first runs on these weights (the compiled one
    # does not need them).
    @functools.cached_property
    def lam_list(self) -> list[float]:
        return self.lam.tolist()

    @functools.cached_property
    def cfe_terms(self) -> list[tuple[float, float, float, float]]:
        """(j, lambda_j, |lambda_j|, |lambda_j| / (log(2) / 8)) from the smallest |weight| up: cfe's scan."""
        return [(float(j), lt, abs(lt), abs(lt) / _LOG28) for j, lt in reversed(list(enumerate(self.lam_ord.tolist())))]


_MEMO: dict[bytes, _LamMemo] = {}
_MEMO_LOCK = threading.Lock()


def _errbd_sums(lam: np.ndarray, lam_list: list[float], u: float) -> tuple[float, float]:
    """Sum lam / (1 - x) and sum x^2 / (1 - x) + log(1 - x) + x, x = 2 u lam."""
    # Scalar loop: for the few weights of a gene this is faster than numpy's call overhead.
    t = 2.0 * u
    log1p = math.log1p
    s_c = s_1 = 0.0
    try:
        for lj in lam_list:
            x = t * lj
            y = 1.0 - x
            s_c += lj / y
            s_1 += x * x / y + (log1p(-x) + x)
    except (ValueError, ZeroDivisionError):  # outside the domain: numpy's inf/nan semantics
        xa = t * lam
        ya = 1.0 - xa
        s_c = float((lam / ya).sum())
        s_1 = float((xa * xa / ya + (np.log1p(-xa) + xa)).sum())
    return s_c, s_1


def _truncation_sums(lam_list: list[float], u: float) -> tuple[float, float, float, float]:
    """For x = (2 u lam)^2: sum log(1 + x) over x <= 1; sums of log x, log(1 + x) and count over x > 1."""
    t = 2.0 * u
    log, log1p = math.log, math.log1p
    small = prod2 = prod3 = s = 0.0
    for lj in lam_list:
        x = t * lj
        x *= x
        if x > 1.0:
            prod2 += log(x)
            prod3 += log1p(x)
            s += 1.0
        else:
            small += log1p(x)
    return small, prod2, prod3, s


def _lam_memo(lam: np.ndarray) -> _LamMemo:
    """The memo of one weight vector, shared by all threads.

    Look-up, eviction and insertion happen under a lock. The memo's own tables are filled
    without one: every entry is a pure function of its key (the weights, ``sigsq`` and the
    arguments), so two threads that compute the same entry store the same value, and a
    single dict assignment is atomic.
    """
    key = lam.tobytes()
    with _MEMO_LOCK:
        memo = _MEMO.get(key)
        if memo is None:
            if len(_MEMO) >= _MEMO_WEIGHTS:
                _MEMO.clear()  # holders of an evicted memo keep using their reference
            memo = _MEMO[key] = _LamMemo(lam)
    return memo


# The compiled davies_many's module (bayesmages.stats._davies_jit, numba), imported on first use: None
# until then, False where numba cannot be imported (this module's Python implementation is then used).
_COMPILED: Any = None


def _compiled() -> Any:
    """The compiled implementation, or None where numba is not importable."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = load_compiled("bayesmages.stats._davies_jit")
    return _COMPILED or None


class _LimitReached(Exception):
    """The evaluation counter exceeded ``lim`` (fault 4)."""


def _log1(x: np.ndarray | float, first: bool) -> np.ndarray | float:
    """``log(1 + x)`` if ``first``, else ``log(1 + x) - x`` (accurate for small ``x``)."""
    return np.log1p(x) if first else np.log1p(x) - x


def _exp1(x: float) -> float:
    return 0.0 if x < -50.0 else math.exp(x)


class _Davies:
    """State of one Davies evaluation (weights ``lam`` are the chi2_1 coefficients)."""

    def __init__(self, lam: np.ndarray, q: float, lim: int, memo: _LamMemo | None = None) -> None:
        self.lam = lam
        self.q = q
        self.lim = lim
        self.count = 0
        self.sigsq = 0.0
        memo = _lam_memo(lam) if memo is None else memo
        self.memo = memo
        self.mean = memo.mean
        self.lmax = memo.lmax
        self.lmin = memo.lmin
        # Weights sorted by |lambda| descending, for the convergence-factor coefficient.
        self.order = memo.order
        self.fail = False
        self.jobs: list[tuple[int, float, float | None, float]] = []

    def counter(self) -> None:
        self.count += 1
        if self.count > self.lim:
            raise _LimitReached

    def errbd(self, u: float) -> tuple[float, float]:
        """Chernoff-type bound on a tail probability at ``u``; also returns the cut-off point."""
        self.count += 1  # counter(), inlined: this is the hot path
        if self.count > self.lim:
            raise _LimitReached
        xconst = u * self.sigsq
        sum1 = u * xconst
        sums = self.memo.errbd_sums.get(u)
        if sums is None:
            sums = _errbd_sums(self.lam, self.memo.lam_list, u)
            if len(self.memo.errbd_sums) < _MEMO_CALLS:
                self.memo.errbd_sums[u] = sums
        s_c, s_1 = sums
        e = -0.5 * (sum1 + s_1)
        return (0.0 if e < -50.0 else math.exp(e)), xconst + s_c

    def _memoised(self, name: str, fn: Any, *args: float) -> Any:
        """``fn(*args)``, memoised per (weights, sigsq, args); replays the evaluation count.

        These steps are pure functions of the weights, ``sigsq`` and their arguments (not of
        ``q``), so across the many quantiles of one SKAT-O integration they repeat exactly. The
        evaluation counter is advanced by what the computation used; passing ``lim`` inside it or
        after it both end the run with fault 4, so the outcome is unchanged.
        """
        key = (name, self.sigsq, *args)
        hit = self.memo.calls.get(key)
        if hit is None:
            start = self.count
            self.count = 0
            try:  # counted from 0: a fault here is a fault from ``start`` too
                value = fn(*args)
            finally:
                used, self.count = self.count, start
            hit = (value, used)
            if len(self.memo.calls) < _MEMO_CALLS:
                self.memo.calls[key] = hit
        value, used = hit
        self.count += used
        if self.count > self.lim:
            raise _LimitReached
        return value

    def ctff(self, accx: float, upn: float) -> tuple[float, float]:
        return self._memoised("ctff", self._ctff, accx, upn)

    def findu(self, ut: float, accx: float) -> float:
        return self._memoised("findu", self._findu, ut, accx)

    def _ctff(self, accx: float, upn: float) -> tuple[float, float]:
        """Cut-off ``c`` with P(Q > c) < accx (``upn > 0``) or P(Q < c) < accx (``upn < 0``)."""
        u2 = upn
        u1 = 0.0
        c1 = self.mean
        rb = 2.0 * (self.lmax if u2 > 0 else self.lmin)
        while True:
            bound, c2 = self.errbd(u2 / (1.0 + u2 * rb))
            if bound <= accx:
                break
            u1, c1 = u2, c2
            u2 *= 2.0
        while (c1 - self.mean) / (c2 - self.mean) < 0.9:
            u = 0.5 * (u1 + u2)
            bound, xconst = self.errbd(u / (1.0 + u * rb))
            if bound > accx:
                u1, c1 = u, xconst
            else:
                u2, c2 = u, xconst
        return c2, u2

    def truncation(self, u: float, tausq: float) -> float:
        """Bound on the integration error from truncating the integral at ``u``."""
        self.count += 1
        if self.count > self.lim:
            raise _LimitReached
        sum2 = (self.sigsq + tausq) * u * u
        prod1 = 2.0 * sum2
        sums = self.memo.trunc_sums.get(u)
        if sums is None:
            sums = _truncation_sums(self.memo.lam_list, u)
            if len(self.memo.trunc_sums) < _MEMO_CALLS:
                self.memo.trunc_sums[u] = sums
        s1, prod2, prod3, s = sums
        prod1 += s1
        prod2 += prod1
        prod3 += prod1
        e2, e3 = -0.25 * prod2, -0.25 * prod3
        xx = (0.0 if e2 < -50.0 else math.exp(e2)) / math.pi
        yy = (0.0 if e3 < -50.0 else math.exp(e3)) / math.pi
        err1 = 1.0 if s == 0 else xx * 2.0 / s
        err2 = 2.5 * yy if prod3 > 1.0 else 1.0
        err1 = err2 if err2 < err1 else err1  # min(err1, err2), without the builtin's call cost
        half = 0.5 * sum2
        err2 = 1.0 if half <= yy else yy / half
        return err2 if err2 < err1 else err1

    def _findu(self, ut: float, accx: float) -> float:
        """Smallest convenient truncation point with truncation error below ``accx``."""
        u = ut / 4.0
        if self.truncation(u, 0.0) > accx:
            u = ut
            while self.truncation(u, 0.0) > accx:
                ut *= 4.0
                u = ut
        else:
            ut = u
            u = u / 4.0
            while self.truncation(u, 0.0) <= accx:
                ut = u
                u = u / 4.0
        for d in _DIVIS:
            u = ut / d
            if self.truncation(u, 0.0) <= accx:
                ut = u
        return ut

    def integrate(self, nterm: int, interv: float, tausq: float, mainx: bool) -> None:
        """Record ``nterm + 1`` terms of the inversion sum at step ``interv`` (see :func:`_integrate_jobs`).

        Nothing in the control flow depends on the sums, so they are computed afterwards, for all
        quantiles of a :func:`davies_many` call at once; ``sigsq`` is the value at this step.
        """
        self.jobs.append((nterm, interv, None if mainx else tausq, self.sigsq))

    def cfe(self, x: float) -> float:
        """Coefficient of tausq in the error when a convergence factor is used at ``x``."""
        self.counter()
        axl = abs(x)
        sxl = 1.0 if x > 0 else -1.0
        sum1 = 0.0
        for j, lt, lj, axl2 in self.memo.cfe_terms:  # from the smallest |weight| up
            if lt * sxl > 0.0:
                axl1 = axl - lj
                if axl1 > axl2:
                    axl = axl1
                else:
                    axl = axl2 if axl2 < axl else axl  # min(axl, axl2)
                    sum1 = (axl - axl1) / lj + j  # j remaining chi2_1 terms of larger weight
                    break
        if sum1 > 100.0:
            self.fail = True
            return 1.0
        return 2.0 ** (sum1 / 4.0) / (math.pi * axl * axl)

    def run(self, acc: float) -> tuple[float, int]:
        """Return (P(Q < q), ifault)."""
        c = self.q
        acc1 = acc
        xlim = float(self.lim)
        sd = self.memo.sd2
        if sd == 0.0:
            return (1.0 if c > 0 else 0.0), 0
        sd = math.sqrt(sd)
        almx = max(self.lmax, -self.lmin)
        utx = 16.0 / sd
        up = 4.5 / sd
        un = -up
        utx = self.findu(utx, 0.5 * acc1)
        # Does a convergence factor help?
        if c != 0.0 and almx > 0.07 * sd:
            tausq = 0.25 * acc1 / self.cfe(c)
            if self.fail:
                self.fail = False
            elif self.truncation(utx, tausq) < 0.2 * acc1:
                self.sigsq += tausq
                utx = self.findu(utx, 0.25 * acc1)
        acc1 *= 0.5
        while True:
            cut, up = self.ctff(acc1, up)
            d1 = cut - c
            if d1 < 0.0:
                return 1.0, 0
            cut, un = self.ctff(acc1, un)
            d2 = c - cut
            if d2 < 0.0:
                return 0.0, 0
            intv = 2.0 * math.pi / max(d1, d2)
            xnt = utx / intv
            xntm = 3.0 / math.sqrt(acc1)
            if xnt <= xntm * 1.5:
                break
            # Auxiliary integration with a convergence factor.
            if xntm > xlim:
                return -1.0, 1
            ntm = math.floor(xntm + 0.5)
            intv1 = utx / ntm
            x = 2.0 * math.pi / intv1
            if x <= abs(c):
                break
            tausq = 0.33 * acc1 / (1.1 * (self.cfe(c - x) + self.cfe(c + x)))
            if self.fail:
                break
            acc1 *= 0.67
            self.integrate(ntm, intv1, tausq, False)
            xlim -= xntm
            self.sigsq += tausq
            utx = self.findu(utx, 0.25 * acc1)
            acc1 *= 0.75
        if xnt > xlim:
            return -1.0, 1
        nt = math.floor(xnt + 0.5)
        self.integrate(nt, intv, 0.0, True)
        return math.nan, 0  # finished by finish() once the recorded sums are computed

    def finish(self, acc: float, intl: float, ersm: float) -> tuple[float, int]:
        """(P(Q < q), ifault) from the sums of the recorded integrations."""
        qfval = 0.5 - intl
        ifault = 0
        # Round-off test of the reference (allowing for radix 8 or 16 machines).
        upx = ersm
        x = upx + acc / 10.0
        for j in (1.0, 2.0, 4.0, 8.0):
            if j * x == j * upx:
                ifault = 2
        return qfval, ifault


_ROWS_PER_BATCH = 20_000  # integration terms evaluated per vectorised step (bounds the memory)


def _integrate_jobs(states: list[_Davies], lam: np.ndarray) -> list[tuple[float, float]]:
    """Compute the recorded integrations of every state: per state, ``(intl, ersm)``.

    The terms of all jobs are stacked (one row of weights per term) and evaluated in one pass;
    every row and every job is summed as it would be alone (row sums along the weights, each
    job's own pairwise sum), so a quantile's result does not depend on the others of the call.
    """
    jobs = [(k, job) for k, st in enumerate(states) for job in st.jobs]
    out = [(0.0, 0.0)] * len(states)
    nonneg = bool(np.all(lam >= 0.0))
    start = 0
    while start < len(jobs):
        stop, rows = start, 0
        while stop < len(jobs) and (stop == start or rows + jobs[stop][1][0] + 1 <= _ROWS_PER_BATCH):
            rows += jobs[stop][1][0] + 1
            stop += 1
        chunk = jobs[start:stop]
        nterm = np.array([j[0] for _, j in chunk], dtype=np.int64)
        interv = np.array([j[1] for _, j in chunk])
        sigsq = np.array([j[3] for _, j in chunk])
        qv = np.array([states[k].q for k, _ in chunk])
        lens = nterm + 1
        ends = np.cumsum(lens)
        starts = ends - lens
        job = np.repeat(np.arange(len(chunk)), lens)
        step = interv[job]
        u = ((nterm[job] - (np.arange(int(ends[-1])) - starts[job])).astype(np.float64) + 0.5) * step
        x = 2.0 * u[:, None] * lam[None, :]
        at = np.arctan(x)
        s_at = at.sum(axis=1)
        lin = -2.0 * u * qv[job]
        sum1 = lin + s_at
        # With non-negative weights every arctan is >= 0 and |.| changes nothing.
        sum2 = np.abs(lin) + (s_at if nonneg else np.abs(at).sum(axis=1))
        sum3 = -0.5 * sigsq[job] * u * u - 0.25 * np.log1p(x * x).sum(axis=1)
        e = np.where(sum3 < -50.0, 0.0, np.exp(np.maximum(sum3, -50.0)))
        xx = (step / math.pi) * e / u
        aux = np.array([j[2] is not None for _, j in chunk])
        if aux.any():
            tausq = np.array([0.0 if j[2] is None else j[2] for _, j in chunk])[job]
            z = -0.5 * tausq * u * u
            factor = 1.0 - np.where(z < -50.0, 0.0, np.exp(np.maximum(z, -50.0)))
            xx = np.where(aux[job], xx * factor, xx)
        t_int = np.sin(0.5 * sum1) * xx
        t_err = 0.5 * sum2 * xx
        for (k, _), a, b in zip(chunk, starts.tolist(), ends.tolist()):
            intl, ersm = out[k]
            # summed from the largest u down, like the reference, to keep round-off comparable
            out[k] = (intl + float(t_int[a:b].sum()), ersm + float(t_err[a:b].sum()))
        start = stop
    return out


def davies_one(q: float, lam: np.ndarray, acc: float, lim: int) -> tuple[float, int]:
    """P(sum_k lam_k chi2_1 > q) by Davies' algorithm, as R returns it (``1 - qfval``).

    Parameters
    ----------
    q : float
        Quantile.
    lam : numpy.ndarray
        Weights (finite; zeros allowed).
    acc : float
        Absolute error bound.
    lim : int
        Maximum number of integration terms (also the evaluation-counter limit).

    Returns
    -------
    (float, int)
        The p-value ``1 - P(Q < q)`` and the fault code (0 = fine).

    Examples
    --------
    >>> p, fault = davies_one(3.84, np.array([1.0]), 1e-6, 10_000)
    >>> round(p, 3), fault
    (0.05, 0)
    """
    p, fault = davies_many(np.array([float(q)]), lam, acc, lim)
    return float(p[0]), int(fault[0])


def davies_many(q: np.ndarray, lam: np.ndarray, acc: float, lim: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`davies_one` for many quantiles with the same weights: ``(p, fault)`` arrays.

    Each quantile runs the reference's control flow on its own (term counts, convergence
    factors and faults per quantile); the inversion sums, most of the cost, are then evaluated
    for all quantiles in one vectorised pass (:func:`_integrate_jobs`). Each result is what the
    quantile gives alone.

    Examples
    --------
    >>> p, fault = davies_many(np.array([2.0, 3.84]), np.array([1.0, 0.5]), 1e-6, 10_000)
    >>> p.round(4).tolist(), fault.tolist()
    ([0.2575, 0.0806], [0, 0])
    """
    lam = np.asarray(lam, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64).ravel()
    acc = float(acc)
    memo = _lam_memo(lam)
    compiled = _compiled()
    if compiled is not None:
        if memo.jit_memo is None:
            memo.jit_memo = compiled.new_memo()
        try:
            return compiled.davies_many_compiled(qs, lam, acc, int(lim), memo.lam_ord, memo.mean, memo.lmax,
                                                 memo.lmin, memo.sd2, memo.nonneg, memo.jit_memo)
        except (ArithmeticError, ValueError):
            pass  # where the interpreter would raise or leave a fast path: the code below, as always
    qf = np.empty(qs.size)
    fault = np.zeros(qs.size, dtype=np.int64)
    pending: list[int] = []
    states: list[_Davies] = []
    for i, qi in enumerate(qs.tolist()):
        state = _Davies(lam, qi, int(lim), memo)
        try:
            qf[i], fault[i] = state.run(acc)
        except _LimitReached:
            qf[i], fault[i] = -1.0, 4
            continue
        if state.jobs and fault[i] == 0 and math.isnan(qf[i]):
            pending.append(i)
            states.append(state)
    for i, state, (intl, ersm) in zip(pending, states, _integrate_jobs(states, lam)):
        qf[i], fault[i] = state.finish(acc, intl, ersm)
    return 1.0 - qf, fault


def davies_grid(q: np.ndarray, lam: np.ndarray, acc: float, max_terms: int = 20_000) -> np.ndarray | None:
    """P(sum_k lam_k chi2_1 > q) for many ``q`` on one shared integration grid, or None.

    Davies' inversion sum without a convergence factor, with one step and one truncation point
    valid for every quantile at once: the step ``2 pi / (c_up - c_lo)`` is no larger than the step
    Davies would choose for any ``q`` in ``[c_lo, c_up]`` (the cut-offs beyond which each tail
    has probability below ``acc / 2``), and the truncation point is Davies' for ``acc / 2``. The
    error bounds are therefore those of :func:`davies_one` (absolute, ``acc``), while the
    weight-dependent sums are computed once for all quantiles and each quantile costs one row of
    sines. Quantiles beyond the cut-offs get 0 or 1, as in Davies. Returns None (use
    :func:`davies_many`) when the grid would need more than ``max_terms`` terms, which is where
    Davies resorts to convergence factors.

    Examples
    --------
    >>> lam = np.linspace(0.2, 2.0, 10)
    >>> davies_grid(np.array([5.0, 20.0]), lam, 1e-6).round(5).tolist()
    [0.89321, 0.06997]
    >>> davies_grid(np.array([2.0]), np.array([1.0, 0.5]), 1e-6) is None  # chi-square-like: too many terms
    True
    """
    lam = np.asarray(lam, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64).ravel()
    state = _Davies(lam, 0.0, 10**9)
    if state.memo.sd2 <= 0.0:
        return None
    sd = math.sqrt(state.memo.sd2)
    acc1 = 0.5 * acc
    utx = state.findu(16.0 / sd, acc1)
    c_up, _ = state.ctff(acc1, 4.5 / sd)
    c_lo, _ = state.ctff(acc1, -4.5 / sd)
    step = 2.0 * math.pi / (c_up - c_lo)
    nterm = math.floor(utx / step + 0.5)
    if nterm > max_terms:
        return None
    u = (np.arange(nterm, -1, -1, dtype=np.float64) + 0.5) * step
    x = 2.0 * u[:, None] * lam[None, :]
    angle = np.arctan(x).sum(axis=1)
    xx = (step / math.pi) * np.exp(-0.25 * np.log1p(x * x).sum(axis=1)) / u
    p = np.where(qs > c_up, 0.0, 1.0)
    inside = np.flatnonzero((qs >= c_lo) & (qs <= c_up))
    if inside.size:
        qfval = 0.5 - np.sin(0.5 * (angle[None, :] - 2.0 * qs[inside, None] * u[None, :])) @ xx
        p[inside] = 1.0 - qfval
    return p
