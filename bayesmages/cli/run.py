"""``bayesmages run``: the end-to-end pipeline (shrink, cluster, gene tests, gene summaries, figures, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayesmages.cli._common import OVERWRITE_HELP, add_common, note, positive_float, positive_int, unmapped_note


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` sub-command."""
    from bayesmages.io import GWAS_FORMATS

    p = sub.add_parser(
        "run",
        help="end-to-end: shrink -> cluster and gene tests per trait -> multi-trait clusters -> gene summaries",
        description=(
            "Shrink each trait's GWAS effects for LD, cluster them per trait (dp_mixture) and test genes for "
            "enrichment, cluster the traits jointly, and summarise genes across traits. Writes one folder per "
            "step, figures/, report.md and run.json into --out. Each step lands in --out as soon as it "
            "finishes: running again on the same --out (after a failure, Ctrl-C, SIGTERM or even SIGKILL) "
            "reuses the finished steps whose inputs and arguments are unchanged (--force recomputes "
            "everything). Progress goes to stderr: a bar on a terminal, else one line per step start and "
            "finish; --quiet silences it."
        ),
    )
    p.add_argument("--gwas", type=Path, nargs="+", required=True, metavar="FILE",
                   help="GWAS summary statistics, one file per trait, all on the same variants in the same order")
    p.add_argument("--traits", nargs="+", default=None, metavar="NAME",
                   help="trait names, one per GWAS file (default: the file names without gwas_ and suffixes)")
    p.add_argument("--gwas-format", choices=GWAS_FORMATS, default=None,
                   help="format of the GWAS files (default: detected from the header)")
    p.add_argument("--n", type=positive_float, default=None, help="sample size, for GWAS files without an N column")
    ld = p.add_mutually_exclusive_group(required=True)
    ld.add_argument("--ld", type=Path, nargs="+", metavar="FILE|DIR",
                    help="LD blocks (.ld, .npy, .npz) in GWAS row order, or one folder holding them (sorted by name)")
    ld.add_argument("--ld-panel", type=Path, metavar="BED",
                    help="PLINK 1 reference panel (prefix.bed with .bim and .fam): the GWAS is harmonised to its "
                    "alleles and LD is computed from its genotypes once, then read from its LD store")
    p.add_argument("--ld-store", type=Path, default=None, metavar="DIR",
                   help="LD store folder of --ld-panel (default: PREFIX.ldstore beside the panel); rebuilt when the "
                   "panel files or block options change")
    p.add_argument("--ld-blocks", type=Path, default=None, metavar="FILE",
                   help="LD block boundary file (CHR, START, END; e.g. LDetect blocks) for --ld-panel; default: "
                   "blocks cut from the panel's own LD")
    p.add_argument("--ld-block-size", type=positive_int, nargs=2, default=(100, 600), metavar=("MIN", "MAX"),
                   help="variants per block when cutting blocks from the panel's LD (default 100 600; the "
                   "partition prefers large blocks, so most have about MAX variants)")
    p.add_argument("--ld-shrinkage", type=_fraction, default=0.0, metavar="S",
                   help="shrink panel LD toward the identity, (1-S) R + S I, for small panels (default 0)")
    p.add_argument("--harmonise-by", choices=("position", "id"), default="position",
                   help="match GWAS and panel variants on CHR:POS + allele pair (default) or on the variant id")
    p.add_argument("--ambiguous", choices=("drop", "frequency"), default="drop",
                   help="A/T and C/G variants: drop (default) or keep when allele frequencies tell the strand")
    p.add_argument("--genes", type=Path, required=True, help="gene table (START/END or ML-MAGES index columns)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new, or an earlier run to resume)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--model", default="default",
                   help="'default' (pretrained shrinker), or a model file or folder written by train-shrinker")
    p.add_argument("--fdr", type=float, default=0.05, help="FDR level of the gene-test figures (default 0.05)")
    p.add_argument("--truncation", type=positive_int, default=20, help="dp_mixture truncation K (default 20)")
    p.add_argument("--restarts", type=positive_int, default=5, help="dp_mixture restarts (default 5)")
    p.add_argument("--select", choices=("quantile", "posterior", "all"), default="quantile",
                   help="variants of the multi-trait clustering: top --quantile of |beta_shrunk| in any trait "
                   "(default), |beta_shrunk| > 1.96 sd in any trait, or all")
    p.add_argument("--quantile", type=float, default=0.9, help="quantile of --select quantile (default 0.9)")
    # the names of bayesmages.genes.enrichment.TESTS (spelt out: the CLI does not import numpy to build its parser)
    p.add_argument("--gene-test", choices=("conditional", "conditional+single", "marginal", "epsilon"),
                   default="conditional",
                   help="single-trait gene test: calibrated LD-conditional (default), the same with its single-variant "
                   "part (conditional+single), marginal LD-aware test on raw effects, or the paper's epsilon test "
                   "(its p-values rank genes but are not error rates)")
    p.add_argument("--shrink-method", choices=("nn", "enet", "susie"), default="nn",
                   help="shrinker: neural (default), the paper's elastic-net baseline, or susie_rss (sum of single "
                   "effects + infinitesimal background; uses the GWAS N column when present)")
    p.add_argument("--multi-traits", nargs="+", default=None, metavar="NAME",
                   help="traits of the multi-trait clustering, association types and gene summaries (2-4; default: "
                        "all traits when there are at most 4, else the first 4)")
    p.add_argument("--force", action="store_true", help="recompute every step, even finished ones")
    add_common(p, seed=True, workers=True)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the pipeline and print where the results are."""
    from bayesmages.pipeline import LDPanel
    from bayesmages.pipeline import run as run_pipeline

    panel = None
    if args.ld_panel is not None:
        panel = LDPanel(args.ld_panel, store=args.ld_store, boundaries=args.ld_blocks,
                        min_size=args.ld_block_size[0], max_size=args.ld_block_size[1], shrinkage=args.ld_shrinkage,
                        by=args.harmonise_by, ambiguous=args.ambiguous)
    else:
        given = [f for f, v in (("--ld-store", args.ld_store), ("--ld-blocks", args.ld_blocks)) if v is not None]
        if given:
            from bayesmages.errors import InputError

            raise InputError(f"{given[0]} applies to --ld-panel only; with --ld the LD blocks are the files given")
    result = run_pipeline(
        args.gwas, args.ld, args.genes, args.out, ld_panel=panel, gwas_format=args.gwas_format, n=args.n,
        traits=args.traits, model=args.model, seed=args.seed,
        workers=args.workers, scheduler=args.scheduler, force=args.force, overwrite=args.overwrite, fdr=args.fdr,
        truncation=args.truncation, restarts=args.restarts, select=args.select, quantile=args.quantile,
        gene_test=args.gene_test, shrink_method=args.shrink_method, progress=not args.quiet,
        multi_traits=args.multi_traits,
        arguments={"cli": {k: [str(x) for x in v] if isinstance(v, list) else (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items() if k != "func"}},
    )
    unmapped = result.metadata["inputs"]["unmapped_genes"]
    if unmapped:
        note(args, unmapped_note(len(unmapped), result.metadata["inputs"]["n_genes"]))
    if not args.quiet:
        reused = [r.name for r in result.steps if r.reused]
        print(f"{len(result.traits)} trait(s), {result.metadata['inputs']['n_variants']} variants, "
              f"{result.metadata['inputs']['n_genes']} genes"
              + (f"; reused {len(reused)} finished step(s)" if reused else ""))
        for r in result.steps:
            print(f"  {r.name}: {'reused' if r.reused else 'computed'} ({r.seconds:.1f} s)")
        for t in result.traits:
            res = result.enrichment[t]
            print(f"  {t}: {int((res['q_value'] <= args.fdr).sum())} of {len(res)} genes with q <= {args.fdr:g}")
        if panel is not None:
            for t, rep in result.metadata["harmonisation"].items():
                print(f"  {t}: {rep['n_input']} GWAS variants: {rep['n_used']} used ({rep['n_swapped']} swapped, "
                      f"{rep['n_strand_flipped']} strand-flipped), {rep['n_dropped']} dropped "
                      f"(harmonisation/dropped_{t}.csv)")
        print(f"report: {(result.out / 'report.md').resolve()}")
        print(f"results written to {result.out.resolve()}")
    return 0
