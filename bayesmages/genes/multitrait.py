"""Multi-trait gene summaries from a clustering of shrunk effects (METHODS §C, multiple traits).

For gene g with |g| variants, cluster labels l_v (``-1`` = variant not clustered) and shrunk
effects beta_v (p traits):

* **fractions**: the share of the gene's variants in each cluster, ``#{v in g: l_v = k} / |g|``
  (plus ``unclustered``), so each row sums to 1;
* **products**: per cluster k and trait pair (i, j), i <= j:
  ``sum_{v in g, l_v = k} beta_vi beta_vj / |g|`` (``signed``) and the same with ``|beta_vi beta_vj|``
  (``absolute``);
* **S_g** (p x p): the sum of the signed products over clusters (unclustered variants excluded);
* **type scores**: per association type (``specific:T1``, ``shared:T1+T2``, ``non-prioritised``, ...)
  and trait, the expected sum of |beta_vt| over the gene's variants of that type,
  ``sum_v P(type | v) |beta_vt|``, from the per-variant type probabilities
  (:meth:`bayesmages.cluster.DPMixture.association_types`), with ``sd_total``, the sd of the sum over
  traits when each variant's type is an independent draw from its probabilities
  (``sqrt(sum_v P (1 - P) (sum_t |beta_vt|)^2)``), and ``expected_variants`` = ``sum_v P(type | v)``;
  and at the gene level ``gene_prob``, the probability that the gene is of the type (traits involved
  by any of its variants, see ``_gene_type_probabilities``), and ``gene_score`` = ``gene_prob x``
  the gene's expected signal ``sum_v P(not non-prioritised | v) sum_t |beta_vt|`` (the ranking
  ``bench/multitrait.py`` measures best).
  Without probabilities (hard labels only, the reference's rule) a variant counts fully for its
  cluster's category and ``sd_total`` is 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.cluster.types import NULL_TYPE, type_name
from bayesmages.errors import InputError
from bayesmages.genes.mapping import GeneMap, map_genes

__all__ = ["GeneSummary", "summarize"]

UNCLUSTERED = "unclustered"


@dataclass(frozen=True)
class GeneSummary:
    """Multi-trait gene summaries (see the module docstring).

    Attributes
    ----------
    fractions : pandas.DataFrame
        ``GENE, CHR, n_variants`` then one column per cluster (``cluster_<k>``) and ``unclustered``.
    products : pandas.DataFrame
        Long format: ``GENE, cluster, category, trait_i, trait_j, signed, absolute``.
    S : pandas.DataFrame
        Long format: ``GENE, trait_i, trait_j, S`` (both triangles, i.e. the full symmetric matrix).
    S_array : numpy.ndarray
        (n_genes, p, p) S_g matrices.
    type_scores : pandas.DataFrame
        ``GENE, type`` then ``abs_<trait>`` per trait, ``abs_total``, ``sd_total``,
        ``expected_variants`` and (from probabilities) ``gene_prob`` and ``gene_score``.
    categories : list of str
        Category of each cluster.
    traits : list of str
    """

    fractions: pd.DataFrame
    products: pd.DataFrame
    S: pd.DataFrame
    S_array: np.ndarray
    type_scores: pd.DataFrame
    categories: list[str]
    traits: list[str]


def _effects(beta_shrunk: Any, trait_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if isinstance(beta_shrunk, pd.DataFrame):
        names = [str(c) for c in beta_shrunk.columns]
        B = beta_shrunk.to_numpy(dtype=np.float64)
    else:
        B = np.asarray(beta_shrunk, dtype=np.float64)
        if B.ndim == 1:
            B = B[:, None]
        names = [f"trait{i + 1}" for i in range(B.shape[1])]
    if trait_names is not None:
        names = [str(t) for t in trait_names]
    if B.ndim != 2 or len(names) != B.shape[1]:
        raise InputError(f"beta_shrunk: expected an (m, p) array with {len(names)} trait names, got shape {B.shape}")
    if not np.all(np.isfinite(B)):
        raise InputError("beta_shrunk: all effects must be finite")
    return B, names


def summarize(
    beta_shrunk: Any,
    genes: pd.DataFrame | GeneMap,
    labels: Sequence[int] | np.ndarray | None = None,
    categories: Sequence[str] | None = None,
    *,
    cluster_fit: Any = None,
    trait_names: Sequence[str] | None = None,
    variants: pd.DataFrame | None = None,
    by: str = "auto",
    index_base: str = "chromosome",
    type_probabilities: Any = None,
) -> GeneSummary:
    """Per-gene cluster fractions, effect-product sums, S_g and association-type scores.

    Parameters
    ----------
    beta_shrunk : array_like or pandas.DataFrame
        (m, p) shrunk effects in data order (DataFrame columns name the traits).
    genes : pandas.DataFrame or GeneMap
        Gene table or mapped genes (see :func:`bayesmages.genes.mapping.map_genes`).
    labels : array_like of int, optional
        (m,) cluster label per variant, ``-1`` for variants that were not clustered. Defaults to
        ``cluster_fit.labels_`` when that covers all m variants.
    categories : sequence of str, optional
        Category per cluster (default ``cluster_fit.categories_``; else ``cluster_<k>``).
    cluster_fit : DPMixture, optional
        A fitted ``dp_mixture`` providing ``labels_`` and ``categories_``.
    trait_names : sequence of str, optional
        Override trait names.
    variants, by, index_base
        Passed to :func:`~bayesmages.genes.mapping.map_genes`.
    type_probabilities : pandas.DataFrame, optional
        (m, T) per-variant association-type probabilities, one column per type (from
        :meth:`bayesmages.cluster.DPMixture.association_types`). Default:
        ``cluster_fit.type_probabilities_`` when it covers all m variants; else the type scores
        count each variant fully for its cluster's category (hard labels).

    Returns
    -------
    GeneSummary

    Raises
    ------
    InputError
        Shapes disagree, labels outside ``-1..K-1``, no labels.

    Examples
    --------
    >>> B = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.1], [0.2, -0.3]])
    >>> genes = pd.DataFrame({"GENE": ["A"], "CHR": [1], "N_SNPS": [4], "start_idx_chr": [0], "end_idx_chr": [3],
    ...                       "chr_start_idx_gw": [0]})
    >>> out = summarize(B, genes, labels=[0, 1, -1, 1], categories=["specific:trait1", "shared:trait1+trait2"])
    >>> out.fractions[["cluster_0", "cluster_1", "unclustered"]].values.tolist()
    [[0.25, 0.5, 0.25]]
    >>> float(out.S_array[0, 0, 1])  # (1*0 + 0.5*0.5 + 0.2*-0.3) / 4
    0.0475
    """
    B, traits = _effects(beta_shrunk, trait_names)
    m, p = B.shape
    if labels is None and cluster_fit is not None:
        labels = getattr(cluster_fit, "labels_", None)
    if labels is None:
        raise InputError("labels: give per-variant cluster labels or a fitted cluster_fit")
    lab = np.asarray(labels)
    if lab.shape != (m,) or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels: expected {m} integer labels (one per variant, -1 = unclustered), got {lab.shape}")
    if categories is None and cluster_fit is not None:
        categories = getattr(cluster_fit, "categories_", None)
    n_clusters = int(max(lab.max(initial=-1) + 1, len(categories) if categories is not None else 0))
    cats = [str(c) for c in categories] if categories is not None else [f"cluster_{k}" for k in range(n_clusters)]
    if lab.min(initial=0) < -1 or lab.max(initial=-1) >= len(cats):
        raise InputError(f"labels: expected values in -1..{len(cats) - 1}, got {lab.min()}..{lab.max()}")
    gmap = genes if isinstance(genes, GeneMap) else map_genes(
        genes, variants=variants, n_variants=m, by=by, index_base=index_base)
    K = len(cats)
    G = len(gmap.indices)
    size = gmap.genes["n_variants"].to_numpy(np.float64)
    # One pass over genes builds per-gene, per-cluster sums via bincount on a (gene, cluster) key.
    gene_of = np.concatenate([np.full(ix.size, g) for g, ix in enumerate(gmap.indices)]) if G else np.empty(0, int)
    rows = np.concatenate(gmap.indices) if G else np.empty(0, int)
    lab_r = lab[rows]
    key = gene_of * (K + 1) + np.where(lab_r < 0, K, lab_r)  # slot K = unclustered
    counts = np.bincount(key, minlength=G * (K + 1)).reshape(G, K + 1)
    frac = counts / size[:, None]
    fractions = gmap.genes[["GENE", "CHR", "n_variants"]].copy()
    for k in range(K):
        fractions[f"cluster_{k}"] = frac[:, k]
    fractions[UNCLUSTERED] = frac[:, K]
    fractions.attrs["categories"] = cats

    iu, ju = np.triu_indices(p)
    prod = B[rows][:, iu] * B[rows][:, ju]  # (n_rows, n_pairs)
    signed = np.stack([np.bincount(key, prod[:, a], minlength=G * (K + 1)) for a in range(iu.size)], axis=-1)
    absolute = np.stack([np.bincount(key, np.abs(prod[:, a]), minlength=G * (K + 1)) for a in range(iu.size)],
                        axis=-1)
    signed = signed.reshape(G, K + 1, iu.size)[:, :K] / size[:, None, None]
    absolute = absolute.reshape(G, K + 1, iu.size)[:, :K] / size[:, None, None]
    gi, ki, ai = np.meshgrid(np.arange(G), np.arange(K), np.arange(iu.size), indexing="ij")
    products = pd.DataFrame({
        "GENE": gmap.genes["GENE"].to_numpy()[gi.ravel()],
        "cluster": ki.ravel(),
        "category": np.asarray(cats, dtype=object)[ki.ravel()],
        "trait_i": np.asarray(traits, dtype=object)[iu[ai.ravel()]],
        "trait_j": np.asarray(traits, dtype=object)[ju[ai.ravel()]],
        "signed": signed.ravel(),
        "absolute": absolute.ravel(),
    })
    S_array = np.zeros((G, p, p))
    S_array[:, iu, ju] = signed.sum(axis=1)
    S_array[:, ju, iu] = signed.sum(axis=1)
    gg, ii, jj = np.meshgrid(np.arange(G), np.arange(p), np.arange(p), indexing="ij")
    S = pd.DataFrame({
        "GENE": gmap.genes["GENE"].to_numpy()[gg.ravel()],
        "trait_i": np.asarray(traits, dtype=object)[ii.ravel()],
        "trait_j": np.asarray(traits, dtype=object)[jj.ravel()],
        "S": S_array.ravel(),
    })

    if type_probabilities is None and cluster_fit is not None:
        fitted = getattr(cluster_fit, "type_probabilities_", None)
        if fitted is not None and len(fitted) == m:
            type_probabilities = pd.DataFrame(fitted, columns=list(cluster_fit.types_))
    if type_probabilities is not None:
        type_scores = _soft_type_scores(B, traits, type_probabilities, gmap, gene_of, rows)
    else:
        type_scores = _hard_type_scores(B, traits, cats, lab_r, gmap, gene_of, rows)
    return GeneSummary(fractions, products, S, S_array, type_scores, cats, traits)


def _soft_type_scores(B: np.ndarray, traits: list[str], probs: Any, gmap: GeneMap, gene_of: np.ndarray,
                      rows: np.ndarray) -> pd.DataFrame:
    """Expected |effect| sums per gene and type from per-variant type probabilities."""
    if not isinstance(probs, pd.DataFrame):
        raise InputError("type_probabilities: expected a DataFrame with one column per association type")
    P = probs.to_numpy(np.float64)
    m = B.shape[0]
    if P.shape[0] != m or not np.all(np.isfinite(P)) or np.any(P < 0) or np.any(P > 1 + 1e-9):
        raise InputError(f"type_probabilities: expected {m} rows of probabilities in [0, 1], got shape {P.shape}")
    types = [str(c) for c in probs.columns]
    G, T = len(gmap.indices), len(types)
    absb = np.abs(B[rows])
    Pr = P[rows]
    total = absb.sum(1)
    out = pd.DataFrame({"GENE": np.repeat(gmap.genes["GENE"].to_numpy(), T), "type": np.tile(types, G)})
    for t, name in enumerate(traits):
        out[f"abs_{name}"] = _by_gene(Pr * absb[:, [t]], gene_of, G).ravel()
    out["abs_total"] = _by_gene(Pr * total[:, None], gene_of, G).ravel()
    # probabilities summing to 1 can exceed it by an ulp (full-precision tables): P (1 - P) must stay >= 0
    P = np.clip(Pr, 0.0, 1.0)
    out["sd_total"] = np.sqrt(_by_gene(P * (1 - P) * total[:, None] ** 2, gene_of, G)).ravel()
    out["expected_variants"] = _by_gene(Pr, gene_of, G).ravel()
    gene_prob = _gene_type_probabilities(Pr, types, traits, gene_of, G)
    null = types.index(NULL_TYPE) if NULL_TYPE in types else None
    signal = total if null is None else (1.0 - Pr[:, null]) * total
    magnitude = np.bincount(gene_of, signal, minlength=G)
    out["gene_prob"] = gene_prob.ravel()
    out["gene_score"] = (gene_prob * magnitude[:, None]).ravel()
    return out


def _gene_type_probabilities(Pr: np.ndarray, types: list[str], traits: list[str], gene_of: np.ndarray,
                             G: int) -> np.ndarray:
    """(G, T) probability that a gene is of each type, from its variants' type probabilities.

    Trait t is involved in gene g with probability ``q_gt = max_v P(v involves t)`` (the lower
    Frechet bound of the union over the gene's variants: variants of a gene are in LD, so their
    probabilities are not independent); traits are combined as independent:
    ``P(g of type A) = prod_{t in A} q_gt prod_{t not in A} (1 - q_gt)``. Per trait, shrinkage can put
    a shared signal on different tagging variants of a gene (one variant carries the T1 effect, its
    neighbour the T2 effect), which a variant-level sum counts as two specific signals.
    """
    p = len(traits)
    subsets = {type_name(s, traits): set(s) for r in range(p + 1) for s in itertools.combinations(range(p), r)}
    unknown = [t for t in types if t not in subsets]
    if unknown:
        raise InputError(f"type_probabilities: column {unknown[0]!r} is not an association type of traits {traits}")
    involves = np.zeros((len(types), p))
    for j, name in enumerate(types):
        involves[j, sorted(subsets[name])] = 1.0
    per_trait = np.clip(Pr @ involves, 0.0, 1.0)  # (rows, p) P(variant involves t)
    q = np.zeros((G, p))
    for t in range(p):
        np.maximum.at(q[:, t], gene_of, per_trait[:, t])
    out = np.ones((G, len(types)))
    for j, name in enumerate(types):
        for t in range(p):
            out[:, j] *= q[:, t] if t in subsets[name] else 1.0 - q[:, t]
    return out


def _by_gene(values: np.ndarray, gene_of: np.ndarray, G: int) -> np.ndarray:
    """(G, T) sums of the (rows, T) values over each gene's rows."""
    return np.stack([np.bincount(gene_of, values[:, j], minlength=G) for j in range(values.shape[1])], axis=1)


