"""Multi-trait association types: the paper's Fig. 2E-G protocol, previous rule vs per-variant probabilities (issue 13).

Run: ``python bench/multitrait.py [--quick] [--reps2 30] [--reps3 20]`` or ``--tables-only``.

Data are made here, independently of ``bayesmages.simulate.multitrait``, with the LD machinery of
``bench/_gene_sims.py``: the real UK Biobank block of ../shared/data/ld (when present) plus 6 msprime blocks of
600 variants; genes tile the blocks (10-40 variants, gaps 0-15). Per replicate, 10% of the genes are causal, each
of a type drawn uniformly from the non-empty sets of traits (two traits: T1-specific, T2-specific, shared; three
traits: seven types); 1-3 causal variants per gene; a specific gene's variants have N(0, 1) effects on its trait,
a shared gene's have correlated effects (one factor, correlation ~ U(-0.8, 0.8), signs included) on its traits.
Each trait is scaled to h2 = 0.01, summary statistics follow RSS (z ~ N(R lambda sqrt(n), R), n = 300,000),
and every trait is shrunk with the pretrained shrinker (public API).

Scoring (the paper's Fig. 2E-G): genes ranked by the sum of |shrunk effect| of their variants of a type;
average precision against the genes truly of that type. Methods, on the same fits:

* ``previous``: the pipeline before issue 13: ``dp_mixture`` on the variants above the 90% quantile of
  |effect| in any trait, cluster categories by ``categorize_clusters`` (non-prioritised when the trace is
  < 5% of the largest), gene score = sum of |effect| of the variants labelled with a cluster of that type;
* ``previous, null_trace_fraction=0``: the same without the 5% rule;
* ``new: variant-level sum``: per-variant type probabilities of every variant (``DPMixture.association_types``,
  noise from the shrinker's sd), gene score = expected sum of |effect| of the gene's variants of the type
  (``abs_total`` of ``genes.multitrait.summarize``);
* ``new: gene-level type``: the probability that the gene is of the type (traits involved by any of its
  variants) x its expected signal (``gene_score``).

Also: per-variant calibration of the type probabilities (reliability over probability bins, against the causal
truth: a variant's true type is the set of traits where its causal effect is non-zero), a null GWAS (no causal
variant), the calibration of each claim a probability makes with ``susie_rss`` shrinkage (``reliability``: the
association-signal type ``p_<type>`` against causal-or-LD-tag truth, and ``causal_p_<type>`` = ``p_<type>`` x PIP
against the causal truth), the package's demo at seeds 0-3 with the LD leakage of every trait-specific gene
(``demo``), the noise models and libraries tried and not adopted, on the bench seed and a held-out layout
(``alternatives``), and the cost of the pipeline's multi-trait step on 1,000,000 variants x 4 traits.

Writes ``bench/results/multitrait.json`` and ``bench/results/multitrait.md`` (generated from the JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bayesmages as bm
from bayesmages.cluster import categorize_clusters, select_variants
from bayesmages.cluster.types import association_types as association_type_names
from bayesmages.cluster.types import type_name
from bayesmages.genes.multitrait import summarize

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("previous", "previous, null_trace_fraction=0", "new: variant-level sum", "new: gene-level type")
H2 = 0.01
BINS = np.linspace(0.0, 1.0, 11)


def _types(p: int) -> list[tuple[int, ...]]:
    return [c for r in range(1, p + 1) for c in itertools.combinations(range(p), r)]


def simulate(p: int, layout: tuple, sampler, rng: np.random.Generator, null: bool = False,
             method: str = "nn") -> dict:
    """One replicate: shrunk effects, sds, se, true effects and the gene types (index into ``_types(p)``; -1 none).

    ``method="susie"`` shrinks with ``susie_rss`` and also returns its per-trait PIPs (``pip``)."""
    from _gene_sims import N_GWAS

    blocks, gmap, _ = layout
    m = sum(R.shape[0] for R in blocks)
    starts = np.r_[0, np.cumsum([R.shape[0] for R in blocks])]
    G = len(gmap)
    kinds = _types(p)
    lam = np.zeros((m, p))
    gtype = np.full(G, -1)
    if not null:
        causal = rng.choice(G, size=max(2, round(0.1 * G)), replace=False)
        for g in causal:
            A = kinds[int(rng.integers(len(kinds)))]
            ix = gmap.indices[g]
            c = rng.choice(ix, size=min(ix.size, int(rng.integers(1, 4))), replace=False)
            if len(A) == 1:
                lam[c, A[0]] = rng.normal(size=c.size)
            else:
                rho = rng.uniform(-0.8, 0.8)
                u = rng.normal(size=c.size)
                for j, t in enumerate(A):
                    sign = 1.0 if j == 0 else np.sign(rho)
                    lam[c, t] = sign * np.sqrt(abs(rho)) * u + np.sqrt(1 - abs(rho)) * rng.normal(size=c.size)
            gtype[g] = kinds.index(A)
    se = np.full(m, 1 / np.sqrt(N_GWAS))
    cuts = starts[1:-1]
    beta, sd, pip, beta_hat = np.zeros((m, p)), np.zeros((m, p)), np.zeros((m, p)), np.zeros((m, p))
    for t in range(p):
        b = lam[:, t]
        if b.any():
            gv = sum(b[s:s + R.shape[0]] @ R @ b[s:s + R.shape[0]] for s, R in zip(starts, blocks))
            lam[:, t] = b * np.sqrt(H2 / gv)
        z = sampler.z(lam[:, t] * np.sqrt(N_GWAS), rng)
        beta_hat[:, t] = z * se
        out = bm.shrink.shrink(np.split(z * se, cuts), np.split(se, cuts), blocks, method=method,
                               n=N_GWAS if method == "susie" else None)
        beta[:, t] = out.beta_shrunk.to_numpy()
        sd[:, t] = out.sd.to_numpy()
        if "pip" in out:
            pip[:, t] = out["pip"].to_numpy()
    return {"beta": beta, "sd": sd, "se": np.tile(se[:, None], (1, p)), "true": lam, "gtype": gtype, "pip": pip,
            "beta_hat": beta_hat}


def evaluate(rep: dict, p: int, layout: tuple, seed: int, steps: int) -> dict:
    """AP per type for every method, plus the new method's (probability, truth) pairs for calibration."""
    _, gmap, _ = layout
    names = [f"T{t + 1}" for t in range(p)]
    X = rep["beta"]
    mask = select_variants(X, rule="quantile", quantile=0.9)
    model = bm.get_model("dp_mixture", truncation=20, restarts=5, trait_names=names)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[mask], seed=seed, num_steps=steps)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        probs = model.association_types(X, sd=rep["sd"], se=rep["se"], seed=seed)
        types_s = time.perf_counter() - t0
    labels = np.full(X.shape[0], -1)
    labels[mask] = model.labels_
    scores = {}
    for method, ntf in (("previous", 0.05), ("previous, null_trace_fraction=0", 0.0)):
        cats = categorize_clusters(model.covariances_, names, null_trace_fraction=ntf)
        scores[method] = summarize(X, gmap, labels, cats, trait_names=names).type_scores
    soft = summarize(X, gmap, labels, model.categories_, trait_names=names, type_probabilities=probs).type_scores
    scores["new: variant-level sum"] = soft
    scores["new: gene-level type"] = soft.assign(abs_total=soft["gene_score"])
    kinds = _types(p)
    genes = gmap.genes["GENE"].to_numpy()
    ap = {}
    tiebreak = 1e-12 * np.random.default_rng(seed).random(genes.size)  # a type nobody has scores at random
    for method, sc in scores.items():
        ap[method] = {}
        for i, A in enumerate(kinds):
            positive = rep["gtype"] == i
            if not positive.any():
                continue
            name = type_name(A, names)
            s = sc[sc["type"] == name].set_index("GENE")["abs_total"].reindex(genes).fillna(0.0).to_numpy()
            ap[method][name] = float(average_precision_score(positive, s + tiebreak))
    base = {type_name(A, names): float(np.mean(rep["gtype"] == i)) for i, A in enumerate(kinds)
            if (rep["gtype"] == i).any()}
    truth = rep["true"] != 0
    index = [np.array([probs.columns.get_loc(type_name(np.flatnonzero(r), names)) for r in t])
             for t in (truth, _tagged(truth, layout[0]))]
    misses = _miss_causes(probs.to_numpy(), list(probs.columns), truth, layout[0], "association")
    return {"ap": ap, "baseline": base, "fit_seconds": fit_s, "types_seconds": types_s,
            "n_clustered": int(mask.sum()), "probs": probs.to_numpy(), "true_index": index[0],
            "association_index": index[1], "top_bin_specific_calls": misses}


