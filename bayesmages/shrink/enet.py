"""The elastic-net baseline of ML-MAGES (METHODS §A), behind ``shrink(..., method="enet")``.

Per block: ``X = R`` with rows scaled to unit norm, ``y = beta_hat``, and
``ElasticNetCV(l1_ratio=0.5, 10 alphas, eps=1e-2, cv=5, fit_intercept=False)``. The elastic net
gives no uncertainty; its ``sd`` is reported as NaN. It needs scikit-learn (the ``shrink``
extra: ``pip install bayesmages[shrink]``). The recipe fits ``beta_hat`` in the units given, as the
paper does; it is not exactly unit-equivariant (scikit-learn's coordinate-descent stopping rule
is not scale-free), unlike ``method="nn"`` and ``method="susie"``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from bayesmages.errors import InputError

__all__ = ["enet_shrink"]


def _elastic_net_cv() -> Any:
    try:
        from sklearn.linear_model import ElasticNetCV
    except ImportError:
        raise InputError(
            'method="enet" needs scikit-learn; install it with: pip install "bayesmages[shrink]"'
        ) from None
    return ElasticNetCV


def enet_shrink(beta_hat: np.ndarray, R: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Elastic-net estimate of the true effects of one block (the paper's baseline).

    Parameters
    ----------
    beta_hat : numpy.ndarray
        (m,) observed effects.
    R : numpy.ndarray
        (m, m) LD correlation matrix (validated by the caller).
    seed : int
        Seed of the cross-validation folds' coordinate-descent order (``random_state``).

    Returns
    -------
    numpy.ndarray
        (m,) float64 shrunk effects.

    Examples
    --------
    >>> import numpy as np
    >>> b = enet_shrink(np.array([0.5, 0.0, 0.01, -0.02, 0.0, 0.01]), np.eye(6))
    >>> b.shape
    (6,)
    """
    ElasticNetCV = _elastic_net_cv()
    X = np.asarray(R, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    y = np.asarray(beta_hat, dtype=np.float64)
    # scikit-learn >= 1.9 renamed n_alphas to alphas (an int means "this many").
    params = inspect.signature(ElasticNetCV).parameters
    grid = {"n_alphas": 10} if "n_alphas" in params else {"alphas": 10}
    cv = min(5, y.size)
    if cv < 2:
        return y.copy()
    model = ElasticNetCV(l1_ratio=0.5, eps=1e-2, cv=cv, fit_intercept=False, random_state=seed, **grid)
    with warnings.catch_warnings():
        # Non-convergence of a CV path on a near-singular R is expected and harmless here.
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return np.asarray(model.coef_, dtype=np.float64)
