"""Compiled (numba) form of :func:`bayesmages.stats.davies.davies_many`, bit-identical to it.

The Python implementation in :mod:`bayesmages.stats.davies` runs Davies' control flow (error
bounds, cut-offs, truncation points, convergence factors, the evaluation counter) per quantile in
the interpreter; R SKAT's SKAT-O integral asks for ~1,200 quantiles per gene, so that control flow
is most of ``compat="R"``'s cost. Here it runs compiled, statement for statement: the same IEEE
operations in the same order, the same C library functions (``exp``, ``log``, ``log1p``, ``pow``
are glibc's in both), and every place where the interpreter would raise (a division by zero, a
math-domain error, an overflow) raises here too, so that :func:`davies_many` can hand the call to
the Python implementation, which then does what it always did.

The inversion sums keep numpy's own ``arctan``, ``log1p``, ``exp`` and ``sin`` (vectorised, and
not always equal to the C library's in the last bit), evaluated on the same arrays as the Python
path; the compiled code builds those arrays and sums them with numpy's pairwise summation
(:func:`_pairwise_sum`, the same order of additions as ``ndarray.sum``). The result is therefore
equal to the last bit, which ``tests/test_davies_jit.py`` checks on thousands of random cases,
faults included.

numba compiles the kernels on their first call (~30 s on a loaded 2-core machine) and caches the
machine code in ``__pycache__`` (or numba's user cache directory; ``NUMBA_CACHE_DIR`` overrides),
so later processes load it in well under a second; it is compiled again only when this file changes.

The module stays one file (about 680 lines, above the project's ~600) on purpose: numba's cache is
keyed by the file of each compiled function and does not notice changes to jitted functions of other
files that it inlined, so kernels split across files could keep running stale machine code.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from bayesmages.stats._jit import jit

__all__ = ["davies_many_compiled", "new_memo"]

_LOG28 = 0.0866  # log(2) / 8, as in davies.py
_ROWS_PER_BATCH = 20_000  # as in davies.py: bounds the memory of one vectorised step
_PW_BLOCK = 128  # numpy's pairwise-summation block (PW_BLOCKSIZE)



@jit
def _pairwise_block(a: np.ndarray, lo: int, n: int) -> float:
    """Pairwise sum of ``a[lo:lo + n]`` for ``n <= 128`` as numpy adds it: 8 running sums, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@jit
def _pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """``a[lo:lo + n].sum()`` added in numpy's order (blocks of 128; above, the two halves' sums).

    numpy recurses; this walks the same tree with an explicit stack (numba's cache cannot hold a
    recursive function).
    """
    if n <= _PW_BLOCK:
        return _pairwise_block(a, lo, n)
    f_lo = np.empty(64, dtype=np.int64)  # one frame per level: depth <= log2(n / 128) + 1
    f_n = np.empty(64, dtype=np.int64)
    f_left = np.empty(64)
    f_stage = np.empty(64, dtype=np.int64)  # 1: left half pending, 2: right half pending
    d = 0
    f_lo[0], f_n[0] = lo, n
    while True:
        m = f_n[d]
        if m > _PW_BLOCK:  # split as numpy does: the left part a multiple of 8
            n2 = m // 2
            n2 -= n2 % 8
            f_stage[d] = 1
            f_lo[d + 1], f_n[d + 1] = f_lo[d], n2
            d += 1
            continue
        ret = _pairwise_block(a, f_lo[d], m)
        d -= 1
        while d >= 0 and f_stage[d] == 2:  # right halves done: combine upwards
            ret = f_left[d] + ret
            d -= 1
        if d < 0:
            return ret
        f_left[d] = ret  # a left half done: now its right half
        f_stage[d] = 2
        n2 = f_n[d] // 2
        n2 -= n2 % 8
        f_lo[d + 1], f_n[d + 1] = f_lo[d] + n2, f_n[d] - n2
        d += 1


@jit
def _exp(e: float) -> float:
    """``math.exp`` as CPython evaluates it (an overflow raises)."""
    if e > 709.0:
        raise OverflowError("math range error")
    return math.exp(e)


