"""Post-processing of a fitted DP mixture and the rule for which variants are clustered.

All functions are plain numpy (no Pyro) so that the pipeline and the gene-level code can use
them on any weights/covariances.

Conventions (METHODS §B, fixing the reference code):

* **Truncation**: sort components by weight, keep the smallest K* whose cumulative weight
  reaches ``keep_mass`` (0.99), renormalise, then order the kept clusters by the trace of
  their covariance, largest first.
* **Responsibilities** use the weights (pi-weighted) and are computed in log space, so they
  never underflow.
* **Categories** are trace-aware and sign-free (see :func:`categorize_clusters`).
* **Selection** keeps or drops whole rows; single entries of a row are never zeroed
  (zeroing creates artificial axis-aligned mass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp

from bayesmages.errors import InputError

__all__ = [
    "adjusted_rand_index",
    "categorize_clusters",
    "log_responsibilities",
    "select_variants",
    "truncate_components",
]


def truncate_components(
    weights: np.ndarray, covariances: np.ndarray, keep_mass: float = 0.99
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the heaviest components up to a cumulative weight; order them by trace.

    Parameters
    ----------
    weights : numpy.ndarray
        (K,) mixture weights.
    covariances : numpy.ndarray
        (K, p, p) covariances.
    keep_mass : float
        Cumulative weight to reach, in (0, 1].

    Returns
    -------
    index : numpy.ndarray
        (K*,) indices of the kept components, ordered by trace descending.
    weights : numpy.ndarray
        (K*,) their weights renormalised to sum to one.

    Examples
    --------
    >>> idx, w = truncate_components(np.array([0.6, 0.395, 0.005]), np.stack([np.eye(1), 3 * np.eye(1), np.eye(1)]))
    >>> idx.tolist(), np.round(w, 3).tolist()
    ([1, 0], [0.397, 0.603])
    """
    if not 0.0 < keep_mass <= 1.0:
        raise InputError(f"keep_mass must be in (0, 1], got {keep_mass!r}")
    weights = np.asarray(weights, dtype=float)
    by_weight = np.argsort(-weights, kind="stable")
    cum = np.cumsum(weights[by_weight]) / weights.sum()
    k_star = int(np.searchsorted(cum, keep_mass - 1e-12) + 1)
    kept = by_weight[: min(k_star, weights.size)]
    traces = np.trace(np.asarray(covariances)[kept], axis1=-2, axis2=-1)
    kept = kept[np.argsort(-traces, kind="stable")]
    return kept, weights[kept] / weights[kept].sum()


def log_responsibilities(
    X: np.ndarray,
    weights: np.ndarray,
    covariances: np.ndarray,
    noise_var: np.ndarray | None = None,
) -> np.ndarray:
    """Log posterior cluster probabilities of each row (pi-weighted, zero-mean Gaussians).

    Parameters
    ----------
    X : numpy.ndarray
        (N, p) effects.
    weights : numpy.ndarray
        (K,) weights.
    covariances : numpy.ndarray
        (K, p, p) covariances.
    noise_var : numpy.ndarray, optional
        (N, p) per-row noise variances added to every covariance.

    Returns
    -------
    numpy.ndarray
        (N, K) log-probabilities; ``exp`` of each row sums to one.

    Examples
    --------
    >>> lr = log_responsibilities(np.array([[0.0], [5.0]]), np.array([0.5, 0.5]), np.array([[[1.0]], [[25.0]]]))
    >>> np.exp(lr).round(2).tolist()
    [[0.83, 0.17], [0.0, 1.0]]
    """
    X = np.asarray(X, dtype=float)
    covs = np.asarray(covariances, dtype=float)
    p = X.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(weights, dtype=float))
    if noise_var is None:
        chol = np.linalg.cholesky(covs)  # (K, p, p)
        # z = L^{-1} x for all rows and components via the inverse factors (p is small).
        inv = np.linalg.inv(chol)
        z = np.einsum("kab,nb->nka", inv, X)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    else:
        total = covs[None] + np.einsum("na,ab->nab", noise_var, np.eye(p))[:, None]
        chol = np.linalg.cholesky(total)  # (N, K, p, p)
        z = np.linalg.solve(chol, np.broadcast_to(X[:, None, :, None], (*chol.shape[:-1], 1)))[..., 0]
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    logp = log_w - 0.5 * ((z**2).sum(-1) + logdet + p * math.log(2 * math.pi))
    return logp - logsumexp(logp, axis=1, keepdims=True)


