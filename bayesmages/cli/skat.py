"""``bayesmages skat``: SKAT, burden, SKAT-O or ecSKAT for every variant set of a file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesmages.cli._common import add_common, add_out, output_file, run_metadata
from bayesmages.errors import InputError, SeparationError
from bayesmages.io.genotypes import SAMPLE_ID_ALIASES

if TYPE_CHECKING:
    import pandas as pd


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``skat`` sub-command."""
    p = sub.add_parser(
        "skat",
        help="rare-variant set tests: SKAT, burden, SKAT-O, ecSKAT",
        description=(
            "Fit the null model once (y ~ 1 + covariates) and test every variant set. Conventions follow "
            "R SKAT 2.2.5. Samples are matched by id (IID/sample/ID columns) when the phenotype file has one, "
            "else by row order; samples with a missing phenotype or covariate are dropped."
        ),
    )
    p.add_argument("--genotypes", required=True, type=Path,
                   help="PLINK .bed (with .bim/.fam) or .pgen (with .pvar/.psam), read by the workers one set at a "
                        "time; or a CSV of 0/1/2 or dosages (read whole)")
    p.add_argument("--phenotype", required=True, type=Path, help="table with the phenotype (and a sample id)")
    p.add_argument("--pheno-col", default=None, help="phenotype column (default: the only non-id column)")
    p.add_argument("--covariates", type=Path, default=None, help="table of covariates (and a sample id)")
    p.add_argument("--sets", required=True, type=Path, help="variant sets: columns SET, SNP")
    p.add_argument("--trait", choices=("continuous", "binary"), default="continuous")
    p.add_argument("--test", choices=("skat", "burden", "skat-o", "acat-v", "acat-o", "ecskat"), default="skat")
    p.add_argument("--method", choices=("exact", "davies", "liu", "liu.mod"), default=None,
                   help="null distribution: exact tails (default) or R SKAT's davies / liu / liu.mod")
    p.add_argument("--compat", choices=("R",), default=None,
                   help="compute p-values exactly as R SKAT 2.2.5 does (its numbers, including its errors)")
    p.add_argument("--maf-masks", nargs="+", type=float, default=None, metavar="MAF",
                   help="ACAT-O: MAF upper bounds, each mask tested and combined (e.g. 0.01 0.001)")
    p.add_argument("--acat-ecskat", action="store_true", help="ACAT-O: include ecSKAT among the combined tests")
    p.add_argument("--weights-beta", nargs=2, type=float, default=(1.0, 25.0), metavar=("A1", "A2"),
                   help="Beta(a1, a2) MAF weights (default 1 25)")
    p.add_argument("--impute", choices=("fixed", "bestguess", "random"), default="fixed")
    p.add_argument("--adjustment", action=argparse.BooleanOptionalAction, default=None,
                   help="binary small-sample moment adjustment (default: on when n < 2000, as R SKAT)")
    p.add_argument("--method-bin", choices=("hybrid", "er", "spa", "asymptotic"), default=None,
                   help="binary traits: efficient resampling (er), saddlepoint-adjusted scores (spa), ER for sets "
                        "with few (expected) carriers and SPA otherwise (hybrid), or R SKAT()'s moment-adjusted / "
                        "asymptotic test (asymptotic; miscalibrated with rare variants and few cases); default: "
                        "hybrid for skat, burden, skat-o and ecskat, asymptotic with --compat R and for acat-v/acat-o")
    p.add_argument("--kinship", type=Path, default=None,
                   help="related samples: square kinship/GRM table, first column the sample ids and one column per "
                        "sample id (EMMAX null model of R SKAT; continuous traits)")
    p.add_argument("--estimate-maf", type=int, choices=(1, 2), default=1,
                   help="R's estimate_MAF: MAFs (weights, imputation, flipping) from all genotyped samples (1, "
                        "default) or from those with phenotype and covariates only (2)")
    p.add_argument("--train-fraction", type=float, default=0.3, help="ecSKAT training fraction (default 0.3)")
    p.add_argument("--objective", choices=("standardized", "bound"), default="standardized",
                   help="ecSKAT weight-learning objective")
    add_out(p, "results table (.csv, .tsv, .txt, optionally .gz, or .parquet with pyarrow); run metadata goes "
            "to <out stem>.run.json next to it")
    add_common(p, workers=True)
    p.set_defaults(func=run)
    return p


