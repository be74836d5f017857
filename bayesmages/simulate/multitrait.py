"""Multi-trait GWAS with gene-level truth (METHODS §C): the data the gene-level methods must recover.

Generative model (all seeded from one ``seed``):

1. **LD.** ``n_blocks`` independent LD blocks, from msprime (:func:`simulate_ld_blocks`) or given by
   the user (e.g. real blocks). Blocks are laid out one after another on chromosome 1.
2. **Genes.** Each block is tiled with genes: contiguous runs of ``gene_size`` variants (uniform
   integer range) separated by gaps of ``gene_gap`` intergenic variants. No gene crosses a block.
3. **Causal genes and their types.** ``round(p_causal_genes * n_genes)`` genes (at least one) are
   causal. A causal gene's *type* is the non-empty set of traits it affects: with probability
   ``frac_specific`` one trait (uniform; type ``"specific:T2"``), otherwise a shared set whose size is
   uniform on 2..p and whose members are uniform (type ``"shared:T1+T3"``). When there are at least as
   many causal genes as possible types (``2^p - 1``, fewer when ``frac_specific`` is 0 or 1), every type
   is first used once; and every trait
   is guaranteed at least one causal gene (an uncovered trait is added to a random causal gene).
4. **Effects.** In a causal gene, ``max(1, round(p_causal_in_gene * size))`` variants are causal. A
   causal variant j has scale ``sigma_j = sqrt([2 f_j (1 - f_j)]^s)``. For a specific gene,
   ``beta_jt = sigma_j e_jt``. For a shared gene, a one-factor model gives correlated effects:
   ``beta_jt = sigma_j sign_t (sqrt(|rho|) u_j + sqrt(1 - |rho|) e_jt)`` with ``|rho| ~ U(rho_range)``
   per gene and ``sign_t = -1`` with probability ``p_negative`` (the first trait of the set keeps +1),
   so that ``Corr(beta_t, beta_t') = sign_t sign_t' |rho|`` — positive or negative — and the matrix is
   always a valid correlation matrix, for any number of traits.
5. **Heritability.** Each trait's effects are scaled so that ``sum_blocks beta_b' R_b beta_b = h2_t``.
6. **GWAS.** Per trait and block, RSS summary statistics ``beta_hat ~ N(R beta, R / n_t)`` on the
   standardised scale (:class:`RSSSampler`, one factorisation per block shared by all traits).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.simulate._checks import check_fraction, check_positive_int, check_seed, child_seeds
from bayesmages.simulate.effects import effect_variances
from bayesmages.simulate.genotypes import simulate_ld_blocks
from bayesmages.simulate.rss import RSSSampler

__all__ = ["MultiTraitSimulation", "simulate_multitrait"]

_GWAS_COLUMNS = ["CHR", "SNP", "POS", "A1", "A2", "BETA", "SE", "N"]
_BLOCK_GAP_BP = 1_000_000  # between consecutive blocks on the chromosome
_ALLELE_PAIRS = np.array([(a, b) for a in "ACGT" for b in "ACGT" if a != b])


@dataclass(frozen=True)
class MultiTraitSimulation:
    """The result of :func:`simulate_multitrait`.

    Attributes
    ----------
    traits : list of str
        Trait names ``T1..Tp``.
    gwas : dict of str to pandas.DataFrame
        Per trait, DESIGN §5 columns ``CHR, SNP, POS, A1, A2, BETA, SE, N`` (standardised scale).
    ld_blocks : list of numpy.ndarray
        The LD matrices, in variant order.
    block_ranges : list of slice
        Global variant indices of each block (``gwas[t].iloc[block_ranges[b]]``).
    genes : pandas.DataFrame
        Gene table: ``GENE, CHR, START, END, N_SNPS, start_idx_chr, end_idx_chr, chr_start_idx_gw,
        BLOCK`` (inclusive 0-based indices; readable by :func:`bayesmages.io.read_genes`).
    gene_truth : pandas.DataFrame
        Per gene: ``GENE, TYPE`` (``"none"``, ``"specific:T1"``, ``"shared:T1+T2"``), ``TRAITS``, ``CAUSAL``,
        ``N_CAUSAL_VARIANTS``, ``RHO`` (signed correlation of effects for two-trait shared genes,
        ``|rho|`` otherwise; NaN when not shared), ``SIGNS`` (per trait in TRAITS), and per trait
        ``CAUSAL_<t>`` (bool) and ``H2_<t>`` (the gene's ``beta_g' R_gg beta_g``).
    variant_truth : pandas.DataFrame
        Per variant: ``SNP, CHR, POS, BLOCK, GENE`` (empty if intergenic), ``MAF, CAUSAL`` and
        ``BETA_<t>`` (true standardised effects).
    params : dict
        The simulation parameters, seed and achieved per-trait heritability.
    """

    traits: list[str]
    gwas: dict[str, pd.DataFrame]
    ld_blocks: list[np.ndarray]
    block_ranges: list[slice]
    genes: pd.DataFrame
    gene_truth: pd.DataFrame
    variant_truth: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def beta(self) -> np.ndarray:
        """(m, p) true effects, columns in ``traits`` order."""
        return self.variant_truth[[f"BETA_{t}" for t in self.traits]].to_numpy()

    def write(self, out_dir: Any, *, metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write every file (see ``README.txt`` in the folder) atomically into ``out_dir``.

        The folder is built under a temporary name beside ``out_dir`` and moved into place only when
        complete. An existing ``out_dir`` written by bayesmages gets its files replaced; one that
        bayesmages did not write is refused unless ``overwrite`` (and even then only files bayesmages
        wrote are replaced; see :class:`bayesmages.io.outdir.OutputDir`). With ``metadata``, it is also
        written as ``run.json``.

        Parameters
        ----------
        out_dir : str, path-like or bayesmages.io.outdir.OutputDir
            The output folder.
        metadata : dict, optional
            Content of ``run.json``.
        overwrite : bool
            Allow an existing folder that bayesmages did not write.

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> sim = simulate_multitrait(2, 2, variants_per_block=80, n_ref_samples=300, seed=1)
        >>> import tempfile, pathlib
        >>> out = sim.write(pathlib.Path(tempfile.mkdtemp()) / "sim")
        >>> (out / "gwas_T1.tsv").is_file()
        True
        """
        from bayesmages.io.outdir import OutputDir

        target = out_dir if isinstance(out_dir, OutputDir) else OutputDir(out_dir, overwrite=overwrite,
                                                                           command="simulate", what="out_dir")
        with target.build() as tmp:
            self.write_files(tmp)
            if metadata is not None:
                from bayesmages.io import write_json

                write_json(metadata, tmp / "run.json")
        return target.given

    @classmethod
    def read(cls, folder: str | Path) -> MultiTraitSimulation:
        """Read a folder written by :meth:`write` (or ``bayesmages simulate``).

        Examples
        --------
        >>> sim = MultiTraitSimulation.read("sim/")  # doctest: +SKIP
        """
        import json

        from bayesmages.io import read_ld

        folder = Path(folder)
        params_path = folder / "params.json"
        if not params_path.is_file():
            raise InputError(f"{folder}: not a simulation folder (no params.json)")
        params = json.loads(params_path.read_text())
        traits = [f"T{i + 1}" for i in range(int(params["n_traits"]))]

        def table(name: str) -> pd.DataFrame:
            path = folder / name
            if not path.is_file():
                raise InputError(f"{folder}: missing {name}")
            # Only empty cells are missing; words such as "none" or "NA" in text columns stay text.
            df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
            for col in ("GENE", "TRAITS", "SIGNS"):  # empty text (intergenic, non-causal genes) is "", not NaN
                if col in df.columns:
                    df[col] = df[col].fillna("").astype(str)
            return df

        gwas = {t: table(f"gwas_{t}.tsv") for t in traits}
        blocks_df = table("blocks.tsv")
        variant_truth = table("variant_truth.tsv")
        snps = variant_truth["SNP"].astype(str).to_numpy()
        ld_blocks, ranges = [], []
        row: Any  # a pandas row named tuple: its fields are untyped
        for row in blocks_df.itertuples():
            sl = slice(int(row.start_idx), int(row.end_idx) + 1)
            ld_blocks.append(read_ld(folder / str(row.FILE), ids=snps[sl]).R)
            ranges.append(sl)
        genes = table("genes.tsv")
        genes["CHR"] = genes["CHR"].astype(str)
        gene_truth = table("gene_truth.tsv")
        return cls(traits=traits, gwas=gwas, ld_blocks=ld_blocks, block_ranges=ranges, genes=genes,
                   gene_truth=gene_truth, variant_truth=variant_truth, params=params)

    def write_files(self, folder: str | Path) -> None:
        """Write the files into an existing folder (no atomicity of the whole; see :meth:`write`)."""
        from bayesmages.io import write_json, write_npz, write_table, write_text

        folder = Path(folder)
        for t in self.traits:
            write_table(self.gwas[t], folder / f"gwas_{t}.tsv")
        (folder / "ld").mkdir(exist_ok=True)
        snps = self.variant_truth["SNP"].to_numpy().astype(str)
        rows = []
        for b, (R, sl) in enumerate(zip(self.ld_blocks, self.block_ranges)):
            name = f"ld/block_{b:03d}.npz"
            write_npz(folder / name, R=R, ids=snps[sl])
            rows.append({"BLOCK": b, "FILE": name, "N_SNPS": sl.stop - sl.start, "start_idx": sl.start,
                         "end_idx": sl.stop - 1, "FIRST_SNP": snps[sl.start], "LAST_SNP": snps[sl.stop - 1]})
        write_table(pd.DataFrame(rows), folder / "blocks.tsv")
        write_table(self.genes, folder / "genes.tsv")
        write_table(self.gene_truth, folder / "gene_truth.tsv")
        write_table(self.variant_truth, folder / "variant_truth.tsv")
        write_json(self.params, folder / "params.json")
        write_text(_readme(self), folder / "README.txt")


