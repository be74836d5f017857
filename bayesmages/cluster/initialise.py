"""Starting values of the restarts: covariances, refined by CAVI, then turned into guide parameters.

Restart 0 is the reference's axis-aligned start: one trait-specific component per trait, a
shared component (the data's second moment) and a near-null component. The other restarts
seed components on data rows drawn with probability proportional to their squared norm
(k-means++-like, so large effects get components), each ``x x^T`` widened by a ridge, plus
the same shared and null components. Randomness comes from the torch RNG, which
:func:`bayesmages.infer.run_svi` seeds per fit.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions.transforms import CorrCholeskyTransform

from bayesmages.cluster import kernels

_F64 = torch.float64

__all__ = ["cavi_start", "initial_covariances"]


def initial_covariances(X: torch.Tensor, restarts: int, truncation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial covariances and log weights of every restart.

    Restart r starts with ``p + 2 + r`` active components (capped at
    K); the others start with weight 1e-10 and so stay empty unless the data need them. Starting
    from all K components would leave CAVI in local optima that split true clusters.

    Parameters
    ----------
    X : torch.Tensor
        (N, p) scaled effects.
    restarts, truncation : int
        R and K.

    Returns
    -------
    covariances : torch.Tensor
        (R, K, p, p) positive-definite covariances.
    log_weights : torch.Tensor
        (R, K) starting log weights (normalised).

    Examples
    --------
    >>> X = torch.randn(100, 2, dtype=torch.float64)
    >>> initial_covariances(X, 3, 5)[0].shape
    torch.Size([3, 5, 2, 2])
    """
    N, p = X.shape
    R, K = restarts, truncation
    eye = torch.eye(p, dtype=X.dtype)
    moment = X.T @ X / N
    sq = (X**2).sum(1)
    # The null component's variance: the typical squared size of the smallest tenth of rows.
    null_var = torch.quantile(sq, 0.1).clamp_min(1e-8 * float(sq.mean())) / p
    ridge = 1e-3 * float(torch.diagonal(moment).mean())
    covs = X.new_empty(R, K, p, p)
    log_w = X.new_full((R, K), math.log(1e-10))
    probs = sq / sq.sum()
    for r in range(R):
        log_w[r, : min(K, p + 2 + r)] = 0.0
        fixed = [moment + ridge * eye, null_var * eye]
        if r == 0:
            for t in range(p):
                c = null_var * eye.clone()
                c[t, t] = 2.0 * moment[t, t]
                fixed.append(c)
        fixed = fixed[:K]
        n_seed = K - len(fixed)
        rows = torch.multinomial(probs, n_seed, replacement=N < n_seed) if n_seed else torch.empty(0, dtype=torch.long)
        seeded = [torch.outer(X[i], X[i]) + (0.1 * sq[i] / p + ridge) * eye for i in rows.tolist()]
        covs[r] = torch.stack(fixed + seeded)
    return covs, log_w - torch.logsumexp(log_w, -1, keepdim=True)

def cavi_start(
    X: torch.Tensor,
    XX: torch.Tensor,
    weight: torch.Tensor,
    *,
    restarts: int,
    truncation: int,
    prior_df: float,
    prior_scale_inv: torch.Tensor,
    alpha: float,
    n_rows: int,
    n_iter: int = 100,
) -> tuple[dict[str, torch.Tensor], int]:
    """Starting values of every restart's guide from a CAVI fit of the conjugate model.

    Parameters
    ----------
    X, XX, weight : torch.Tensor
        (n, p) scaled effects (possibly a row subset), their outer products and weights
        (:func:`bayesmages.cluster.kernels.outer_products`).
    restarts, truncation : int
        R and K.
    prior_df, prior_scale_inv : float, torch.Tensor
        Wishart prior of the precisions (a weak one when the model's prior is not conjugate).
    alpha : float
        Stick-breaking concentration (its prior mean when random).
    n_rows : int
        Rows of the full data; counts from a subset are scaled up to it.
    n_iter : int
        Maximum CAVI sweeps.

    Returns
    -------
    dict, int
        Unconstrained starting values keyed by guide parameter (MAP, mean-field and LKJ
        variants), and the largest number of components holding at least one row in any restart.
    """
    R, K, p = restarts, truncation, X.shape[1]
    factor = n_rows / X.shape[0]  # CAVI may run on a subset; counts are scaled up to N
    df, scale_inv = prior_df, prior_scale_inv
    init_cov, init_log_w = initial_covariances(X, R, K)
    # Components that start empty in every restart stay at their prior in CAVI: leave them out.
    k_init = int((init_log_w > -20.0).sum(-1).max())
    # CAVI only starts SVI, which refines on all rows: 1e-5 nats per row is converged enough (the
    # benchmark's ARIs were unchanged against 1e-6; 1e-4 was faster still but left one small
    # test fit short of SVI convergence in 300 steps).
    q = kernels.cavi_fit(XX, weight, init_cov[:, :k_init], init_log_w[:, :k_init], alpha=alpha, prior_df=df,
                         prior_scale_inv=scale_inv, n_iter=n_iter, tol=1e-5)
    pad = K - k_init
    counts = factor * torch.nn.functional.pad(q["counts"], (0, pad))
    scatter = factor * torch.cat([q["scatter"], q["scatter"].new_zeros(R, pad, p, p)], 1)
    occupied = int((counts >= 1.0).sum(-1).max())
    after = counts.flip(-1).cumsum(-1).flip(-1) - counts
    a, b = 1.0 + counts[..., :-1], alpha + after[..., :-1]
    post = dist.Wishart(df + counts, covariance_matrix=torch.linalg.inv(scale_inv + scatter))
    # MAP start: the Wishart mode (mean if the mode does not exist) and v = a / (a + b), the
    # logit-scale mode of Beta(a, b).
    shrink = torch.where(post.df > p + 1, (post.df - p - 1) / post.df, torch.ones_like(post.df))
    mode = shrink[..., None, None] * post.mean
    # Mean-field start: the Normal factor matched to draws of the CAVI Wishart in the
    # unconstrained coordinates; the Beta factor is the CAVI Beta.
    u = kernels.wishart_unconstrained_draws(post.df, post.covariance_matrix, 256)
    out = {
        "v_logit": torch.log(a) - torch.log(b),
        "v_count": torch.stack([a, b], -1),
        "log_alpha": torch.full((R, 1), math.log(alpha), dtype=_F64),
        "log_alpha_sd": torch.full((R, 1), 0.3, dtype=_F64),
        "prec": kernels.VechToPrecision().inv(mode),
        "prec_mf": u.mean(0),
        "prec_sd": u.std(0).clamp_min(1e-4),
    }
    cov = torch.cholesky_inverse(torch.linalg.cholesky(mode))
    sds = torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()
    # LKJ starts: the sds of log scales and correlation coordinates from the curvature of the
    # log-likelihood with N_k points (about 1 / sqrt(2 N_k) and 1 / sqrt(N_k)).
    n_eff = (counts + p + 2.0)[..., None]
    out["log_scales"] = sds.log()
    out["log_scales_sd"] = (1.0 / (2.0 * n_eff).sqrt()).expand(R, K, p).clamp(1e-4, 0.5)
    if p > 1:
        corr = cov / (sds.unsqueeze(-1) * sds.unsqueeze(-2))
        out["corr"] = CorrCholeskyTransform().inv(torch.linalg.cholesky(corr))
        out["corr_sd"] = (1.0 / n_eff.sqrt()).expand(R, K, p * (p - 1) // 2).clamp(1e-4, 0.5)
    return out, occupied
