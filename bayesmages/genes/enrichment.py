"""Single-trait gene-level tests: the calibrated LD-conditional test (default) and the paper's gene-epsilon test.

``test(..., method="conditional")`` (default) and ``method="marginal"`` are described in
:mod:`bayesmages.genes.conditional`; their p-values are error rates. ``method="epsilon"`` is the
ML-MAGES paper's test, kept by name: for gene g with variants i in g, Q_g = sum_i beta_shrunk_i^2 is
compared with sum_k lambda_k chi2_1, lambda = eigvalsh(epsilon R_g), by
:func:`bayesmages.stats.quadform.pvalue` (the exact ``"auto"`` method; no flooring). It answers "are
the gene's shrunk effects larger than the non-prioritised cluster's variance epsilon?"; shrunk
effects are not N(0, epsilon R_g) under any null (the shrinker is non-linear and the cluster rule
picks a variance from the fit), so these p-values rank genes but are **not** error rates (measured in
docs/genes.md). q-values are Benjamini-Hochberg over the tested genes, for every test.

**LD across blocks.** LD blocks are independent by construction, so a gene whose variants fall
in several blocks gets the block-diagonal R_g (zero correlation between blocks); its eigenvalues
are the union of those of its per-block parts. Slightly negative eigenvalues (rounded or
shrunk LD matrices are not always positive semi-definite) are set to zero.

**Null variance epsilon** (when not given). A one-trait ``dp_mixture`` is fitted to all
``beta_shrunk`` values (or a fitted one is passed); its kept clusters are ordered by variance,
largest first, with weights pi. The rule, following the reference ML-MAGES: epsilon is the
variance of the **second** cluster when the largest-variance cluster is not negligible
(pi_0 > 0.01), else of the **third** (a tiny top cluster is a handful of outliers, and the
second then still holds signal). Guards: with K* = 2 and pi_0 <= 0.01 the second (last) cluster
is used; with K* = 1 (no separation between signal and null) epsilon is the variance of that
single cluster, which makes the test conservative, and a warning says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from bayesmages._threads import one_blas_thread
from bayesmages.errors import AccuracyWarning, InputError
from bayesmages.genes.conditional import DEFAULT_THRESHOLD, GeneStatistics, gene_statistics
from bayesmages.genes.mapping import GeneMap, block_layout, map_genes
from bayesmages.io.ldrefs import LDRefs, spill_blocks
from bayesmages.stats.multitest import bh, cauchy_rows
from bayesmages.stats.quadform import pvalue_many

__all__ = ["TESTS", "conditional_pvalues", "gene_eigenvalues", "null_variance_from_fit", "test"]

TOP_WEIGHT_MIN = 0.01  # pi_0 above which the 2nd cluster (by variance) is the null one


def _blocks(ld_blocks: Any) -> list[np.ndarray]:
    """Accept one matrix / LDBlock, a sequence of them or an LDRefs; return float64 square matrices.

    The blocks of an :class:`~bayesmages.io.ldrefs.LDRefs` are returned memory-mapped and not checked
    again (whoever wrote the files wrote checked blocks).
    """
    if isinstance(ld_blocks, LDRefs):
        if not len(ld_blocks):
            raise InputError("ld_blocks: expected at least one LD block")
        return ld_blocks.blocks()
    items = [ld_blocks] if (hasattr(ld_blocks, "R") or (isinstance(ld_blocks, np.ndarray) and ld_blocks.ndim == 2)) \
        else list(ld_blocks)
    out = []
    for b, item in enumerate(items):
        R = np.asarray(getattr(item, "R", item), dtype=np.float64)
        if R.ndim != 2 or R.shape[0] != R.shape[1] or not np.all(np.isfinite(R)):
            raise InputError(f"ld_blocks[{b}]: expected a finite square LD matrix, got shape {R.shape}")
        out.append(R)
    if not out:
        raise InputError("ld_blocks: expected at least one LD block")
    return out


def null_variance_from_fit(cluster_fit: Any) -> tuple[float, str]:
    """Null variance epsilon from a fitted one-trait ``dp_mixture`` (rule in the module docstring).

    Parameters
    ----------
    cluster_fit : DPMixture
        Fitted, with ``weights_`` (K*,) and ``covariances_`` (K*, 1, 1) ordered by variance descending.

    Returns
    -------
    (float, str)
        epsilon and a one-line description of the choice.

    Examples
    --------
    >>> class Fit:  # any object with the fitted attributes works
    ...     weights_ = np.array([0.05, 0.25, 0.7]); covariances_ = np.array([[[4.0]], [[0.1]], [[0.001]]])
    >>> null_variance_from_fit(Fit())[0]
    0.1
    """
    try:
        w = np.asarray(cluster_fit.weights_, dtype=np.float64)
        cov = np.asarray(cluster_fit.covariances_, dtype=np.float64)
    except AttributeError:
        raise InputError("cluster_fit: expected a fitted dp_mixture (weights_, covariances_)") from None
    if cov.ndim != 3 or cov.shape[1:] != (1, 1) or cov.shape[0] != w.size or w.size == 0:
        raise InputError(
            f"cluster_fit: expected a one-trait fit with covariances_ of shape (K, 1, 1), got {cov.shape}"
        )
    var = cov[:, 0, 0]
    order = np.argsort(-var, kind="stable")  # already sorted by trace in dp_mixture; keep it explicit
    var, w = var[order], w[order]
    k = var.size
    if k == 1:
        warnings.warn(
            "cluster_fit has a single cluster: the null variance is the variance of all effects, "
            "which makes the enrichment test conservative", UserWarning, stacklevel=3,
        )
        return float(var[0]), "single cluster (K*=1): its variance (conservative)"
    j = 1 if w[0] > TOP_WEIGHT_MIN else 2
    j = min(j, k - 1)
    why = (f"cluster {j + 1} of {k} by variance (top cluster weight {w[0]:.3g} "
           f"{'>' if w[0] > TOP_WEIGHT_MIN else '<='} {TOP_WEIGHT_MIN})")
    return float(var[j]), why


def _fit_null_variance(beta: np.ndarray, seed: int, truncation: int) -> tuple[float, str]:
    from bayesmages.registry import get_model

    fit = get_model("dp_mixture", truncation=truncation).fit(beta.reshape(-1, 1), seed=seed)
    return null_variance_from_fit(fit)


def gene_eigenvalues(gene_map: GeneMap, ld_blocks: Any, null_variance: float = 1.0) -> list[np.ndarray]:
    """Eigenvalues of ``null_variance * R_g`` per gene (block-diagonal R_g across blocks).

    Genes inside one block are grouped by size and decomposed in batches (``numpy.linalg.eigvalsh``
    on stacked matrices), which removes the per-gene Python overhead.

    Parameters
    ----------
    gene_map : GeneMap
        From :func:`bayesmages.genes.mapping.map_genes`.
    ld_blocks : array or sequence of arrays / LDBlock
        LD blocks laid one after another in data order.
    null_variance : float
        epsilon.

    Returns
    -------
    list of numpy.ndarray
        Non-negative eigenvalues per gene.

    Examples
    --------
    >>> from bayesmages.genes.mapping import GeneMap
    >>> gm = GeneMap(pd.DataFrame({"GENE": ["A"], "CHR": ["1"], "n_variants": [2]}), [np.array([0, 1])])
    >>> np.round(gene_eigenvalues(gm, np.array([[1.0, 0.5], [0.5, 1.0]]))[0], 3).tolist()
    [0.5, 1.5]
    """
    blocks = _blocks(ld_blocks)
    starts = block_layout([b.shape[0] for b in blocks])
    out: list[np.ndarray | None] = [None] * len(gene_map.indices)
    batches: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for g, ix in enumerate(gene_map.indices):
        if ix.size and ix[-1] >= starts[-1]:
            raise InputError(f"genes: gene {gene_map.genes['GENE'].iloc[g]!r} uses variant {ix[-1]} but the LD "
                             f"blocks hold {starts[-1]} variants")
        blk = np.searchsorted(starts, ix, side="right") - 1
        if blk[0] == blk[-1]:
            batches.setdefault((int(blk[0]), ix.size), []).append((g, ix - starts[blk[0]]))
        else:
            parts = [np.linalg.eigvalsh(blocks[b][np.ix_(loc, loc)])
                     for b in np.unique(blk) for loc in [ix[blk == b] - starts[b]]]
            out[g] = np.concatenate(parts)
    for (b, _size), members in batches.items():
        R = blocks[b]
        stack = np.stack([R[np.ix_(loc, loc)] for _, loc in members])
        eig = np.linalg.eigvalsh(stack)
        for (g, _), e in zip(members, eig):
            out[g] = e
    return [null_variance * np.clip(e, 0.0, None) for e in out]  # type: ignore[arg-type]


TESTS = ("conditional", "marginal", "epsilon")


def test(
    beta_shrunk: Sequence[float] | np.ndarray | pd.Series,
    ld_blocks: Any,
    genes: pd.DataFrame | GeneMap,
    null_variance: float | None = None,
    cluster_fit: Any = None,
    *,
    beta_hat: Sequence[float] | np.ndarray | pd.Series | None = None,
    se: Sequence[float] | np.ndarray | pd.Series | None = None,
    method: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    variants: pd.DataFrame | None = None,
    by: str = "auto",
    index_base: str = "chromosome",
    seed: int = 0,
    truncation: int = 20,
    workers: int = 1,
    scheduler: Any = None,
) -> pd.DataFrame:
    """Gene-level test of one trait: calibrated LD-conditional p-values by default.

    Three tests (``method``):

    * ``"conditional"`` (default): does the gene hold a causal variant? The gene's z-scores are
      residualised on the outside signals that the shrinker keeps (|beta_shrunk / se| > ``threshold``)
      and tested against the exact null of the residual (:mod:`bayesmages.genes.conditional`): the Cauchy
      combination of the exact p-values of its sum of squares Q_g and of its Wald form W_g. p-values
      are error rates: uniform or conservative under the null, and BH q-values control the FDR when
      other genes carry signal (docs/genes.md has the measured calibration and where it stops).
    * ``"marginal"``: the LD-aware test on raw effects (z_g'z_g against eig(R_g); fastBAT/MAGMA-style).
      Exact for "is the gene marginally associated", so it also calls genes that tag a causal neighbour.
    * ``"epsilon"``: the ML-MAGES paper's test, Q_g = sum of squared shrunk effects against
      sum_k lambda_k chi2_1 with lambda = eig(epsilon R_g). It answers "are the gene's shrunk effects
      larger than the non-prioritised cluster's variance epsilon?"; its p-values are **not** error rates
      (shrunk effects are not N(0, epsilon R_g) under any null), so use them for ranking only.

    Parameters
    ----------
    beta_shrunk : array_like
        (m,) shrunk effects in data order (the order of the LD blocks laid one after another).
    ld_blocks : array, LDBlock, sequence of them, or LDRefs
        LD correlation blocks covering the m variants in order; an
        :class:`~bayesmages.io.ldrefs.LDRefs` references blocks on disk (memory-mapped; with
        ``workers > 1`` or a scheduler each worker opens them itself).
    genes : pandas.DataFrame or GeneMap
        A gene table (positions or ML-MAGES index ranges, see :func:`~bayesmages.genes.mapping.map_genes`)
        or an already mapped :class:`~bayesmages.genes.mapping.GeneMap`.
    null_variance : float, optional
        epsilon of the ``"epsilon"`` test. When omitted there it comes from ``cluster_fit``, or from a
        one-trait ``dp_mixture`` fitted here (``truncation``, ``seed``) by the rule in the module docstring.
    cluster_fit : DPMixture, optional
        A fitted one-trait ``dp_mixture`` to take epsilon from (``"epsilon"`` test).
    beta_hat, se : array_like, optional
        (m,) observed effects and their standard errors (the shrinker's inputs); required by the
        ``"conditional"`` and ``"marginal"`` tests.
    method : str, optional
        ``"conditional"``, ``"marginal"`` or ``"epsilon"``. When omitted: ``"epsilon"`` if ``null_variance`` or
        ``cluster_fit`` is given, else ``"conditional"``.
    threshold : float
        |beta_shrunk / se| above which an outside variant is conditioned on (``"conditional"``).
    variants : pandas.DataFrame, optional
        Variant table (``CHR``, ``POS``) for positions mapping or multi-chromosome index mapping.
    by, index_base : str
        Passed to :func:`~bayesmages.genes.mapping.map_genes`.
    seed : int
        Seed of the ``dp_mixture`` fit (only used when epsilon is estimated here).
    truncation : int
        Truncation of that fit.
    workers : int
        Local worker processes (genes split into contiguous chunks, see :mod:`bayesmages.parallel`). The
        workers read the LD blocks from disk by reference: from ``ld_blocks`` when it is an
        :class:`~bayesmages.io.ldrefs.LDRefs`, else from temporary files written here (a block object
        repeated in ``ld_blocks`` is written once). Results are identical for any ``workers``.
    scheduler : str or dask.distributed.Client, optional
        Run the gene chunks on a Dask distributed cluster instead (see :mod:`bayesmages.parallel`);
        each chunk ships only the LD blocks its genes touch, or, when ``ld_blocks`` is an
        :class:`~bayesmages.io.ldrefs.LDRefs`, only their ids (the workers must then be able to read
        its files: a shared file system or a LocalCluster). Results are identical to a local run.

    Returns
    -------
    pandas.DataFrame
        ``GENE, CHR, n_variants, Q, p_value, q_value, test, p_method`` (and ``n_conditioned``, the number
        of outside variants conditioned on, for the conditional and marginal tests), one row per gene with at
        least one variant, in gene-table order. ``p_method`` says how the p-value was computed: ``"exact"``,
        ``"saddlepoint"`` (fallback when the exact integral did not converge; an
        :class:`~bayesmages.errors.AccuracyWarning` is issued) or ``"none"`` (p = 1: no variance under H0).
        ``Q`` is on the z scale for the conditional and marginal tests
        and on the effect scale for the epsilon test. ``df.attrs`` holds ``test``, ``null_variance`` and
        ``null_variance_rule`` (epsilon test; ``None`` otherwise) and ``unmapped`` (genes without variants).

    Raises
    ------
    InputError
        Lengths disagree, non-finite effects, ``se <= 0``, bad LD blocks, bad gene ranges, epsilon <= 0,
        an unknown method, or the conditional/marginal test without ``beta_hat`` and ``se``.

    Examples
    --------
    >>> R = np.eye(6)
    >>> genes = pd.DataFrame({"GENE": ["A", "B"], "CHR": [1, 1], "N_SNPS": [3, 3], "start_idx_chr": [0, 3],
    ...                       "end_idx_chr": [2, 5], "chr_start_idx_gw": [0, 0]})
    >>> bhat = np.array([0.001, 0.0, 0.0, 0.03, 0.02, 0.01]); se = np.full(6, 0.005)
    >>> res = test(np.array([0.0, 0.0, 0.0, 0.03, 0.02, 0.0]), R, genes, beta_hat=bhat, se=se)
    >>> res[["GENE", "n_variants", "test"]].values.tolist()
    [['A', 3, 'conditional'], ['B', 3, 'conditional']]
    >>> bool(res.p_value[1] < 1e-2 < res.p_value[0])
    True
    """
    beta = np.asarray(beta_shrunk, dtype=np.float64).ravel()
    if not np.all(np.isfinite(beta)):
        raise InputError("beta_shrunk: all effects must be finite")
    blocks = _blocks(ld_blocks)
    m = int(sum(b.shape[0] for b in blocks))
    if m != beta.size:
        raise InputError(f"beta_shrunk has {beta.size} values but the LD blocks cover {m} variants")
    if method is None:
        method = "epsilon" if (null_variance is not None or cluster_fit is not None) else "conditional"
    if method not in TESTS:
        raise InputError(f"method: expected one of {list(TESTS)}, got {method!r}")
    if method != "epsilon" and (null_variance is not None or cluster_fit is not None):
        raise InputError(f"null_variance and cluster_fit belong to method='epsilon', not {method!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers: expected a positive integer, got {workers!r}")
    gmap = genes if isinstance(genes, GeneMap) else map_genes(
        genes, variants=variants, n_variants=m, by=by, index_base=index_base)
    spec: dict[str, Any] = {"method": method}
    eps: float | None = None
    rule: str | None = None
    if method == "epsilon":
        if null_variance is not None:
            eps, rule = float(null_variance), "given"
        elif cluster_fit is not None:
            eps, rule = null_variance_from_fit(cluster_fit)
        else:
            eps, rule = _fit_null_variance(beta, seed, truncation)
        if not (np.isfinite(eps) and eps > 0):
            raise InputError(f"null_variance: expected a positive number, got {eps!r}")
        spec.update(eps=eps, q_stat=np.array([float(np.sum(beta[ix] ** 2)) for ix in gmap.indices]))
    else:
        z = _z_scores(beta_hat, se, m, method)
        if not (np.isfinite(threshold) and threshold >= 0):
            raise InputError(f"threshold: expected a non-negative number, got {threshold!r}")
        spec.update(z=z, zeta=beta / np.asarray(se, dtype=np.float64).ravel() if method == "conditional" else None,
                    threshold=float(threshold))
    if scheduler is not None:
        from bayesmages.parallel import map_units

        # About four chunks per Dask worker thread would need a live client to count; 64 chunks
        # keep transfers small and load balanced on clusters of up to a few dozen workers. Dask
        # workers need not share a file system with this process: each chunk carries its blocks.
        chunks = _chunks(gmap, blocks, spec, min(64, max(1, len(gmap))))
        # LDRefs given by the caller say the workers can read its files (shared file system, or a
        # LocalCluster): then the chunks name their blocks instead
        units = [(sub, (ld_blocks, used) if isinstance(ld_blocks, LDRefs) else [blocks[b] for b in used],
                  sub_spec) for sub, used, sub_spec in chunks]
        parts = map_units(_chunk_pvalues, units, scheduler=scheduler, desc="gene chunk", names=_chunk_names(chunks))
    elif workers == 1 or len(gmap) < 2 * workers:
        parts = [_chunk_pvalues((gmap, blocks, spec))]
    else:
        parts = _map_local(gmap, ld_blocks, blocks, spec, workers)
    q_stat = np.concatenate([part[0] for part in parts]) if parts else np.empty(0)
    p = np.concatenate([part[1] for part in parts]) if parts else np.empty(0)
    p_method = np.concatenate([part[2] for part in parts]) if parts else np.empty(0, dtype=object)
    res = gmap.genes[["GENE", "CHR", "n_variants"]].copy()
    res["Q"] = q_stat
    res["p_value"] = p
    res["q_value"] = bh(p) if p.size else p
    res["test"] = method
    res["p_method"] = p_method
    if method != "epsilon":
        res["n_conditioned"] = np.concatenate([part[3] for part in parts]) if parts else np.empty(0, dtype=int)
    approx = res["GENE"][p_method == "saddlepoint"].astype(str).tolist()
    if approx:
        # warned here, in the caller's thread, not inside worker threads or processes
        warnings.warn(
            f"gene test: the exact p-value integral did not converge for {len(approx)} gene(s) "
            f"({', '.join(approx[:5])}{', ...' if len(approx) > 5 else ''}); their p-values use the saddlepoint "
            "approximation (relative error up to ~15%) and are marked p_method='saddlepoint'",
            AccuracyWarning, stacklevel=2)
    res.attrs.update({"test": method, "null_variance": eps, "null_variance_rule": rule,
                      "unmapped": list(gmap.unmapped)})
    return res


def _z_scores(beta_hat: Any, se: Any, m: int, method: str) -> np.ndarray:
    if beta_hat is None or se is None:
        raise InputError(f"the {method} gene test needs beta_hat and se (the shrinker's inputs); "
                         "pass them, or method='epsilon' for the paper's test on shrunk effects alone")
    b = np.asarray(beta_hat, dtype=np.float64).ravel()
    s = np.asarray(se, dtype=np.float64).ravel()
    if b.size != m or s.size != m:
        raise InputError(f"beta_hat and se must have one value per variant ({m}), got {b.size} and {s.size}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(s))):
        raise InputError("beta_hat and se must be finite")
    if np.any(s <= 0):
        raise InputError(f"se must be positive (row {int(np.argmax(s <= 0))} is {float(s[s <= 0][0]):g})")
    return b / s


#: Gene chunks per local worker: the p-value engine is vectorised over the genes of a call, so fewer, larger
#: chunks cost less (16 chunks took 1.3x the CPU of one); two per worker let one absorb a slower other.
CHUNKS_PER_WORKER = 2


def _map_local(gmap: GeneMap, ld_blocks: Any, blocks: list[np.ndarray], spec: dict[str, Any],
               workers: int) -> list[tuple[np.ndarray, ...]]:
    """Gene chunks over local worker processes that open the LD blocks themselves (by reference).

    Processes, not threads: the per-gene work is many small numpy calls that hold the GIL (threads
    gained 1.36x on 2 cores), and a unit that names its blocks costs no transfer (shipping the LD
    made a process pool slower than serial).
    """
    import tempfile

    from bayesmages.parallel import map_units

    chunks = _chunks(gmap, blocks, spec, CHUNKS_PER_WORKER * workers)
    names = _chunk_names(chunks)
    if isinstance(ld_blocks, LDRefs):
        return map_units(_chunk_pvalues, [(sub, (ld_blocks, used), s) for sub, used, s in chunks],
                         workers=workers, desc="gene chunk", names=names)
    with tempfile.TemporaryDirectory(prefix="bayesmages-ld-") as tmp:
        source = spill_blocks(blocks, tmp)
        return map_units(_chunk_pvalues, [(sub, (source, used), s) for sub, used, s in chunks],
                         workers=workers, desc="gene chunk", names=names)


def _chunk_names(chunks: list[tuple[GeneMap, list[int], dict[str, Any]]]) -> list[str]:
    return [f"genes {sub.genes['GENE'].iloc[0]}..{sub.genes['GENE'].iloc[-1]}" for sub, _, _ in chunks]


def _chunk_pvalues(unit: tuple[GeneMap, Any, dict[str, Any]]) -> tuple[np.ndarray, ...]:
    """(Q, p-values, how each p-value was computed[, n_conditioned]) of one chunk of genes (a picklable unit).

    The chunk's LD is a list of blocks, or ``(LDRefs, block ids)`` read here.
    """
    gmap, blocks, spec = unit
    if isinstance(blocks, tuple):
        source, used = blocks
        blocks = source.blocks(used)
    if spec["method"] == "epsilon":
        q_stat = spec["q_stat"]
        with one_blas_thread():
            eigs = gene_eigenvalues(gmap, blocks, spec["eps"])
        return (q_stat, *_pvalues(q_stat, eigs))
    with one_blas_thread():
        st = gene_statistics(spec["z"], spec["zeta"], blocks, gmap, threshold=spec["threshold"])
    if spec["method"] == "conditional":
        return (st.Q, *conditional_pvalues(st), st.n_conditioned)
    return (st.Q, *_pvalues(st.Q, st.weights), st.n_conditioned)


def conditional_pvalues(st: GeneStatistics) -> tuple[np.ndarray, np.ndarray]:
    """p-values of the conditional test: Cauchy combination of the exact p-values of Q_g and of the Wald form W_g.

    Both are exact under H0 given the conditioning set (Q_g against sum_k c_k chi2_1, W_g against chi2 with
    ``wald_df`` degrees of freedom); the equal-weight Cauchy combination is a valid p-value whatever their
    dependence (:mod:`bayesmages.genes.conditional` says why both). Genes without a Wald direction keep the
    p-value of Q_g. Returns the p-values and how the Q_g part was computed (as :func:`_pvalues`).

    Examples
    --------
    >>> st = GeneStatistics(Q=np.array([3.84]), weights=[np.array([1.0])], n_conditioned=np.array([0]),
    ...                     wald=np.array([3.84]), wald_df=np.array([1]))
    >>> round(float(conditional_pvalues(st)[0][0]), 4)   # both parts are the same chi2_1 test: p = 0.05
    0.05
    """
    p_q, method = _pvalues(st.Q, st.weights)
    if st.wald is None or st.wald_df is None:
        return p_q, method
    ok = st.wald_df > 0
    p = p_q.copy()
    if ok.any():
        p_w = chi2.sf(st.wald[ok], st.wald_df[ok])
        p[ok] = cauchy_rows(np.column_stack([p_q[ok], p_w]))
    return p, method


def _pvalues(q_stat: np.ndarray, eigs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """p-values and how each was computed.

    "exact", "saddlepoint" (the exact integral did not converge) or "none" (no testable direction, all weights
    zero: no evidence against H0, p = 1).
    """
    p = np.ones(q_stat.size)
    method = np.full(q_stat.size, "none", dtype=object)
    ok = np.array([e.size > 0 and e.max() > 0 for e in eigs], dtype=bool)
    if ok.any():
        p[ok], approx = pvalue_many(q_stat[ok], [eigs[i] for i in np.flatnonzero(ok)], return_approximate=True)
        method[ok] = np.where(approx, "saddlepoint", "exact")
    return p, method


def _chunks(gmap: GeneMap, blocks: list[np.ndarray], spec: dict[str, Any],
            n: int) -> list[tuple[GeneMap, list[int], dict[str, Any]]]:
    """Split genes into ``n`` contiguous chunks, each with only the LD blocks (and rows) it touches.

    Per chunk: its genes re-indexed to those blocks, the blocks' ids, and the spec's per-variant arrays cut
    to those blocks.
    """
    starts = block_layout([b.shape[0] for b in blocks])
    units: list[tuple[GeneMap, list[int], dict[str, Any]]] = []
    for part in np.array_split(np.arange(len(gmap)), n):
        if part.size == 0:
            continue
        idx = [gmap.indices[i] for i in part]
        used = np.unique(np.concatenate([np.searchsorted(starts, ix, side="right") - 1 for ix in idx]))
        new_start = block_layout([blocks[b].shape[0] for b in used])
        remap = {int(b): int(new_start[k] - starts[b]) for k, b in enumerate(used)}
        moved = []
        for ix in idx:
            blk = np.searchsorted(starts, ix, side="right") - 1
            moved.append(ix + np.array([remap[int(b)] for b in blk]))
        sub = GeneMap(gmap.genes.iloc[part].reset_index(drop=True), moved)
        sub_spec = dict(spec)
        if "q_stat" in spec:
            sub_spec["q_stat"] = spec["q_stat"][part]
        for key in ("z", "zeta"):
            if spec.get(key) is not None:
                sub_spec[key] = np.concatenate([spec[key][starts[b]:starts[b + 1]] for b in used])
        units.append((sub, [int(b) for b in used], sub_spec))
    return units


test.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test
