"""``bayesmages shrink``: shrink GWAS effects for LD with the neural shrinker (or the elastic net)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bayesmages.cli._common import add_common, add_out, output_file, run_metadata
from bayesmages.errors import InputError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``shrink`` sub-command."""
    p = sub.add_parser(
        "shrink",
        help="shrink GWAS effects for LD (neural shrinker or elastic net)",
        description="Read one GWAS file and the LD blocks that cover its rows in order; write a table with "
        "SNP, CHR, POS, trait, beta_hat, se, beta_shrunk, sd, lower, upper (90% interval) and a run.json "
        "next to it (<out>.run.json).",
    )
    p.add_argument("--gwas", type=Path, required=True, help="GWAS summary statistics (CSV/TSV, gzip ok)")
    p.add_argument("--ld", type=Path, nargs="+", required=True, metavar="FILE|DIR",
                   help="LD blocks (.ld text, .npy, .npz) in GWAS row order, or one folder holding them (sorted by "
                   "name); together they cover every row")
    add_out(p, "output table (.csv, .tsv, .txt, optionally .gz, or .parquet with pyarrow)")
    p.add_argument("--model", default="default",
                   help="'default' (pretrained), or a model file or folder written by train-shrinker")
    p.add_argument("--method", choices=("nn", "enet", "susie"), default="nn",
                   help="neural shrinker (default), the paper's elastic net, or susie_rss (adds pip and cs columns)")
    p.add_argument("--n", type=float, default=None,
                   help="GWAS sample size for --method susie (default: the GWAS N column, block medians; else none)")
    p.add_argument("--ld-lambda", type=float, default=0.0,
                   help="--method susie: regularise LD to (R + lambda I)/(1 + lambda) (reference-panel LD)")
    p.add_argument("--trait", default=None, help="trait name in the output (default: the GWAS file name)")
    add_common(p, seed=True, workers=True)
    p.set_defaults(func=run)
    return p


def _trait_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        name = name.removesuffix(suffix)
    return name


def run(args: argparse.Namespace) -> int:
    """Read inputs, shrink block by block, write the table atomically."""
    from bayesmages.io import read_gwas, read_ld, write_json, write_table
    from bayesmages.pipeline.inputs import ld_files
    from bayesmages.shrink import shrink
    from bayesmages.shrink.api import model_file

    started = time.perf_counter()
    sidecar = args.out.with_name(args.out.name + ".run.json")
    output_file(args, sidecar)
    if args.model != "default":
        model_file(args.model)
    gwas = read_gwas(args.gwas)
    n_rows = len(gwas)
    betas, ses, blocks = [], [], []
    start = 0
    for path in ld_files(args.ld):
        block = read_ld(path)
        stop = start + block.m
        if stop > n_rows:
            raise InputError(f"{path}: LD blocks cover {stop} variants but {args.gwas} has only {n_rows} rows")
        if block.ids is not None and "SNP" in gwas:
            # Align the block to the GWAS order by variant id (read_ld checks every id is present).
            block = read_ld(path, ids=gwas["SNP"].iloc[start:stop].astype(str).to_numpy())
        betas.append(gwas["BETA"].to_numpy()[start:stop])
        ses.append(gwas["SE"].to_numpy()[start:stop])
        blocks.append(block.R)
        start = stop
    if start != n_rows:
        raise InputError(f"the LD blocks cover {start} variants but {args.gwas} has {n_rows} rows; "
                         "give blocks that cover every GWAS row in order")
    n: Any = args.n
    if n is None and args.method == "susie" and "N" in gwas:
        n = gwas["N"].to_numpy()
    out = shrink(betas, ses, blocks, model=args.model, method=args.method, n=n, ld_lambda=args.ld_lambda,
                 variants=gwas,
                 trait=args.trait or _trait_name(args.gwas), workers=args.workers, scheduler=args.scheduler,
                 seed=args.seed, progress=not args.quiet)
    write_table(out, args.out)
    write_json(run_metadata(args, started, n_variants=n_rows, n_blocks=len(blocks)), sidecar)
    if not args.quiet:
        print(f"{n_rows} variants in {len(blocks)} blocks shrunk ({args.method}); written to {args.out}")
    return 0
