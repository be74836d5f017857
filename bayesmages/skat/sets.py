"""Many variant sets against one null fit: the SKAT-family gene-set runner.

Sets come from a CSV with columns ``SET`` and ``SNP`` (aliases: GENE/SET_ID and
VARIANT/VARIANT_ID/ID/RSID); genotypes from :func:`bayesmages.io.read_genotypes` (PLINK .bed or
CSV). The null model is fitted once per phenotype; each set is a work unit for
:func:`bayesmages.parallel.map_units` (serial, local processes or Dask).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import find_column, read_table
from bayesmages.skat.binary import BIN_METHODS
from bayesmages.skat.ecskat import ecskat
from bayesmages.skat.kinship import fit_null_kinship
from bayesmages.skat.null import NullModel, fit_null
from bayesmages.skat.result import METHODS, TESTS
from bayesmages.skat.set_test import test as skat_test

__all__ = ["SET_TESTS", "read_sets", "run_sets"]

SET_TESTS = (*TESTS, "ecskat")
_SET_ALIASES = ("SET", "GENE", "SET_ID", "SETID", "GENE_ID")
_SNP_ALIASES = ("SNP", "VARIANT", "VARIANT_ID", "ID", "RSID", "MARKER")


def read_sets(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    r"""Read a variant-set file: one row per (set, variant).

    Parameters
    ----------
    path : str or path-like
        CSV/TSV with a set column (SET, GENE, SET_ID) and a variant column (SNP, VARIANT, ID, RSID).
        A headerless two-column whitespace file (R SKAT's SetID format: set, variant) also works.

    Returns
    -------
    dict
        set name -> variant ids, in file order.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sets.csv"
    >>> _ = p.write_text("SET,SNP\nG1,rs1\nG1,rs2\nG2,rs3\n")
    >>> read_sets(p)
    {'G1': ['rs1', 'rs2'], 'G2': ['rs3']}
    """
    df = read_table(path, what="variant-set")
    set_col = find_column(list(df.columns), _SET_ALIASES)
    snp_col = find_column(list(df.columns), _SNP_ALIASES)
    if set_col is None or snp_col is None:
        if df.shape[1] == 2:  # SetID format without a header: the header row is data
            first = pd.DataFrame([list(df.columns)], columns=df.columns)
            df = pd.concat([first, df], ignore_index=True)
            set_col, snp_col = df.columns[0], df.columns[1]
        else:
            raise InputError(f"{path}: need a set column {list(_SET_ALIASES)} and a variant column "
                             f"{list(_SNP_ALIASES)}; found {list(df.columns)}")
    if df[[set_col, snp_col]].isna().any().any():
        row = int(np.flatnonzero(df[[set_col, snp_col]].isna().any(axis=1).to_numpy())[0]) + 1
        raise InputError(f"{path}: empty set or variant id at row {row}")
    sets: dict[str, list[str]] = {}
    for s, v in zip(df[set_col].astype(str), df[snp_col].astype(str)):
        sets.setdefault(s, []).append(v)
    return sets


def _run_one(unit: tuple[str, np.ndarray, list[str]], *, null: NullModel | None, y: np.ndarray, X: Any,
             opts: dict[str, Any]) -> dict[str, Any]:
    name, G, ids = unit
    row: dict[str, Any] = {"SET": name, "n_variants": G.shape[1], "test": opts["test"]}
    if G.shape[1] == 0:
        return {**row, "n_tested": 0, "statistic": np.nan, "p_value": np.nan, "method": "no variants found"}
    Gy = G if opts["included"] is None else G[opts["included"]]  # the rows of y, for ecSKAT's own nulls
    if opts["test"] == "ecskat":
        ec = ecskat(Gy, y, X, trait=opts["trait"], train_fraction=opts["train_fraction"], seed=opts["seed"],
                    objective=opts["objective"], weights_beta=opts["weights_beta"], method=opts["ec_method"],
                    impute=opts["impute"], variant_names=ids)
        return {**row, "n_tested": ec.n_tested, "statistic": ec.statistic, "p_value": ec.p_value,
                "method": f"ecskat-{ec.objective}" + ("-fallback" if ec.fallback else "")}
    assert null is not None  # fitted by the caller for every test but ecskat
    extra = None
    if opts["test"] == "acat-o" and opts["acat_ecskat"]:
        extra = {"ecskat": ecskat(Gy, y, X, trait=opts["trait"], train_fraction=opts["train_fraction"],
                                  seed=opts["seed"], objective=opts["objective"], weights_beta=opts["weights_beta"],
                                  method=opts["ec_method"], impute=opts["impute"]).p_value}
    r = skat_test(G, null, test=opts["test"], weights_beta=opts["weights_beta"], method=opts["method"],
                  impute=opts["impute"], seed=opts["seed"], compat=opts["compat"], maf_masks=opts["maf_masks"],
                  extra_pvalues=extra, method_bin=opts["method_bin"], estimate_maf=opts["estimate_maf"],
                  included=opts["included"])
    row.update(n_tested=r.n_tested, statistic=r.statistic, p_value=r.p_value, method=r.method)
    for name, pc in r.extra.get("components", {}).items():  # ACAT-O: every combined p-value
        row[f"p_{name}"] = pc
    if r.p_each_rho is not None and r.rho_grid is not None:  # both set by SKAT-O
        row["rho"] = r.rho
        for rho, pr in zip(r.rho_grid, r.p_each_rho):
            row[f"p_rho_{rho:g}"] = pr
    return row


def run_sets(
    G: Any,
    variant_ids: Any,
    sets: dict[str, list[str]],
    y: Any,
    X: Any = None,
    trait: str = "continuous",
    test: str = "skat",
    *,
    weights_beta: tuple[float, float] = (1.0, 25.0),
    method: str | None = None,
    adjustment: bool | None = None,
    method_bin: str | None = None,
    kinship: Any = None,
    estimate_maf: int = 1,
    included: Any = None,
    impute: str = "fixed",
    train_fraction: float = 0.3,
    objective: str = "standardized",
    seed: int = 0,
    workers: int = 1,
    scheduler: Any = None,
    progress: bool = False,
    compat: str | None = None,
    maf_masks: Any = None,
    acat_ecskat: bool = False,
) -> pd.DataFrame:
    """Test every variant set against one null fit.

    Parameters
    ----------
    G : array-like
        (n, m) genotypes of all variants (NaN missing), samples aligned with ``y`` (or, with
        ``included``, all genotyped samples).
    variant_ids : sequence of str
        The m column ids.
    sets : dict
        set name -> variant ids (from :func:`read_sets`); ids absent from ``variant_ids`` are ignored.
    y, X
        Phenotype (n,) and covariates (n, q) without intercept.
    trait : {"continuous", "binary"}
        Null-model family.
    test : {"skat", "burden", "skat-o", "acat-v", "acat-o", "ecskat"}
        The test (ecSKAT fits its own split null models per set).
    weights_beta, method, impute, compat, maf_masks
        As in :func:`bayesmages.skat.test` (``method`` default exact, R's davies with ``compat="R"``).
    acat_ecskat : bool
        ACAT-O: also run ecSKAT on each set and include its p-value in the combination.
    adjustment : bool or None
        Binary small-sample moment adjustment of the null model (``None``: R's default, for
        n < 2,000).
    method_bin : {None, "er", "spa", "hybrid"}
        Binary traits: efficient resampling or saddlepoint p-values (:func:`bayesmages.skat.test`;
        not with ACAT-V/ACAT-O).
    kinship : array-like, optional
        (n, n) kinship matrix of the samples of ``y``: the related-samples (EMMAX) null model of
        :func:`bayesmages.skat.fit_null_kinship` (continuous traits).
    estimate_maf, included
        R's ``estimate_MAF`` (1: MAFs from all rows of ``G``; 2: from the null model's samples) and
        the mask of ``G``'s rows that ``y`` and ``X`` belong to (:func:`bayesmages.skat.test`).
    train_fraction, objective
        ecSKAT options.
    seed : int
        Seed (bootstrap of the adjustment, ecSKAT splits, random imputation).
    workers, scheduler, progress
        Passed to :func:`bayesmages.parallel.map_units`.

    Returns
    -------
    pandas.DataFrame
        ``SET, n_variants, n_tested, test, statistic, p_value, method`` (+ ``rho`` and
        ``p_rho_*`` for SKAT-O, ``p_<component>`` for ACAT-O), one row per set, in the order of
        ``sets``.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> G = rng.binomial(2, 0.03, size=(300, 6)).astype(float); y = rng.normal(size=300)
    >>> df = bm.skat.run_sets(G, list("abcdef"), {"g1": ["a", "b", "c"], "g2": ["d", "e", "f"]}, y)
    >>> list(df["SET"])
    ['g1', 'g2']
    """
    if test not in SET_TESTS:
        raise InputError(f"test must be one of {list(SET_TESTS)}, got {test!r}")
    if method is not None and method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method_bin is not None and (method_bin not in BIN_METHODS or trait != "binary"
                                   or test in ("ecskat", "acat-v", "acat-o")):
        raise InputError(f"run_sets: method_bin must be one of {list(BIN_METHODS)} with trait 'binary' and test "
                         f"skat, burden or skat-o, got method_bin={method_bin!r}, trait={trait!r}, test={test!r}")
    if not sets:
        raise InputError("run_sets: no variant sets given")
    G = np.asarray(G, dtype=np.float64)
    ids = [str(v) for v in variant_ids]
    if G.ndim != 2 or G.shape[1] != len(ids):
        raise InputError(f"run_sets: G has shape {G.shape} but {len(ids)} variant ids were given")
    col = {v: j for j, v in enumerate(ids)}
    yv = np.asarray(y, dtype=np.float64).ravel()
    keep = None if included is None else np.asarray(included)
    if keep is not None and (keep.dtype != bool or keep.shape != (G.shape[0],) or int(keep.sum()) != yv.size):
        raise InputError(f"run_sets: included must be a boolean mask over G's {G.shape[0]} rows with one True per "
                         f"value of y ({yv.size})")
    if keep is None and G.shape[0] != yv.size:
        raise InputError(f"run_sets: G has {G.shape[0]} samples but y has {yv.size}")
    if not any(v in col for members in sets.values() for v in members):
        raise InputError("run_sets: no variant of any set is among the genotype variant ids")
    if kinship is not None and (trait != "continuous" or test == "ecskat"):
        raise InputError(f"run_sets: a kinship matrix needs trait 'continuous' and a test other than ecskat (the "
                         f"EMMAX null model of R SKAT), got trait={trait!r}, test={test!r}")
    null: NullModel | None = None
    if kinship is not None:
        null = fit_null_kinship(yv, X, kinship)
    elif test != "ecskat":
        null = fit_null(yv, X, trait, adjustment=adjustment, seed=seed)
    units = []
    for name, members in sets.items():
        cols = [col[v] for v in dict.fromkeys(members) if v in col]
        units.append((name, G[:, cols], [ids[j] for j in cols]))
    opts = {"test": test, "trait": trait, "weights_beta": tuple(weights_beta), "method": method, "impute": impute,
            "method_bin": method_bin, "train_fraction": train_fraction, "objective": objective, "seed": seed,
            "estimate_maf": estimate_maf, "included": keep, "compat": compat, "maf_masks": maf_masks,
            "acat_ecskat": acat_ecskat, "ec_method": method or ("davies" if compat == "R" else "exact")}
    fn = functools.partial(_run_one, null=null, y=yv, X=X, opts=opts)
    try:
        from bayesmages.parallel import map_units
    except ImportError:  # pragma: no cover - parallel is part of the package
        rows = [fn(u) for u in units]
    else:
        rows = map_units(fn, units, workers=workers, scheduler=scheduler, progress=progress, desc="skat set",
                         names=[u[0] for u in units])
    return pd.DataFrame(rows)