def simulate_multitrait(
    n_traits: int = 2,
    n_blocks: int = 4,
    *,
    variants_per_block: int = 300,
    ld_blocks: Sequence[np.ndarray] | None = None,
    maf: Sequence[np.ndarray] | None = None,
    n_gwas: int | Sequence[int] = 50_000,
    h2: float | Sequence[float] = 0.02,
    gene_size: tuple[int, int] = (5, 60),
    gene_gap: tuple[int, int] = (0, 20),
    p_causal_genes: float = 0.15,
    p_causal_in_gene: float = 0.2,
    frac_specific: float = 0.5,
    rho_range: tuple[float, float] = (0.5, 0.9),
    p_negative: float = 0.3,
    s: float = 0.0,
    n_ref_samples: int = 2000,
    seed: int,
    **msprime_kwargs: Any,
) -> MultiTraitSimulation:
    """Simulate p traits' GWAS on block LD with causal genes of every association type.

    See the module docstring for the generative model.

    Parameters
    ----------
    n_traits : int
        Number of traits p (>= 1), named ``T1..Tp``.
    n_blocks : int
        Number of msprime LD blocks (ignored when ``ld_blocks`` is given).
    variants_per_block : int
        Variants per msprime block.
    ld_blocks : sequence of numpy.ndarray, optional
        Use these LD matrices (e.g. real blocks) instead of msprime.
    maf : sequence of numpy.ndarray, optional
        Per-block MAFs for user ``ld_blocks`` (default: uniform on [0.01, 0.5], seeded; they only
        matter when ``s != 0``).
    n_gwas : int or sequence of int
        GWAS sample size, one for all traits or one per trait.
    h2 : float or sequence of float
        Per-trait heritability explained by all causal variants, in (0, 1).
    gene_size, gene_gap : tuple of int
        Inclusive ranges of gene sizes and of intergenic gaps, in variants.
    p_causal_genes : float
        Fraction of genes that are causal, in (0, 1].
    p_causal_in_gene : float
        Fraction of a causal gene's variants that are causal, in (0, 1].
    frac_specific : float
        Probability that a causal gene is trait-specific (otherwise shared), in [0, 1].
    rho_range : tuple of float
        Range of ``|rho|``, the absolute correlation of a shared gene's effects, within [0, 1].
    p_negative : float
        Probability that a trait in a shared set gets a negative sign, in [0, 1].
    s : float
        MAF exponent of the effect variances.
    n_ref_samples : int
        Diploid reference-panel size for msprime LD.
    seed : int
        Random seed.
    **msprime_kwargs
        Passed to :func:`simulate_ld_blocks` (``Ne``, ``recombination_rate``, ...).

    Returns
    -------
    MultiTraitSimulation

    Raises
    ------
    InputError
        Any parameter outside its range, or blocks too small for one gene.

    Examples
    --------
    >>> sim = simulate_multitrait(2, 2, variants_per_block=80, n_ref_samples=300, seed=1)
    >>> sorted(sim.gwas), list(sim.gwas["T1"].columns)
    (['T1', 'T2'], ['CHR', 'SNP', 'POS', 'A1', 'A2', 'BETA', 'SE', 'N'])
    """
    p = check_positive_int(n_traits, "n_traits")
    traits = [f"T{i + 1}" for i in range(p)]
    n_vec = _per_trait(n_gwas, p, "n_gwas", integer=True)
    h2_vec = _per_trait(h2, p, "h2", integer=False)
    size_lo, size_hi = _int_range(gene_size, "gene_size", minimum=1)
    gap_lo, gap_hi = _int_range(gene_gap, "gene_gap", minimum=0)
    p_causal_genes = check_fraction(p_causal_genes, "p_causal_genes", high_closed=True)
    p_causal_in_gene = check_fraction(p_causal_in_gene, "p_causal_in_gene", high_closed=True)
    frac_specific = _unit(frac_specific, "frac_specific")
    p_negative = _unit(p_negative, "p_negative")
    try:
        rho_lo, rho_hi = (_unit(r, "rho_range") for r in rho_range)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"rho_range must be a pair (low, high), got {rho_range!r}") from None
    if rho_hi < rho_lo:
        raise InputError(f"rho_range must be (low, high) with low <= high, got {rho_range!r}")
    seed = check_seed(seed)
    s_ld, s_layout, s_types, s_eff, s_gwas = child_seeds(seed, 5)

    positions, mafs, blocks = _ld_and_layout(
        ld_blocks, maf, n_blocks, variants_per_block, n_ref_samples, s_ld, msprime_kwargs
    )
    sizes = [R.shape[0] for R in blocks]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    ranges = [slice(int(a), int(b)) for a, b in itertools.pairwise(starts)]
    m = int(starts[-1])
    pos = np.concatenate(positions)
    maf_all = np.concatenate(mafs)

    rng_layout = np.random.default_rng(s_layout)
    genes = _tile_genes(ranges, pos, (size_lo, size_hi), (gap_lo, gap_hi), rng_layout)
    n_genes = len(genes)
    n_causal = max(1, round(p_causal_genes * n_genes))
    rng_types = np.random.default_rng(s_types)
    causal_genes = np.sort(rng_types.choice(n_genes, size=n_causal, replace=False))
    types = _draw_types(n_causal, p, frac_specific, rng_types)

    rng_eff = np.random.default_rng(s_eff)
    sigma = np.sqrt(effect_variances(maf_all, s=s))
    beta = np.zeros((m, p))
    gene_info: dict[int, dict[str, Any]] = {}
    for g, members in zip(causal_genes, types):
        lo, hi = int(genes["start_idx_chr"].loc[g]), int(genes["end_idx_chr"].loc[g]) + 1
        k = max(1, round(p_causal_in_gene * (hi - lo)))
        idx = np.sort(rng_eff.choice(np.arange(lo, hi), size=k, replace=False))
        e = rng_eff.standard_normal((k, len(members)))
        if len(members) == 1:
            eff, rho, signs = e, np.nan, np.ones(1)
        else:
            rho = float(rng_eff.uniform(rho_lo, rho_hi))
            signs = np.where(rng_eff.random(len(members)) < p_negative, -1.0, 1.0)
            signs[0] = 1.0
            u = rng_eff.standard_normal((k, 1))
            eff = signs * (np.sqrt(rho) * u + np.sqrt(1.0 - rho) * e)
        beta[np.ix_(idx, np.asarray(members))] = sigma[idx, None] * eff
        gene_info[int(g)] = {"traits": members, "n_causal": k, "rho": rho, "signs": signs}

    # Scale each trait to its heritability: sum over blocks of beta_b' R_b beta_b.
    explained = np.zeros(p)
    for R, sl in zip(blocks, ranges):
        explained += np.einsum("it,ij,jt->t", beta[sl], R, beta[sl])
    if not np.all(explained > 0):
        t = int(np.flatnonzero(~(explained > 0))[0])
        raise InputError(f"trait {traits[t]}: the drawn effects explain no variance under the LD; use another seed")
    beta *= np.sqrt(h2_vec / explained)

    snps = np.array([f"sim{i + 1}" for i in range(m)])
    alleles = _ALLELE_PAIRS[rng_layout.integers(0, len(_ALLELE_PAIRS), size=m)]
    gwas_seeds = np.array(child_seeds(s_gwas, p * len(blocks))).reshape(p, len(blocks))
    gwas: dict[str, pd.DataFrame] = {}
    bh = np.zeros((m, p))
    se = np.zeros((m, p))
    for b, (R, sl) in enumerate(zip(blocks, ranges)):
        sampler = RSSSampler(R)
        for t in range(p):
            bh[sl, t], se[sl, t] = sampler.sample(beta[sl, t], int(n_vec[t]), seed=int(gwas_seeds[t, b]))
    for t, name in enumerate(traits):
        gwas[name] = pd.DataFrame({
            "CHR": 1, "SNP": snps, "POS": pos, "A1": alleles[:, 0], "A2": alleles[:, 1],
            "BETA": bh[:, t], "SE": se[:, t], "N": int(n_vec[t]),
        })[_GWAS_COLUMNS]

    gene_truth = _gene_truth(genes, gene_info, traits, beta, blocks, ranges)
    gene_of = np.full(m, "", dtype=object)
    row: Any  # a pandas row named tuple: its fields are untyped
    for row in genes.itertuples():
        gene_of[row.start_idx_chr : row.end_idx_chr + 1] = row.GENE
    block_of = np.repeat(np.arange(len(blocks)), sizes)
    variant_truth = pd.DataFrame({"SNP": snps, "CHR": 1, "POS": pos, "BLOCK": block_of, "GENE": gene_of,
                                  "MAF": maf_all, "CAUSAL": (beta != 0).any(axis=1)})
    for t, name in enumerate(traits):
        variant_truth[f"BETA_{name}"] = beta[:, t]
    achieved = np.zeros(p)
    for R, sl in zip(blocks, ranges):
        achieved += np.einsum("it,ij,jt->t", beta[sl], R, beta[sl])
    params = {
        "seed": seed, "n_traits": p, "n_blocks": len(blocks), "n_variants": m, "n_genes": n_genes,
        "n_causal_genes": n_causal, "n_gwas": [int(v) for v in n_vec], "h2": [float(v) for v in h2_vec],
        "h2_achieved": [float(v) for v in achieved], "gene_size": [size_lo, size_hi], "gene_gap": [gap_lo, gap_hi],
        "p_causal_genes": p_causal_genes, "p_causal_in_gene": p_causal_in_gene, "frac_specific": frac_specific,
        "rho_range": [rho_lo, rho_hi], "p_negative": p_negative, "s": float(s),
        "ld_source": "user" if ld_blocks is not None else "msprime",
        "variants_per_block": None if ld_blocks is not None else variants_per_block,
        "n_ref_samples": None if ld_blocks is not None else n_ref_samples,
        "msprime": {k: float(v) for k, v in msprime_kwargs.items()},
    }
    return MultiTraitSimulation(traits=traits, gwas=gwas, ld_blocks=list(blocks), block_ranges=ranges,
                                genes=genes, gene_truth=gene_truth, variant_truth=variant_truth, params=params)


