"""Work units of the gene tests: contiguous chunks of genes x all traits, the LD referenced, never shipped.

A unit is a run of consecutive genes (in gene-table order) with the LD blocks they touch, the per-variant
arrays of every trait cut to those blocks, and the test to run; :func:`run_unit` computes the statistics
and p-values of all its genes for all traits and reports its own CPU time. The trait-independent work
(cutting each gene's rows and LD submatrices; the eigenvalues of R_g for the epsilon test) is done once per
unit for all traits (:func:`bayesmages.genes.conditional.gene_statistics_traits`), and the p-values of all
traits are one vectorised call of the quadratic-form engine.

**Balance.** Chunks are cut by estimated cost, not by gene counts (:func:`gene_costs`): a local map gets
:data:`CHUNKS_PER_WORKER` chunks per worker whose costs decrease (:data:`TAPER`), submitted largest first, so
that the last units to start are small and no worker is left running alone at the end. The cut only decides
which process computes a gene: every gene's numbers are the same whatever the chunks (each matrix is
decomposed by itself; the p-value engine pads each form to a width fixed by its size alone).

This module also holds the per-unit computations that the single-trait API
(:mod:`bayesmages.genes.enrichment`) re-exports: :func:`gene_eigenvalues`, :func:`conditional_pvalues`.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2

from bayesmages._threads import one_blas_thread
from bayesmages.errors import InputError
from bayesmages.genes.conditional import GeneStatistics, gene_statistics_traits
from bayesmages.genes.mapping import GeneMap, block_layout
from bayesmages.io.ldrefs import LDRefs, spill_blocks
from bayesmages.stats.multitest import cauchy_terms
from bayesmages.stats.quadform import pvalue_many

__all__ = ["CHUNKS_PER_WORKER", "TAPER", "GeneUnit", "as_ld_blocks", "conditional_pvalues", "form_pvalues",
           "gene_costs", "gene_eigenvalues", "make_units", "map_gene_units", "run_unit"]

#: Gene chunks per local worker, submitted largest first. Each chunk costs a fixed 10-20 ms in the p-value engine
#: (one vectorised call per size bucket: 6,660 gene x trait forms took 1.06-1.11 CPU s in one call, 1.19-1.46 s
#: in 16 and 1.75-1.90 s in 64, on the 100,000-variant benchmark), so chunks are few; their estimated costs
#: decrease (:data:`TAPER`), so that the last chunks to start are small and the workers finish together.
CHUNKS_PER_WORKER = 4
#: Estimated cost of the first chunk over that of the last (linear in between).
TAPER = 4.0
#: Cost model of one gene-trait pair, in units of the fixed per-gene cost (the Python-level work of cutting
#: rows and conditioning: tens of microseconds): plus its size cubed over GENE_COST_SIZE^3 (the
#: eigendecomposition of C_g). Fitted to per-chunk CPU seconds measured on the 100,000-variant benchmark
#: (genes of 1-80 variants); only the balance of the chunks depends on it, never a result.
GENE_COST_SIZE = 60.0


def as_ld_blocks(ld: Any) -> list[np.ndarray]:
    """Accept one matrix / LDBlock, a sequence of them or an LDRefs; return float64 square matrices.

    The blocks of an :class:`~bayesmages.io.ldrefs.LDRefs` are returned memory-mapped and not checked
    again (whoever wrote the files wrote checked blocks).

    Examples
    --------
    >>> [R.shape for R in as_ld_blocks(np.eye(2))]
    [(2, 2)]
    """
    if isinstance(ld, LDRefs):
        if not len(ld):
            raise InputError("ld_blocks: expected at least one LD block")
        return ld.blocks()
    items = [ld] if (hasattr(ld, "R") or (isinstance(ld, np.ndarray) and ld.ndim == 2)) else list(ld)
    out = []
    for b, item in enumerate(items):
        R = np.asarray(getattr(item, "R", item), dtype=np.float64)
        if R.ndim != 2 or R.shape[0] != R.shape[1] or not np.all(np.isfinite(R)):
            raise InputError(f"ld_blocks[{b}]: expected a finite square LD matrix, got shape {R.shape}")
        out.append(R)
    if not out:
        raise InputError("ld_blocks: expected at least one LD block")
    return out


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
    >>> import pandas as pd
    >>> gm = GeneMap(pd.DataFrame({"GENE": ["A"], "CHR": ["1"], "n_variants": [2]}), [np.array([0, 1])])
    >>> np.round(gene_eigenvalues(gm, np.array([[1.0, 0.5], [0.5, 1.0]]))[0], 3).tolist()
    [0.5, 1.5]
    """
    blocks = as_ld_blocks(ld_blocks)
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