def _tagged(causal: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """(m, p) association truth: trait t is involved at a variant causal for t or an LD tag (r^2 >= ``TAG_R2``) of a
    causal variant of t in its block."""
    tagged = causal.copy()
    starts = np.r_[0, np.cumsum([R.shape[0] for R in blocks])]
    for a, b, R in zip(starts[:-1], starts[1:], blocks):
        for t in range(causal.shape[1]):
            c = np.flatnonzero(causal[a:b, t])
            if c.size:
                tagged[a:b, t] |= (R[:, c] ** 2).max(1) >= TAG_R2
    return tagged


def _fit_two_traits(X: np.ndarray, names: list[str], seed: int, steps: int):
    """``dp_mixture`` fitted to the variants above the 90% quantile of |effect| in any trait; (mask, model)."""
    mask = select_variants(X, rule="quantile", quantile=0.9)
    model = bm.get_model("dp_mixture", truncation=20, restarts=5, trait_names=names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[mask], seed=seed, num_steps=steps)
    return mask, model


def _onehot_truth(truth: np.ndarray, types: list[str], names: list[str]) -> np.ndarray:
    """(N, T) indicator of each variant's true type from its (N, p) involvement in each trait."""
    Y = np.zeros((truth.shape[0], len(types)))
    Y[np.arange(truth.shape[0]), [types.index(type_name(np.flatnonzero(row).tolist(), names)) for row in truth]] = 1.0
    return Y


#: causes of a wrong top-bin call of a trait-specific type (``_miss_causes``), in the order shown
MISS_CAUSES = ("correct", "shared: the other trait's causal effect is on this variant",
               "shared: the other trait's signal is an LD tag (r^2 >= 0.5) of a causal variant",
               "not causal: an LD tag (r^2 >= 0.5) of a causal variant of the trait",
               "not associated: LD with a causal variant of the trait, 0.05 < r^2 < 0.5",
               "not associated: no causal variant of the trait with r^2 > 0.05", "other")


def _miss_causes(P: np.ndarray, types: list[str], causal: np.ndarray, blocks: list[np.ndarray],
                 truth: str, top: float = 0.9) -> dict[str, int]:
    """Variants given a trait-specific type with probability >= ``top``, counted by why the call is right or wrong.

    ``truth`` is ``"association"`` (trait t involved when causal for t or an LD tag, r^2 >= ``TAG_R2``, of a causal
    variant of t) or ``"causal"``. Every call of ``specific:<t>`` falls in one of ``MISS_CAUSES``.
    """
    p = causal.shape[1]
    names = [f"T{t + 1}" for t in range(p)]
    tagged = _tagged(causal, blocks)
    r2 = np.zeros(causal.shape)
    starts = np.r_[0, np.cumsum([R.shape[0] for R in blocks])]
    for a, b, R in zip(starts[:-1], starts[1:], blocks):
        for t in range(p):
            c = np.flatnonzero(causal[a:b, t])
            if c.size:
                r2[a:b, t] = (R[:, c] ** 2).max(1)
    involved = tagged if truth == "association" else causal
    counts = dict.fromkeys(MISS_CAUSES, 0)
    for t in range(p):
        for v in np.flatnonzero(P[:, types.index(type_name([t], names))] >= top):
            others = [o for o in range(p) if o != t]
            if involved[v, t] and not involved[v, others].any():
                cause = MISS_CAUSES[0]
            elif involved[v, t] and causal[v, others].any():
                cause = MISS_CAUSES[1]
            elif involved[v, t]:
                cause = MISS_CAUSES[2]
            elif involved[v].any():
                cause = MISS_CAUSES[6]
            elif tagged[v, t]:
                cause = MISS_CAUSES[3]
            elif r2[v, t] > 0.05:
                cause = MISS_CAUSES[4]
            else:
                cause = MISS_CAUSES[5]
            counts[cause] += 1
    return counts


def _sum_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    return {k: int(sum(c[k] for c in parts)) for k in MISS_CAUSES}


def _bins(q: np.ndarray, y: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in itertools.pairwise(BINS):
        sel = (q >= lo) & ((q < hi) if hi < 1 else (q <= hi))
        if sel.sum():
            rows.append({"bin": f"[{lo:.1f}, {hi:.1f}{']' if hi == 1 else ')'}", "n": int(sel.sum()),
                         "mean_predicted": float(q[sel].mean()), "observed": float(y[sel].mean())})
    return rows


def reliability(probs: list[np.ndarray], true_index: list[np.ndarray]) -> dict:
    """Pooled over variants and types: per probability bin, mean predicted probability vs observed frequency."""
    P = np.concatenate(probs)
    Y = np.zeros_like(P)
    Y[np.arange(P.shape[0]), np.concatenate(true_index)] = 1.0
    rows = _bins(P.ravel(), Y.ravel())
    signal = P[:, 0] < 0.5  # variants typed as some association: calibration among the interesting ones
    return {"bins": rows, "max_gap_bins_n>=100": max((abs(r["mean_predicted"] - r["observed"]) for r in rows
                                                      if r["n"] >= 100), default=float("nan")),
            "n_variants": int(P.shape[0]), "n_called_signal": int(signal.sum()),
            "true_signal_among_called": float((np.concatenate(true_index)[signal] != 0).mean()) if signal.any()
            else float("nan"),
            "expected_signal_among_called": float(1 - P[signal, 0].mean()) if signal.any() else float("nan")}


def case(p: int, n_rep: int, seed: int, steps: int) -> dict:
    from _gene_sims import Sampler, make_layout

    layout = make_layout(6, seed)
    sampler = Sampler(layout[0])
    rng = np.random.default_rng(seed + p)
    reps, probs, truth, assoc = [], [], [], []
    for r in range(n_rep):
        rep = simulate(p, layout, sampler, rng)
        res = evaluate(rep, p, layout, seed=1000 * p + r, steps=steps)
        probs.append(res.pop("probs"))
        truth.append(res.pop("true_index"))
        assoc.append(res.pop("association_index"))
        reps.append(res)
        print(json.dumps({"p": p, "rep": r, **{m: {k: round(v, 3) for k, v in res["ap"][m].items()}
                                               for m in METHODS}}), flush=True)
    names = [f"T{t + 1}" for t in range(p)]
    types = [type_name(A, names) for A in _types(p)]
    summary = {}
    for m in METHODS:
        summary[m] = {}
        for t in types:
            vals = [r["ap"][m][t] for r in reps if t in r["ap"][m]]
            summary[m][t] = {"mean_ap": float(np.mean(vals)), "se": float(np.std(vals, ddof=1) / np.sqrt(len(vals))),
                             "n_replicates": len(vals)}
    baseline = {t: float(np.mean([r["baseline"][t] for r in reps if t in r["baseline"]])) for t in types}
    return {"traits": p, "n_replicates": n_rep, "blocks": layout[2], "genes": len(layout[1]), "summary": summary,
            "random_baseline": baseline, "reliability": reliability(probs, truth),
            "association_claim": _claim_table(np.concatenate(probs), _onehot(assoc, 2**p),
                                              association_type_names(names)),
            "top_bin_specific_calls": _sum_counts([r.pop("top_bin_specific_calls") for r in reps]),
            "mean_fit_seconds": float(np.mean([r["fit_seconds"] for r in reps])),
            "mean_types_seconds": float(np.mean([r["types_seconds"] for r in reps])),
            "mean_clustered": float(np.mean([r["n_clustered"] for r in reps]))}


#: a non-causal variant is an LD tag of trait t's signal when r^2 >= this with a causal variant of t
TAG_R2 = 0.5
#: bins with fewer predictions are shown but not held to the 0.1 goal (binomial sd up to 0.07 at 50)
MIN_BIN = 50


def _onehot(index: list[np.ndarray], T: int) -> np.ndarray:
    ix = np.concatenate(index)
    Y = np.zeros((ix.size, T))
    Y[np.arange(ix.size), ix] = 1.0
    return Y


def _claim_table(P: np.ndarray, Y: np.ndarray, types: list[str]) -> dict:
    """Per type: reliability bins of ``P[:, j]`` against the 0/1 truth ``Y[:, j]``, and the largest gap."""
    out = {}
    for j, name in enumerate(types):
        rows = _bins(P[:, j], Y[:, j])
        gaps = [abs(r["mean_predicted"] - r["observed"]) for r in rows if r["n"] >= MIN_BIN]
        out[name] = {"bins": rows, "max_gap": max(gaps, default=float("nan"))}
    return out


def reliability_case(n_rep: int, seed: int, steps: int) -> dict:
    """Two traits shrunk with ``susie_rss``: reliability of each claim a per-variant type probability makes.

    * ``association``: ``P(type A | x)`` (the ``p_<type>`` columns) against the type of the association signal a
      variant carries: trait t is involved when the variant is causal for t or an LD tag (r^2 >= ``TAG_R2``) of a
      causal variant of t in its block;
    * ``association vs causal``: the same probabilities against the causal truth (what they do not claim);
    * ``causal``: ``causal_type_probabilities(P, pip)`` (the ``causal_p_<type>`` columns) against the causal truth.
    """
    from _gene_sims import Sampler, make_layout

    from bayesmages.cluster.types import causal_type_probabilities

    layout = make_layout(6, seed)
    blocks = layout[0]
    sampler = Sampler(blocks)
    rng = np.random.default_rng(seed + 7)
    names = ["T1", "T2"]
    Ps, Pcs, Yas, Ycs = [], [], [], []
    misses: dict[str, list[dict[str, int]]] = {"association": [], "causal": []}
    for r in range(n_rep):
        rep = simulate(2, layout, sampler, rng, method="susie")
        X = rep["beta"]
        _, model = _fit_two_traits(X, names, r, steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # as the pipeline does with susie: unselected effects floored at (1 - pip) se^2
            probs = model.association_types(X, sd=rep["sd"], se=rep["se"], pip=rep["pip"], seed=r)
        P = probs.to_numpy()
        types = list(probs.columns)
        causal = rep["true"] != 0
        onehot = [_onehot_truth(truth, types, names) for truth in (_tagged(causal, blocks), causal)]
        Ps.append(P)
        Pcs.append(causal_type_probabilities(P, rep["pip"]))
        misses["association"].append(_miss_causes(P, types, causal, blocks, "association"))
        misses["causal"].append(_miss_causes(Pcs[-1], types, causal, blocks, "causal"))
        Yas.append(onehot[0])
        Ycs.append(onehot[1])
        print(json.dumps({"reliability rep": r, "variants typed as signal": int((P[:, 0] < 0.5).sum()),
                          "causal": int(causal.any(1).sum())}), flush=True)
    P, Pc, Ya, Yc = (np.concatenate(a) for a in (Ps, Pcs, Yas, Ycs))
    return {"n_replicates": n_rep, "n_variants": int(P.shape[0]), "tag_r2": TAG_R2, "min_bin": MIN_BIN,
            "shrinker": "susie_rss", "top_bin_specific_calls": {k: _sum_counts(v) for k, v in misses.items()},
            "claims": {
                "association": _claim_table(P, Ya, types),
                "association vs causal": _claim_table(P, Yc, types),
                "causal": _claim_table(Pc, Yc, types)}}


def demo_case(seeds: list[int], types_from: str = "auto") -> dict:
    """``bayesmages demo`` at each seed (its own simulation and the default pipeline): the recovery table, and
    for every trait-specific gene how much of the other trait's signal reaches its variants through LD.

    ``types_from="deconvolved"`` runs the multi-trait step with the types computed from LD-deconvolved
    observations (``pipeline.steps.cluster_fits(types_from=...)``, given the simulation's LD blocks: the
    runner does not pass the LD to that step); ``"auto"`` is the pipeline as it is.

    Per specific gene g of trait t: ``own_z``, the expected marginal z of its own signal,
    ``sqrt(n lambda_g' R_gg lambda_g)``; ``other_trait_leak_z``, the largest expected |z| in the other trait at
    g's variants, all of it from causal variants outside g (``sqrt(n) |(R lambda_other)_v|``); its rank among all
    genes under its type's ``gene_score``.
    """
    from functools import partial

    from bayesmages.cli.demo import DEMO_SIMULATION, recovery
    from bayesmages.pipeline import run as run_pipeline
    from bayesmages.pipeline import steps
    from bayesmages.simulate.multitrait import simulate_multitrait

    out = []
    original = steps.cluster_fits
    for seed in seeds:
        sim = simulate_multitrait(2, 5, variants_per_block=400, seed=seed, **DEMO_SIMULATION)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim.write_files(Path(tmp))
            if types_from != "auto":
                steps.cluster_fits = partial(original, blocks=sim.ld_blocks, types_from=types_from)
            try:
                result = run_pipeline([Path(tmp) / f"gwas_{t}.tsv" for t in sim.traits], Path(tmp) / "ld",
                                      Path(tmp) / "genes.tsv", Path(tmp) / "results", traits=sim.traits, seed=seed)
            finally:
                steps.cluster_fits = original
        table = recovery(result, sim.gene_truth)
        lam, n = sim.beta, float(DEMO_SIMULATION["n_gwas"])
        ez = np.zeros_like(lam)
        for rng_, R in zip(sim.block_ranges, sim.ld_blocks):
            ez[rng_] = np.sqrt(n) * (R @ lam[rng_])
        scores = result.genes["gene_type_scores"]
        truth = sim.gene_truth.set_index(sim.gene_truth["GENE"].astype(str))["TYPE"].astype(str)
        sh = result.shrinkage
        snps = sim.variant_truth["SNP"].astype(str)
        raw_z, shrunk_z = (sh.assign(v=sh[col] / sh["se"]).pivot(index="SNP", columns="trait", values="v")
                           .reindex(index=snps, columns=list(sim.traits)).to_numpy()
                           for col in ("beta_hat", "beta_shrunk"))
        genes_ = []
        for _, g in sim.gene_truth[sim.gene_truth["TYPE"].str.startswith("specific")].iterrows():
            t = sim.traits.index(g["TYPE"].split(":")[1])
            ix = np.flatnonzero(sim.variant_truth["GENE"].to_numpy() == g["GENE"])
            blk = next(i for i, r in enumerate(sim.block_ranges) if r.start <= ix[0] < r.stop)
            loc = ix - sim.block_ranges[blk].start
            R = sim.ld_blocks[blk]
            own = float(np.sqrt(n * lam[ix, t] @ R[np.ix_(loc, loc)] @ lam[ix, t]))
            by = scores[scores["type"] == g["TYPE"]].set_index("GENE")["gene_score"]
            above = by[by > by.get(g["GENE"], 0.0)].index.astype(str)
            genes_.append({"gene": g["GENE"], "type": g["TYPE"], "own_z": own,
                           "own_max_raw_z": float(np.abs(raw_z[ix, t]).max()),
                           "own_max_shrunk_z": float(np.abs(shrunk_z[ix, t]).max()),
                           "ranked_above_by_truth": {k: int(v) for k, v in truth.loc[above].value_counts().items()},
                           "other_trait_leak_z": float(np.abs(ez[ix, 1 - t]).max()),
                           "rank": int((by > by.get(g["GENE"], 0.0)).sum()) + 1, "n_genes": int(by.size),
                           "gene_prob": float(scores[(scores["GENE"] == g["GENE"]) & (scores["type"] == g["TYPE"])]
                                              ["gene_prob"].iloc[0])})
        rows = [{"type": r["truth"].removeprefix("type "), "n_positive": int(r["n_positive"]),
                 "baseline": float(r["baseline"]), "average_precision": float(r["average_precision"])}
                for _, r in table.iterrows() if str(r["truth"]).startswith("type ")]
        out.append({"seed": seed, "types": rows, "specific_genes": genes_})
        ratios = {r["type"]: round(r["average_precision"] / r["baseline"], 1) for r in rows}
        print(json.dumps({"demo seed": seed, "types_from": types_from, **ratios}), flush=True)
    return {"seeds": out, "types_from": types_from}


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


def _demo_md(d: dict) -> list[str]:
    recovery_rows = [[str(s["seed"]), r["type"], str(r["n_positive"]), f"{r['baseline']:.3f}",
                      f"{r['average_precision']:.3f}", f"{r['average_precision'] / r['baseline']:.1f}x",
                      "yes" if r["average_precision"] >= 4 * r["baseline"] else "NO"]
                     for s in d["seeds"] for r in s["types"]]
    def above(g: dict) -> str:
        found = g.get("ranked_above_by_truth")
        return "-" if found is None else (", ".join(f"{v} {k}" for k, v in sorted(found.items())) or "none")

    def zs(g: dict) -> str:
        return f"{g['own_max_raw_z']:.1f} / {g['own_max_shrunk_z']:.1f}" if "own_max_raw_z" in g else "-"

    gene_rows = [[str(s["seed"]), g["gene"], g["type"], f"{g['own_z']:.1f}", zs(g), f"{g['other_trait_leak_z']:.1f}",
                  f"{g['other_trait_leak_z'] / max(g['own_z'], 1e-12):.2f}", f"{g['rank']} of {g['n_genes']}",
                  f"{g['gene_prob']:.3f}", above(g)] for s in d["seeds"] for g in s["specific_genes"]]
    return ["## The demo (`bayesmages demo --seed S`)", "",
            "Average precision of each type's `gene_score` ranking, and its ratio to the baseline (the fraction of "
            "positives). Goal (issue 13): every type >= 4x its baseline at seeds 0-3.", "",
            *_md_table(["seed", "type", "genes of the type", "baseline", "average precision", "ratio", ">= 4x"],
                       recovery_rows),
            "", "Trait-specific genes: `own z` = expected marginal z of the gene's own signal; `other-trait leak z` = "
            "the largest expected |z| of the other trait at the gene's variants, from causal variants of other genes "
            "in LD; `own max abs z, raw / shrunk`: the largest |beta_hat / se| and |beta_shrunk / se| in the gene's "
            "own trait over its variants (what the GWAS shows and what the shrinker leaves for the typing); `rank` "
            "among all genes by the type's `gene_score`; `ranked above`: the true types of the genes ranked above "
            "it.", "",
            *_md_table(["seed", "gene", "type", "own z", "own max abs z, raw / shrunk", "other-trait leak z",
                        "leak / own", "rank", "gene_prob", "ranked above"], gene_rows), ""]


#: noise models and libraries measured against the defaults (``alternatives_case``); none is the default
ALTERNATIVES = ("default", "noise se^2 (neither the shrinker's sd nor the PIP floor)",
                "noise min(sd^2, se^2) (capped at se^2)", "shared components with unequal scales",
                "causal claim with PIP_any = max_t PIP_t",
                "observations LD-deconvolved, noise se^2 x block misfit (types_from='deconvolved')",
                "nn censored: PIP floor, PIP = P(abs(z) > 4) for z centred at the shrunk z",
                "nn censored + marginal: also noise (1 - PIP) max(z_marginal^2 - 16, 0) se^2",
                "nn hybrid: shrunk effect where that PIP > 0.5, else the LD-deconvolved observation and its noise")


def _detection_pip(X: np.ndarray, se: np.ndarray) -> np.ndarray:
    """A PIP for a shrinker without one (``nn``): the chance that a z-score centred at the shrunk effect's
    ``|beta_shrunk| / se`` clears ``DETECTION_Z``, so an effect shrunk to about zero counts as censored
    (``variant_noise``'s PIP floor)."""
    from scipy.stats import norm

    from bayesmages.cluster.types import DETECTION_Z

    u = np.abs(X) / se
    return norm.sf(DETECTION_Z - u) + norm.cdf(-DETECTION_Z - u)


def _with_unequal_shared(lib, level: np.ndarray, grid: list[float]):
    """``lib`` plus, for every shared type A, the diagonal components ``diag(s_t^2 level_t, t in A)`` for every
    combination of unequal scales s_t of ``grid`` (the canonical components have one scale for all traits of A)."""
    from dataclasses import replace

    from bayesmages.cluster.typelib import _subsets

    p = level.size
    mats, tix, src = list(lib.covariances), list(lib.type_index), list(lib.cluster)
    for A in (a for a in _subsets(p) if len(a) > 1):
        for combo in itertools.product(grid, repeat=len(A)):
            if len(set(combo)) > 1:
                u = np.zeros((p, p))
                u[list(A), list(A)] = np.square(combo) * level[list(A)]
                mats.append(u)
                tix.append(lib.types.index(type_name(A, lib.trait_names)))
                src.append(-1)
    w = np.r_[lib.weights, np.full(len(mats) - lib.weights.size, 1e-3)]
    return replace(lib, covariances=np.array(mats), type_index=np.array(tix), cluster=np.array(src),
                   weights=w / w.sum())


def _top_bin(P: np.ndarray, Y: np.ndarray) -> dict:
    """Signal types pooled: the bin of predictions >= 0.9, and the largest gap over bins with >= ``MIN_BIN``."""
    q, y = P[:, 1:].ravel(), Y[:, 1:].ravel()
    rows = _bins(q, y)
    top = q >= 0.9
    return {"n": int(top.sum()), "mean_predicted": float(q[top].mean()) if top.any() else float("nan"),
            "observed": float(y[top].mean()) if top.any() else float("nan"),
            "max_gap": max((abs(r["mean_predicted"] - r["observed"]) for r in rows if r["n"] >= MIN_BIN),
                           default=float("nan"))}


def alternatives_case(n_rep: int, seeds: list[int], steps: int) -> dict:
    """Two traits: the default noise model and library against the alternatives of ``ALTERNATIVES``, on the same
    fits, with the ``nn`` and ``susie`` shrinkers at each layout seed (the bench seed and held-out seeds).

    Per configuration: the top bin (>= 0.9, signal types pooled) of ``p_<type>`` against the association truth and,
    with ``susie``, of ``causal_p_<type>`` against the causal truth, and the gene-level average precision."""
    from _gene_sims import Sampler, make_layout

    from bayesmages.cluster import types as ty
    from bayesmages.cluster.observations import deconvolved_observations

    names = ["T1", "T2"]
    kinds = _types(2)
    all_types = association_type_names(names)
    out = []
    for seed in seeds:
        layout = make_layout(6, seed)
        sampler = Sampler(layout[0])
        genes = layout[1].genes["GENE"].to_numpy()
        tiebreak = 1e-12 * np.random.default_rng(seed).random(genes.size)  # as in evaluate()
        for method in ("nn", "susie"):
            rng = np.random.default_rng(seed + 31)
            acc: dict[str, dict[str, list]] = {a: {k: [] for k in ("P", "C", "Ya", "Yc", "ap")} for a in ALTERNATIVES}
            for r in range(n_rep):
                rep = simulate(2, layout, sampler, rng, method=method)
                X = rep["beta"]
                mask, model = _fit_two_traits(X, names, r, steps)
                pip = rep["pip"] if method == "susie" else None
                causal = rep["true"] != 0
                truths = [_onehot_truth(t, all_types, names) for t in (_tagged(causal, layout[0]), causal)]
                labels = np.full(X.shape[0], -1)
                labels[mask] = model.labels_
                for alt in ALTERNATIVES:
                    if alt.startswith("nn") and method != "nn":
                        continue
                    se2 = rep["se"] ** 2
                    obs, nulls = X, (0.0,)
                    if alt.startswith("observations"):
                        obs, nv = deconvolved_observations(rep["beta_hat"], rep["se"], X, layout[0])
                    elif alt.startswith("noise se^2"):
                        nv = se2
                    elif alt.startswith("nn hybrid"):
                        xd, nd = deconvolved_observations(rep["beta_hat"], rep["se"], X, layout[0])
                        swap = _detection_pip(X, rep["se"]) <= 0.5
                        obs = np.where(swap, xd, X)
                        nv0 = ty.variant_noise(X, sd=rep["sd"], se=rep["se"])
                        nv = np.where(swap, np.broadcast_to(nd, X.shape), nv0)
                    elif alt.startswith("nn censored"):
                        det = _detection_pip(X, rep["se"])
                        nv = ty.variant_noise(X, sd=rep["sd"], se=rep["se"], pip=det)
                        if "marginal" in alt:  # a strong marginal z the shrinker set to ~0: the signal may be here
                            zm2 = (rep["beta_hat"] / rep["se"]) ** 2
                            nv = np.maximum(nv, (1.0 - det) * np.maximum(zm2 - ty.DETECTION_Z**2, 0.0) * se2)
                    else:
                        nv = ty.variant_noise(X, sd=rep["sd"], se=rep["se"], pip=pip)
                        if alt.startswith("noise min"):
                            floor = ty.variant_noise(X, sd=np.zeros_like(X), se=rep["se"], pip=pip)
                            nv = np.maximum(np.minimum(rep["sd"] ** 2, se2), floor)
                    grid = ty.canonical_grid(obs, nv)
                    lib = ty.type_library(model.all_weights_, model.all_covariances_, names, nv,
                                          min_signal=model.type_min_signal, min_weight=1.0 / mask.sum(),
                                          scales=model.type_scales, null_scales=nulls, canonical_scales=grid)
                    if alt.startswith("shared components"):
                        lib = _with_unequal_shared(lib, np.median(nv, axis=0), grid)
                    lib = ty.fit_type_weights(obs, lib, nv, seed=r)
                    P = ty.type_probabilities(obs, lib, nv)
                    if pip is not None and alt.startswith("causal claim"):
                        C = P * pip.max(1)[:, None]
                        C[:, 0] = 1.0 - C[:, 1:].sum(1)
                    else:
                        C = ty.causal_type_probabilities(P, pip) if pip is not None else P
                    soft = summarize(X, layout[1], labels, model.categories_, trait_names=names,
                                     type_probabilities=pd.DataFrame(P, columns=lib.types)).type_scores
                    ap = {}
                    for i, A in enumerate(kinds):
                        if (rep["gtype"] == i).any():
                            name = type_name(A, names)
                            score = soft[soft["type"] == name].set_index("GENE")["gene_score"]
                            ap[name] = float(average_precision_score(
                                rep["gtype"] == i, score.reindex(genes).fillna(0.0).to_numpy() + tiebreak))
                    for key, val in (("P", P), ("C", C), ("Ya", truths[0]), ("Yc", truths[1]), ("ap", ap)):
                        acc[alt][key].append(val)
                print(json.dumps({"alternatives": method, "seed": seed, "rep": r}), flush=True)
            for alt in ALTERNATIVES:
                if (alt.startswith("causal claim") and method != "susie") or (alt.startswith("nn") and method != "nn"):
                    continue
                a = acc[alt]
                row = {"seed": seed, "shrinker": method, "alternative": alt, "n_replicates": n_rep,
                       "association": _top_bin(np.concatenate(a["P"]), np.concatenate(a["Ya"])),
                       "mean_ap": {type_name(A, names): float(np.mean([d[type_name(A, names)] for d in a["ap"]
                                                                        if type_name(A, names) in d])) for A in kinds}}
                if method == "susie":
                    row["causal"] = _top_bin(np.concatenate(a["C"]), np.concatenate(a["Yc"]))
                # per type: the claim the probabilities make (susie: causal_p against causal; nn: p against association)
                Pt, Yt = (a["C"], a["Yc"]) if method == "susie" else (a["P"], a["Ya"])
                row["top_bin_per_type"] = {name: _top_bin(np.concatenate(Pt)[:, [0, j]], np.concatenate(Yt)[:, [0, j]])
                                           for j, name in enumerate(all_types) if j}
                out.append(row)
    return {"rows": out, "min_bin": MIN_BIN}


def _alternatives_md(d: dict) -> list[str]:
    def cell(b: dict | None) -> str:
        return "-" if b is None else f"{b['n']}: {b['mean_predicted']:.3f} / {b['observed']:.3f} ({b['max_gap']:.3f})"

    def per_type(r: dict) -> str:
        found = r.get("top_bin_per_type")
        return "-" if found is None else "; ".join(
            f"{k}: {b['n']}: {b['mean_predicted']:.3f} / {b['observed']:.3f}" for k, b in found.items() if b["n"])

    rows = [[str(r["seed"]), r["shrinker"], r["alternative"], cell(r["association"]), cell(r.get("causal")),
             per_type(r), " / ".join(f"{v:.3f}" for v in r["mean_ap"].values())] for r in d["rows"]]
    return ["## Alternatives measured (not defaults)", "",
            "Two traits, the same fits for every alternative; per layout seed (11 = the bench seed, others held out) "
            "and shrinker. Cells: predictions >= 0.9 (signal types pooled): number, mean predicted / observed, and "
            f"in brackets the largest gap over all pooled bins with >= {d['min_bin']} predictions. `top bin per type`: "
            "predictions >= 0.9 of each signal type, number: mean predicted / observed, of the claim the "
            "probabilities make (susie: `causal_p_<type>` against the causal truth; nn: `p_<type>` against the "
            "association truth). Last column: gene-level average precision (`gene_score`) for T1-specific / "
            "T2-specific / shared.", "",
            *_md_table(["seed", "shrinker", "alternative", "p_<type> vs association truth",
                        "causal_p_<type> vs causal truth", "top bin per type", "average precision"], rows), ""]


def null_case(n_rep: int, seed: int, steps: int) -> dict:
    """Null GWAS (no causal variant, two traits): how many variants and genes the new types call."""
    from _gene_sims import Sampler, make_layout

    layout = make_layout(6, seed)
    sampler = Sampler(layout[0])
    rng = np.random.default_rng(seed + 99)
    rows = []
    for r in range(n_rep):
        rep = simulate(2, layout, sampler, rng, null=True)
        X = rep["beta"]
        mask = select_variants(X, rule="quantile", quantile=0.9)
        model = bm.get_model("dp_mixture", truncation=20, restarts=5, trait_names=["T1", "T2"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[mask], seed=r, num_steps=steps)
            probs = model.association_types(X, sd=rep["sd"], se=rep["se"], seed=r)
        P = probs.to_numpy()
        cats = categorize_clusters(model.covariances_, ["T1", "T2"])
        rows.append({"mean_p_null": float(P[:, 0].mean()), "share_p_null_below_0.5": float((P[:, 0] < 0.5).mean()),
                     "expected_signal_variants": float((1 - P[:, 0]).sum()),
                     "previous_share_in_prioritised_clusters": float(np.mean(
                         [cats[k] != "non-prioritised" for k in model.labels_]) * mask.mean())})
    df = pd.DataFrame(rows)
    return {"n_replicates": n_rep, "variants": int(sum(R.shape[0] for R in layout[0])),
            **{k: float(v) for k, v in df.mean().items()}, "max_share_p_null_below_0.5":
            float(df["share_p_null_below_0.5"].max())}


def speed(n: int, p: int, seed: int) -> dict:
    """The pipeline's multi-trait step (``pipeline.steps.cluster_effects``: select, fit, type every variant,
    write variants.csv) on n variants x p traits of synthetic type-structured effects."""
    from bayesmages.pipeline.steps import cluster_effects

    rng = np.random.default_rng(seed)
    X = 0.01 * rng.normal(size=(n, p))
    kind = rng.integers(0, 2**p, size=n) * (rng.random(n) < 0.02)
    for t in range(p):
        hit = (kind >> t) & 1 == 1
        X[hit, t] += rng.normal(0, 0.1, size=hit.sum())
    se = rng.uniform(0.008, 0.012, size=(n, p))
    names = [f"T{t + 1}" for t in range(p)]
    effects = pd.DataFrame(X, columns=names, index=pd.Index([f"v{i}" for i in range(n)], name="SNP"))
    ses = pd.DataFrame(se, columns=names, index=effects.index)
    mask = select_variants(X, rule="quantile", quantile=0.9)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        info = cluster_effects(Path(tmp), effects, truncation=20, restarts=5, seed=seed, progress=False,
                               selected=mask, se=ses)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # the LD-deconvolved observations (types_from='deconvolved'): one product per block of 1,000 variants for
    # all traits; one AR(1) block (r = 0.9) stands for every block (the cost does not depend on its values)
    from bayesmages.cluster.observations import deconvolved_observations

    i = np.arange(1000)
    R = 0.9 ** np.abs(i[:, None] - i[None, :])
    t0 = time.perf_counter()
    deconvolved_observations(X + 0.01 * rng.normal(size=X.shape), se, X, [R] * (n // 1000))
    deconvolve_s = time.perf_counter() - t0
    return {"n_variants": n, "traits": p, "n_clustered": int(mask.sum()), "seconds": seconds, "cpu_seconds": cpu,
            "deconvolution_seconds": deconvolve_s,
            "load_average_at_end": list(os.getloadavg()),
            "n_clusters": info["n_clusters"], "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 + 2 replicates, 100,000 variants in the speed part")
    ap.add_argument("--reps2", type=int, default=30)
    ap.add_argument("--reps3", type=int, default=20)
    ap.add_argument("--null-reps", type=int, default=10)
    ap.add_argument("--reliability-reps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300, help="SVI steps of each dp_mixture fit")
    ap.add_argument("--alternatives-reps", type=int, default=16)
    ap.add_argument("--held-out-seeds", type=int, nargs="*", default=[5151],
                    help="layout seeds of the alternatives part besides --seed")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--parts", default="two,three,null,reliability,alternatives,demo,speed")
    ap.add_argument("--demo-seeds", default="0-11",
                    help="seeds of the demo part, 'a-b' or a comma list (issue 13's goal names 0-3)")
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args()
    if args.tables_only:
        for name, text in tables(RESULTS).items():
            (RESULTS / name).write_text(text)
        return
    parts = args.parts.split(",")
    reps2, reps3, nulls = (3, 2, 2) if args.quick else (args.reps2, args.reps3, args.null_reps)
    path = RESULTS / "multitrait.json"
    res = json.loads(path.read_text()) if path.exists() and not args.quick else {}
    t0 = time.perf_counter()
    if "two" in parts:
        res["two_traits"] = case(2, reps2, args.seed, args.steps)
    if "three" in parts:
        res["three_traits"] = case(3, reps3, args.seed, args.steps)
    if "null" in parts:
        res["null"] = null_case(nulls, args.seed, args.steps)
    if "alternatives" in parts:
        res["alternatives"] = alternatives_case(2 if args.quick else args.alternatives_reps,
                                                [args.seed, *args.held_out_seeds], args.steps)
    if "reliability" in parts:
        res["reliability"] = reliability_case(2 if args.quick else args.reliability_reps, args.seed, args.steps)
    if "demo" in parts:
        lo, _, hi = args.demo_seeds.partition("-")
        seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(x) for x in args.demo_seeds.split(",")]
        res["demo"] = demo_case([0, 1] if args.quick else seeds)
        res["demo_deconvolved"] = demo_case([0, 1] if args.quick else seeds, types_from="deconvolved")
    if "speed" in parts:
        res["speed"] = speed(100_000 if args.quick else 1_000_000, 4, args.seed)
    res["settings"] = {**res.get("settings", {}), "quick": args.quick, "seed": args.seed, "svi_steps": args.steps,
                       "h2": H2,
                       "bayesmages": bm.__version__, "cpus": os.cpu_count(),
                       "load_average_at_end": list(os.getloadavg()),
                       "seconds": round(time.perf_counter() - t0, 1), "parts": parts}
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "multitrait.md").write_text(render(res))


def _ap_table(c: dict) -> list[str]:
    types = list(c["random_baseline"])
    lines = ["| method | " + " | ".join(types) + " |", "|---" * (len(types) + 1) + "|",
             "| random ranking | " + " | ".join(f"{c['random_baseline'][t]:.3f}" for t in types) + " |"]
    for m in METHODS:
        cells = [f"{c['summary'][m][t]['mean_ap']:.3f} ± {c['summary'][m][t]['se']:.3f}" for t in types]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


_CLAIMS = {
    "association": "`p_<type>` against the type of the association signal (trait t involved when the variant is "
                   "causal for t or an LD tag, r^2 >= {r2}, of a causal variant of t): the claim these "
                   "probabilities make",
    "association vs causal": "`p_<type>` against the causal truth (trait t involved only when the variant itself is "
                             "causal for t): a claim these probabilities do not make",
    "causal": "`causal_p_<type>` = `p_<type>` x PIP (`causal_type_probabilities`) against the causal truth: the claim "
              "these make",
}


def _pooled(tables_: dict) -> list[dict]:
    """Bins of every signal type (all but the null) pooled: the bins share their edges, so counts add up."""
    acc: dict[str, list[float]] = {}
    for name, tab in tables_.items():
        if name == "non-prioritised":
            continue
        for b in tab["bins"]:
            a = acc.setdefault(b["bin"], [0.0, 0.0, 0.0])
            a[0] += b["n"]
            a[1] += b["n"] * b["mean_predicted"]
            a[2] += b["n"] * b["observed"]
    return [{"bin": k, "n": int(a[0]), "mean_predicted": a[1] / a[0], "observed": a[2] / a[0]}
            for k, a in sorted(acc.items())]


def _reliability_md(rel: dict) -> list[str]:
    out = ["## Calibration of each claim (two traits, susie_rss shrinkage)", "",
           f"{rel['n_replicates']} replicates of the two-trait simulation, every trait shrunk with `susie_rss` "
           f"(PIPs), {rel['n_variants']:,} variant rows. Per type and claim: probability bins, number of predictions, "
           "mean predicted probability and observed frequency of the type; then the signal types (all but "
           "non-prioritised) pooled. Goal (issue 13): observed within 0.1 of predicted; judged on bins with >= "
           f"{rel['min_bin']} predictions (the binomial sd is up to 0.07 at {rel['min_bin']}; smaller bins are "
           "shown, not judged).", ""]
    for claim, tables_ in rel["claims"].items():
        rows = [(name, b) for name, tab in tables_.items() for b in tab["bins"]]
        rows += [("signal types pooled", b) for b in _pooled(tables_)]
        cells = [[name, b["bin"], str(b["n"]), f"{b['mean_predicted']:.3f}", f"{b['observed']:.3f}",
                  ("yes" if abs(b["mean_predicted"] - b["observed"]) <= 0.1 else "NO") if b["n"] >= rel["min_bin"]
                  else "(few)"] for name, b in rows]
        judged = [abs(b["mean_predicted"] - b["observed"]) for _, b in rows if b["n"] >= rel["min_bin"]]
        out += [f"### {claim}", "", _CLAIMS[claim].replace("{r2}", f"{rel['tag_r2']:g}") + ".", "",
                *_md_table(["type", "bin", "predictions", "mean predicted", "observed", "within 0.1"], cells), "",
                f"Largest gap over the judged bins: {max(judged):.3f} "
                f"({'within' if max(judged) <= 0.1 else 'NOT within'} 0.1).", ""]
        calls = rel.get("top_bin_specific_calls", {}).get("causal" if claim == "causal" else "association")
        if calls and claim != "association vs causal":
            out += _calls_md(calls, "the causal truth" if claim == "causal" else "the association truth")
    return out


def _calls_md(calls: dict[str, int], truth: str) -> list[str]:
    """Why the top-bin calls of the trait-specific types are right or wrong (``_miss_causes``)."""
    n = sum(calls.values())
    if not n:
        return []
    rows = [[k, str(v), f"{v / n:.3f}"] for k, v in calls.items() if v or k == "correct"]
    return [f"Calls of a trait-specific type with probability >= 0.9, against {truth}, by why they are right or "
            "wrong (trait t is the called trait; r^2 to the nearest causal variant of t in the block):", "",
            *_md_table(["call", "variants", "share"], rows), ""]


def render(res: dict) -> str:
    """multitrait.md from the content of multitrait.json."""
    st = res["settings"]
    out = ["# Multi-trait association types (Fig. 2E-G protocol)", "",
           "Average precision (mean ± standard error over replicates) of ranking genes by the sum of |shrunk effect| "
           "of their variants of each type, against the genes truly of that type; same fits for every method. "
           "Goals (issue 13): >= 0.60 for each type on two traits, >= 0.50 on three.", ""]
    for key, title in (("two_traits", "Two traits"), ("three_traits", "Three traits")):
        if key not in res:
            continue
        c = res[key]
        out += [f"## {title}", "", f"{c['n_replicates']} replicates; {c['genes']} genes on {', '.join(c['blocks'])}; "
                f"dp_mixture on {c['mean_clustered']:.0f} variants on average (the 90% quantile rule), "
                f"{c['mean_fit_seconds']:.1f} s per fit, {c['mean_types_seconds']:.2f} s for the type probabilities.",
                "", *_ap_table(c), ""]
        rel = c["reliability"]
        out += ["Calibration of the per-variant type probabilities (new), pooled over variants and types, against "
                "the causal truth (a variant in LD with a causal one but not causal itself counts as "
                "non-prioritised):", "", "| bin | predictions | mean predicted | observed |", "|---|---|---|---|"]
        out += [f"| {b['bin']} | {b['n']} | {b['mean_predicted']:.3f} | {b['observed']:.3f} |" for b in rel["bins"]]
        out += ["", f"Largest gap over bins with >= 100 predictions: {rel['max_gap_bins_n>=100']:.3f} (those are the "
                "bins near 0 and 1, where almost all predictions fall; the intermediate bins hold too few predictions "
                "to check). Variants with P(non-prioritised) < 0.5: "
                f"{rel['n_called_signal']} of {rel['n_variants']}; causal among them "
                f"{rel['true_signal_among_called']:.3f}, while the probabilities say "
                f"{rel['expected_signal_among_called']:.3f}: against the causal truth the signal types are "
                "overconfident, because a non-causal variant that the shrinker leaves with a clear effect (LD with a "
                "causal variant) is typed like a signal. These probabilities claim the type of the association signal, "
                "not causality (on data drawn from the model they are calibrated, tests/test_cluster_types.py); "
                "'Calibration of each claim' below checks each claim against its own truth.", ""]
        if "association_claim" in c:
            pooled = _pooled(c["association_claim"])
            gaps = {k: v["max_gap"] for k, v in c["association_claim"].items()}
            out += ["The same probabilities (`p_<type>`, shrinker `nn`) against the truth they claim, the type of the "
                    "association signal (trait t involved when the variant is causal for t or an LD tag, r^2 >= "
                    f"{TAG_R2:g}, of a causal variant of t); signal types pooled:", "",
                    *_md_table(["bin", "predictions", "mean predicted", "observed"],
                               [[b["bin"], str(b["n"]), f"{b['mean_predicted']:.3f}", f"{b['observed']:.3f}"]
                                for b in pooled]), "",
                    "Largest gap per type over bins with >= " f"{MIN_BIN} predictions: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in gaps.items()) + ".", ""]
        if "top_bin_specific_calls" in c:
            out += _calls_md(c["top_bin_specific_calls"], "the association truth")
    if "null" in res:
        n = res["null"]
        out += ["## Null GWAS (no causal variant, two traits)", "",
                f"{n['n_replicates']} replicates of {n['variants']} variants: mean P(non-prioritised) "
                f"{n['mean_p_null']:.4f}; share of variants with P(non-prioritised) < 0.5: "
                f"{n['share_p_null_below_0.5']:.4f} (largest {n['max_share_p_null_below_0.5']:.4f}); expected "
                f"number of signal variants {n['expected_signal_variants']:.1f} per GWAS. The previous rule put "
                f"{n['previous_share_in_prioritised_clusters']:.3f} of all variants in prioritised clusters.", ""]
    if "reliability" in res:
        out += _reliability_md(res["reliability"])
    if "alternatives" in res:
        out += _alternatives_md(res["alternatives"])
    if "demo" in res:
        out += _demo_md(res["demo"])
    if "demo_deconvolved" in res:
        out += ["## The demo with the types from LD-deconvolved observations (not the default with `nn`)", "",
                "The same pipeline runs with `cluster_fits(types_from='deconvolved')` (see docs/cluster.md).", "",
                *_demo_md(res["demo_deconvolved"])[2:]]
    if "speed" in res:
        s = res["speed"]
        load = s.get("load_average_at_end", [float("nan")])[0]
        busy = ", so the wall time is inflated by other jobs; the CPU time is what the step needs"
        out += ["## Cost of the multi-trait step", "",
                f"`pipeline.steps.cluster_effects` (select, fit dp_mixture, type every variant, write variants.csv) "
                f"on {s['n_variants']:,} variants x {s['traits']} traits ({s['n_clustered']:,} clustered): "
                f"{s['seconds']:.1f} s wall, {s.get('cpu_seconds', float('nan')):.1f} s of CPU time (one thread; "
                f"the machine's load average at the end was {load:.1f} on 2 cores"
                f"{busy if load > 1.5 else ''}); goal: <= 120 s on 2 cores: "
                f"{'met' if s['seconds'] <= 120 else 'NOT met'} as measured."
                + (f" The LD-deconvolved observations (`types_from='deconvolved'`, one product per block of 1,000 "
                   f"variants for the {s['traits']} traits) add {s['deconvolution_seconds']:.1f} s."
                   if "deconvolution_seconds" in s else ""), ""]
    out += [f"{st['cpus']} CPUs shared with other jobs (load average at the end {st['load_average_at_end'][0]:.1f}); "
            f"{st['svi_steps']} SVI steps per fit; seed {st['seed']}; bayesmages {st['bayesmages']}."]
    return "\n".join(out) + "\n"


def tables(results: Path) -> dict[str, str]:
    """The Markdown of this benchmark, rebuilt from multitrait.json in ``results`` (nothing runs)."""
    return {"multitrait.md": render(json.loads((results / "multitrait.json").read_text()))}


if __name__ == "__main__":
    main()
