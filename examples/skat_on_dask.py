"""SKAT gene tests on a Dask cluster, with each worker reading its genes' genotypes from a PLINK .bed.

Usage::

    python examples/skat_on_dask.py                               # a LocalCluster with 2 workers on this machine
    python examples/skat_on_dask.py --scheduler tcp://HOST:8786 --workdir /shared/scratch/skat_demo

It writes a simulated cohort (``--samples`` people, ``--genes`` genes of 5-40 rare variants) as
``<workdir>/cohort.bed/.bim/.fam`` and a phenotype, fits the SKAT null model once, and tests every
gene with :func:`bayesmages.skat.run_sets` on the cluster. The client never loads the genotype
matrix: each work unit (a group of genes) carries the .bed's path and its genes' column indices,
and the worker reads one gene's columns at a time. So with ``--scheduler`` the ``--workdir`` must
be on a file system every worker can read, at the same path (a shared/parallel file system).

At the end it prints the smallest p-values and, per worker process, the genes it tested, its CPU
seconds and its peak memory as the worker itself measured it (``ru_maxrss``).

With your own data the command line does the same::

    bayesmages skat --genotypes cohort.bed --phenotype pheno.csv --covariates cov.csv --sets genes.csv \\
        --out skat.csv --scheduler tcp://HOST:8786

Needs ``pip install "bayesmages[dask,plink]"``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmages as bm


def simulate_cohort(folder: Path, n_samples: int, n_genes: int, seed: int = 1) -> tuple[dict, np.ndarray, np.ndarray]:
    """Write ``folder/cohort.bed`` one variant at a time; return the gene sets, phenotype and covariates."""
    from bed_reader import create_bed

    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 41, size=n_genes)
    ids = [f"var{j}" for j in range(int(sizes.sum()))]
    X = rng.normal(size=(n_samples, 2))
    y = X @ np.array([0.5, -0.3]) + rng.normal(size=n_samples)
    causal = set(range(int(sizes[0])))  # the first gene carries an effect
    folder.mkdir(parents=True, exist_ok=True)
    with create_bed(folder / "cohort.bed", iid_count=n_samples, sid_count=len(ids), properties={"sid": ids}) as bed:
        for j in range(len(ids)):
            g = rng.binomial(2, rng.uniform(0.002, 0.02), size=n_samples)
            if j in causal:
                y += 0.6 * g
            bed.write(g.astype(np.int8))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    sets = {f"GENE{k + 1}": ids[bounds[k]:bounds[k + 1]] for k in range(n_genes)}
    return sets, y, X


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: start a "
                                                     "LocalCluster with --local-workers workers)")
    ap.add_argument("--local-workers", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="where the .bed is written (shared with the workers)")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--genes", type=int, default=200)
    ap.add_argument("--test", default="skat-o", choices=["skat", "burden", "skat-o", "acat-o"])
    args = ap.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skat_on_dask_"))
    sets, y, X = simulate_cohort(workdir, args.samples, args.genes)
    geno = bm.io.open_genotypes(workdir / "cohort.bed")  # ids only: no genotype is read here
    print(f"{geno.shape[0]:,} samples x {geno.shape[1]:,} variants in {geno.ref.path}; {len(sets)} genes")

    from dask.distributed import Client, LocalCluster

    cluster = None
    if args.scheduler is None:
        # one thread per worker: bayesmages units are single-threaded, and results then match any other backend
        cluster = LocalCluster(n_workers=args.local_workers, threads_per_worker=1, dashboard_address=None)
    client = Client(args.scheduler or cluster)
    try:
        table = bm.skat.run_sets(geno, None, sets, y, X, test=args.test, scheduler=client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    print(table.nsmallest(3, "p_value")[["SET", "n_variants", "p_value"]].to_string(index=False))
    units = pd.DataFrame(table.attrs["units"])
    per_worker = units.groupby(["host", "pid"]).agg(units=("unit", "size"), genes=("n_sets", "sum"),
                                                    cpu_s=("cpu_s", "sum"), peak_rss_mb=("peak_rss_mb", "max"),
                                                    widest_window_mb=("window_mb", "max"))
    print(per_worker.round(2).to_string())
    return table


if __name__ == "__main__":
    main()
