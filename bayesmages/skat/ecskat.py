"""ecSKAT (Falk et al. 2023): learn a convex combination of kernels on a training split, test on the rest.

Base kernels are single variants or groups of variants, ``K_k = G_k diag(a_k)^2 G_k'`` with
within-kernel weights a (Beta(a1, a2) of the MAF by default). On the training split, with null
residuals r and scores ``S = Gw' r`` of covariance ``Omega = Gw' P0 Gw`` (P0 includes the fitted
covariates; ``s2 (I - H)`` for the Gaussian model),

* ``Q_k = sum_{j in k} S_j^2``, ``E0 Q_k = tr(Omega_kk)``, ``Cov0(Q_k, Q_l) = 2 ||Omega_kl||_F^2 = 2 B_kl``;
* ``objective="standardized"`` maximises ``c'w / sqrt(2 w'Bw)`` with ``c = Q - E0 Q``; it is
  scale-invariant, so ``w ∝ argmin u'Bu s.t. c'u = 1, u >= 0`` (a QP, solved with cvxpy);
* ``objective="bound"`` maximises ``J(w) = c'w / sqrt(sum_k b_k w_k^2)`` with ``b = diag(B)``:
  treating the base statistics as independent, sub-exponential concentration of chi-square(1)
  variables gives ``P0(Q(w) - E0 Q(w) >= c'w) <= exp(-J/8)`` when ``J >= 1`` (our reading of the
  paper's section 2.6; the bound is reported on the training split, never used as a p-value).

The p-value is the SKAT test with kernel ``K_w`` on the held-out split with its own null fit, so it
never sees a training sample. Variant QC and MAFs use the genotypes of all samples (no phenotype).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesmages.errors import InputError
from bayesmages.skat.null import NullModel, fit_null
from bayesmages.skat.result import SKATResult
from bayesmages.skat.set_test import resolve_method_bin, test_prepared
from bayesmages.skat.variants import as_genotype_matrix, prepare_variants, variant_weights
from bayesmages.stats import multitest

__all__ = ["ECSKATResult", "cauchy_combine", "ecskat", "learn_kernel_weights"]

OBJECTIVES = ("standardized", "bound")


@dataclass
class ECSKATResult:
    """Result of :func:`ecskat`.

    Attributes
    ----------
    p_value : float
        Test-split p-value (Cauchy combination over splits when ``n_splits > 1``).
    weights : numpy.ndarray
        Learned kernel weights on the simplex, one per base kernel (first split).
    kernels : list of str
        Base-kernel names (variant ids/indices or group labels).
    statistic : float
        The test-split SKAT Q with kernel K_w (first split).
    train_idx, test_idx : numpy.ndarray
        The sample split (first split).
    objective : str
        ``"standardized"`` or ``"bound"``.
    objective_value : float
        Training value of the objective at the learned weights.
    train_bound : float or None
        ``exp(-J/8)`` on the training split when ``J >= 1`` (objective "bound").
    fallback : bool
        No base kernel had a positive centred statistic on the training split; the best single
        kernel was used.
    n_tested : int
        Variants that passed QC.
    split_p_values : numpy.ndarray
        Per-split p-values.
    test_result : SKATResult
        The held-out SKAT result of the first split.
    qp : dict
        ``c``, ``B`` and the QP solution ``u`` (for checks).
    """

    p_value: float
    weights: np.ndarray
    kernels: list[str]
    statistic: float
    train_idx: np.ndarray
    test_idx: np.ndarray
    objective: str
    objective_value: float
    train_bound: float | None
    fallback: bool
    n_tested: int
    split_p_values: np.ndarray
    test_result: SKATResult
    qp: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        # A compact summary: the dataclass default printed every sample index of both splits.
        top = np.argsort(-np.asarray(self.weights))[:3]
        lead = ", ".join(f"{self.kernels[i]}: {float(self.weights[i]):.3g}" for i in top)
        more = f", ... ({len(self.kernels)} kernels)" if len(self.kernels) > 3 else ""
        return (f"ECSKATResult(p_value={float(self.p_value):.4g}, statistic={float(self.statistic):.4g}, "
                f"weights={{{lead}{more}}}, objective={self.objective!r}, n_tested={self.n_tested}, "
                f"n_train={len(self.train_idx)}, n_test={len(self.test_idx)}, splits={len(self.split_p_values)}, "
                f"fallback={self.fallback})")


def cauchy_combine(p: Any) -> float:
    """Cauchy combination (Liu & Xie 2020) of p-values, valid under arbitrary dependence.

    Examples
    --------
    >>> round(cauchy_combine([0.01, 0.01]), 6)
    0.01
    """
    return multitest.cauchy(p)


def _kernel_sets(
    groups: Any, pv_kept: np.ndarray, n_input: int, names: list[str]
) -> tuple[list[np.ndarray], list[str]]:
    """Base kernels as index arrays into the kept variants."""
    pos = {int(j): i for i, j in enumerate(pv_kept)}
    if groups is None:
        return [np.array([i]) for i in range(pv_kept.size)], [names[j] for j in pv_kept]
    if isinstance(groups, dict):
        items = list(groups.items())
    elif len(groups) == n_input and all(np.isscalar(g) for g in groups):
        labels = list(dict.fromkeys(groups))
        items = [(lab, [j for j in range(n_input) if groups[j] == lab]) for lab in labels]
    else:
        items = [(f"group{k}", g) for k, g in enumerate(groups)]
    sets, out_names = [], []
    for lab, members in items:
        try:
            cols = [int(j) for j in members]
        except (TypeError, ValueError):
            raise InputError(f"groups: members of group {lab!r} must be column indices") from None
        if any(j < 0 or j >= n_input for j in cols):
            raise InputError(f"groups: group {lab!r} has a column index outside 0..{n_input - 1}")
        idx = np.array(sorted({pos[j] for j in cols if j in pos}), dtype=int)
        if idx.size:
            sets.append(idx)
            out_names.append(str(lab))
    if not sets:
        raise InputError("groups: no group contains a variant that passed QC")
    return sets, out_names


_QP_CACHE = threading.local()  # per thread: a cvxpy Problem holds its parameter values and solver state
_QP_CACHE_SIZE = 32


def _qp_problem(K: int) -> tuple[Any, Any, Any, Any]:
    """The QP for K kernels as a parametrised cvxpy problem, built once per K and thread.

    min ||L v||^2 s.t. c'v = 1, v >= 0 with parameters L (L'L = B) and c is DPP, so cvxpy
    canonicalises it once and later solves only substitute the parameters (canonicalisation is
    most of the cost of a fresh solve at these sizes). Setting the parameters and solving is
    not atomic, so threads must not share a problem: each thread has its own cache.
    """
    import cvxpy as cp

    cache: dict[int, tuple[Any, Any, Any, Any]] = _QP_CACHE.__dict__.setdefault("problems", {})
    hit = cache.get(K)
    if hit is None:
        v = cp.Variable(K, nonneg=True)
        L, c = cp.Parameter((K, K)), cp.Parameter(K)
        prob = cp.Problem(cp.Minimize(cp.sum_squares(L @ v)), [c @ v == 1])
        # The first solve canonicalises and differs from later ones in the last bits; solving a
        # dummy instance here keeps every real solve on the same path (same input, same output).
        L.value, c.value = np.eye(K), np.ones(K)
        prob.solve(solver=cp.CLARABEL)
        if len(cache) >= _QP_CACHE_SIZE:
            cache.clear()
        hit = cache[K] = (prob, v, L, c)
    return hit


def _solve_qp(c: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Argmin u'Bu s.t. c'u = 1, u >= 0 (cvxpy), on the diagonally rescaled problem for conditioning."""
    import cvxpy as cp

    s = np.sqrt(np.maximum(np.diag(B), 1e-300))
    Bs = B / np.outer(s, s)
    Bs = 0.5 * (Bs + Bs.T) + 1e-12 * np.eye(B.shape[0])
    cs = c / s
    cs = cs / np.abs(cs).max()
    prob, v, L, cpar = _qp_problem(c.size)
    try:
        L.value = np.linalg.cholesky(Bs).T
    except np.linalg.LinAlgError:  # B is a Gram matrix (PSD); jitter only for round-off
        w, V = np.linalg.eigh(Bs)
        L.value = (V * np.sqrt(np.clip(w, 1e-12, None))).T
    cpar.value = cs
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        prob.solve(solver=cp.OSQP, eps_abs=1e-10, eps_rel=1e-10, max_iter=200_000)
    if v.value is None:
        raise InputError(f"ecskat: the kernel-weight QP could not be solved ({prob.status})")
    u = np.maximum(np.asarray(v.value, dtype=np.float64), 0.0) / s
    return u / float(c @ u)  # undo the rescaling: c'u = 1


