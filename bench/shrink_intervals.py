"""Which 90% interval: candidate rules for the shrink table's ``lower``/``upper``, nn and susie (issue 14).

The shrinkers' own posterior intervals cover the null variants (for susie an atom at 0) but miss the
causal effects too small or too shared to be detected. Candidates, all from the same fits:

* ``posterior``: the shrinker's own central interval (susie: quantiles of its mixture; nn: mean -/+ 1.645 sd);
* ``conditional, neighbours known``: ``c_j -/+ 1.645`` with ``c_j = z_j - sum_{k != j} R_jk E b_k``;
* ``conditional, exact under q`` (susie only): the posterior of the neighbours' sum
  ``sum_{k != j} R_jk b_k`` under the fitted approximation -- a mixture over which single effect sits on
  j, each effect's term with its exact mean and variance given that, the background's exact variance --
  added to the unit noise; quantiles of that mixture;
* ``conditional, independent`` (susie's rule; nn's until issue 14's calibration work;
  bayesmages/shrink/intervals.py): ``c_j -/+ 1.645 sqrt(1 + sum_{k != j} R_jk^2 var_k)`` with the marginal
  posterior variances;
* ``conditional (neighbours known) or marginal`` (nn only): the hull of ``conditional, neighbours known`` and
  the marginal ``z_j -/+ 1.645`` (``union_interval`` without variances);
* ``conditional, independent, or marginal`` (nn only; its rule now): the hull of ``conditional, independent``
  and the marginal interval (``union_interval``), chosen on separate msprime calibration simulations
  (bench/shrink_calibration.py);
* ``conditional, outward x3, or marginal`` (nn only; a candidate from bench/shrink_calibration.py): three
  times the neighbours' variances on the side of ``c_j`` away from zero, none on the side towards zero,
  hulled with the marginal interval.

Data: the settings and seeds of bench/shrink_susie.py (so the replicates are the same). susie's rule was
chosen on the msprime settings (``split = "tuning"``): smallest mean |coverage - 0.90| over all-variant
and causal coverage; the real UK Biobank block is reported as held out.

Usage: python bench/shrink_intervals.py [--quick] [--tables-only]
Writes bench/results/shrink_intervals.json and shrink_intervals.md (the Markdown only from the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.special import ndtri

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shrink_calibration import outward
from shrink_susie import REAL_LD, genotype_replicates, mismatch_ld, rss_replicates

import bayesmages as bm
from bayesmages.io import read_ld, write_json, write_text
from bayesmages.shrink import load_default
from bayesmages.shrink.intervals import conditional_interval, union_interval
from bayesmages.shrink.susie import SusieFit, mixture_quantiles
from bayesmages.shrink.susie_model import adjust_z, regularise_ld
from bayesmages.simulate.genotypes import simulate_ld_blocks

OUT = Path(__file__).resolve().parent / "results"
Q90 = float(ndtri(0.95))
RULES = {"susie": ("posterior", "conditional, neighbours known", "conditional, exact under q",
                   "conditional, independent"),
         "nn": ("posterior", "conditional, neighbours known", "conditional, independent",
                "conditional (neighbours known) or marginal", "conditional, independent, or marginal",
                "conditional, outward x3, or marginal")}
CHOSEN = {"susie": "conditional, independent", "nn": "conditional, independent, or marginal"}


def exact_q_mixture(fit: SusieFit, R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, m) weights, shifts and variances of ``S_j = sum_{k != j} R_jk (b_k + theta_k)`` under q.

    Components: no single effect on j, only effect l on j (SuSiE's weights). Given a component, an
    effect not on j sits on k with probability ``alpha_lk / (1 - alpha_lj)``. ``shift``: the component's
    mean of S_j minus the plug-in ``sum_{k != j} R_jk E(b_k + theta_k)``.
    """
    diag = np.diagonal(R)
    w, _, _ = fit.mixture()
    a, mu, s2 = fit.alpha[fit.active], fit.mu[fit.active], fit.s2[fit.active]
    m = fit.alpha.shape[1]
    theta_var = np.zeros(m)
    if fit.tau2 > 0:
        d, U = np.linalg.eigh(R)
        d = np.where(d > 1e-8 * d.max(), d, 0.0)  # as in fit_susie_rss
        post = 1.0 / (d + 1.0 / fit.tau2)
        U2 = U * U
        theta_var = U2 @ (d * d * post) - 2 * diag * (U2 @ (d * post)) + diag * diag * (U2 @ post)
    if not a.size:
        return w, np.zeros((1, m)), np.maximum(theta_var, 0.0)[None]
    first, second = a * mu, a * (mu * mu + s2)
    A = first @ R - first * diag
    B = second @ (R * R) - second * diag * diag
    rest = 1.0 - a
    ok = rest > 1e-12
    safe = np.where(ok, rest, 1.0)
    cm = np.where(ok, A / safe, 0.0)
    cv = np.where(ok, np.maximum(B / safe - cm**2, 0.0), 0.0)
    shift0 = (cm - A).sum(axis=0)
    var0 = cv.sum(axis=0) + theta_var
    return w, np.vstack([shift0[None], shift0[None] - cm]), np.maximum(np.vstack([var0[None], var0[None] - cv]), 0.0)