def categorize_clusters(
    covariances: np.ndarray,
    trait_names: Sequence[str] | None = None,
    *,
    null_trace_fraction: float = 0.05,
    null_variance: float | None = None,
    angle_tol: float = 15.0,
    eig_ratio: float = 2.0,
    shared_fraction: float = 0.1,
) -> list[str]:
    """Association category of each cluster from its covariance (any number of traits).

    Rules, in order:

    1. ``"non-prioritised"`` when the cluster is small: ``tr(Sigma_k) < null_trace_fraction x``
       the largest trace among the clusters, or (if ``null_variance`` is given)
       ``tr(Sigma_k) / p <= null_variance`` (the mean per-trait variance is at the null level).
       The largest cluster is never non-prioritised by the fraction rule.
    2. ``"specific:<t>"`` when the leading eigenvector ``u1`` is within ``angle_tol`` degrees of
       axis t, measured sign-free (``|u1_t| >= cos(angle_tol)``), and ``lambda1 / lambda2 >=
       eig_ratio``. With one trait every non-null cluster is specific to it.
    3. otherwise ``"shared:<t1>+<t2>[+...]"`` over the traits whose variance is at least
       ``shared_fraction`` x the largest variance of that cluster (a single such trait gives
       ``"specific:<t>"``).

    Parameters
    ----------
    covariances : numpy.ndarray
        (K, p, p).
    trait_names : sequence of str, optional
        Defaults to ``trait1 .. traitp``.
    null_trace_fraction, null_variance, angle_tol, eig_ratio, shared_fraction : float
        Thresholds above.

    Returns
    -------
    list of str

    Examples
    --------
    >>> covs = np.array([np.diag([4.0, 0.1]), [[2.0, -1.8], [-1.8, 2.0]], 0.01 * np.eye(2)])
    >>> categorize_clusters(covs, ["LDL", "HDL"])
    ['specific:LDL', 'shared:LDL+HDL', 'non-prioritised']
    """
    covs = np.asarray(covariances, dtype=float)
    if covs.ndim != 3 or covs.shape[1] != covs.shape[2]:
        raise InputError(f"covariances must have shape (K, p, p), got {covs.shape}")
    K, p, _ = covs.shape
    names = list(trait_names) if trait_names is not None else [f"trait{t + 1}" for t in range(p)]
    if len(names) != p:
        raise InputError(f"trait_names has {len(names)} names for {p} traits")
    if not 0 < angle_tol < 90:
        raise InputError(f"angle_tol must be in (0, 90) degrees, got {angle_tol!r}")
    traces = np.trace(covs, axis1=1, axis2=2)
    cos_tol = math.cos(math.radians(angle_tol))
    out = []
    for k in range(K):
        small = traces[k] < null_trace_fraction * traces.max()
        if null_variance is not None:
            small = small or traces[k] / p <= null_variance
        if small:
            out.append("non-prioritised")
            continue
        if p == 1:
            out.append(f"specific:{names[0]}")
            continue
        lam, vec = np.linalg.eigh(covs[k])
        u1 = vec[:, -1]
        ratio = lam[-1] / max(lam[-2], 1e-300)
        t = int(np.argmax(np.abs(u1)))
        if abs(u1[t]) >= cos_tol and ratio >= eig_ratio:
            out.append(f"specific:{names[t]}")
            continue
        var = np.diag(covs[k])
        involved = [names[j] for j in range(p) if var[j] >= shared_fraction * var.max()]
        out.append(f"specific:{involved[0]}" if len(involved) == 1 else "shared:" + "+".join(involved))
    return out


