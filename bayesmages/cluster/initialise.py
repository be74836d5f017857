"""Starting covariances of the restarts (refined by CAVI, then SVI).

Restart 0 is the reference's axis-aligned start: one trait-specific component per trait, a
shared component (the data's second moment) and a near-null component. The other restarts
seed components on data rows drawn with probability proportional to their squared norm
(k-means++-like, so large effects get components), each ``x x^T`` widened by a ridge, plus
the same shared and null components. Randomness comes from the torch RNG, which
:func:`bayesmages.infer.run_svi` seeds per fit.
"""

from __future__ import annotations

import math

import torch

__all__ = ["initial_covariances"]


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