def susie_rules(b: np.ndarray, s: np.ndarray, R: np.ndarray, n: float, lam: float) -> dict:
    model = bm.get_model("susie_rss", ld_lambda=lam)
    model._fit_block(b, s, R, n)
    fit, unit = model.fit_, model.se_
    z, Rr = adjust_z(b / s, n), regularise_ld(R, lam)
    known = conditional_interval(z, Rr, fit.mean)
    w, shift, var = exact_q_mixture(fit, Rr)
    c = (known[0] + known[1]) / 2
    exact = mixture_quantiles(w, c[None] - shift, np.sqrt(1.0 + var), (0.05, 0.95))
    return {"posterior": (model.credible_lower_, model.credible_upper_),
            "conditional, neighbours known": (known[0] * unit, known[1] * unit),
            "conditional, exact under q": (exact[0] * unit, exact[1] * unit),
            "conditional, independent": (model.lower_, model.upper_), "_se": unit}


def _outward(z: np.ndarray, R: np.ndarray, mean: np.ndarray, var: np.ndarray, s: np.ndarray) -> tuple:
    lo, hi = conditional_interval(z, R, mean, var)
    lo, hi = outward((lo + hi) / 2, (hi - lo) / 2, z)
    return lo * s, hi * s


def nn_rules(model, b: np.ndarray, s: np.ndarray, R: np.ndarray) -> dict:
    mean, sd, lo, hi = model.predict_interval(b, s, R)
    known = conditional_interval(b / s, R, mean / s)
    indep = conditional_interval(b / s, R, mean / s, (sd / s) ** 2)
    hull_known = union_interval(b / s, R, mean / s)
    hull = union_interval(b / s, R, mean / s, (sd / s) ** 2)
    assert np.allclose(hull[0] * s, lo) and np.allclose(hull[1] * s, hi)  # the table's interval (kappa = 1)
    return {"posterior": (mean - Q90 * sd, mean + Q90 * sd),
            "conditional, neighbours known": (known[0] * s, known[1] * s),
            "conditional, independent": (indep[0] * s, indep[1] * s),
            "conditional (neighbours known) or marginal": (hull_known[0] * s, hull_known[1] * s),
            "conditional, independent, or marginal": (lo, hi),
            "conditional, outward x3, or marginal": _outward(b / s, R, mean / s, 3 * (sd / s) ** 2, s),
            "_se": s}


def score(truths: list[np.ndarray], outs: list[dict]) -> dict:
    T = np.concatenate(truths)
    causal = T != 0
    res = {}
    for rule in (k for k in outs[0] if not k.startswith("_")):
        lo = np.concatenate([o[rule][0] for o in outs])
        hi = np.concatenate([o[rule][1] for o in outs])
        hit = (lo <= T) & (T <= hi)
        se = np.concatenate([o["_se"] for o in outs])
        res[rule] = {"all": float(hit.mean()), "causal": float(hit[causal].mean()), "null": float(hit[~causal].mean()),
                     "median_width_se": float(np.median((hi - lo) / se))}
    return res