def select_variants(
    effects: np.ndarray,
    sd: np.ndarray | None = None,
    *,
    rule: str = "quantile",
    threshold: float | None = None,
    quantile: float = 0.9,
    z: float = 1.96,
) -> np.ndarray:
    """Which variants (rows) to cluster; whole rows are kept or dropped, entries never zeroed.

    A row is kept when **any** trait passes the rule:

    * ``"all"``: every row with finite effects;
    * ``"absolute"``: ``|effect| > threshold`` (``threshold`` required);
    * ``"quantile"``: ``|effect_t|`` above the ``quantile`` of ``|effect_t|`` over variants, per
      trait t (default 0.9: the top 10% of each trait; at least one row per trait);
    * ``"posterior"``: ``|mean| > z * sd`` with ``sd`` the posterior sd from the Bayesian
      shrinker (``sd`` required).

    Parameters
    ----------
    effects : numpy.ndarray
        (N, p) shrunk effects (or (N,) for one trait).
    sd : numpy.ndarray, optional
        Posterior sds, same shape as ``effects`` (rule ``"posterior"``).
    rule : {"quantile", "absolute", "posterior", "all"}
        The rule.
    threshold, quantile, z : float
        Rule parameters.

    Returns
    -------
    numpy.ndarray
        (N,) boolean mask.

    Examples
    --------
    >>> E = np.array([[0.0, 0.1], [2.0, 0.0], [0.0, 0.0]])
    >>> select_variants(E, rule="absolute", threshold=0.05).tolist()
    [True, True, False]
    """
    E = np.asarray(effects, dtype=float)
    if E.ndim == 1:
        E = E[:, None]
    if E.ndim != 2 or E.shape[0] == 0:
        raise InputError(f"effects must be a non-empty (N, p) array, got shape {E.shape}")
    finite = np.isfinite(E).all(1)
    A = np.where(np.isfinite(E), np.abs(E), 0.0)
    if rule == "all":
        keep = np.ones(E.shape[0], dtype=bool)
    elif rule == "absolute":
        if threshold is None or not threshold >= 0:
            raise InputError("select_variants: rule 'absolute' needs a non-negative threshold")
        keep = np.any(A > threshold, axis=1)
    elif rule == "quantile":
        if not 0.0 <= quantile < 1.0:
            raise InputError(f"select_variants: quantile must be in [0, 1), got {quantile!r}")
        cut = np.quantile(A[finite], quantile, axis=0) if finite.any() else np.zeros(E.shape[1])
        keep = (A > cut).any(1) | (A == A.max(0)).any(1)
    elif rule == "posterior":
        if sd is None:
            raise InputError("select_variants: rule 'posterior' needs the posterior sd (sd=...)")
        S = np.asarray(sd, dtype=float).reshape(E.shape) if np.size(sd) == E.size else None
        if S is None:
            raise InputError(f"select_variants: sd must have the shape of effects {E.shape}")
        if (S[np.isfinite(S)] < 0).any():
            raise InputError("select_variants: sd has negative values")
        keep = np.any(A > z * np.where(np.isfinite(S), S, np.inf), axis=1)
    else:
        raise InputError(f"select_variants: rule must be 'quantile', 'absolute', 'posterior' or 'all', got {rule!r}")
    return keep & finite


def adjusted_rand_index(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (Hubert and Arabie, 1985).

    Examples
    --------
    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a = np.unique(np.asarray(labels_a), return_inverse=True)[1].ravel()
    b = np.unique(np.asarray(labels_b), return_inverse=True)[1].ravel()
    if a.size != b.size:
        raise InputError(f"labelings have different lengths ({a.size} and {b.size})")
    n = a.size
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)

    def comb2(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index = comb2(table)
    sum_a, sum_b = comb2(table.sum(1)), comb2(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = 0.5 * (sum_a + sum_b)
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)
