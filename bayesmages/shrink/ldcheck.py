"""Does an LD matrix fit the z-scores? Diagnostics for LD from a reference panel (METHODS §F).

Two checks, both from the RSS model ``z ~ N(R b, R)``:

* **weak directions** (one number per block): along eigen-directions of R with small eigenvalue d_k,
  ``(U'z)_k`` has variance about ``d_k``, so the mean of ``(U'z)_k^2 / d_k`` over them is about 1. LD from
  another sample than the GWAS (or allele flips) leaves z with variance of order 1 there and the
  ratio is large (measured in bench/shrink_susie.py's msprime panels: about 1 with in-sample LD,
  55-70 with a 1,000-person panel for a 5,000-person GWAS). ``fit_susie_rss`` uses the same statistic
  on its residual to refuse extra effects when R does not fit.
* **conditional z (kriging)** per variant: ``z_j`` against its prediction from the other variants,
  ``E[z_j | z_-j] = z_j - (W z)_j / W_jj`` with ``W = (R + lambda I)^-1``; the standardised difference
  ``t_j = (W z)_j / sqrt(W_jj)`` is N(0, 1) when there are no effects and R is right (cf. DENTIST, and
  SuSiE-RSS's diagnostic plot, Zou et al. 2022). A real effect in low LD with its neighbours
  also gives a large ``|t_j|``: a flag is a variant to look at, not a proof of error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesmages.shrink.features import validate_block
from bayesmages.shrink.susie import MISMATCH_RATIO, weak_direction_ratio

__all__ = ["ld_mismatch"]


def ld_mismatch(beta_hat: Any, se: Any, R: Any, *, ld_lambda: float = 1e-3) -> pd.DataFrame:
    """Per-variant conditional-z check and the block's weak-direction ratio.

    Parameters
    ----------
    beta_hat, se : array-like
        (m,) effects and standard errors of one block.
    R : array-like
        (m, m) LD matrix.
    ld_lambda : float
        Ridge added to R before inverting it for the conditional check (> 0: R from a panel is
        often singular).

    Returns
    -------
    pandas.DataFrame
        Columns ``z``, ``z_predicted``, ``t``, ``p_value`` (two-sided, N(0, 1) reference); ``attrs`` hold
        ``weak_ratio``, ``weak_directions`` and ``mismatch`` (``weak_ratio > 2``, the rule
        ``method="susie"`` uses).

    Examples
    --------
    >>> import numpy as np
    >>> R = np.array([[1.0, 0.95], [0.95, 1.0]])
    >>> out = ld_mismatch([0.05, -0.05], [0.01, 0.01], R)  # strongly correlated, opposite signs
    >>> bool(out["p_value"].min() < 1e-6)
    True
    """
    b, s, Rm = validate_block(beta_hat, se, R)
    z = b / s
    m = z.size
    W = np.linalg.inv(Rm + ld_lambda * np.eye(m))
    Wz = W @ z
    w = np.diag(W)
    t = Wz / np.sqrt(w)
    d, U = np.linalg.eigh(Rm)
    ratio, k = weak_direction_ratio(z, np.clip(d, 0.0, None), U)
    out = pd.DataFrame({"z": z, "z_predicted": z - Wz / w, "t": t, "p_value": 2 * stats.norm.sf(np.abs(t))})
    out.attrs.update(weak_ratio=ratio, weak_directions=k, mismatch=bool(ratio > MISMATCH_RATIO))
    return out
