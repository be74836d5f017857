"""``bayesmages cluster``: cluster variants by their multi-trait shrunk effects (dp_mixture)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bayesmages.cli._common import add_common, add_out, output_dir, run_metadata

_ID_ALIASES = ("SNP", "ID", "RSID", "VARIANT_ID", "MARKERNAME")
_EFFECT_ALIASES = ("BETA_SHRUNK", "BETA_TILDE", "SHRUNK", "BETA", "EFFECT")
_SD_ALIASES = ("SD", "SD_SHRUNK", "POSTERIOR_SD")
_NOT_TRAITS = {"SNP", "ID", "RSID", "VARIANT_ID", "MARKERNAME", "CHR", "CHROM", "POS", "BP", "A1", "A2", "N", "SE",
               "TRAIT"}


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``cluster`` sub-command."""
    p = sub.add_parser(
        "cluster",
        help="cluster variants by multi-trait shrunk effects (stick-breaking DP mixture)",
        description=(
            "Fit the dp_mixture model to shrunk effects: either one file per trait (columns SNP and beta_shrunk, "
            "or BETA; optional sd), one wide file (SNP plus one numeric column per trait), or one long file "
            "(SNP, trait, beta_shrunk). Writes variants.csv (cluster labels and per-variant association-type "
            "probabilities p_<type> of every variant), clusters.csv, figures/ and run.json."
        ),
    )
    p.add_argument("--effects", type=Path, nargs="+", required=True, metavar="FILE", help="shrunk-effects file(s)")
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    p.add_argument("--traits", nargs="+", default=None, metavar="NAME",
                   help="trait names (default: file names, or column names of a wide file)")
    p.add_argument("--truncation", type=int, default=20, help="K, the truncation of the process (default 20)")
    p.add_argument("--concentration", type=float, default=0.5, help="fixed stick-breaking alpha (default 0.5)")
    p.add_argument("--covariance-prior", choices=["wishart", "lkj"], default="wishart")
    p.add_argument("--method", choices=["svi", "map"], default="svi", help="mean-field SVI (default) or MAP")
    p.add_argument("--restarts", type=int, default=5, help="restarts fitted together (default 5)")
    p.add_argument("--keep-mass", type=float, default=0.99, help="cumulative weight of kept clusters (default 0.99)")
    p.add_argument("--select", choices=["quantile", "absolute", "posterior", "all"], default="all",
                   help="which variants are clustered (default all; see bayesmages.cluster.select_variants)")
    p.add_argument("--threshold", type=float, default=None, help="|effect| threshold for --select absolute")
    p.add_argument("--quantile", type=float, default=0.9, help="per-trait quantile for --select quantile")
    p.add_argument("--z", type=float, default=1.96, help="|mean| > z sd for --select posterior")
    p.add_argument("--noise", action="store_true",
                   help="use the sd column as per-variant noise: N(0, Sigma_k + diag(sd^2)) (slower)")
    add_common(p)
    p.set_defaults(func=run)
    return p


def _find(columns: Any, aliases: tuple[str, ...]) -> str | None:
    lookup = {str(c).upper(): c for c in columns}
    return next((lookup[a] for a in aliases if a in lookup), None)