def form_pvalues(q_stat: np.ndarray, eigs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """p-values of Q against sum_k w_k chi2_1 per gene, and how each was computed.

    "exact", "saddlepoint" (the exact integral did not converge) or "none" (no testable direction, all weights
    zero: no evidence against H0, p = 1).

    Examples
    --------
    >>> p, how = form_pvalues(np.array([3.84, 1.0]), [np.array([1.0]), np.empty(0)])
    >>> np.round(p, 3).tolist(), how.tolist()
    ([0.05, 1.0], ['exact', 'none'])
    """
    p = np.ones(q_stat.size)
    method = np.full(q_stat.size, "none", dtype=object)
    ok = np.array([e.size > 0 and e.max() > 0 for e in eigs], dtype=bool)
    if ok.any():
        p[ok], approx = pvalue_many(q_stat[ok], [eigs[i] for i in np.flatnonzero(ok)], return_approximate=True)
        method[ok] = np.where(approx, "saddlepoint", "exact")
    return p, method


def conditional_pvalues(st: GeneStatistics, single: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """p-values of the conditional test: Cauchy combination of the exact p-values of Q_g and of the Wald form W_g.

    Both are exact under H0 given the conditioning set (Q_g against sum_k c_k chi2_1, W_g against chi2 with
    ``wald_df`` degrees of freedom); the equal-weight Cauchy combination is a valid p-value whatever their
    dependence (:mod:`bayesmages.genes.conditional` says why both). With ``single=True`` a third part joins the
    combination: the Cauchy combination of the gene's exact one-variant p-values P(chi2_1 > r_i^2 / C_ii)
    (``st.single`` holds the sum of their Cauchy terms, ``st.single_n`` how many), also exact given the
    conditioning set. It ranks associated genes slightly better but lets more spill-over through (docs/genes.md,
    "what was tried"), so the default test does not use it; ``enrichment.test(..., method="conditional+single")``
    does. A part without a testable direction or variant is
    left out; genes with the Q_g part alone keep its p-value. Returns the p-values and how the Q_g part was
    computed (as :func:`form_pvalues`).

    Examples
    --------
    >>> st = GeneStatistics(Q=np.array([3.84]), weights=[np.array([1.0])], n_conditioned=np.array([0]),
    ...                     wald=np.array([3.84]), wald_df=np.array([1]))
    >>> round(float(conditional_pvalues(st)[0][0]), 4)   # both parts are the same chi2_1 test: p = 0.05
    0.05
    """
    p_q, method = form_pvalues(st.Q, st.weights)
    terms = [cauchy_terms(p_q)]
    counts = [np.ones(p_q.size)]
    if st.wald is not None and st.wald_df is not None:
        ok = st.wald_df > 0
        terms.append(np.where(ok, cauchy_terms(chi2.sf(st.wald, np.maximum(st.wald_df, 1))), 0.0))
        counts.append(ok.astype(np.float64))
    if single:
        if st.single is None or st.single_n is None:
            raise InputError("conditional_pvalues: single=True needs statistics with the single-variant part")
        ok = st.single_n > 0
        # the mean of the part's terms is its own Cauchy statistic, standard Cauchy under H0
        terms.append(np.where(ok, st.single / np.maximum(st.single_n, 1), 0.0))
        counts.append(ok.astype(np.float64))
    n = np.sum(counts, axis=0)
    p = p_q.copy()
    several = n > 1
    p[several] = np.arctan2(1.0, np.sum(terms, axis=0)[several] / n[several]) / np.pi
    return p, method


def gene_costs(gene_map: GeneMap) -> np.ndarray:
    """Estimated relative CPU cost of each gene (per trait): ``1 + (n_variants / GENE_COST_SIZE)^3``.

    Examples
    --------
    >>> import pandas as pd
    >>> gm = GeneMap(pd.DataFrame({"GENE": ["A", "B"], "CHR": ["1", "1"], "n_variants": [1, 120]}),
    ...              [np.array([0]), np.arange(1, 121)])
    >>> gene_costs(gm).round(2).tolist()
    [1.0, 9.0]
    """
    sizes = np.array([ix.size for ix in gene_map.indices], dtype=np.float64)
    return 1.0 + (sizes / GENE_COST_SIZE) ** 3


@dataclass(frozen=True)
class GeneUnit:
    """One chunk of consecutive genes x all traits (picklable; its LD named, or carried for Dask without files).

    Attributes
    ----------
    genes : GeneMap
        The chunk's genes, their rows re-indexed to the chunk's blocks laid one after another.
    ld : object
        ``(LDRefs, block ids)`` read in the worker, or the list of the blocks themselves.
    method : str
        ``"conditional"``, ``"conditional+single"``, ``"marginal"`` or ``"epsilon"``.
    traits : dict
        Per-trait arrays cut to the chunk: ``z`` (T, m_chunk) and ``zeta`` (T, m_chunk) or None; or for the
        epsilon test ``q_stat`` (T, G_chunk) and ``eps`` (T,). ``threshold`` for the conditional test.
    cost : float
        Estimated cost (:func:`gene_costs` summed over genes and traits); orders the submission.
    """

    genes: GeneMap
    ld: Any
    method: str
    traits: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0


def run_unit(unit: GeneUnit) -> dict[str, Any]:
    """Statistics and p-values of every gene x trait of ``unit``; module level for process pools and Dask.

    Returns ``{"traits": [(Q, p, p_method[, n_conditioned]) per trait], "cpu_seconds", "wall_seconds",
    "pid", "n_genes"}``: the CPU of the thread that ran the unit (a Dask worker also runs its event loop).
    """
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    blocks = unit.ld
    if isinstance(blocks, tuple):
        source, used = blocks
        blocks = source.blocks(used)
    tr = unit.traits
    n_genes = len(unit.genes)
    out: list[tuple[np.ndarray, ...]] = []
    with one_blas_thread():
        if unit.method == "epsilon":
            # the eigenvalues of R_g do not depend on the trait: one decomposition, scaled by each epsilon
            base = gene_eigenvalues(unit.genes, blocks, 1.0)
            eigs = [eps * e for eps in tr["eps"] for e in base]
            q_all = np.concatenate(list(tr["q_stat"]))
            p, how = form_pvalues(q_all, eigs)
            out = [(tr["q_stat"][t], p[t * n_genes:(t + 1) * n_genes], how[t * n_genes:(t + 1) * n_genes])
                   for t in range(len(tr["eps"]))]
        else:
            sts = gene_statistics_traits(tr["z"], tr["zeta"], blocks, unit.genes, threshold=tr["threshold"])
            # every trait's forms in one call of the vectorised engine (each p-value is computed by itself)
            joint = GeneStatistics(Q=np.concatenate([s.Q for s in sts]), weights=[w for s in sts for w in s.weights],
                                   n_conditioned=np.concatenate([s.n_conditioned for s in sts]),
                                   wald=np.concatenate([s.wald for s in sts if s.wald is not None]),
                                   wald_df=np.concatenate([s.wald_df for s in sts if s.wald_df is not None]),
                                   single=np.concatenate([s.single for s in sts if s.single is not None]),
                                   single_n=np.concatenate([s.single_n for s in sts if s.single_n is not None]))
            if unit.method == "marginal":
                p, how = form_pvalues(joint.Q, joint.weights)
            else:
                p, how = conditional_pvalues(joint, single=unit.method == "conditional+single")
            out = [(s.Q, p[t * n_genes:(t + 1) * n_genes], how[t * n_genes:(t + 1) * n_genes], s.n_conditioned)
                   for t, s in enumerate(sts)]
    # perf_counter is the system-wide monotonic clock on Linux: start and end are comparable across local processes
    return {"traits": out, "cpu_seconds": time.thread_time() - cpu0, "wall_seconds": time.perf_counter() - wall0,
            "start": wall0, "end": time.perf_counter(), "pid": os.getpid(), "n_genes": n_genes}


def _cut(costs: np.ndarray, n: int, taper: float = 1.0) -> list[np.ndarray]:
    """Consecutive index runs (at most ``n``, none empty) whose summed costs fall linearly by ``taper`` (1: equal)."""
    n = int(min(max(n, 1), costs.size))
    ends = np.cumsum(costs)
    share = np.linspace(taper, 1.0, n)
    cuts = np.searchsorted(ends, ends[-1] * np.cumsum(share)[:-1] / share.sum(), side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, costs.size - 1), [costs.size]]))
    return [np.arange(a, b) for a, b in itertools.pairwise(bounds)]


