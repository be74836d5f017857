"""Many variant sets against one null fit: the SKAT-family gene-set runner.

Sets come from a CSV with columns ``SET`` and ``SNP`` (aliases: GENE/SET_ID and
VARIANT/VARIANT_ID/ID/RSID); genotypes from :func:`bayesmages.io.open_genotypes` (PLINK .bed or
.pgen, read by the workers a set at a time) or an in-memory matrix
(:func:`bayesmages.io.read_genotypes`, e.g. CSV). The null model is fitted once per phenotype and
shared; groups of sets are the work units of :func:`bayesmages.parallel.map_units` (serial, local
processes or Dask), see :mod:`bayesmages.skat.set_units`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.genotypes import GenotypeFile
from bayesmages.io.tables import find_column, read_table
from bayesmages.skat.kinship import fit_null_kinship
from bayesmages.skat.null import NullModel, fit_null
from bayesmages.skat.result import METHODS, TESTS
from bayesmages.skat.set_test import resolve_method_bin
from bayesmages.skat.set_units import SetContext, group_sets, run_unit

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
    G : array-like or GenotypeFile
        (n, m) genotypes of all variants (NaN missing), samples aligned with ``y`` (or, with
        ``included``, all genotyped samples); or a PLINK fileset opened with
        :func:`bayesmages.io.open_genotypes`, whose columns each worker reads itself, one set at a
        time (workers then need read access to its path).
    variant_ids : sequence of str or None
        The m column ids (``None`` with a GenotypeFile: its own ids).
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
    method_bin : {None, "hybrid", "er", "spa", "asymptotic"}
        Binary traits: as in :func:`bayesmages.skat.test` (``None``: ER/SPA by the hybrid rule for
        SKAT, burden, SKAT-O and ecSKAT's test split, R ``SKAT()``'s asymptotic test with
        ``compat="R"`` and for ACAT-V/ACAT-O; an ACAT-O's ecSKAT component uses the default).
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
        Passed to :func:`bayesmages.parallel.map_units`. Sets are grouped into about 8 units per
        worker (contiguous in ``sets`` order, of about equal cost); on Dask the null model is
        scattered to every worker once. Results do not depend on the grouping or the backend.

    Returns
    -------
    pandas.DataFrame
        ``SET, n_variants, n_tested, test, statistic, p_value, method`` (+ ``rho`` and
        ``p_rho_*`` for SKAT-O, ``p_<component>`` for ACAT-O), one row per set, in the order of
        ``sets``. ``df.attrs["units"]`` lists, per unit, the process and host it ran on, its sets,
        wall and CPU seconds, and that process's resident and peak memory (``ru_maxrss``) in MB,
        measured inside the worker.

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
    try:
        ec_method_bin = resolve_method_bin(method_bin if test == "ecskat" else None, trait, "skat", compat)
        resolve_method_bin(method_bin, trait, "skat" if test == "ecskat" else test, compat)
    except InputError as exc:
        raise InputError(f"run_sets: {exc}") from None
    if not sets:
        raise InputError("run_sets: no variant sets given")
    if isinstance(G, GenotypeFile):
        if variant_ids is not None and len(variant_ids) != G.ref.n_variants:
            raise InputError(f"run_sets: {G.ref.path} has {G.ref.n_variants} variants but {len(variant_ids)} "
                             "variant ids were given")
        ids = [str(v) for v in (G.variants if variant_ids is None else variant_ids)]
        n_rows = G.ref.n_samples
    else:
        if variant_ids is None:
            raise InputError("run_sets: variant_ids are needed with a genotype matrix")
        G = np.asarray(G, dtype=np.float64)
        ids = [str(v) for v in variant_ids]
        if G.ndim != 2 or G.shape[1] != len(ids):
            raise InputError(f"run_sets: G has shape {G.shape} but {len(ids)} variant ids were given")
        n_rows = G.shape[0]
    col = {v: j for j, v in enumerate(ids)}
    yv = np.asarray(y, dtype=np.float64).ravel()
    keep = None if included is None else np.asarray(included)
    if keep is not None and (keep.dtype != bool or keep.shape != (n_rows,) or int(keep.sum()) != yv.size):
        raise InputError(f"run_sets: included must be a boolean mask over G's {n_rows} rows with one True per "
                         f"value of y ({yv.size})")
    if keep is None and n_rows != yv.size:
        raise InputError(f"run_sets: G has {n_rows} samples but y has {yv.size}")
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
    opts = {"test": test, "trait": trait, "weights_beta": tuple(weights_beta), "method": method, "impute": impute,
            "method_bin": method_bin, "train_fraction": train_fraction, "objective": objective, "seed": seed,
            "estimate_maf": estimate_maf, "included": keep, "compat": compat, "maf_masks": maf_masks,
            "acat_ecskat": acat_ecskat,
            "ec_method_bin": ec_method_bin, "ec_method": method or ("davies" if compat == "R" else "exact")}
    context = SetContext(null=null, y=yv, X=X, opts=opts)
    members = [(name, [col[v] for v in dict.fromkeys(vs) if v in col]) for name, vs in sets.items()]
    if scheduler is None:
        rows, stats = _map_groups(G, ids, members, context, workers, None, progress)
    else:
        from bayesmages.parallel import dask_client

        with dask_client(scheduler) as client:
            # one copy of the null model per worker, whatever the number of units
            shared = client.scatter(context, broadcast=True, hash=False)
            n_slots = max(1, sum(client.nthreads().values()))
            try:
                rows, stats = _map_groups(G, ids, members, shared, n_slots, client, progress)
            finally:
                client.cancel(shared)
    table = pd.DataFrame(rows)
    table.attrs["units"] = stats
    return table


def _map_groups(G: Any, ids: list[str], members: list[tuple[str, list[int]]], context: Any, n_slots: int,
                client: Any, progress: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Group the sets into units, map them, and flatten the rows (in ``members`` order) and unit records."""
    from bayesmages.parallel import map_units

    # ~8 units per worker: coarse enough that shipping the context and opening the file per unit
    # is negligible, fine enough to balance uneven sets; at most one unit per set
    n_units = min(len(members), 8 * n_slots) if (n_slots > 1 or client is not None) else min(len(members), 8)
    groups = group_sets([len(c) for _, c in members], n_units)
    units, names = [], []
    for g in groups:
        part = members[g]
        if isinstance(G, GenotypeFile):
            source: Any = G.ref
            sets = [(name, cols, [ids[j] for j in cols]) for name, cols in part]
        else:  # genotypes in memory: the unit carries this group's columns only
            union = sorted({j for _, cols in part for j in cols})
            pos = {j: i for i, j in enumerate(union)}
            source = G[:, union]
            sets = [(name, [pos[j] for j in cols], [ids[j] for j in cols]) for name, cols in part]
        units.append((context, source, sets))
        names.append(part[0][0] if len(part) == 1 else f"sets {part[0][0]}..{part[-1][0]}")
    out = map_units(run_unit, units, workers=1 if client is not None else n_slots, scheduler=client,
                    progress=progress, desc="skat sets", names=names)
    rows = [r for unit_rows, _ in out for r in unit_rows]
    stats = [{**st, "unit": name} for (_, st), name in zip(out, names)]
    return rows, stats