@jit
def _floor(x: float) -> int:
    """``math.floor`` to an integer, raising where CPython's does (inf, nan)."""
    if math.isnan(x):
        raise ValueError("cannot convert float NaN to integer")
    if math.isinf(x):
        raise OverflowError("cannot convert float infinity to integer")
    return math.floor(x)


# Memo tables (the Python path's memo, compiled): open addressing on (kind, a, b, c) keys; kind 0
# marks an empty slot. Kinds: 1 errbd sums at u, 2 truncation sums at u, 3 ctff, 4 findu (keyed by
# sigsq and the arguments, valued with the evaluations they used; kept for sigsq = 0 only: with a
# convergence factor sigsq is the quantile's own and never recurs). Every entry is a pure function of
# its key; a table stops taking entries when half full. A SKAT-O integrand's weights fill ~200.
_MEMO_SLOTS = 1 << 11


def new_memo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty memo tables for one weight vector: keys, values, fill count."""
    return np.zeros((_MEMO_SLOTS, 4)), np.empty((_MEMO_SLOTS, 4)), np.zeros(1, dtype=np.int64)


@jit
def _bits(v: float) -> int:
    """A cheap hash of a float (its mantissa and exponent; NaN and inf give 0)."""
    if not math.isfinite(v):
        return 0
    m, e = math.frexp(v)
    return int(m * 9007199254740992.0) ^ (e * 40503)


@jit
def _find(mk: np.ndarray, kind: float, a: float, b: float, c: float) -> int:
    """Slot of the key (>= 0), or ``-1 - slot`` of the empty slot where it would go."""
    mask = mk.shape[0] - 1
    h = _bits(a) * 3 + int(kind)
    if b != 0.0 or c != 0.0:  # kinds 1 and 2 are keyed by u alone
        h += _bits(b) * 5 + _bits(c) * 7
    h &= mask
    while True:
        k0 = mk[h, 0]
        if k0 == 0.0:
            return -1 - h
        if k0 == kind and mk[h, 1] == a and mk[h, 2] == b and mk[h, 3] == c:
            return h
        h = (h + 1) & mask


@jit
def _store(mk: np.ndarray, mv: np.ndarray, fill: np.ndarray, slot: int, kind: float, a: float, b: float,
           c: float, v0: float, v1: float, v2: float, v3: float) -> None:
    if fill[0] >= mk.shape[0] // 2 or math.isnan(a) or math.isnan(b) or math.isnan(c):
        return
    mv[slot, 0], mv[slot, 1], mv[slot, 2], mv[slot, 3] = v0, v1, v2, v3
    mk[slot, 1], mk[slot, 2], mk[slot, 3] = a, b, c
    mk[slot, 0] = kind
    fill[0] += 1


# ``st`` holds the evaluation counter (st[0]) and cfe's failure flag (st[1]); a kernel that finds
# st[0] > lim returns at once and its caller stops too (the Python path's _LimitReached).


@jit
def _errbd(u: float, sigsq: float, lam: np.ndarray, st: np.ndarray, lim: int, mk: np.ndarray, mv: np.ndarray,
           fill: np.ndarray) -> tuple[float, float]:
    st[0] += 1
    if st[0] > lim:
        return 0.0, 0.0
    xconst = u * sigsq
    sum1 = u * xconst
    slot = _find(mk, 1.0, u, 0.0, 0.0)
    if slot >= 0:
        s_c, s_1 = mv[slot, 0], mv[slot, 1]
    else:
        t = 2.0 * u
        s_c = 0.0
        s_1 = 0.0
        for k in range(lam.size):
            lj = lam[k]
            x = t * lj
            if x >= 1.0:  # the Python loop leaves for numpy's inf/nan semantics here: let it
                raise ValueError("math domain error")
            y = 1.0 - x
            s_c += lj / y
            s_1 += x * x / y + (math.log1p(-x) + x)
        _store(mk, mv, fill, -1 - slot, 1.0, u, 0.0, 0.0, s_c, s_1, 0.0, 0.0)
    e = -0.5 * (sum1 + s_1)
    return (0.0 if e < -50.0 else _exp(e)), xconst + s_c


@jit
def _ctff_raw(accx: float, upn: float, sigsq: float, lam: np.ndarray, mean: float, lmax: float, lmin: float,
              st: np.ndarray, lim: int, mk: np.ndarray, mv: np.ndarray, fill: np.ndarray) -> tuple[float, float]:
    u2 = upn
    u1 = 0.0
    c1 = mean
    rb = 2.0 * (lmax if u2 > 0 else lmin)
    while True:
        bound, c2 = _errbd(u2 / (1.0 + u2 * rb), sigsq, lam, st, lim, mk, mv, fill)
        if st[0] > lim:
            return 0.0, 0.0
        if bound <= accx:
            break
        u1, c1 = u2, c2
        u2 *= 2.0
    while (c1 - mean) / (c2 - mean) < 0.9:
        u = 0.5 * (u1 + u2)
        bound, xconst = _errbd(u / (1.0 + u * rb), sigsq, lam, st, lim, mk, mv, fill)
        if st[0] > lim:
            return 0.0, 0.0
        if bound > accx:
            u1, c1 = u, xconst
        else:
            u2, c2 = u, xconst
    return c2, u2


@jit
def _ctff(accx: float, upn: float, sigsq: float, lam: np.ndarray, mean: float, lmax: float, lmin: float,
          st: np.ndarray, lim: int, mk: np.ndarray, mv: np.ndarray, fill: np.ndarray) -> tuple[float, float]:
    """Memoised ctff: a hit replays the evaluations the computation used (a fault at the same count)."""
    slot = _find(mk, 3.0, sigsq, accx, upn)
    if slot >= 0:
        st[0] += int(mv[slot, 2])
        return mv[slot, 0], mv[slot, 1]
    start = st[0]
    c2, u2 = _ctff_raw(accx, upn, sigsq, lam, mean, lmax, lmin, st, lim, mk, mv, fill)
    if st[0] <= lim and sigsq == 0.0:
        # found again: the computation may have filled the slot that was free before it
        _store(mk, mv, fill, -1 - _find(mk, 3.0, sigsq, accx, upn), 3.0, sigsq, accx, upn,
               c2, u2, float(st[0] - start), 0.0)
    return c2, u2


@jit
def _truncation(u: float, tausq: float, sigsq: float, lam: np.ndarray, st: np.ndarray, lim: int, mk: np.ndarray,
                mv: np.ndarray, fill: np.ndarray) -> float:
    st[0] += 1
    if st[0] > lim:
        return 0.0
    sum2 = (sigsq + tausq) * u * u
    prod1 = 2.0 * sum2
    slot = _find(mk, 2.0, u, 0.0, 0.0)
    if slot >= 0:
        s1, prod2, prod3, s = mv[slot, 0], mv[slot, 1], mv[slot, 2], mv[slot, 3]
    else:
        t = 2.0 * u
        s1 = prod2 = prod3 = s = 0.0
        for k in range(lam.size):
            x = t * lam[k]
            x *= x
            if x > 1.0:
                prod2 += math.log(x)
                prod3 += math.log1p(x)
                s += 1.0
            else:
                s1 += math.log1p(x)
        _store(mk, mv, fill, -1 - slot, 2.0, u, 0.0, 0.0, s1, prod2, prod3, s)
    prod1 += s1
    prod2 += prod1
    prod3 += prod1
    e2, e3 = -0.25 * prod2, -0.25 * prod3
    xx = (0.0 if e2 < -50.0 else _exp(e2)) / math.pi
    yy = (0.0 if e3 < -50.0 else _exp(e3)) / math.pi
    err1 = 1.0 if s == 0 else xx * 2.0 / s
    err2 = 2.5 * yy if prod3 > 1.0 else 1.0
    err1 = err2 if err2 < err1 else err1
    half = 0.5 * sum2
    err2 = 1.0 if half <= yy else yy / half
    return err2 if err2 < err1 else err1


@jit
def _findu_raw(ut: float, accx: float, sigsq: float, lam: np.ndarray, st: np.ndarray, lim: int, mk: np.ndarray,
               mv: np.ndarray, fill: np.ndarray) -> float:
    u = ut / 4.0
    tr = _truncation(u, 0.0, sigsq, lam, st, lim, mk, mv, fill)
    if st[0] > lim:
        return 0.0
    if tr > accx:
        u = ut
        while True:
            tr = _truncation(u, 0.0, sigsq, lam, st, lim, mk, mv, fill)
            if st[0] > lim:
                return 0.0
            if not tr > accx:
                break
            ut *= 4.0
            u = ut
    else:
        ut = u
        u = u / 4.0
        while True:
            tr = _truncation(u, 0.0, sigsq, lam, st, lim, mk, mv, fill)
            if st[0] > lim:
                return 0.0
            if not tr <= accx:
                break
            ut = u
            u = u / 4.0
    for d in (2.0, 1.4, 1.2, 1.1):
        u = ut / d
        tr = _truncation(u, 0.0, sigsq, lam, st, lim, mk, mv, fill)
        if st[0] > lim:
            return 0.0
        if tr <= accx:
            ut = u
    return ut


@jit
def _findu(ut: float, accx: float, sigsq: float, lam: np.ndarray, st: np.ndarray, lim: int, mk: np.ndarray,
           mv: np.ndarray, fill: np.ndarray) -> float:
    """Memoised findu (as :func:`_ctff`)."""
    slot = _find(mk, 4.0, sigsq, ut, accx)
    if slot >= 0:
        st[0] += int(mv[slot, 1])
        return mv[slot, 0]
    start = st[0]
    out = _findu_raw(ut, accx, sigsq, lam, st, lim, mk, mv, fill)
    if st[0] <= lim and sigsq == 0.0:
        _store(mk, mv, fill, -1 - _find(mk, 4.0, sigsq, ut, accx), 4.0, sigsq, ut, accx, out,
               float(st[0] - start), 0.0, 0.0)
    return out


@jit
def _cfe(x: float, lam_ord: np.ndarray, two: float, st: np.ndarray, lim: int) -> float:
    st[0] += 1
    if st[0] > lim:
        return 0.0
    axl = abs(x)
    sxl = 1.0 if x > 0 else -1.0
    sum1 = 0.0
    for k in range(lam_ord.size - 1, -1, -1):  # from the smallest |weight| up
        lt = lam_ord[k]
        if lt * sxl > 0.0:
            lj = abs(lt)
            axl2 = lj / _LOG28
            axl1 = axl - lj
            if axl1 > axl2:
                axl = axl1
            else:
                axl = axl2 if axl2 < axl else axl
                sum1 = (axl - axl1) / lj + float(k)
                break
    if sum1 > 100.0:
        st[1] = 1
        return 1.0
    # ``two`` is 2.0 passed at run time: a literal base would let LLVM rewrite pow(2, y) as exp2(y)
    return two ** (sum1 / 4.0) / (math.pi * axl * axl)


@jit
def _run(c: float, lam: np.ndarray, lam_ord: np.ndarray, mean: float, lmax: float, lmin: float, sd2: float,
         acc: float, lim: int, two: float, st: np.ndarray, jobs: np.ndarray, mk: np.ndarray, mv: np.ndarray,
         fill: np.ndarray) -> tuple[float, int, int]:
    """One quantile's control flow: (P(Q < q) or NaN when pending, fault, jobs recorded in ``jobs``)."""
    st[0] = 0
    st[1] = 0
    nj = 0
    sigsq = 0.0
    acc1 = acc
    xlim = float(lim)
    sd = sd2
    if sd == 0.0:
        return (1.0 if c > 0 else 0.0), 0, 0
    sd = math.sqrt(sd)
    almx = -lmin if -lmin > lmax else lmax
    utx = 16.0 / sd
    up = 4.5 / sd
    un = -up
    utx = _findu(utx, 0.5 * acc1, sigsq, lam, st, lim, mk, mv, fill)
    if st[0] > lim:
        return -1.0, 4, 0
    if c != 0.0 and almx > 0.07 * sd:
        f0 = _cfe(c, lam_ord, two, st, lim)
        if st[0] > lim:
            return -1.0, 4, 0
        tausq = 0.25 * acc1 / f0
        if st[1] != 0:
            st[1] = 0
        else:
            tr = _truncation(utx, tausq, sigsq, lam, st, lim, mk, mv, fill)
            if st[0] > lim:
                return -1.0, 4, 0
            if tr < 0.2 * acc1:
                sigsq += tausq
                utx = _findu(utx, 0.25 * acc1, sigsq, lam, st, lim, mk, mv, fill)
                if st[0] > lim:
                    return -1.0, 4, 0
    acc1 *= 0.5
    while True:
        cut, up = _ctff(acc1, up, sigsq, lam, mean, lmax, lmin, st, lim, mk, mv, fill)
        if st[0] > lim:
            return -1.0, 4, 0
        d1 = cut - c
        if d1 < 0.0:
            return 1.0, 0, 0
        cut, un = _ctff(acc1, un, sigsq, lam, mean, lmax, lmin, st, lim, mk, mv, fill)
        if st[0] > lim:
            return -1.0, 4, 0
        d2 = c - cut
        if d2 < 0.0:
            return 0.0, 0, 0
        intv = 2.0 * math.pi / (d2 if d2 > d1 else d1)
        xnt = utx / intv
        xntm = 3.0 / math.sqrt(acc1)
        if xnt <= xntm * 1.5:
            break
        if xntm > xlim:
            return -1.0, 1, 0
        ntm = _floor(xntm + 0.5)
        intv1 = utx / ntm
        x = 2.0 * math.pi / intv1
        if x <= abs(c):
            break
        f1 = _cfe(c - x, lam_ord, two, st, lim)
        if st[0] > lim:
            return -1.0, 4, 0
        f2 = _cfe(c + x, lam_ord, two, st, lim)
        if st[0] > lim:
            return -1.0, 4, 0
        tausq = 0.33 * acc1 / (1.1 * (f1 + f2))
        if st[1] != 0:
            break
        acc1 *= 0.67
        if nj == jobs.shape[0]:
            raise OverflowError("too many auxiliary integrations")  # the Python path has no such limit
        jobs[nj, 0] = ntm
        jobs[nj, 1] = intv1
        jobs[nj, 2] = tausq
        jobs[nj, 3] = sigsq
        nj += 1
        xlim -= xntm
        sigsq += tausq
        utx = _findu(utx, 0.25 * acc1, sigsq, lam, st, lim, mk, mv, fill)
        if st[0] > lim:
            return -1.0, 4, 0
        acc1 *= 0.75
    if xnt > xlim:
        return -1.0, 1, 0
    nt = _floor(xnt + 0.5)
    if nj == jobs.shape[0]:
        raise OverflowError("too many auxiliary integrations")
    jobs[nj, 0] = nt
    jobs[nj, 1] = intv
    jobs[nj, 2] = math.nan  # the main integration: no convergence factor
    jobs[nj, 3] = sigsq
    return math.nan, 0, nj + 1