def make_units(gmap: GeneMap, blocks: list[np.ndarray], method: str, traits: dict[str, Any],
               n: int, ld_of: Any, taper: float = 1.0) -> list[GeneUnit]:
    """Cut the genes into ``n`` consecutive chunks (costs falling by ``taper``), each with only the blocks it touches.

    ``traits`` holds the whole-data arrays (``z``/``zeta`` (T, m), or ``q_stat`` (T, G) and ``eps``);
    ``ld_of(block ids)`` gives a unit's LD (references, or the blocks).
    """
    starts = block_layout([b.shape[0] for b in blocks])
    n_traits = len(traits["eps"]) if method == "epsilon" else traits["z"].shape[0]
    costs = gene_costs(gmap) * n_traits
    units: list[GeneUnit] = []
    for part in _cut(costs, n, taper):
        idx = [gmap.indices[i] for i in part]
        used = np.unique(np.concatenate([np.searchsorted(starts, ix, side="right") - 1 for ix in idx]))
        new_start = block_layout([blocks[b].shape[0] for b in used])
        shift = np.zeros(len(blocks), dtype=np.int64)
        shift[used] = new_start[:-1] - starts[used]
        moved = [ix + shift[np.searchsorted(starts, ix, side="right") - 1] for ix in idx]
        sub = GeneMap(gmap.genes.iloc[part].reset_index(drop=True), moved)
        rows = np.concatenate([np.arange(starts[b], starts[b + 1]) for b in used])
        sub_traits = dict(traits)
        if method == "epsilon":
            sub_traits["q_stat"] = traits["q_stat"][:, part]
        else:
            for key in ("z", "zeta"):
                if traits.get(key) is not None:
                    sub_traits[key] = traits[key][:, rows]
        units.append(GeneUnit(sub, ld_of([int(b) for b in used]), method, sub_traits, float(costs[part].sum())))
    return units