def _ld_and_layout(
    ld_blocks: Sequence[np.ndarray] | None, maf: Sequence[np.ndarray] | None, n_blocks: int,
    variants_per_block: int, n_ref_samples: int, seed: int, msprime_kwargs: dict[str, Any],
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per block: positions (offset along chromosome 1), MAFs and LD matrices."""
    mafs: list[np.ndarray]
    if ld_blocks is not None:
        from bayesmages.io.ld import validate_ld

        if msprime_kwargs:
            raise InputError(f"msprime arguments {sorted(msprime_kwargs)} make no sense with user ld_blocks")
        blocks = [validate_ld(R, source=f"ld_blocks[{b}]") for b, R in enumerate(ld_blocks)]
        if not blocks:
            raise InputError("ld_blocks is empty")
        rng = np.random.default_rng(seed)
        if maf is None:
            mafs = [rng.uniform(0.01, 0.5, size=int(R.shape[0])) for R in blocks]
        else:
            if len(maf) != len(blocks):
                raise InputError(f"maf has {len(maf)} arrays for {len(blocks)} ld_blocks")
            mafs = [np.asarray(f, dtype=np.float64) for f in maf]
            for b, (f, R) in enumerate(zip(mafs, blocks)):
                if f.shape != (R.shape[0],):
                    raise InputError(f"maf[{b}] has shape {f.shape}; ld_blocks[{b}] has {R.shape[0]} variants")
        local = [1000 * np.arange(1, R.shape[0] + 1, dtype=np.int64) for R in blocks]
    else:
        if maf is not None:
            raise InputError("maf can only be given together with ld_blocks")
        n_blocks = check_positive_int(n_blocks, "n_blocks")
        sims = simulate_ld_blocks(n_blocks, variants_per_block, n_samples=n_ref_samples, seed=seed,
                                  return_genotypes=True, **msprime_kwargs)
        from bayesmages.simulate.genotypes import ld_from_genotypes

        blocks = [ld_from_genotypes(sim.G) for sim in sims]
        mafs = [sim.maf for sim in sims]
        local = [sim.positions for sim in sims]
    positions, offset = [], 0
    for loc in local:
        positions.append(loc - loc[0] + 1 + offset)
        offset = int(positions[-1][-1]) + _BLOCK_GAP_BP
    return positions, mafs, blocks


def _tile_genes(
    ranges: list[slice], pos: np.ndarray, size: tuple[int, int], gap: tuple[int, int], rng: np.random.Generator
) -> pd.DataFrame:
    """Cover each block with genes of random size separated by random gaps; genes never cross blocks."""
    rows = []
    for b, sl in enumerate(ranges):
        i = sl.start + int(rng.integers(gap[0], gap[1] + 1))
        while True:
            k = int(rng.integers(size[0], size[1] + 1))
            if i + k > sl.stop:
                k = sl.stop - i  # shorten the last gene of a block rather than leave a long tail
                if k < size[0]:
                    break
            rows.append((b, i, i + k - 1))
            i += k + int(rng.integers(gap[0], gap[1] + 1))
    if not rows:
        raise InputError(f"blocks are too small for genes of {size[0]}..{size[1]} variants; lower gene_size")
    block, lo, hi = (np.array(c) for c in zip(*rows))
    width = max(4, len(str(len(rows))))
    return pd.DataFrame({
        "GENE": [f"GENE{i + 1:0{width}d}" for i in range(len(rows))], "CHR": "1",
        "START": pos[lo], "END": pos[hi], "N_SNPS": hi - lo + 1, "start_idx_chr": lo, "end_idx_chr": hi,
        "chr_start_idx_gw": 0, "BLOCK": block,
    })


def _draw_types(n_causal: int, p: int, frac_specific: float, rng: np.random.Generator) -> list[list[int]]:
    """Trait sets (sorted lists of trait indices) of the causal genes; see the module docstring."""
    # Only the types the user allows: none specific when frac_specific == 0, none shared when it is 1.
    sizes = [k for k in range(1, p + 1) if (k == 1 and frac_specific > 0) or (k > 1 and frac_specific < 1)]
    all_types = [list(c) for k in sizes for c in itertools.combinations(range(p), k)]
    types: list[list[int]] = []
    if n_causal >= len(all_types):
        types = [all_types[i] for i in rng.permutation(len(all_types))]
    while len(types) < n_causal:
        if p == 1 or rng.random() < frac_specific:
            types.append([int(rng.integers(p))])
        else:
            k = int(rng.integers(2, p + 1))
            types.append(sorted(int(t) for t in rng.choice(p, size=k, replace=False)))
    order = rng.permutation(n_causal)
    types = [types[i] for i in order]
    for t in range(p):
        if not any(t in ty for ty in types):
            g = int(rng.integers(n_causal))
            types[g] = sorted({*types[g], t})
    return types


def _gene_truth(
    genes: pd.DataFrame, info: dict[int, dict[str, Any]], traits: list[str], beta: np.ndarray,
    blocks: list[np.ndarray], ranges: list[slice],
) -> pd.DataFrame:
    rows = []
    row: Any  # a pandas row named tuple: its fields are untyped
    for g, row in enumerate(genes.itertuples()):
        rec: dict[str, Any] = {"GENE": row.GENE}
        d = info.get(g)
        if d is None:
            rec.update(TYPE="none", TRAITS="", N_CAUSAL_VARIANTS=0, RHO=np.nan, SIGNS="")
        else:
            names = [traits[t] for t in d["traits"]]
            kind = "specific" if len(names) == 1 else "shared"
            rho = d["rho"]
            if len(names) == 2:
                rho = rho * d["signs"][0] * d["signs"][1]
            rec.update(TYPE=f"{kind}:{'+'.join(names)}", TRAITS="+".join(names), N_CAUSAL_VARIANTS=d["n_causal"],
                       RHO=rho, SIGNS=",".join("+" if x > 0 else "-" for x in d["signs"]))
        rec["CAUSAL"] = d is not None
        R = blocks[int(row.BLOCK)]
        lo = row.start_idx_chr - ranges[int(row.BLOCK)].start
        hi = row.end_idx_chr - ranges[int(row.BLOCK)].start + 1
        Rg = R[lo:hi, lo:hi]
        bg = beta[row.start_idx_chr : row.end_idx_chr + 1]
        for t, name in enumerate(traits):
            rec[f"CAUSAL_{name}"] = bool(d is not None and t in d["traits"])
            rec[f"H2_{name}"] = float(bg[:, t] @ Rg @ bg[:, t])
        rows.append(rec)
    return pd.DataFrame(rows)


def _per_trait(value: Any, p: int, name: str, *, integer: bool) -> np.ndarray:
    vals = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if vals.ndim != 1 or vals.size not in (1, p):
        raise InputError(f"{name} must be one value or {p} values (one per trait), got {value!r}")
    vals = np.broadcast_to(vals, (p,)).copy()
    for v in vals:
        if integer:
            if not (np.isfinite(v) and v == round(v) and v >= 3):
                raise InputError(f"{name} must hold integers >= 3, got {float(v):g}")
        else:
            check_fraction(float(v), name)
    return vals


def _int_range(value: Any, name: str, *, minimum: int) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair of integers (low, high), got {value!r}") from None
    if lo < minimum or hi < lo:
        raise InputError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return lo, hi


def _unit(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0):
        raise InputError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def _readme(sim: MultiTraitSimulation) -> str:
    p = sim.params
    traits = ", ".join(sim.traits)
    return f"""Simulated multi-trait GWAS with known truth (bayesmages.simulate.multitrait)

seed {p["seed"]}; traits {traits}; {p["n_blocks"]} LD blocks ({p["ld_source"]}); {p["n_variants"]} variants;
{p["n_genes"]} genes of which {p["n_causal_genes"]} causal; GWAS n = {p["n_gwas"]}; h2 = {p["h2"]}.

Files
  gwas_<trait>.tsv   summary statistics per trait: CHR SNP POS A1 A2 BETA SE N. BETA/SE are on the
                     standardised scale (per genotype SD, unit phenotype variance), drawn from the RSS
                     model beta_hat ~ N(R beta, R/n), SE = sqrt((1 - BETA^2)/(N - 2)).
  ld/block_NNN.npz   LD correlation matrix of block NNN (array R) and its variant ids (array ids),
                     readable with bayesmages.io.read_ld.
  blocks.tsv         BLOCK, FILE, N_SNPS, start_idx..end_idx (0-based, inclusive rows of the GWAS files),
                     FIRST_SNP, LAST_SNP.
  genes.tsv          gene table: GENE CHR START END (bp, inclusive) N_SNPS start_idx_chr end_idx_chr
                     (0-based, inclusive) chr_start_idx_gw, BLOCK; readable with bayesmages.io.read_genes.
  gene_truth.tsv     per gene: TYPE (none | specific:<trait> | shared:<trait>+<trait>...), TRAITS,
                     CAUSAL (any trait),
                     N_CAUSAL_VARIANTS, RHO (signed effect correlation for two-trait shared genes, |rho|
                     for larger sets), SIGNS (per trait of TRAITS), CAUSAL_<trait>, H2_<trait> (beta' R beta
                     of the gene's variants).
  variant_truth.tsv  per variant: SNP CHR POS BLOCK GENE MAF CAUSAL and the true effects BETA_<trait>.
  params.json        all simulation parameters and the achieved heritability per trait.
  run.json           command, arguments, version and timing (written by the CLI).
"""