def learn_kernel_weights(
    S: np.ndarray, Omega: np.ndarray, sets: list[np.ndarray], objective: str = "standardized"
) -> dict[str, Any]:
    """Learn simplex weights of base kernels from scores ``S`` and their null covariance ``Omega``.

    Parameters
    ----------
    S : numpy.ndarray
        (p,) weighted scores ``Gw' r``.
    Omega : numpy.ndarray
        (p, p) null covariance of ``S``.
    sets : list of numpy.ndarray
        Index sets of the base kernels.
    objective : {"standardized", "bound"}
        See the module docstring.

    Returns
    -------
    dict
        ``weights`` (simplex), ``u`` (QP solution), ``c``, ``B``, ``objective_value``,
        ``train_bound``, ``fallback``.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    K = len(sets)
    A = np.zeros((S.size, K))  # kernel membership: sums over kernels become products with A
    for k, J in enumerate(sets):
        A[J, k] = 1.0
    Q = A.T @ (S * S)
    EQ = A.T @ np.diag(Omega)
    B = A.T @ (Omega * Omega) @ A
    c = Q - EQ
    b = np.diag(B).copy()
    M = B if objective == "standardized" else np.diag(b)
    # A kernel whose variants carry no minor allele in the training split has null variance 0: the
    # split says nothing about it, and in the rescaled QP its round-off would be divided by ~0 and
    # take all the weight. It gets weight 0.
    informative = b > 1e-12 * max(float(b.max()), 1e-300)
    fallback = not np.any((c > 0) & informative)
    u = np.zeros(K)
    if fallback:
        score = np.where(informative, c / np.sqrt(np.maximum(b, 1e-300)), -np.inf)
        u[int(np.argmax(score))] = 1.0
    elif informative.sum() == 1:
        k = int(np.flatnonzero(informative)[0])
        u[k] = 1.0 / c[k]
    else:
        keep = np.flatnonzero(informative)
        u[keep] = _solve_qp(c[keep], M[np.ix_(keep, keep)])
    w = u / u.sum()
    value = float(c @ w / math.sqrt(max(2.0 * w @ M @ w, 1e-300)))
    J_w = float(c @ w / math.sqrt(max(float(np.sum(b * w * w)), 1e-300)))
    bound = math.exp(-J_w / 8.0) if (objective == "bound" and J_w >= 1) else None
    return {"weights": w, "u": u, "c": c, "B": M, "objective_value": value, "train_bound": bound,
            "fallback": fallback}


def _check_split(y: np.ndarray, idx: np.ndarray, trait: str, what: str, q: int) -> None:
    if idx.size <= q + 1:
        raise InputError(f"ecskat: the {what} split has {idx.size} samples, too few for {q} covariates")
    if trait == "binary" and np.unique(y[idx]).size < 2:
        raise InputError(f"ecskat: the {what} split has only one outcome class; change seed or train_fraction")


def ecskat(
    Z: Any,
    y: Any,
    X: Any = None,
    trait: str = "continuous",
    train_fraction: float = 0.3,
    seed: int = 0,
    groups: Any = None,
    objective: str = "standardized",
    *,
    weights_beta: tuple[float, float] = (1.0, 25.0),
    weights: Any = None,
    kernel_weights: Any = None,
    n_splits: int = 1,
    method: str = "exact",
    impute: str = "fixed",
    variant_names: Any = None,
    method_bin: str | None = None,
) -> ECSKATResult:
    """ecSKAT: learn kernel weights on a training split, SKAT with the learned kernel on the rest.

    Parameters
    ----------
    Z : array-like
        (n, p) genotypes (NaN/9 missing); QC, imputation and flipping as in :func:`bayesmages.skat.test`.
    y : array-like
        (n,) phenotype.
    X : array-like, optional
        (n, q) covariates (intercept added).
    trait : {"continuous", "binary"}
        Null model family.
    train_fraction : float
        Fraction of samples used to learn the weights (default 0.3).
    seed : int
        Seed of the split(s).
    groups : optional
        Base kernels: ``None`` = one per variant; a length-p sequence of group labels; a mapping
        label -> column indices; or a list of column-index lists.
    objective : {"standardized", "bound"}
        Weight-learning objective (module docstring).
    weights_beta, weights
        Within-kernel variant weights (Beta density of the MAF, or user weights per column).
    kernel_weights : array-like, optional
        Fix the kernel weights (skip learning; e.g. a vertex of the simplex reproduces SKAT with
        that base kernel on the test split).
    n_splits : int
        Number of random splits; p-values are combined with the Cauchy combination.
    method : {"exact", "davies", "liu", "liu.mod"}
        Null distribution of the test-split Q (as in :func:`bayesmages.skat.test`; default exact).
    impute : {"fixed", "bestguess", "random"}
        Missing-genotype imputation.
    variant_names : sequence of str, optional
        Names of the columns of ``Z`` (for ``kernels``).
    method_bin : {None, "hybrid", "er", "spa", "asymptotic"}
        Binary traits: the test of the test split (as in :func:`bayesmages.skat.test`; ``None``
        means ``"hybrid"``, ER/SPA, for binary traits). The kernel weights are learned on the
        training split only, so the test split's ER/SPA law is the null law of its statistic.
        ``"asymptotic"``: the chi-square-mixture test of ``method`` (no moment adjustment).

    Returns
    -------
    ECSKATResult
        ``p_value``, ``weights`` (simplex), ``train_idx``/``test_idx``, ...

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> n = 600; Z = rng.binomial(2, 0.02, size=(n, 12)).astype(float)
    >>> y = Z[:, 0] - Z[:, 1] + rng.normal(size=n)
    >>> res = bm.skat.ecskat(Z, y, trait="continuous", seed=1)
    >>> bool(np.isclose(res.weights.sum(), 1.0) and (res.weights >= 0).all())
    True
    """
    method_bin = resolve_method_bin(method_bin, trait, "skat")
    yv = np.asarray(y, dtype=np.float64).ravel()
    n = yv.size
    G = as_genotype_matrix(Z, n=n)
    if not 0 < train_fraction < 1:
        raise InputError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if not isinstance(n_splits, int) or n_splits < 1:
        raise InputError(f"n_splits must be a positive integer, got {n_splits!r}")
    Xm = None if X is None else np.asarray(X, dtype=np.float64)
    if Xm is not None and Xm.ndim == 1:
        Xm = Xm[:, None]
    if Xm is not None and Xm.shape[0] != n:
        raise InputError(f"ecskat: X has {Xm.shape[0]} rows but y has {n} values")
    q = 1 + (0 if Xm is None else Xm.shape[1])
    pv = prepare_variants(G, impute=impute, seed=seed)
    names = [str(v) for v in variant_names] if variant_names is not None else [str(j) for j in range(G.shape[1])]
    if len(names) != G.shape[1]:
        raise InputError(f"variant_names has {len(names)} entries but Z has {G.shape[1]} columns")
    if pv.n_tested == 0:
        raise InputError("ecskat: no variant passed QC (missing rate < 0.15, polymorphic)")
    a = variant_weights(pv, weights_beta, weights)
    sets, kernels = _kernel_sets(groups, pv.kept, pv.n_input, names)
    fixed = None
    if kernel_weights is not None:
        fixed = np.asarray(kernel_weights, dtype=np.float64).ravel()
        if fixed.size != len(sets) or np.any(fixed < 0) or fixed.sum() <= 0:
            raise InputError(f"kernel_weights must be {len(sets)} non-negative numbers with a positive sum")
        fixed = fixed / fixed.sum()
    n_train = round(train_fraction * n)
    split_seeds = np.random.SeedSequence(seed).spawn(n_splits)
    results = []
    for ss in split_seeds:
        perm = np.random.default_rng(ss).permutation(n)
        tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        _check_split(yv, tr, trait, "training", q)
        _check_split(yv, te, trait, "test", q)
        if fixed is None:
            null_tr = fit_null(yv[tr], None if Xm is None else Xm[tr], trait, adjustment=False)
            Gw = pv.G[tr] * a
            learned = learn_kernel_weights(Gw.T @ null_tr.residuals, null_tr.s2 * null_tr.cov_scores(Gw), sets,
                                           objective)
        else:
            learned = {"weights": fixed, "u": fixed, "c": np.empty(0), "B": np.empty((0, 0)),
                       "objective_value": float("nan"), "train_bound": None, "fallback": False}
        d = np.zeros(pv.n_tested)
        for wk, J in zip(learned["weights"], sets):
            d[J] += wk
        null_te: NullModel = fit_null(yv[te], None if Xm is None else Xm[te], trait, adjustment=False)
        res = test_prepared(pv.G[te], a * np.sqrt(d), null_te, "skat", method, n_variants=pv.n_input,
                            method_bin=method_bin, seed=seed)
        results.append((tr, te, learned, res))
    tr, te, learned, res = results[0]
    split_p = np.array([r[3].p_value for r in results])
    p_value = float(split_p[0]) if n_splits == 1 else cauchy_combine(split_p)
    return ECSKATResult(
        p_value=p_value, weights=learned["weights"], kernels=kernels, statistic=res.statistic, train_idx=tr,
        test_idx=te, objective=objective, objective_value=learned["objective_value"],
        train_bound=learned["train_bound"], fallback=learned["fallback"], n_tested=pv.n_tested,
        split_p_values=split_p, test_result=res, qp={k: learned[k] for k in ("c", "B", "u")},
    )
