"""Numerical kernels of the DP mixture (plain torch, no Pyro).

Zero-mean Gaussian log-densities, stick-breaking weights, a Cholesky parametrisation of
precision matrices and a CAVI initialiser.

Everything here is plain torch (no Pyro), vectorised over any leading batch of mixture
parameters (restarts, posterior draws) so that one call evaluates all restarts at once.

Speed: the quadratic forms x_i^T Lambda_k x_i of all N variants against all K components
(of all restarts) are one matrix product ``XX @ vech(Lambda)^T`` where ``XX`` holds the
``p (p + 1) / 2`` distinct products ``x_ia x_ib`` precomputed once per data set. No N x K
MultivariateNormal objects are built.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch
from torch.distributions import biject_to, constraints
from torch.distributions.transforms import Transform

__all__ = [
    "VechToPrecision",
    "cavi_fit",
    "component_log_density",
    "log_stick_weights",
    "mixture_log_density",
    "outer_products",
    "stick_fractions",
    "tril_to_vech",
    "vech_to_tril",
    "wishart_unconstrained_draws",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _tril_index(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.tril_indices(p, p)
    return rows, cols


def outer_products(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct products ``x_a x_b`` (a >= b) per row, and the weights that make quadratic forms.

    Parameters
    ----------
    X : torch.Tensor
        (N, p) data.

    Returns
    -------
    XX : torch.Tensor
        (N, p (p + 1) / 2) products in ``torch.tril_indices`` order.
    weight : torch.Tensor
        (p (p + 1) / 2,) 1 on the diagonal entries, 2 off the diagonal, so that
        ``x^T A x = XX @ (weight * vech(A))`` for symmetric ``A``.

    Examples
    --------
    >>> X = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> XX, w = outer_products(X)
    >>> XX.tolist(), w.tolist()
    ([[1.0, 2.0, 4.0]], [1.0, 2.0, 1.0])
    """
    rows, cols = _tril_index(X.shape[-1])
    XX = X[:, rows] * X[:, cols]
    weight = torch.where(rows == cols, 1.0, 2.0).to(X.dtype)
    return XX, weight


def tril_to_vech(A: torch.Tensor) -> torch.Tensor:
    """Lower-triangular entries of ``(..., p, p)`` as ``(..., p (p + 1) / 2)``."""
    rows, cols = _tril_index(A.shape[-1])
    return A[..., rows, cols]