@jit
def _control(qs: np.ndarray, lam: np.ndarray, lam_ord: np.ndarray, mean: float, lmax: float, lmin: float,
             sd2: float, acc: float, lim: int, two: float, mk: np.ndarray, mv: np.ndarray,
             fill: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every quantile's control flow: qf (NaN = pending), fault, the pending quantiles' jobs, chunks.

    A job row is (quantile index, nterm, interval, tausq or NaN for the main integration, sigsq).
    Chunk c is jobs ``chunks[c, 0]:chunks[c, 1]`` with ``chunks[c, 2]`` terms: whole jobs, at most
    _ROWS_PER_BATCH terms unless one job alone has more (davies.py's batches).
    """
    n = qs.size
    qf = np.empty(n)
    fault = np.zeros(n, dtype=np.int64)
    st = np.zeros(2, dtype=np.int64)
    scratch = np.empty((64, 4))
    out = np.empty((max(4 * n, 16), 5))
    m = 0
    for i in range(n):
        v, f, nj = _run(qs[i], lam, lam_ord, mean, lmax, lmin, sd2, acc, lim, two, st, scratch, mk, mv, fill)
        qf[i] = v
        fault[i] = f
        if nj > 0:
            if m + nj > out.shape[0]:
                grown = np.empty((2 * (m + nj), 5))
                grown[:m] = out[:m]
                out = grown
            for j in range(nj):
                out[m, 0] = i
                out[m, 1:] = scratch[j]
                m += 1
    chunks = np.zeros((m + 1, 3), dtype=np.int64)
    nc = 0
    j = 0
    while j < m:
        start, rows = j, int(out[j, 1]) + 1
        j += 1
        while j < m and rows + int(out[j, 1]) + 1 <= _ROWS_PER_BATCH:
            rows += int(out[j, 1]) + 1
            j += 1
        chunks[nc, 0], chunks[nc, 1], chunks[nc, 2] = start, j, rows
        nc += 1
    return qf, fault, out[:m], chunks[:nc]


@jit
def _rows(chunk: np.ndarray, qs: np.ndarray, lam: np.ndarray, x: np.ndarray,
          xsq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per integration term (the jobs' u from the largest down): u, -2 u q, sigsq and z; fills x, x^2.

    ``x = 2 u lam`` (rows x weights); ``z = -0.5 tausq u^2`` is the convergence factor's exponent
    (auxiliary jobs; 0 elsewhere).
    """
    total = x.shape[0]
    p = lam.size
    u = np.empty(total)
    lin = np.empty(total)
    sig = np.empty(total)
    z = np.zeros(total)  # -0.5 tausq u^2 where the job has a convergence factor
    r = 0
    for j in range(chunk.shape[0]):
        nterm = int(chunk[j, 1])
        step, tau, q = chunk[j, 2], chunk[j, 3], qs[int(chunk[j, 0])]
        for i in range(nterm + 1):
            ur = (float(nterm - i) + 0.5) * step
            u[r] = ur
            t = 2.0 * ur
            for k in range(p):
                xk = t * lam[k]
                x[r, k] = xk
                xsq[r, k] = xk * xk
            lin[r] = -2.0 * ur * q
            sig[r] = chunk[j, 4]
            if not math.isnan(tau):
                z[r] = -0.5 * tau * ur * ur
            r += 1
    return u, lin, sig, z


@jit
def _row_sums(u: np.ndarray, at: np.ndarray, lg: np.ndarray, lin: np.ndarray, sig: np.ndarray,
              nonneg: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: half of sum1 = -2 u q + sum arctan; sum2 = |-2 u q| + sum |arctan|; sum3 (log-modulus)."""
    rows, p = at.shape
    a_flat = at.ravel()
    l_flat = lg.ravel()
    half1 = np.empty(rows)
    sum2 = np.empty(rows)
    sum3 = np.empty(rows)
    abs_flat = a_flat if nonneg else np.abs(a_flat)  # arctan >= 0 where every weight is
    for r in range(rows):
        s_at = _pairwise_sum(a_flat, r * p, p)
        half1[r] = 0.5 * (lin[r] + s_at)
        sum2[r] = abs(lin[r]) + (s_at if nonneg else _pairwise_sum(abs_flat, r * p, p))
        sum3[r] = -0.5 * sig[r] * u[r] * u[r] - 0.25 * _pairwise_sum(l_flat, r * p, p)
    return half1, sum2, sum3


@jit
def _floor50(v: np.ndarray) -> np.ndarray:
    """``np.maximum(v, -50.0)`` (NaN stays NaN, -0.0 stays -0.0)."""
    out = np.empty(v.size)
    for i in range(v.size):
        out[i] = -50.0 if v[i] < -50.0 else v[i]
    return out


@jit
def _job_sums(chunk: np.ndarray, u: np.ndarray, sum2: np.ndarray, sum3: np.ndarray, e: np.ndarray,
              z: np.ndarray, e_aux: np.ndarray, sin_half: np.ndarray, intl: np.ndarray, ersm: np.ndarray) -> None:
    """Add each job's sums of the integration and error terms to its quantile's totals."""
    rows = u.size
    t_int = np.empty(rows)
    t_err = np.empty(rows)
    r = 0
    for j in range(chunk.shape[0]):
        step = chunk[j, 2]
        aux = not math.isnan(chunk[j, 3])
        for _ in range(int(chunk[j, 1]) + 1):
            xx = (step / math.pi) * (0.0 if sum3[r] < -50.0 else e[r]) / u[r]
            if aux:
                xx = xx * (1.0 - (0.0 if z[r] < -50.0 else e_aux[r]))
            t_int[r] = sin_half[r] * xx
            t_err[r] = 0.5 * sum2[r] * xx
            r += 1
    a = r - r  # the first row, typed as a run-time integer (a literal 0 would compile another version)
    for j in range(chunk.shape[0]):
        n = int(chunk[j, 1]) + 1
        k = int(chunk[j, 0])
        intl[k] = intl[k] + _pairwise_sum(t_int, a, n)
        ersm[k] = ersm[k] + _pairwise_sum(t_err, a, n)
        a += n


_WORK = threading.local()  # per thread: two scratch buffers for the terms x weights arrays
_WORK_KEEP = 1 << 22  # elements; larger buffers are not kept between calls


def _buffers(rows: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (rows, p) scratch arrays, reused between calls.

    Fresh multi-MB arrays in every call cost more in page faults than the arithmetic on them.
    """
    need = rows * p
    held = getattr(_WORK, "bufs", None)
    if held is None or held[0].size < need:
        held = (np.empty(need), np.empty(need))
        if need <= _WORK_KEEP:
            _WORK.bufs = held
    return held[0][:need].reshape(rows, p), held[1][:need].reshape(rows, p)


def davies_many_compiled(qs: np.ndarray, lam: np.ndarray, acc: float, lim: int, lam_ord: np.ndarray,
                         mean: float, lmax: float, lmin: float, sd2: float, nonneg: bool,
                         memo: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - P(Q < q), fault)`` for every quantile.

    The weight summaries come from davies.py's memo, ``memo`` from :func:`new_memo` (kept per
    weight vector). Raises ``ArithmeticError`` or ``ValueError`` where the Python implementation
    would raise or leave its scalar loop (the caller then runs that implementation).
    """
    qs, lam, lam_ord = _plain(qs), _plain(lam), _plain(lam_ord)
    qf, fault, jobs, chunks = _control(qs, lam, lam_ord, float(mean), float(lmax), float(lmin), float(sd2),
                                       float(acc), int(lim), 2.0, *memo)
    if len(jobs):
        # The inversion sums, batched as davies.py's _integrate_jobs; numpy's own transcendental
        # functions (in place) on the values the Python path gives them.
        intl = np.zeros(qs.size)
        ersm = np.zeros(qs.size)
        for a, b, rows in chunks.tolist():
            chunk = jobs[a:b]
            x, xsq = _buffers(rows, lam.size)
            u, lin, sig, z = _rows(chunk, qs, lam, x, xsq)
            half1, sum2, sum3 = _row_sums(u, np.arctan(x, out=x), np.log1p(xsq, out=xsq), lin, sig, nonneg)
            e = np.exp(_floor50(sum3))
            _job_sums(chunk, u, sum2, sum3, e, z, np.exp(_floor50(z)), np.sin(half1), intl, ersm)
        _finish(qf, fault, jobs, intl, ersm, float(acc))
    return 1.0 - qf, fault


def _plain(a: np.ndarray) -> np.ndarray:
    """``a`` as a contiguous, aligned, writeable float64 array.

    numba compiles a separate version of every kernel for each other layout and for read-only arrays.
    """
    f = a.flags
    if a.dtype == np.float64 and f.c_contiguous and f.writeable and f.aligned:
        return a
    return np.array(a, dtype=np.float64, order="C")


@jit
def _finish(qf: np.ndarray, fault: np.ndarray, jobs: np.ndarray, intl: np.ndarray, ersm: np.ndarray,
            acc: float) -> None:
    """(P(Q < q), fault) of the quantiles with jobs, with the reference's round-off test."""
    for j in range(jobs.shape[0]):
        i = int(jobs[j, 0])
        qf[i] = 0.5 - intl[i]
        upx = ersm[i]
        x = upx + acc / 10.0
        f = 0
        for r in (1.0, 2.0, 4.0, 8.0):  # radix 8 or 16 machines, as in the reference
            if r * x == r * upx:
                f = 2
        fault[i] = f