def _id_column(df: Any) -> str | None:
    from bayesmages.io.tables import find_column

    return find_column(list(df.columns), SAMPLE_ID_ALIASES)


def _load_kinship(path: Path, samples: np.ndarray) -> np.ndarray:
    """The kinship matrix of ``samples`` (in their order) from a square table with an id column."""
    from bayesmages.io import read_table

    df = read_table(path, what="kinship")
    kid = _id_column(df) or df.columns[0]
    rows = df[kid].astype(str).tolist()
    cols = [str(c) for c in df.columns if c != kid]
    if sorted(rows) != sorted(cols):
        raise InputError(f"{path}: the kinship table's row ids (column {kid}) and column names must be the same "
                         f"sample ids; found {len(rows)} rows and {len(cols)} columns that differ")
    pos_r = {s: i for i, s in enumerate(rows)}
    missing = [s for s in samples if s not in pos_r]
    if missing:
        raise InputError(f"{path}: sample {missing[0]!r} (genotyped, with phenotype) is not in the kinship table "
                         f"({len(missing)} missing)")
    try:
        K = df[[c for c in df.columns if c != kid]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: kinship values must be numeric") from None
    pos_c = {s: j for j, s in enumerate(cols)}
    return K[np.ix_([pos_r[s] for s in samples], [pos_c[s] for s in samples])]


def _load_inputs(
    args: argparse.Namespace,
) -> tuple[Any, np.ndarray, np.ndarray, pd.DataFrame | None, np.ndarray, str, np.ndarray | None]:
    """Genotypes, variant ids, phenotype and covariates of the kept samples, the kept mask, their source, K.

    Genotypes are an opened PLINK fileset (read later, per set, by the workers) or a CSV's matrix.
    """
    from bayesmages.io import is_plink_fileset, open_genotypes, read_genotypes, read_table
    from bayesmages.io.tables import numeric_column

    # PLINK files stay on disk: workers read each set's columns; only ids are read here
    geno: Any = open_genotypes(args.genotypes) if is_plink_fileset(args.genotypes) else read_genotypes(args.genotypes)
    ph = read_table(args.phenotype, what="phenotype")
    pid = _id_column(ph)
    cols = [c for c in ph.columns if c != pid and c.upper() != "FID"]
    if args.pheno_col is not None:
        if args.pheno_col not in ph.columns:
            raise InputError(
                f"{args.phenotype}: phenotype column {args.pheno_col!r} not found; found {list(ph.columns)}"
            )
        pcol = args.pheno_col
    elif len(cols) == 1:
        pcol = cols[0]
    else:
        raise InputError(f"{args.phenotype}: several candidate phenotype columns {cols}; choose one with --pheno-col")
    y = numeric_column(ph, pcol, args.phenotype, allow_nan=True)
    if args.trait == "binary":
        bad = np.flatnonzero(np.isfinite(y) & (y != 0) & (y != 1))
        if bad.size:
            raise InputError(f"{args.phenotype}: column {pcol} must be coded 0/1 for --trait binary, found "
                             f"{float(y[bad[0]]):g} at row {bad[0] + 1}")
    source = f"{args.phenotype} column {pcol}"
    samples = np.asarray(geno.samples, dtype=str)
    if pid is not None:
        pos = {s: i for i, s in enumerate(ph[pid].astype(str))}
        rows = np.array([pos.get(s, -1) for s in samples])
        keep = rows >= 0
        if not keep.any():
            raise InputError(f"{args.phenotype}: no sample id in column {pid} matches the genotype samples")
        y = np.where(keep, y[np.maximum(rows, 0)], np.nan)
    elif y.size != samples.size:
        raise InputError(f"{args.phenotype}: {y.size} rows but {samples.size} genotyped samples (and no id column)")
    X = None
    if args.covariates is not None:
        cv = read_table(args.covariates, what="covariate")
        cid = _id_column(cv)
        ccols = [c for c in cv.columns if c != cid and c.upper() != "FID"]
        if not ccols:
            raise InputError(f"{args.covariates}: no covariate columns")
        Xc = np.column_stack([numeric_column(cv, c, args.covariates, allow_nan=True) for c in ccols])
        source += f" with covariates {args.covariates} columns {ccols}"
        if cid is not None:
            pos = {s: i for i, s in enumerate(cv[cid].astype(str))}
            rows = np.array([pos.get(s, -1) for s in samples])
            X = np.where((rows >= 0)[:, None], Xc[np.maximum(rows, 0)], np.nan)
        elif Xc.shape[0] != samples.size:
            raise InputError(f"{args.covariates}: {Xc.shape[0]} rows but {samples.size} genotyped samples")
        else:
            X = Xc
    ok = np.isfinite(y) & (np.isfinite(X).all(1) if X is not None else True)
    if ok.sum() < 3:
        raise InputError("skat: fewer than 3 samples have a phenotype (and covariates)")
    G = geno if hasattr(geno, "ref") else geno.G  # all genotyped samples: --estimate-maf 1 takes MAFs from all
    # a DataFrame keeps the covariate column names, which fit_null's messages then use
    import pandas as pd

    Xok = None if X is None else pd.DataFrame(X[ok], columns=ccols)
    K = None if args.kinship is None else _load_kinship(args.kinship, samples[ok])
    return G, np.asarray(geno.variants, dtype=str), y[ok], Xok, ok, source, K


def _worker_summary(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker process: units and sets run, CPU seconds, and its peak resident memory (MB) as it reported."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for u in units:
        w = out.setdefault((u["host"], u["pid"]), {"host": u["host"], "pid": u["pid"], "units": 0, "sets": 0,
                                                   "cpu_s": 0.0, "peak_rss_mb": 0.0})
        w["units"] += 1
        w["sets"] += u["n_sets"]
        w["cpu_s"] = round(w["cpu_s"] + u["cpu_s"], 3)
        w["peak_rss_mb"] = max(w["peak_rss_mb"], u["peak_rss_mb"] or 0.0)
    return list(out.values())


def run(args: argparse.Namespace) -> int:
    """Run the set tests and write the table and run.json."""
    from bayesmages.io import write_json, write_table
    from bayesmages.skat import read_sets, run_sets

    started = time.perf_counter()
    sidecar = args.out.with_name(args.out.stem + ".run.json")
    output_file(args, sidecar)
    if args.kinship is not None and args.trait != "continuous":
        raise InputError("--kinship: the related-samples (EMMAX) null model is for --trait continuous")
    if args.method_bin not in (None, "asymptotic") and args.trait != "binary":
        raise InputError(f"--method-bin {args.method_bin}: needs --trait binary")
    G, variants, y, X, ok, source, K = _load_inputs(args)
    dropped = int((~ok).sum())
    sets = read_sets(args.sets)
    try:
        table = run_sets(
            G, variants, sets, y, X, trait=args.trait, test=args.test, weights_beta=tuple(args.weights_beta),
            method=args.method, adjustment=args.adjustment, method_bin=args.method_bin, kinship=K,
            estimate_maf=args.estimate_maf, included=ok if dropped else None, impute=args.impute,
            train_fraction=args.train_fraction, objective=args.objective, seed=args.seed, workers=args.workers,
            scheduler=args.scheduler, progress=not args.quiet, compat=args.compat, maf_masks=args.maf_masks,
            acat_ecskat=args.acat_ecskat,
        )
    except SeparationError as exc:  # the covariates' columns are named; say which file they are in
        if args.covariates is None:
            raise InputError(f"null model of {source} ({y.size} samples): {exc}") from None
        raise InputError(f"{args.covariates}: {exc}") from None
    except InputError as exc:
        msg = str(exc)
        if not msg.startswith(("fit_null:", "kinship:")):
            raise
        # The null model sees arrays only; say which file and columns it was fitted to.
        if msg.startswith("kinship:"):
            raise InputError(f"{args.kinship}: {msg.removeprefix('kinship:').strip()}") from None
        detail = msg.removeprefix("fit_null:").strip()
        raise InputError(f"null model of {source} ({y.size} samples): {detail}") from None
    write_table(table, args.out)
    from bayesmages.skat.set_test import resolve_method_bin

    # what --method-bin's default resolved to (the table's method column names it per set too)
    used = resolve_method_bin(args.method_bin, args.trait, "skat" if args.test == "ecskat" else args.test,
                              args.compat)
    meta = run_metadata(args, started, n_samples=int(y.size), n_samples_dropped=dropped, n_sets=len(sets),
                        workers=_worker_summary(table.attrs.get("units", [])), method_bin_used=used)
    write_json(meta, sidecar)
    if not args.quiet:
        print(f"{len(table)} sets tested ({args.test}); results written to {args.out}")
    return 0