def vech_to_tril(u: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse of :func:`tril_to_vech`: a lower-triangular ``(..., p, p)`` matrix."""
    rows, cols = _tril_index(p)
    L = u.new_zeros(*u.shape[:-1], p, p)
    L[..., rows, cols] = u
    return L


class VechToPrecision(Transform):
    r"""Bijection from R^{p(p+1)/2} to p x p positive-definite matrices.

    ``u`` fills a lower-triangular ``L`` (``torch.tril_indices`` order) with ``exp`` applied on
    the diagonal, and the output is ``L L^T``. The log-Jacobian is
    ``p log 2 + sum_i (p - i + 2) u_ii`` (i = 1..p): ``sum_i u_ii`` from the exponential and
    ``p log 2 + sum_i (p - i + 1) log L_ii`` from ``L -> L L^T``. ``p`` is read from the
    shape of the input.

    This is the unconstrained space of the precision matrices in the guides and in NUTS
    (torch has no bijection for ``constraints.positive_definite``; importing this module
    registers this one with :func:`torch.distributions.biject_to` if none is registered).

    Examples
    --------
    >>> t = VechToPrecision()
    >>> t(torch.zeros(3, dtype=torch.float64)).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.positive_definite
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VechToPrecision)

    def __hash__(self) -> int:
        return hash("VechToPrecision")

    def with_cache(self, cache_size: int = 1) -> VechToPrecision:
        """The same transform with another cache size."""
        return self if self._cache_size == cache_size else VechToPrecision(cache_size=cache_size)

    @staticmethod
    def _dim(q: int) -> int:
        p = round((math.sqrt(8 * q + 1) - 1) / 2)
        if p * (p + 1) // 2 != q:
            raise ValueError(f"VechToPrecision: {q} is not a triangular number")
        return p

    @staticmethod
    def _diag_mask(p: int, device: torch.device) -> torch.Tensor:
        rows, cols = _tril_index(p)
        return (rows == cols).to(device)

    def cholesky(self, u: torch.Tensor) -> torch.Tensor:
        """The factor ``L`` of ``u`` (lower triangular, positive diagonal)."""
        p = self._dim(u.shape[-1])
        return vech_to_tril(torch.where(self._diag_mask(p, u.device), u.exp(), u), p)

    def _call(self, u: torch.Tensor) -> torch.Tensor:
        L = self.cholesky(u)
        return L @ L.mT

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        L = torch.linalg.cholesky(y)
        u = tril_to_vech(L)
        return torch.where(self._diag_mask(y.shape[-1], y.device), u.clamp_min(1e-300).log(), u)

    def log_abs_det_jacobian(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = self._dim(u.shape[-1])
        power = torch.arange(p + 1, 1, -1, dtype=u.dtype, device=u.device)
        return p * math.log(2.0) + (u[..., self._diag_mask(p, u.device)] * power).sum(-1)

    def forward_shape(self, shape: torch.Size) -> torch.Size:  # noqa: D102
        p = self._dim(shape[-1])
        return torch.Size((*shape[:-1], p, p))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:  # noqa: D102
        return torch.Size((*shape[:-2], shape[-1] * (shape[-1] + 1) // 2))


_REGISTER_LOCK = threading.Lock()


def register_positive_definite() -> None:
    """Register :class:`VechToPrecision` as torch's bijection onto positive-definite matrices.

    torch has none; NUTS needs one for the Wishart-distributed precisions. Ours is registered
    only if nobody else has registered one. Idempotent and thread-safe (check-and-register
    under a lock), so concurrent fits register once. It is called by the DP-mixture's ``fit``
    and when this module is imported.
    """
    with _REGISTER_LOCK:
        try:
            biject_to(constraints.positive_definite)
        except NotImplementedError:
            biject_to.register(constraints.positive_definite, _vech_to_precision_factory)


def _vech_to_precision_factory(constraint: Any) -> VechToPrecision:
    return VechToPrecision()


def stick_fractions(weights: torch.Tensor) -> torch.Tensor:
    """Stick-breaking fractions ``v`` (..., K - 1) that reproduce ``weights`` (..., K)."""
    remaining = 1.0 - torch.cumsum(weights, -1) + weights
    v = weights[..., :-1] / remaining[..., :-1].clamp_min(1e-300)
    return v.clamp(1e-12, 1.0 - 1e-12)


def log_stick_weights(v: torch.Tensor) -> torch.Tensor:
    """Log mixture weights from stick-breaking fractions.

    ``pi_k = v_k prod_{l<k} (1 - v_l)`` with ``v_K = 1`` (truncation), in log space.

    Parameters
    ----------
    v : torch.Tensor
        (..., K - 1) fractions in (0, 1).

    Returns
    -------
    torch.Tensor
        (..., K) log weights (they sum to one in probability space).

    Examples
    --------
    >>> log_stick_weights(torch.tensor([0.5, 0.5])).exp().tolist()
    [0.5, 0.25, 0.25]
    """
    log_v = torch.log(v)
    log_rest = torch.log1p(-v)
    before = torch.cumsum(log_rest, -1)
    zero = torch.zeros_like(before[..., :1])
    return torch.cat([log_v, zero], -1) + torch.cat([zero, before], -1)


def component_log_density(
    XX: torch.Tensor,
    weight: torch.Tensor,
    precision: torch.Tensor,
    *,
    X: torch.Tensor | None = None,
    noise_var: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log-density of every row under every zero-mean Gaussian component.

    Parameters
    ----------
    XX, weight : torch.Tensor
        From :func:`outer_products` (N, q) and (q,).
    precision : torch.Tensor
        (..., K, p, p) component precision matrices (any leading batch: restarts, draws).
    X : torch.Tensor, optional
        (N, p) data; needed only with ``noise_var``.
    noise_var : torch.Tensor, optional
        (N, p) per-row noise variances ``S_i = diag(noise_var_i)``; the density is then
        ``N(x_i; 0, Sigma_k + S_i)`` (one small Cholesky per row and component: slower).

    Returns
    -------
    torch.Tensor
        (N, ..., K) log-densities.
    """
    p = precision.shape[-1]
    batch = precision.shape[:-2]
    if noise_var is None:
        chol = torch.linalg.cholesky(precision)
        half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (..., K)
        vech = (tril_to_vech(precision) * weight).reshape(-1, XX.shape[-1])
        quad = (XX @ vech.mT).reshape(XX.shape[0], *batch)
        return half_logdet - 0.5 * quad - 0.5 * p * _LOG_2PI
    if X is None:
        raise ValueError("component_log_density: X is required with noise_var")
    cov = torch.cholesky_inverse(torch.linalg.cholesky(precision))  # (..., K, p, p)
    total = cov.unsqueeze(0) + torch.diag_embed(noise_var).reshape(X.shape[0], *([1] * len(batch)), p, p)
    chol = torch.linalg.cholesky(total)
    x = X.reshape(X.shape[0], *([1] * len(batch)), p, 1).expand(*chol.shape[:-1], 1)
    z = torch.linalg.solve_triangular(chol, x, upper=False).squeeze(-1)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (z.square().sum(-1) + logdet + p * _LOG_2PI)


def mixture_log_density(
    log_weights: torch.Tensor,
    XX: torch.Tensor,
    weight: torch.Tensor,
    precision: torch.Tensor,
    **kwargs: torch.Tensor | None,
) -> torch.Tensor:
    """Per-row log-density of the mixture, assignments marginalised (logsumexp).

    Parameters
    ----------
    log_weights : torch.Tensor
        (..., K) log mixture weights.
    XX, weight, precision
        As in :func:`component_log_density`.
    **kwargs
        ``X`` and ``noise_var`` for the noisy model.

    Returns
    -------
    torch.Tensor
        (N, ...) log-densities.
    """
    return torch.logsumexp(log_weights + component_log_density(XX, weight, precision, **kwargs), -1)


def wishart_unconstrained_draws(df: torch.Tensor, scale: torch.Tensor, n: int) -> torch.Tensor:
    """Draws of Lambda ~ Wishart(df, scale) in the coordinates of :class:`VechToPrecision`.

    Bartlett decomposition: ``chol(Lambda) = L A`` with ``L = chol(scale)`` and ``A`` lower
    triangular, ``A_ii^2 ~ chi2(df - i + 1)``, ``A_ij ~ N(0, 1)`` below the diagonal; so the
    unconstrained coordinates come without factorising the draws.

    Parameters
    ----------
    df : torch.Tensor
        (...) degrees of freedom (> p - 1).
    scale : torch.Tensor
        (..., p, p) scale matrices.
    n : int
        Number of draws.

    Returns
    -------
    torch.Tensor
        (n, ..., p (p + 1) / 2).
    """
    p = scale.shape[-1]
    L = torch.linalg.cholesky(scale)
    shape = (n, *df.shape)
    j = torch.arange(p, dtype=scale.dtype)
    chi2 = torch.distributions.Chi2(df.unsqueeze(-1) - j).sample((n,))  # (n, ..., p)
    A = torch.tril(torch.randn(*shape, p, p, dtype=scale.dtype), diagonal=-1) + torch.diag_embed(chi2.sqrt())
    factor = L @ A
    u = tril_to_vech(factor)
    diag = (_tril_index(p)[0] == _tril_index(p)[1])
    return torch.where(diag, u.clamp_min(1e-300).log(), u)


def cavi_fit(
    XX: torch.Tensor,
    weight: torch.Tensor,
    init_cov: torch.Tensor,
    init_log_weights: torch.Tensor,
    *,
    alpha: float,
    prior_df: float,
    prior_scale_inv: torch.Tensor,
    n_iter: int = 50,
    tol: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """Coordinate-ascent variational inference for the conjugate model, all restarts at once.

    The mean-field family ``q(v_k) = Beta(a_k, b_k)``, ``q(Lambda_k) = Wishart(nu_k, W_k)``,
    ``q(z_i)`` categorical is updated in closed form (Blei and Jordan, 2006, with zero-mean
    components): ``a_k = 1 + N_k``, ``b_k = alpha + N_{>k}``, ``nu_k = nu0 + N_k``,
    ``W_k = (W0^{-1} + S_k)^{-1}``, and responsibilities from ``E[log pi_k] + E[log|Lambda_k|] / 2
    - nu_k x^T W_k x / 2``. Components are re-sorted by count at every sweep so that the stick
    order follows the weights. Used to initialise the SVI guides (its expected log-weights and
    log-determinants make unneeded components empty, unlike MAP-EM).

    Parameters
    ----------
    XX, weight : torch.Tensor
        From :func:`outer_products` (N, q), (q,).
    init_cov : torch.Tensor
        (R, K, p, p) initial covariances of R restarts (used by the first E step).
    init_log_weights : torch.Tensor
        (R, K) initial log weights (used by the first E step).
    alpha : float
        Stick-breaking concentration.
    prior_df, prior_scale_inv : float, torch.Tensor
        Wishart prior nu0 (> p - 1) and inverse scale ``W0^{-1}`` (p, p).
    n_iter : int
        Maximum sweeps.
    tol : float
        Stop when the mean per-row log normaliser of every restart changes less than this.

    Returns
    -------
    dict
        ``a, b`` (R, K-1); ``df`` (R, K); ``scale`` (R, K, p, p) (the Wishart W_k);
        ``counts`` (R, K); ``scatter`` (R, K, p, p).
    """
    R, K, p, _ = init_cov.shape
    N = XX.shape[0]
    rows, cols = _tril_index(p)
    e_prec = torch.linalg.inv(init_cov)
    half_logdet = torch.log(torch.diagonal(torch.linalg.cholesky(e_prec), dim1=-2, dim2=-1)).sum(-1)
    e_log_w = init_log_weights
    j = torch.arange(1, p + 1, dtype=XX.dtype)
    prev = None
    out: dict[str, torch.Tensor] = {}
    for _ in range(max(n_iter, 1)):
        vech = (tril_to_vech(e_prec) * weight).reshape(R * K, -1)
        logp = e_log_w + half_logdet - 0.5 * (XX @ vech.T).reshape(N, R, K)
        norm = torch.logsumexp(logp, -1, keepdim=True)
        score = norm.squeeze(-1).mean(0)
        if prev is not None and bool(((score - prev).abs() < tol).all()):
            break
        prev = score
        resp = (logp - norm).exp()
        counts = resp.sum(0)
        moments = (XX.T @ resp.reshape(N, R * K)).T.reshape(R, K, -1)
        S = XX.new_zeros(R, K, p, p)
        S[..., rows, cols] = moments
        S[..., cols, rows] = moments
        order = torch.argsort(counts, dim=-1, descending=True)
        counts = torch.gather(counts, 1, order)
        S = torch.gather(S, 1, order[..., None, None].expand(R, K, p, p))
        df = prior_df + counts
        scale = torch.linalg.inv(prior_scale_inv + S)
        scale = 0.5 * (scale + scale.mT)
        after = counts.flip(-1).cumsum(-1).flip(-1) - counts
        a, b = 1.0 + counts[..., :-1], alpha + after[..., :-1]
        out = {"a": a, "b": b, "df": df, "scale": scale, "counts": counts, "scatter": S}
        e_log_v = torch.digamma(a) - torch.digamma(a + b)
        e_log_1mv = torch.digamma(b) - torch.digamma(a + b)
        zero = torch.zeros_like(e_log_v[..., :1])
        e_log_w = torch.cat([e_log_v, zero], -1) + torch.cat([zero, torch.cumsum(e_log_1mv, -1)], -1)
        e_prec = df[..., None, None] * scale
        logdet_w = 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(scale), dim1=-2, dim2=-1)).sum(-1)
        half_logdet = 0.5 * (torch.digamma((df[..., None] + 1.0 - j) / 2.0).sum(-1) + p * math.log(2.0) + logdet_w)
    return out


register_positive_definite()
