"""Make a toy cohort and reference panel as PLINK 1 filesets, for the worked example in docs/formats.md.

Usage::

    python examples/make_plink_example.py toy/

writes into ``toy/``:

* ``cohort.bed/.bim/.fam`` and ``pheno.txt``: 400 people with a quantitative trait ``y`` (10 causal variants), for
  ``plink2 --glm``;
* ``panel.bed/.bim/.fam``: 200 *other* people as the LD reference panel, as a real panel differs from a GWAS: every
  7th variant is missing from it, every 4th lists its alleles the other way round (and counts the other allele),
  and every 5th is written on the other strand;
* ``genes.tsv``: genes tiling the simulated chromosomes.

The genotypes come from ``bayesmages.simulate.simulate_genotypes`` (msprime):
``pip install "bayesmages[sim,plink]"``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _to_bed(path: Path, G: np.ndarray, chrom, sid, pos, allele_1, allele_2, iid) -> None:
    from bed_reader import to_bed

    to_bed(path, G.astype(np.float32), properties={
        "fid": iid, "iid": iid, "chromosome": chrom, "sid": sid, "bp_position": pos, "allele_1": allele_1,
        "allele_2": allele_2, "cm_position": np.zeros(len(sid))}, count_A1=True)


def make(out: Path, *, n_cohort: int = 400, n_panel: int = 200, seed: int = 1) -> dict[str, int]:
    """Write the toy files into ``out``; returns their sizes."""
    from bayesmages.simulate import simulate_genotypes

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    parts = [simulate_genotypes(n_cohort + n_panel, 400_000, max_variants=150, maf_min=0.05, seed=seed + c)
             for c in (1, 2)]
    G = np.concatenate([p.G for p in parts], axis=1).astype(float)
    pos = np.concatenate([p.positions for p in parts])
    chrom = np.repeat(["1", "2"], [p.n_variants for p in parts])
    m = G.shape[1]
    sid = np.array([f"rs{100 + j}" for j in range(m)])
    pairs = [(a, b) for a in "ACGT" for b in "ACGT" if a != b]
    alleles = [pairs[i] for i in rng.integers(0, len(pairs), m)]
    counted = np.array([a for a, _ in alleles])
    other = np.array([b for _, b in alleles])

    cohort = G[:n_cohort]
    iid = np.array([f"c{i}" for i in range(n_cohort)])
    beta = np.zeros(m)
    beta[rng.choice(m, 10, replace=False)] = rng.normal(0, 0.3, 10)
    y = cohort @ beta + rng.normal(size=n_cohort)
    _to_bed(out / "cohort.bed", cohort, chrom, sid, pos, counted, other, iid)
    pd.DataFrame({"#FID": iid, "IID": iid, "y": np.round(y, 5)}).to_csv(out / "pheno.txt", sep="\t", index=False)

    j = np.arange(m)
    keep, swapped, flipped = j % 7 != 3, j % 4 == 1, j % 5 == 2
    a1, a2 = np.where(swapped, other, counted), np.where(swapped, counted, other)
    a1 = np.where(flipped, [COMPLEMENT[a] for a in a1], a1)
    a2 = np.where(flipped, [COMPLEMENT[a] for a in a2], a2)
    panel = np.where(swapped, 2 - G[n_cohort:], G[n_cohort:])  # a panel's genotypes count its own A1
    _to_bed(out / "panel.bed", panel[:, keep], chrom[keep], sid[keep], pos[keep], a1[keep], a2[keep],
            np.array([f"r{i}" for i in range(n_panel)]))

    genes = []
    for c in ("1", "2"):
        p = pos[chrom == c]
        edges = np.linspace(p.min(), p.max() + 1, 9).astype(int)
        genes += [{"GENE": f"GENE{c}_{k}", "CHR": c, "START": int(a), "END": int(b) - 1}
                  for k, (a, b) in enumerate(itertools.pairwise(edges))]
    pd.DataFrame(genes).to_csv(out / "genes.tsv", sep="\t", index=False)
    return {"variants": m, "panel_variants": int(keep.sum()), "cohort": n_cohort, "panel": n_panel,
            "genes": len(genes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder to write into")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sizes = make(args.out, seed=args.seed)
    print(f"{sizes['variants']} variants; cohort of {sizes['cohort']} (cohort.bed, pheno.txt); panel of "
          f"{sizes['panel']} other people with {sizes['panel_variants']} of the variants (panel.bed); "
          f"{sizes['genes']} genes (genes.tsv) in {args.out}")


if __name__ == "__main__":
    main()