def read_effects(paths: list[Path], traits: list[str] | None) -> tuple[Any, Any, Any]:
    """Read shrunk effects into (ids, effects DataFrame, sd DataFrame or None), aligned by SNP.

    Raises InputError naming the file and column for missing columns, duplicated SNPs,
    non-numeric values, or files that share no SNP.
    """
    import pandas as pd

    from bayesmages.errors import InputError
    from bayesmages.io import read_table
    from bayesmages.io.tables import numeric_column

    def ids_of(df: pd.DataFrame, path: Path) -> pd.Index:
        col = _find(df.columns, _ID_ALIASES)
        if col is None:
            raise InputError(f"{path}: no variant id column (one of {list(_ID_ALIASES)})")
        ids = df[col].astype(str)
        dup = ids[ids.duplicated()]
        if not dup.empty:
            raise InputError(f"{path}: variant {dup.iloc[0]!r} appears more than once in column {col}")
        return pd.Index(ids, name="SNP")

    effects, sds = [], []
    if len(paths) == 1:
        path = paths[0]
        df = read_table(path, what="shrunk-effects table")
        index = ids_of(df, path) if _find(df.columns, ("TRAIT",)) is None else None
        trait_col = _find(df.columns, ("TRAIT",))
        if trait_col is not None:  # long format: SNP, trait, beta_shrunk[, sd]
            eff = _find(df.columns, _EFFECT_ALIASES)
            if eff is None:
                raise InputError(f"{path}: a long table needs an effect column (one of {list(_EFFECT_ALIASES)})")
            idc = _find(df.columns, _ID_ALIASES)
            if idc is None:
                raise InputError(f"{path}: no variant id column (one of {list(_ID_ALIASES)})")
            df = df.assign(**{eff: numeric_column(df, eff, path)})
            if df.duplicated([idc, trait_col]).any():
                raise InputError(f"{path}: a (SNP, trait) pair appears more than once")
            order = pd.unique(df[idc])  # keep the file's variant order (pivot sorts)
            # pandas-stubs omit the object/extension arrays of labels that pd.unique returns, which .loc accepts
            wide = df.pivot(index=idc, columns=trait_col, values=eff).loc[order]  # type: ignore[index]
            if wide.isna().any().any():
                raise InputError(f"{path}: some variants lack an effect for some trait")
            wide.index = wide.index.astype(str).rename("SNP")
            sd_col = _find(df.columns, _SD_ALIASES)
            sd = df.pivot(index=idc, columns=trait_col, values=sd_col).loc[wide.index.values] if sd_col else None
            if sd is not None:
                sd.index = wide.index
            out_eff, out_sd = wide, sd
        else:
            cols = [c for c in df.columns if str(c).upper() not in _NOT_TRAITS and not str(c).upper().startswith("SD")]
            if not cols:
                raise InputError(f"{path}: no effect columns besides the id/position columns")
            out_eff = pd.DataFrame({c: numeric_column(df, c, path) for c in cols}, index=index)
            out_sd = None
    else:
        for path in paths:
            df = read_table(path, what="shrunk-effects table")
            index = ids_of(df, path)
            eff = _find(df.columns, _EFFECT_ALIASES)
            if eff is None:
                raise InputError(f"{path}: no effect column (one of {list(_EFFECT_ALIASES)})")
            # The trait is named by the file's single 'trait' value (shrink output), else by the file name.
            tcol = _find(df.columns, ("TRAIT",))
            named: list[str] = list(df[tcol].astype(str).unique()) if tcol is not None else []
            name = str(named[0]) if len(named) == 1 else path.stem.split(".")[0]
            effects.append(pd.Series(numeric_column(df, eff, path), index=index, name=name))
            sd_col = _find(df.columns, _SD_ALIASES)
            sds.append(pd.Series(numeric_column(df, sd_col, path), index=index) if sd_col else None)
        names = [e.name for e in effects]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None and traits is None:
            raise InputError(f"--effects: several files give the trait name {dup!r}; name the traits with --traits")
        common = effects[0].index
        for e in effects[1:]:
            common = common.intersection(e.index, sort=False)
        if common.empty:
            raise InputError(f"the effects files {[str(p) for p in paths]} share no variant (SNP) ids")
        out_eff = pd.concat([e.loc[common] for e in effects], axis=1)
        given_sds = [s for s in sds if s is not None]
        out_sd = pd.concat([s.loc[common] for s in given_sds], axis=1) if len(given_sds) == len(sds) else None
    if traits is not None:
        if len(traits) != out_eff.shape[1]:
            raise InputError(f"--traits has {len(traits)} names but the effects have {out_eff.shape[1]} traits")
        out_eff.columns = traits
    out_eff.columns = [str(c) for c in out_eff.columns]
    if out_sd is not None:
        out_sd.columns = out_eff.columns
    return out_eff.index, out_eff, out_sd


