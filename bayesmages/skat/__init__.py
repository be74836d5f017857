"""SKAT family and ecSKAT: GLM null models, SKAT, burden, SKAT-O, ACAT-V/O, ecSKAT and a gene-set runner.

Conventions follow R SKAT 2.2.5 (variant QC, imputation, flipping, Beta weights, Q). P-values are
exact by default (exact quadratic-form tails; SKAT-O as the exact null probability of its
statistic); ``compat="R"`` computes them as R does (eigenvalue truncation, Davies with the liu.mod
fallback, SKAT-O "optimal.adj") and reproduces R's numbers. All algebra is p x p (never n x n).

Modules, each importing only those above it: :mod:`~bayesmages.skat.variants` (QC, imputation,
weights), :mod:`~bayesmages.skat.null` (null models; :mod:`~bayesmages.skat.kinship` for related
samples), :mod:`~bayesmages.skat.result`,
:mod:`~bayesmages.skat.scores` (weighted scores and their covariance),
:mod:`~bayesmages.skat.pvalues` (Davies/Liu, small-sample adjustment),
:mod:`~bayesmages.skat.skato_exact` (the exact SKAT-O), :mod:`~bayesmages.skat.skato` (SKAT-O),
:mod:`~bayesmages.skat.score_test` (SKAT, burden and SKAT-O from scores and their covariance),
:mod:`~bayesmages.skat.adjusted` (binary moment adjustment), :mod:`~bayesmages.skat.er` (efficient
resampling), :mod:`~bayesmages.skat.spa` (saddlepoint), :mod:`~bayesmages.skat.binary` (ER, SPA or
the hybrid rule for binary traits), :mod:`~bayesmages.skat.acat` (ACAT-V, ACAT-O),
:mod:`~bayesmages.skat.set_test` (:func:`test`),
:mod:`~bayesmages.skat.ecskat` and :mod:`~bayesmages.skat.sets` (gene-set runner).

Examples
--------
>>> import numpy as np, bayesmages as bm
>>> rng = np.random.default_rng(0)
>>> n = 300; X = rng.normal(size=(n, 2)); y = rng.normal(size=n)
>>> Z = rng.binomial(2, 0.03, size=(n, 8)).astype(float)
>>> null = bm.skat.fit_null(y, X, trait="continuous")
>>> res = bm.skat.test(Z, null, test="skat-o")
>>> len(res.p_each_rho)
7
"""

from bayesmages.skat.ecskat import ECSKATResult, cauchy_combine, ecskat
from bayesmages.skat.kinship import KinshipNullModel, fit_null_kinship
from bayesmages.skat.null import NullModel, fit_null, irls_logistic
from bayesmages.skat.result import SKATResult
from bayesmages.skat.set_test import test, test_prepared
from bayesmages.skat.sets import read_sets, run_sets
from bayesmages.skat.skato import RHO_OPTIMAL, RHO_OPTIMAL_ADJ
from bayesmages.skat.variants import PreparedVariants, beta_weights, prepare_variants

__all__ = [
    "RHO_OPTIMAL",
    "RHO_OPTIMAL_ADJ",
    "ECSKATResult",
    "KinshipNullModel",
    "NullModel",
    "PreparedVariants",
    "SKATResult",
    "beta_weights",
    "cauchy_combine",
    "ecskat",
    "fit_null",
    "fit_null_kinship",
    "irls_logistic",
    "prepare_variants",
    "read_sets",
    "run_sets",
    "test",
    "test_prepared",
]
