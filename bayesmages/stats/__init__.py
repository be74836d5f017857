"""Numerical statistics shared by the gene-level and SKAT tests (no models imported here).

* :mod:`bayesmages.stats.quadform`: P(sum_k lambda_k chi2_1 > q) by an exact contour method
  (default), Davies, Imhof, Liu, modified Liu and saddlepoint;
* :mod:`bayesmages.stats.multitest`: Benjamini-Hochberg q-values, Cauchy (ACAT) combination;
* :mod:`bayesmages.stats.poibin`: the Poisson-binomial pmf (direct recursion, FFT at large n);
* :mod:`bayesmages.stats.ranking`: average precision (recovery of a known truth).
"""

from bayesmages.stats import multitest, poibin, quadform, ranking
from bayesmages.stats.multitest import bh, cauchy
from bayesmages.stats.quadform import davies, imhof, liu, liu_mod, liu_params, pvalue, pvalue_many, saddlepoint
from bayesmages.stats.ranking import average_precision

__all__ = [
    "average_precision",
    "bh",
    "cauchy",
    "davies",
    "imhof",
    "liu",
    "liu_mod",
    "liu_params",
    "multitest",
    "poibin",
    "pvalue",
    "pvalue_many",
    "quadform",
    "ranking",
    "saddlepoint",
]