def run_setting(reps: list[tuple[np.ndarray, np.ndarray, np.ndarray]], R_fit: np.ndarray, n: float, nn_model,
                lam: float = 0.0) -> dict:
    truths = [t for t, _, _ in reps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n outside a method's range is part of what is measured
        sus = [susie_rules(b, s, R_fit, n, lam) for _, b, s in reps]
        nns = [nn_rules(nn_model, b, s, R_fit) for _, b, s in reps]
    return {"susie": score(truths, sus), "nn": score(truths, nns), "n_causal": int(sum((t != 0).sum() for t in truths))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 replicates per setting")
    parser.add_argument("--tables-only", action="store_true", help="rebuild shrink_intervals.md from its JSON")
    args = parser.parse_args()
    if args.tables_only:
        for name, text in tables(OUT).items():
            write_text(text, OUT / name)
        return 0
    if not REAL_LD.is_file():
        print(f"real LD block not found at {REAL_LD}; set BAYESMAGES_SHARED", file=sys.stderr)
        return 2
    started = time.perf_counter()
    reps, small = (3, 3) if args.quick else (20, 10)
    nn = load_default()
    results = []

    def add(split: str, ld: str, setting: str, res: dict) -> None:
        results.append({"split": split, "ld": ld, "setting": setting, **res})
        print(f"{split} | {ld} | {setting}: " + "; ".join(
            f"{meth} {rule} {v['all']:.3f}/{v['causal']:.3f}" for meth in RULES for rule, v in res[meth].items()),
            flush=True)

    # tuning: msprime LD (the seeds of bench/shrink_susie.py)
    R_ms = simulate_ld_blocks(1, 600, n_samples=2500, seed=424_242)[0]
    for label, pc, h2, seed in (("sparse 1%", 0.01, (0.005, 0.01), 11), ("polygenic 5%", 0.05, (0.02, 0.05), 12)):
        data = rss_replicates(R_ms, n=300_000, p_causal=pc, h2=h2, reps=small, seed=seed)
        add("tuning", "msprime", f"{label}, n = 300,000", run_setting(data, R_ms, 300_000, nn))
    for n_people in (574, 5000):
        for h2v in (0.05, 0.2):
            R, data = genotype_replicates(n_people, h2=h2v, reps=small, seed=n_people + int(h2v * 100))
            add("tuning", f"msprime genotypes, in-sample LD (n = {n_people:,})", f"1-5 causal, h2 = {h2v}",
                run_setting(data, R, n_people, nn))
    R_gwas, R_ref = mismatch_ld()
    data = rss_replicates(R_gwas, n=300_000, p_causal=0.01, h2=(0.005, 0.01), reps=small, seed=13)
    add("tuning", "msprime, LD mismatch (GWAS 5,000 vs panel 1,000)", "sparse 1%, panel LD",
        run_setting(data, R_ref, 300_000, nn))
    # held out: the real block
    R_real = read_ld(REAL_LD).R
    for n in (300_000, 50_000, 1_000_000):
        data = rss_replicates(R_real, n=n, p_causal=0.01, h2=(0.005, 0.01), reps=reps if n == 300_000 else small,
                              seed=n)
        add("held out", "UKB chr22 (real)", f"sparse 1%, n = {n:,}", run_setting(data, R_real, n, nn))
    for pc in (0.05, 0.2):
        data = rss_replicates(R_real, n=300_000, p_causal=pc, h2=(0.02, 0.05), reps=small, seed=int(pc * 1e3))
        add("held out", "UKB chr22 (real)", f"polygenic {pc:.0%}, n = 300,000", run_setting(data, R_real, 300_000, nn))
    out = {"results": results, "replicates": reps, "replicates_other": small, "quick": args.quick,
           "seconds_total": time.perf_counter() - started, "load_average_end": os.getloadavg()[0],
           "date_utc": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"}
    write_json(out, OUT / "shrink_intervals.json")
    write_text(render(out), OUT / "shrink_intervals.md")
    print(render(out))
    return 0


def tuning_scores(out: dict) -> dict[str, dict[str, float]]:
    """Per method and rule: mean |coverage - 0.9| of all-variant and causal coverage over the tuning settings."""
    dev: dict[str, dict[str, list[float]]] = {}
    for r in out["results"]:
        if r["split"] != "tuning":
            continue
        for meth in RULES:
            for rule, v in r[meth].items():
                dev.setdefault(meth, {}).setdefault(rule, []).extend([abs(v["all"] - 0.9), abs(v["causal"] - 0.9)])
    return {meth: {rule: float(np.mean(v)) for rule, v in d.items()} for meth, d in dev.items()}


def render(out: dict) -> str:
    """Markdown of the comparison (from its JSON)."""
    lines = [f"# Candidate 90% intervals for the shrink table ({out['date_utc']} UTC)", "",
             f"{out['replicates']} replicates in the real block's sparse n = 300,000 setting, "
             f"{out['replicates_other']} in the others (the data of bench/shrink_susie.py). Coverage over all / "
             "causal / null variants; width: median of (upper - lower) / se. The rule was chosen on the msprime "
             f"('tuning') settings; the real block is held out. Chosen: susie **{CHOSEN['susie']}**; nn "
             f"**{CHOSEN['nn']}** (from bench/shrink_calibration.py's msprime calibration simulations; nn's rule "
             "before was conditional, independent).", "",
             "| split | LD | setting | method | rule | coverage all / causal / null | median width (se) |",
             "|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        for meth in RULES:
            for rule, v in r[meth].items():
                mark = " (chosen)" if rule == CHOSEN[meth] else ""
                lines.append(f"| {r['split']} | {r['ld']} | {r['setting']} | {meth} | {rule}{mark} | "
                             f"{v['all']:.3f} / {v['causal']:.3f} / {v['null']:.3f} | {v['median_width_se']:.2f} |")
    lines += ["", "Choice criterion on the tuning settings, mean |coverage - 0.90| over all-variant and causal "
              "coverage (smaller is better): "
              + "; ".join(f"{meth}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(d.items(), key=lambda kv: kv[1]))
                          for meth, d in tuning_scores(out).items()) + ".",
              "", f"Total {out['seconds_total']:.0f} s (load average at the end {out['load_average_end']:.1f}, "
              "shared machine)."]
    return "\n".join(lines) + "\n"


def tables(results: Path) -> dict[str, str]:
    """The Markdown of this benchmark, rebuilt from ``shrink_intervals.json`` in ``results`` (nothing runs)."""
    return {"shrink_intervals.md": render(json.loads((results / "shrink_intervals.json").read_text()))}


if __name__ == "__main__":
    sys.exit(main())