def _names(units: list[GeneUnit]) -> list[str]:
    return [f"genes {u.genes.genes['GENE'].iloc[0]}..{u.genes.genes['GENE'].iloc[-1]}" for u in units]


def map_gene_units(gmap: GeneMap, ld: Any, blocks: list[np.ndarray], method: str, traits: dict[str, Any], *,
                   workers: int = 1, scheduler: Any = None) -> tuple[list[tuple[np.ndarray, ...]], dict[str, Any]]:
    """Every trait's ``(Q, p, p_method[, n_conditioned])`` over all genes, and the units' accounting.

    Serial (``workers=1``, no scheduler): one unit in this process. Local workers: :data:`CHUNKS_PER_WORKER`
    chunks per worker of decreasing cost, largest first, each opening its LD blocks itself (from ``ld`` when it is an
    :class:`~bayesmages.io.ldrefs.LDRefs`, else from temporary files written here, a repeated block object
    once). Dask: :data:`CHUNKS_PER_WORKER` chunks per worker thread of the cluster (counted when the map starts;
    a fixed cost per chunk made 64 chunks cost 2 single-thread workers ~0.7 CPU s more than 8), each naming its
    blocks when ``ld`` is an LDRefs (the workers must read its files) and carrying them otherwise. Results are
    identical for any of these.
    """
    import tempfile

    from bayesmages.parallel import map_units, scheduler_threads

    wall0 = time.perf_counter()
    n_traits = len(traits["eps"]) if method == "epsilon" else traits["z"].shape[0]
    if scheduler is None and (workers == 1 or len(gmap) < 2 * workers):
        results = [run_unit(GeneUnit(gmap, blocks, method, traits))]
        costs = [float(gene_costs(gmap).sum()) * n_traits]
    else:
        slots = scheduler_threads(scheduler) if scheduler is not None else workers
        n = CHUNKS_PER_WORKER * slots
        with tempfile.TemporaryDirectory(prefix="bayesmages-ld-") as tmp:
            if isinstance(ld, LDRefs):
                source: Any = ld
            elif scheduler is None:
                source = spill_blocks(blocks, tmp)
            else:  # Dask workers need not share a file system with this process: each chunk carries its blocks
                source = None
            units = make_units(gmap, blocks, method, traits, min(n, max(1, len(gmap))),
                               (lambda used: [blocks[b] for b in used]) if source is None
                               else (lambda used: (source, used)), taper=TAPER)
            # largest first: the last units to start are small, so the workers finish together
            order = sorted(range(len(units)), key=lambda i: -units[i].cost)
            names = _names(units)
            done = map_units(run_unit, [units[i] for i in order], workers=workers, scheduler=scheduler,
                             desc="gene chunk", names=[names[i] for i in order])
        costs = [u.cost for u in units]
        results = [None] * len(units)  # type: ignore[list-item]
        for i, r in zip(order, done):
            results[i] = r
    per_trait = [tuple(np.concatenate([r["traits"][t][k] for r in results])
                       for k in range(len(results[0]["traits"][t]))) for t in range(n_traits)]
    busy: dict[int, float] = {}
    last: dict[int, float] = {}
    for r in results:
        busy[r["pid"]] = busy.get(r["pid"], 0.0) + r["cpu_seconds"]
        last[r["pid"]] = max(last.get(r["pid"], -np.inf), r["end"])
    t_end = time.perf_counter()
    # per process: how evenly the units kept the workers busy (the map waits for the busiest)
    stats = {"n_units": len(results), "unit_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 3),
             "unit_cpu_seconds_each": [round(r["cpu_seconds"], 3) for r in results],
             "unit_cost_each": [round(u, 1) for u in costs],
             "cpu_seconds_per_process": sorted(round(v, 3) for v in busy.values()),
             "map_wall_seconds": round(t_end - wall0, 3), "processes": len(busy),
             # from the map's start to the first unit's start (building and sending units), and from the
             # first process's last unit to the last one's (imbalance); meaningful for local processes only
             "first_unit_start_seconds": round(min(r["start"] for r in results) - wall0, 3),
             "tail_seconds": round(max(last.values()) - min(last.values()), 3),
             "gather_seconds": round(t_end - max(last.values()), 3)}
    return per_trait, stats