def run(args: argparse.Namespace) -> int:
    """Read effects, select variants, fit dp_mixture, write tables, figures and run.json."""
    import warnings

    import numpy as np
    import pandas as pd

    from bayesmages.cluster import select_variants
    from bayesmages.errors import ConvergenceWarning, InputError, PruningWarning
    from bayesmages.io import write_json, write_table
    from bayesmages.registry import get_model

    started = time.perf_counter()
    out = output_dir(args)
    ids, effects, sd = read_effects(list(args.effects), args.traits)
    if (args.noise or args.select == "posterior") and sd is None:
        raise InputError("--noise and --select posterior need an sd column in the effects file(s)")
    mask = select_variants(effects.to_numpy(), None if sd is None else sd.to_numpy(), rule=args.select,
                           threshold=args.threshold, quantile=args.quantile, z=args.z)
    if mask.sum() <= effects.shape[1]:
        raise InputError(f"only {int(mask.sum())} variants pass --select {args.select}; too few to cluster")
    data: Any = effects[mask]
    if args.noise:
        data = {"effects": effects[mask], "sd": sd[mask].to_numpy()}
    model = get_model("dp_mixture", truncation=args.truncation, concentration=args.concentration,
                      covariance_prior=args.covariance_prior, restarts=args.restarts, keep_mass=args.keep_mass)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", PruningWarning)
        model.fit(data, method=args.method, seed=args.seed, progress=not args.quiet)
    notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    pruning = [str(w.message) for w in caught if issubclass(w.category, PruningWarning)]
    if pruning and not args.quiet:
        print(f"warning: {pruning[0]}")
    variants = model.variant_table(ids=list(ids[mask]), types=False)
    full = pd.DataFrame({"SNP": list(ids)}).merge(variants, on="SNP", how="left")
    full["selected"] = mask
    full["category"] = full["category"].fillna("not clustered")
    full["cluster"] = full["cluster"].astype("Int64")
    full["pruned_label_change"] = full["pruned_label_change"].astype("boolean")
    # Association types of every variant, clustered or not (the null level comes from all of them).
    probs = model.association_types(effects.to_numpy(), sd=None if sd is None else sd.to_numpy(), seed=args.seed)
    full["type"] = probs.columns.to_numpy(dtype=object)[probs.to_numpy().argmax(1)]
    full["type_prob"] = probs.to_numpy().max(1)
    for name in probs.columns:
        full[f"p_{name}"] = probs[name].to_numpy()
    for name in effects.columns:
        full[f"effect_{name}"] = effects[name].to_numpy()
    clusters = model.cluster_table()
    with out.build() as tmp:
        write_table(full, tmp / "variants.csv")
        write_table(clusters, tmp / "clusters.csv")
        (tmp / "figures").mkdir()
        fig = model.plot_clusters()
        fig.savefig(tmp / "figures" / "clusters.png", dpi=110)
        fig = model.plot_elbo()
        fig.savefig(tmp / "figures" / "elbo.png", dpi=100)
        write_json(run_metadata(
            args, started,
            n_variants=len(ids), n_clustered=int(mask.sum()), traits=list(effects.columns),
            n_clusters=model.n_components_, categories=model.categories_,
            weights=np.round(model.weights_, 6).tolist(),
            restart_elbos=None if model.restart_elbos_ is None else model.restart_elbos_.tolist(),
            restart_agreement=None if model.restart_agreement_ is None else model.restart_agreement_.tolist(),
            best_restart=model.best_restart_, fit_seconds=model.fit_seconds_, convergence_notes=notes,
            pruning_notes=pruning, pruned_label_changes=int(model.pruned_label_change_.sum()),
            type_counts={str(k): int(v) for k, v in full["type"].value_counts().items()},
        ), tmp / "run.json")
    if not args.quiet:
        # Significant digits, not decimals: cluster variances of shrunk effects are often ~1e-5.
        print(clusters.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"results written to {args.out.resolve()}")
    return 0
