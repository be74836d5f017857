"""``bayesmages simulate``: multi-trait GWAS on msprime (or given) LD blocks with gene-level truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bayesmages.cli._common import add_common, add_out, output_dir, run_metadata


def _pair(kind: type) -> object:
    def parse(text: str) -> tuple:
        parts = text.replace(":", ",").split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
        try:
            return tuple(kind(v) for v in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two {kind.__name__} values LOW,HIGH, got {text!r}") from None

    return parse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command."""
    p = sub.add_parser(
        "simulate",
        help="simulate multi-trait GWAS with known gene-level truth",
        description=(
            "Simulate LD blocks (msprime coalescent, or --ld files), causal genes of every association type "
            "(trait-specific and shared, with positively or negatively correlated effects), and per-trait RSS "
            "summary statistics. Writes GWAS files, LD blocks (.npz), a gene table, truth tables, params.json, "
            "README.txt and run.json into --out."
        ),
    )
    p.add_argument("--traits", type=int, default=2, help="number of traits (default 2)")
    p.add_argument("--blocks", type=int, default=4, help="number of msprime LD blocks (default 4)")
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    p.add_argument("--variants-per-block", type=int, default=300, help="variants per LD block (default 300)")
    p.add_argument("--ld", type=Path, nargs="+", default=None, metavar="FILE",
                   help="use these LD block files (.ld/.npy/.npz) instead of msprime; --blocks is then ignored")
    p.add_argument("--n", type=int, nargs="+", default=[50_000], metavar="N",
                   help="GWAS sample size: one value, or one per trait (default 50000)")
    p.add_argument("--h2", type=float, nargs="+", default=[0.02],
                   help="heritability explained per trait: one value or one per trait (default 0.02)")
    p.add_argument("--p-causal-genes", type=float, default=0.15, help="fraction of causal genes (default 0.15)")
    p.add_argument("--p-causal-in-gene", type=float, default=0.2,
                   help="fraction of a causal gene's variants that are causal (default 0.2)")
    p.add_argument("--frac-specific", type=float, default=0.5,
                   help="probability that a causal gene is trait-specific (default 0.5)")
    p.add_argument("--rho-range", type=_pair(float), default=(0.5, 0.9), metavar="LOW,HIGH",
                   help="range of |correlation| of shared genes' effects (default 0.5,0.9)")
    p.add_argument("--p-negative", type=float, default=0.3,
                   help="probability of a negative sign per trait in a shared gene (default 0.3)")
    p.add_argument("--gene-size", type=_pair(int), default=(5, 60), metavar="LOW,HIGH",
                   help="gene sizes in variants (default 5,60)")
    p.add_argument("--gene-gap", type=_pair(int), default=(0, 20), metavar="LOW,HIGH",
                   help="intergenic gaps in variants (default 0,20)")
    p.add_argument("--s", type=float, default=0.0, help="MAF exponent of effect variances (default 0)")
    p.add_argument("--ref-samples", type=int, default=2000, help="msprime reference sample size (default 2000)")
    p.add_argument("--Ne", type=float, default=10_000, help="msprime effective population size (default 10000)")
    p.add_argument("--recombination-rate", type=float, default=1e-8, help="per bp per generation (default 1e-8)")
    p.add_argument("--mutation-rate", type=float, default=1e-8, help="per bp per generation (default 1e-8)")
    p.add_argument("--maf-min", type=float, default=0.01, help="minimum MAF of simulated variants (default 0.01)")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Simulate and write the output folder atomically."""
    from bayesmages.simulate.multitrait import simulate_multitrait

    started = time.perf_counter()
    out = output_dir(args)
    common = dict(
        n_gwas=args.n if len(args.n) > 1 else args.n[0],
        h2=args.h2 if len(args.h2) > 1 else args.h2[0],
        gene_size=args.gene_size, gene_gap=args.gene_gap, p_causal_genes=args.p_causal_genes,
        p_causal_in_gene=args.p_causal_in_gene, frac_specific=args.frac_specific, rho_range=args.rho_range,
        p_negative=args.p_negative, s=args.s, seed=args.seed,
    )
    if args.ld:
        from bayesmages.io import read_ld

        blocks = [read_ld(f).R for f in args.ld]
        sim = simulate_multitrait(args.traits, len(blocks), ld_blocks=blocks, **common)
    else:
        sim = simulate_multitrait(
            args.traits, args.blocks, variants_per_block=args.variants_per_block, n_ref_samples=args.ref_samples,
            Ne=args.Ne, recombination_rate=args.recombination_rate, mutation_rate=args.mutation_rate,
            maf_min=args.maf_min, **common,
        )
    sim.write(out, metadata=run_metadata(args, started, seeds={"seed": args.seed}))
    if not args.quiet:
        counts = sim.gene_truth["TYPE"].value_counts().to_dict()
        print(f"simulated {sim.params['n_variants']} variants in {sim.params['n_blocks']} blocks, "
              f"{sim.params['n_genes']} genes; gene types: {counts}")
        print(f"written to {Path(args.out).resolve()} (see README.txt)")
    return 0