def _hard_type_scores(B: np.ndarray, traits: list[str], cats: list[str], lab_r: np.ndarray, gmap: GeneMap,
                      gene_of: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """The reference's type scores: each variant counts fully for its cluster's category."""
    p = B.shape[1]
    K = len(cats)
    G = len(gmap.indices)
    types = sorted(set(cats))
    type_of_cluster = np.array([types.index(c) for c in cats] + [len(types)])  # last = unclustered
    tkey = gene_of * (len(types) + 1) + type_of_cluster[np.where(lab_r < 0, K, lab_r)]
    absb = np.abs(B[rows])
    sums = np.stack([np.bincount(tkey, absb[:, t], minlength=G * (len(types) + 1)) for t in range(p)], axis=-1)
    sums = sums.reshape(G, len(types) + 1, p)[:, : len(types)]
    gi2, ti2 = np.meshgrid(np.arange(G), np.arange(len(types)), indexing="ij")
    type_scores = pd.DataFrame({"GENE": gmap.genes["GENE"].to_numpy()[gi2.ravel()],
                                "type": np.asarray(types, dtype=object)[ti2.ravel()]})
    for t, name in enumerate(traits):
        type_scores[f"abs_{name}"] = sums[:, :, t].ravel()
    type_scores["abs_total"] = sums.sum(axis=2).ravel()
    type_scores["sd_total"] = 0.0
    counts = np.bincount(tkey, minlength=G * (len(types) + 1)).reshape(G, len(types) + 1)[:, : len(types)]
    type_scores["expected_variants"] = counts.ravel().astype(np.float64)
    return type_scores
