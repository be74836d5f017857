"""The LD-conditional gene test: gene p-values that are error rates (the default of ``enrichment.test``).

**Question answered.** Does gene g hold a causal variant? Under H0 the gene's own effects are zero
(beta_g = 0); variants elsewhere in its LD blocks may have any effect.

**Statistic.** On the z scale (z = beta_hat / se, RSS model z ~ N(R lambda, R)), the shrinker's output
zeta = beta_shrunk / se says which variants carry signal. For each LD block that the gene touches let
A be the variants *outside* the gene with |zeta| > ``threshold`` (the signals the shrinker attributes
elsewhere), together with the outside strong proxies (|r| >= ``proxy_r``) of the gene's variants whose signal
the data do not place inside the gene (the *proxy rule*: an outside proxy a of a gene variant that the shrinker
selected, or with |z_a| >= ``lead_z``, is conditioned on unless a gene proxy i beats it by ``proxy_margin``
standard deviations of z_i - z_a: (|z_i| - |z_a|) / sqrt(2 (1 - |r_ia|)) > ``proxy_margin``; if a is causal that
difference has a mean <= 0, so the gene is wrongly credited with probability at most P(N(0,1) > margin) per
proxy, and far less for strong signals), and the outside *leads*: variants in LD with the gene (|r| >= 0.1)
whose |z| >= ``lead_z`` exceeds every |z| of the gene. The lead rule does not trust the shrinker alone: on very
strong signals it sometimes spreads or misses the effect (measured: a z of 28 left unselected made 15 genes of its block
significant), and a marginal signal stronger than anything in the gene cannot come from the gene; and any
outside variant with |z| >= ``strong_z`` in moderate LD with the gene (0.1 <= max |r| < 0.5), which cannot carry
much of the gene's own signal but can leave spill-over when strong effects of opposite signs hide from the
shrinker.
The gene's z-scores are residualised on them,

    r_g = z_g - R_gA R_AA^+ z_A,      Var(r_g | H0) = C_g = R_gg - R_gA R_AA^+ R_Ag,

and Q_g = sum of squares of r_g in the directions where C_g has variance (eigenvalues >= ``min_variance``).
Under H0 with no effect outside A, r_g ~ N(0, C_g) exactly whatever the effects in A are (the effects of
A cancel in r_g), so Q_g ~ sum_k c_k chi2_1 with c = eig(C_g), and the exact quadratic-form engine gives
the p-value. With A empty this is the marginal LD-aware test (fastBAT/MAGMA-style: z_g'z_g against
eig(R_g)), which is exact under the complete null but calls genes that merely tag a causal neighbour.

**Two weightings of the residual, combined.** With u_k, c_k the eigenvectors and eigenvalues of C_g,
Q_g = sum_k (u_k'r_g)^2 weights direction k by its variance c_k: it is the score test for i.i.d. effects
of the gene's variants, powerful when the signal lies along the gene's main LD directions. Conditioning
moves what is left of a causal variant's signal into directions of *small* conditional variance (the
part of the variant not explained by the conditioned proxies), which Q_g nearly ignores. The Wald form
W_g = sum_k (u_k'r_g)^2 / c_k weights every tested direction alike; under H0 it is chi2 with as many
degrees of freedom as directions, exactly. It only uses directions with c_k >= ``wald_min_variance``
(0.01: dividing by smaller variances would multiply LD estimation error by more than 100). The default
test's p-value is the Cauchy combination (ACAT; :func:`bayesmages.stats.multitest.cauchy`) of the two
exact p-values, valid for any dependence between them (exact when they are independent or equal).
``GeneStatistics`` carries both statistics; :func:`bayesmages.genes.enrichment.test` combines them.

**An optional third part.** ``GeneStatistics.single`` holds the Cauchy terms of the gene's one-variant
p-values P(chi2_1 > r_i^2 / C_ii) (variants with C_ii >= ``wald_min_variance``), each exact under H0 given A;
``conditional_pvalues(st, single=True)`` adds their Cauchy combination to the combination. A single causal
variant in a large gene is where it helps (its signal is not spread over the gene's degrees of freedom), but
it also shows most clearly the spill-over of outside signals that neither the shrinker nor the rules below
condition on, so it raises the false share of BH calls; the default does not use it (docs/genes.md).

**Why condition on the shrinker's selection.** The marginal test answers "is the gene marginally
associated", and LD spill-over makes most genes near a causal one marginally associated (simulations:
two thirds of its BH calls false). Conditioning on *every* other variant of the block (the joint Wald
test) removes spill-over but has no power where the gene's variants have close proxies outside it, which
real and msprime blocks are full of. The shrinker decides which outside variants carry the signal; only
those are removed. Because r_g is independent of z_A under H0 (Cov(r_g, z_A) = 0), conditioning on large
outside signals does not distort r_g's null law; the selection itself looks at the gene's own z only
through the shrinker, which makes the test slightly conservative under the complete null
(docs/genes.md has the measured calibration).

**Where the guarantee stops.** The null law is exact when the LD matrices are those of the GWAS sample
and outside signals that the shrinker misses are small. Directions of C_g with variance below
``min_variance`` are dropped (a gene that is a near-copy of a conditioned outside signal is not
testable there; with reference-panel LD such directions carry only LD error). The conditioning set is
chosen from the data (the proxy rule compares gene and outside |z|): the null is exact given A, and the
selection's effect on calibration and FDR is measured (docs/genes.md), not derived. When the shrinker puts
the signal of a causal variant on a proxy inside a neighbouring gene with |r| below ``proxy_r``, the
neighbour can be called and the causal gene not: summary statistics cannot tell such variants apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erfc

from bayesmages.errors import InputError
from bayesmages.genes.mapping import GeneMap, block_layout
from bayesmages.stats.multitest import cauchy_terms

__all__ = ["DEFAULT_LEAD_Z", "DEFAULT_MIN_VARIANCE", "DEFAULT_PROXY_MARGIN", "DEFAULT_PROXY_R", "DEFAULT_STRONG_Z",
           "DEFAULT_THRESHOLD", "DEFAULT_WALD_MIN_VARIANCE", "GeneStatistics", "gene_statistics",
           "gene_statistics_traits"]

#: |beta_shrunk / se| above which an outside variant is conditioned on. Chosen on msprime blocks that the
#: shrinker was not trained on (docs/genes.md): 0.25 conditions on shrinkage noise and loses power,
#: 1.0-2.0 leaves part of the neighbours' signal in and doubles the false calls.
DEFAULT_THRESHOLD = 0.5
#: Conditional variance (correlation scale) below which a direction of C_g is not tested: |r| >= 0.99995
#: with the conditioning set, i.e. indistinguishable from LD estimation error.
DEFAULT_MIN_VARIANCE = 1e-4
#: Conditional variance below which a direction does not enter the Wald form W_g (see the module docstring):
#: W_g divides by the variance, so LD error in a direction of variance c is amplified 1/c times.
DEFAULT_WALD_MIN_VARIANCE = 1e-2
#: |r| with a gene variant from which an outside variant is a strong proxy, for the proxy rule (module docstring).
#: With the margin below, 0.9 gave the best average precision at the lowest false share of BH calls among 0.8, 0.9
#: and 0.95 on the tuning simulations (docs/genes.md). Before 2026-11-30 the rule was 0.95 without a margin (the
#: gene was never credited with such a signal): 0.95 had cut the false share on the prototype data from 0.10 to 0.08.
DEFAULT_PROXY_R = 0.9
#: How clearly, in sd of z_i - z_a, a gene variant's |z| must beat its outside strong proxy's for the gene to keep
#: the signal (proxy rule). On the tuning simulations (docs/genes.md; average precision / false share of BH calls at
#: h2 = 0.003): 0.5 gave 0.724 / 0.037 (the rule before: 0.717 / 0.051); 0 and 0.25 more of both (0.738 / 0.057,
#: 0.732 / 0.044), larger margins less of both.
DEFAULT_PROXY_MARGIN = 0.5
#: |z| from which an outside variant stronger than every variant of the gene is conditioned on (lead rule).
#: Below 3 the rule would condition on noise in null regions (costing power) for no gain in validity.
DEFAULT_LEAD_Z = 3.0
_LEAD_R = 0.1  # LD with the gene below which conditioning on a lead changes nothing worth the cost
#: |z| from which an outside variant in moderate LD with the gene (0.1 <= max |r| < 0.5) is conditioned on whatever
#: the shrinker says: such a variant cannot carry much of the gene's own signal (the gene keeps >= 75% of its
#: variance in every direction), but several strong causal variants of opposite signs can hide from the shrinker
#: and leave spill-over. Chosen on simulations other than the benchmark's (docs/genes.md): 6 lowered the false share
#: of BH calls from 0.035 to 0.024 at the same average precision; 4-5 cost average precision.
DEFAULT_STRONG_Z = 6.0
_STRONG_R = 0.5
_PINV_RCOND = 1e-8  # relative eigenvalue cut-off of the pseudo-inverse of R_AA (near-duplicate selections)


@dataclass(frozen=True)
class GeneStatistics:
    """Per-gene statistic and null weights of the LD-conditional test.

    Attributes
    ----------
    Q : numpy.ndarray
        (G,) sum of squared residualised z-scores in the tested directions.
    weights : list of numpy.ndarray
        Eigenvalues of C_g kept for each gene (the null is sum_k w_k chi2_1); empty when none is kept.
    n_conditioned : numpy.ndarray
        (G,) number of outside variants conditioned on (summed over the gene's blocks).
    wald : numpy.ndarray or None
        (G,) Wald form W_g = sum_k (u_k'r_g)^2 / c_k over the directions with c_k >= ``wald_min_variance``
        (chi2 with ``wald_df`` degrees of freedom under H0); None when not computed.
    wald_df : numpy.ndarray or None
        (G,) number of those directions.
    single : numpy.ndarray or None
        (G,) sum over the gene's variants i with C_ii >= ``wald_min_variance`` of the Cauchy terms
        tan((1/2 - p_i) pi) of their exact one-variant p-values p_i = P(chi2_1 > r_i^2 / C_ii); None when not
        computed. Their mean is the single-variant Cauchy statistic (see
        :func:`bayesmages.genes.units.conditional_pvalues`).
    single_n : numpy.ndarray or None
        (G,) number of those variants.
    """

    Q: np.ndarray
    weights: list[np.ndarray]
    n_conditioned: np.ndarray
    wald: np.ndarray | None = None
    wald_df: np.ndarray | None = None
    single: np.ndarray | None = None
    single_n: np.ndarray | None = None


def _pinv_psd(M: np.ndarray) -> np.ndarray:
    w, U = np.linalg.eigh((M + M.T) / 2)
    keep = w > _PINV_RCOND * max(float(w.max(initial=0.0)), 1.0)
    return (U[:, keep] / w[keep]) @ U[:, keep].T


def gene_statistics(
    z: np.ndarray,
    zeta: np.ndarray | None,
    blocks: list[np.ndarray],
    gene_map: GeneMap,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    proxy_r: float = DEFAULT_PROXY_R,
    proxy_margin: float = DEFAULT_PROXY_MARGIN,
    lead_z: float = DEFAULT_LEAD_Z,
    strong_z: float = DEFAULT_STRONG_Z,
    min_variance: float = DEFAULT_MIN_VARIANCE,
    wald_min_variance: float = DEFAULT_WALD_MIN_VARIANCE,
) -> GeneStatistics:
    """Residualised statistics and null weights of every gene (conditional, or marginal when ``zeta`` is None).

    Parameters
    ----------
    z : numpy.ndarray
        (m,) z-scores ``beta_hat / se`` in data order (blocks laid one after another).
    zeta : numpy.ndarray or None
        (m,) shrunk z-scores ``beta_shrunk / se``; ``None`` gives the marginal test (nothing conditioned on).
    blocks : list of numpy.ndarray
        LD blocks in data order.
    gene_map : GeneMap
        Genes and their rows.
    threshold : float
        |zeta| above which an outside variant is conditioned on.
    proxy_r : float
        Strong-proxy LD of the proxy rule: an outside variant with |r| >= ``proxy_r`` to a gene variant that the
        shrinker selected, or with |z| >= ``lead_z`` and such a gene proxy, is conditioned on unless a gene proxy's
        |z| beats it by ``proxy_margin`` sd (1 or more: the rule is off). Not used by the marginal test.
    proxy_margin : float
        Margin of the proxy rule, in sd of the difference z_i - z_a (``inf``: the gene is never credited).
    lead_z : float
        Outside variants in LD with the gene whose |z| is at least ``lead_z`` and above every |z| of the gene are
        conditioned on too (``inf``: never). Not used by the marginal test (``zeta`` None).
    strong_z : float
        Outside variants with |z| >= ``strong_z`` and 0.1 <= max |r| < 0.5 with the gene are conditioned on too
        (``inf``: never). Not used by the marginal test.
    min_variance : float
        Smallest conditional variance of a tested direction.
    wald_min_variance : float
        Smallest conditional variance of a direction of the Wald form (at least ``min_variance`` is used).

    Returns
    -------
    GeneStatistics

    Examples
    --------
    >>> import pandas as pd
    >>> R = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> gm = GeneMap(pd.DataFrame({"GENE": ["A", "B"], "CHR": ["1", "1"], "n_variants": [1, 2]}),
    ...              [np.array([0]), np.array([1, 2])])
    >>> z = np.array([9.0, 8.1, 0.0]); zeta = np.array([9.0, 0.0, 0.0])  # the shrinker puts the signal on A
    >>> st = gene_statistics(z, zeta, [R], gm)
    >>> st.n_conditioned.tolist(), round(float(st.Q[1]), 6)    # B's spill-over from A is removed
    ([0, 1], 0.0)
    """
    return gene_statistics_traits(z[None, :], None if zeta is None else zeta[None, :], blocks, gene_map,
                                  threshold=threshold, proxy_r=proxy_r, proxy_margin=proxy_margin,
                                  lead_z=lead_z, strong_z=strong_z,
                                  min_variance=min_variance, wald_min_variance=wald_min_variance)[0]


def _unresolved_proxies(R: np.ndarray, loc: np.ndarray, chosen: np.ndarray, abs_z: np.ndarray, proxy_r: float,
                        margin: float, lead_z: float) -> np.ndarray:
    """The proxy rule: outside strong proxies of the gene's variants whose signal the data do not place in the gene.

    ``R``: the block; ``loc``: the gene's rows in it; ``chosen``: the gene's variants the shrinker selected;
    ``abs_z``: the block's |z|. An outside variant a is in question when it is a strong proxy (|r_ia| >= ``proxy_r``)
    of a selected gene variant i, or of any gene variant when |z_a| >= ``lead_z``; it is conditioned on unless a
    gene proxy i beats it clearly, (|z_i| - |z_a|) / sqrt(2 (1 - |r_ia|)) > ``margin``. The denominator is the sd
    of z_i - z_a (sign-aligned); if a is causal with effect lambda, the difference has mean
    -(1 - |r_ia|) |lambda| <= 0, so a gene proxy beats it by the margin with probability at most
    P(N(0, 1) > margin) per proxy, and less the stronger the signal. Only the rows of the selected variants and the
    columns of the strong outside variants are read (most genes have neither).
    """
    near = np.flatnonzero(np.abs(R[chosen]).max(axis=0) >= proxy_r) if chosen.size else chosen
    big = np.flatnonzero(abs_z >= lead_z)
    if big.size:
        big = big[~_members(loc, big)]
        near = np.union1d(near, big[(np.abs(R[np.ix_(loc, big)]) >= proxy_r).any(axis=0)])
    near = near[~_members(loc, near)]
    if not near.size:
        return near
    r_near = np.abs(R[np.ix_(loc, near)])
    sd = np.sqrt(np.maximum(2.0 * (1.0 - r_near), 1e-12))
    lead = np.where(r_near >= proxy_r, (abs_z[loc][:, None] - abs_z[near][None, :]) / sd, -np.inf).max(axis=0)
    return near[lead <= margin]


def _members(loc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.isin(values, loc)`` for sorted ``loc``; a contiguous range (most genes) is two comparisons."""
    if loc.size and int(loc[-1]) - int(loc[0]) + 1 == loc.size:
        return (values >= loc[0]) & (values <= loc[-1])
    return np.isin(values, loc)


_OPTIONS = {"threshold": DEFAULT_THRESHOLD, "proxy_r": DEFAULT_PROXY_R, "proxy_margin": DEFAULT_PROXY_MARGIN,
            "lead_z": DEFAULT_LEAD_Z,
            "strong_z": DEFAULT_STRONG_Z, "min_variance": DEFAULT_MIN_VARIANCE,
            "wald_min_variance": DEFAULT_WALD_MIN_VARIANCE}


def gene_statistics_traits(z: np.ndarray, zeta: np.ndarray | None, blocks: list[np.ndarray], gene_map: GeneMap,
                           **options: float) -> list[GeneStatistics]:
    """:func:`gene_statistics` of several traits on the same LD and genes, one per row of ``z``.

    The work that does not depend on the trait is done once: the genes' rows in each block and their
    LD submatrices are cut once for all traits, a pseudo-inverse R_AA^+ is shared by every gene and trait
    of a block that conditions on the same set A, and the eigendecompositions of all traits' C_g of one
    size are one batched call. Each trait's result equals :func:`gene_statistics` on that trait alone,
    bit for bit (every matrix is decomposed by itself, in the same arithmetic).

    Parameters
    ----------
    z : numpy.ndarray
        (T, m) z-scores, one row per trait.
    zeta : numpy.ndarray or None
        (T, m) shrunk z-scores; ``None``: the marginal test for every trait.
    blocks, gene_map : list of numpy.ndarray, GeneMap
        As in :func:`gene_statistics`.
    **options : float
        ``threshold``, ``proxy_r``, ``proxy_margin``, ``lead_z``, ``strong_z``, ``min_variance``,
        ``wald_min_variance``: as in
        :func:`gene_statistics`, with its defaults.

    Returns
    -------
    list of GeneStatistics
        One per trait, in the order of the rows of ``z``.

    Examples
    --------
    >>> import pandas as pd
    >>> genes = GeneMap(pd.DataFrame({"GENE": ["G1", "G2"], "CHR": "1", "n_variants": [2, 2]}),
    ...                 [np.array([0, 1]), np.array([2, 3])])
    >>> z = np.array([[5.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 4.0]])    # two traits, one signal each
    >>> both = gene_statistics_traits(z, z, [0.5 * np.eye(4) + 0.5], genes)
    >>> [st.n_conditioned.tolist() for st in both]   # each gene conditions on the other gene's signals
    [[1, 1], [1, 0]]
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InputError(f"gene_statistics_traits: unknown option {unknown[0]!r}; expected one of {list(_OPTIONS)}")
    opts = {**_OPTIONS, **options}
    threshold, proxy_r, lead_z, strong_z = opts["threshold"], opts["proxy_r"], opts["lead_z"], opts["strong_z"]
    proxy_margin = opts["proxy_margin"]
    min_variance = opts["min_variance"]
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    n_traits = z.shape[0]
    if zeta is not None:
        zeta = np.atleast_2d(np.asarray(zeta, dtype=np.float64))
    starts = block_layout([b.shape[0] for b in blocks])
    n_genes = len(gene_map.indices)
    Q = np.zeros((n_traits, n_genes))
    wald = np.zeros((n_traits, n_genes))
    wald_df = np.zeros((n_traits, n_genes), dtype=np.int64)
    wald_min = max(opts["wald_min_variance"], min_variance)
    single = np.zeros((n_traits, n_genes))
    single_n = np.zeros((n_traits, n_genes), dtype=np.int64)
    n_cond = np.zeros((n_traits, n_genes), dtype=np.int64)
    parts: list[list[list[np.ndarray]]] = [[[] for _ in range(n_genes)] for _ in range(n_traits)]
    by_block: dict[int, list[tuple[int, np.ndarray]]] = {}
    for g, ix in enumerate(gene_map.indices):
        if ix.size and ix[-1] >= starts[-1]:
            raise InputError(f"genes: gene {gene_map.genes['GENE'].iloc[g]!r} uses variant {ix[-1]} but the LD "
                             f"blocks hold {starts[-1]} variants")
        blk = np.searchsorted(starts, ix, side="right") - 1
        if blk[0] == blk[-1]:  # most genes lie in one block
            by_block.setdefault(int(blk[0]), []).append((g, ix - starts[blk[0]]))
            continue
        for b in np.unique(blk):
            by_block.setdefault(int(b), []).append((g, ix[blk == b] - starts[b]))
    empty = np.empty(0, dtype=np.int64)
    for b, members in by_block.items():
        R = blocks[b]
        zb = z[:, starts[b]:starts[b + 1]]
        abs_zb = np.abs(zb)
        selected = ([np.flatnonzero(np.abs(zeta[t, starts[b]:starts[b + 1]]) > threshold) for t in range(n_traits)]
                    if zeta is not None else [empty] * n_traits)
        pinv_cache: dict[bytes, np.ndarray] = {}  # R_AA^+ by conditioning set (most genes share one)
        by_size: dict[int, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
        for g, loc in members:
            Rgg = R[np.ix_(loc, loc)]
            for t in range(n_traits):
                sel = selected[t]
                inside = _members(loc, sel)
                A = sel[~inside]
                if zeta is not None:
                    if proxy_r < 1:
                        A = np.union1d(A, _unresolved_proxies(R, loc, sel[inside], abs_zb[t], proxy_r, proxy_margin,
                                                              lead_z))
                    # outside variants that could matter at all: |z| above the smaller of the two rules' cut-offs
                    lead_cut = max(float(abs_zb[t, loc].max()), lead_z)
                    cut = min(lead_cut, strong_z)
                    candidates = np.flatnonzero(abs_zb[t] > cut)
                    candidates = candidates[~_members(loc, candidates)]
                    if candidates.size:
                        ld_gene = np.abs(R[np.ix_(loc, candidates)]).max(axis=0)
                        zc = abs_zb[t, candidates]
                        lead = (zc > lead_cut) & (ld_gene >= _LEAD_R)
                        strong = (zc >= strong_z) & (ld_gene >= _LEAD_R) & (ld_gene < _STRONG_R)
                        A = np.union1d(A, candidates[lead | strong])
                if A.size:
                    key = A.tobytes()
                    if key not in pinv_cache:
                        pinv_cache[key] = _pinv_psd(R[np.ix_(A, A)])
                    P = pinv_cache[key]
                    RgA = R[np.ix_(loc, A)]
                    K = RgA @ P
                    r = zb[t, loc] - K @ zb[t, A]
                    C = Rgg - K @ RgA.T
                else:
                    r, C = zb[t, loc], Rgg
                n_cond[t, g] += A.size
                by_size.setdefault(loc.size, []).append((t, g, r, (C + C.T) / 2))
        for items in by_size.values():
            w, U = np.linalg.eigh(np.stack([c for _, _, _, c in items]))
            for (t, g, r, c), wk, Uk in zip(items, w, U):
                keep = wk >= min_variance
                proj2 = (Uk[:, keep].T @ r) ** 2
                Q[t, g] += float(np.sum(proj2))
                in_wald = wk[keep] >= wald_min
                wald[t, g] += float(np.sum(proj2[in_wald] / wk[keep][in_wald]))
                wald_df[t, g] += int(in_wald.sum())
                var = np.diag(c)
                testable = var >= wald_min
                # Cauchy terms of the exact chi2_1 p-values P(|N(0,1)| > |r_i| / sqrt(C_ii)) (averaged by the caller)
                single[t, g] += float(np.sum(cauchy_terms(erfc(np.abs(r[testable]) / np.sqrt(2 * var[testable])))))
                single_n[t, g] += int(testable.sum())
                parts[t][g].append(wk[keep])
    return [GeneStatistics(Q=Q[t], weights=[np.concatenate(p) if p else np.empty(0) for p in parts[t]],
                           n_conditioned=n_cond[t], wald=wald[t], wald_df=wald_df[t], single=single[t],
                           single_n=single_n[t]) for t in range(n_traits)]
