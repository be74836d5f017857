"""Pipeline inputs: read and cross-check GWAS files, LD blocks and the gene table before anything is written.

Every check that can fail on the user's data runs here, so a bad input stops the run before an
output folder exists. Each input also gets a content hash (of the validated values, not the file
bytes), which keys the resumable steps.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = ["LD_SUFFIXES", "PipelineInputs", "load_inputs"]

#: file suffixes taken from an LD folder (sorted by name = block order)
LD_SUFFIXES = (".ld", ".npy", ".npz")
_TRAIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # trait names become file and folder names

PathLike = str | os.PathLike[str]


@dataclass
class PipelineInputs:
    """Validated inputs of :func:`bayesmages.pipeline.run`.

    Attributes
    ----------
    traits : list of str
        Trait names, in the order of the GWAS inputs.
    gwas : dict of str to pandas.DataFrame
        Canonical GWAS tables (:func:`bayesmages.io.read_gwas` columns), same variants in the same order.
    variants : pandas.DataFrame
        ``SNP, CHR, POS`` of the variants in data order.
    blocks : list of numpy.ndarray
        LD matrices in data order, covering every variant once.
    genes : pandas.DataFrame
        The gene table (:func:`bayesmages.io.read_genes` columns).
    hashes : dict of str to str
        Content hash per input: ``gwas:<trait>``, ``ld``, ``genes``.
    sources : dict of str to object
        Where each input came from (file names; ``"<DataFrame>"`` for in-memory tables).
    unmapped_genes : list of str
        Genes (positions format) that contain no variant of the data.
    harmonisation : PanelData, optional
        With an LD reference panel: the per-trait account of every input variant (dropped tables,
        counts) and the store's id of each LD block.
    ld_files : list of (str or None)
        Per block, the user's ``.npy`` file that holds exactly the validated block (work units can read it
        themselves), or None (text files, changed by validation, re-ordered by ids, or given in memory).
    """

    traits: list[str]
    gwas: dict[str, pd.DataFrame]
    variants: pd.DataFrame
    blocks: list[np.ndarray]
    genes: pd.DataFrame
    hashes: dict[str, str] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    unmapped_genes: list[str] = field(default_factory=list)
    harmonisation: Any = None
    ld_files: list[str | None] = field(default_factory=list)

    @property
    def n_variants(self) -> int:
        """Number of variants (rows of every GWAS table)."""
        return len(self.variants)


def _hash_arrays(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(",".join(map(str, part.columns)).encode())
            h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        elif isinstance(part, np.ndarray):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        else:
            h.update(str(part).encode())
    return h.hexdigest()[:16]


def trait_name_from_path(path: PathLike) -> str:
    """Default trait name of a GWAS file: its name without ``.gz`` and table suffixes (``gwas_T1.tsv`` -> ``T1``)."""
    name = Path(path).name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        name = name.removesuffix(suffix)
    return name.removeprefix("gwas_") or name


def _gwas_tables(gwas: Any, traits: Sequence[str] | None, gwas_format: str | None = None,
                 n: float | None = None) -> tuple[list[str], dict[str, pd.DataFrame], dict]:
    from bayesmages.io import read_gwas, validate_gwas

    if isinstance(gwas, Mapping):
        if traits is not None:
            raise InputError("traits: give trait names either as the keys of gwas or as traits, not both")
        traits, items = [str(k) for k in gwas], list(gwas.values())
    else:
        items = [gwas] if isinstance(gwas, str | os.PathLike | pd.DataFrame) else list(gwas)
    if not items:
        raise InputError("gwas: expected at least one GWAS file")
    if traits is None:
        traits = [trait_name_from_path(x) if isinstance(x, str | os.PathLike) else f"T{i + 1}"
                  for i, x in enumerate(items)]
    traits = [str(t) for t in traits]
    if len(traits) != len(items):
        raise InputError(f"got {len(items)} GWAS files but {len(traits)} trait names; give one name per file")
    for t in traits:
        if not _TRAIT_NAME.match(t):
            raise InputError(f"trait name {t!r}: use letters, digits, '_', '.' or '-' (it names output files)")
    dup = [t for t in traits if traits.count(t) > 1]
    if dup:
        raise InputError(f"trait name {dup[0]!r} is given more than once")
    tables, sources = {}, {}
    for t, item in zip(traits, items):
        if isinstance(item, pd.DataFrame):
            tables[t], sources[f"gwas:{t}"] = validate_gwas(item, source=f"gwas[{t}]"), "<DataFrame>"
        else:
            tables[t], sources[f"gwas:{t}"] = read_gwas(item, format=gwas_format, n=n), str(item)
    return traits, tables, sources


def _check_same_variants(traits: list[str], tables: dict[str, pd.DataFrame], sources: dict) -> pd.DataFrame:
    first = traits[0]
    ref = tables[first]
    m = len(ref)
    for t in traits[1:]:
        df = tables[t]
        if len(df) != m:
            raise InputError(f"{sources[f'gwas:{t}']}: {len(df)} variants, but {sources[f'gwas:{first}']} has {m}; "
                             "every GWAS file must hold the same variants in the same order")
        if "SNP" in ref and "SNP" in df:
            a, b = ref["SNP"].astype(str).to_numpy(), df["SNP"].astype(str).to_numpy()
            bad = np.flatnonzero(a != b)
            if bad.size:
                i = int(bad[0])
                raise InputError(f"{sources[f'gwas:{t}']}: row {i + 1} is variant {str(b[i])!r} but "
                                 f"{sources[f'gwas:{first}']} has {str(a[i])!r} there; align the GWAS files first")
    cols = {c: ref[c].to_numpy() for c in ("SNP", "CHR", "POS") if c in ref}
    if "SNP" not in cols:
        cols["SNP"] = np.array([f"variant{i + 1}" for i in range(m)])
    variants = pd.DataFrame(cols)
    variants["SNP"] = variants["SNP"].astype(str)
    return variants


def ld_files(ld: PathLike | Sequence[PathLike]) -> list[Path]:
    """LD block files from a folder (every ``.ld``/``.npy``/``.npz``, sorted by name) or a list of files."""
    items = [ld] if isinstance(ld, str | os.PathLike) else list(ld)
    if len(items) == 1 and Path(items[0]).is_dir():
        folder = Path(items[0])
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in LD_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: no LD block files ({', '.join(LD_SUFFIXES)}) in this folder")
        return files
    return [Path(p) for p in items]


def _ld_blocks(ld: Any, variants: pd.DataFrame, gwas_source: str
               ) -> tuple[list[np.ndarray], list[str], list[str | None]]:
    from bayesmages.io import read_ld, validate_ld
    from bayesmages.io.ldrefs import unchanged_npy

    m = len(variants)
    snps = variants["SNP"].to_numpy()
    if isinstance(ld, np.ndarray) or (isinstance(ld, Sequence) and ld and not isinstance(ld, str)
                                      and all(isinstance(x, np.ndarray) or hasattr(x, "R") for x in ld)):
        items = [ld] if isinstance(ld, np.ndarray) else list(ld)
        blocks = [validate_ld(np.asarray(getattr(x, "R", x)), source=f"ld[{b}]") for b, x in enumerate(items)]
        names = [f"ld[{b}]" for b in range(len(blocks))]
        refs: list[str | None] = [None] * len(blocks)
    else:
        files = ld_files(ld)
        blocks, names, start, refs = [], [str(p) for p in files], 0, []
        for path in files:
            block = read_ld(path)
            stop = start + block.m
            if stop > m:
                raise InputError(f"{path}: the LD blocks up to this one cover {stop} variants but {gwas_source} "
                                 f"has only {m} rows")
            if block.ids is not None and not np.array_equal(block.ids, snps[start:stop]):
                block = read_ld(path, ids=snps[start:stop])  # align to the GWAS order by variant id
            blocks.append(block.R)
            refs.append(str(Path(path).resolve()) if unchanged_npy(path, block.R) else None)
            start = stop
    covered = int(sum(R.shape[0] for R in blocks))
    if covered != m:
        raise InputError(f"the LD blocks cover {covered} variants but {gwas_source} has {m} rows; "
                         "give blocks that cover every GWAS row in order")
    if not blocks:
        raise InputError("ld: expected at least one LD block")
    return blocks, names, refs


def load_inputs(gwas: Any, ld: Any, genes: Any, traits: Sequence[str] | None = None, *, ld_panel: Any = None,
                gwas_format: str | None = None, n: float | None = None, progress: bool = False) -> PipelineInputs:
    """Read and validate the pipeline inputs (see :func:`bayesmages.pipeline.run` for the accepted forms).

    Parameters
    ----------
    gwas : path, DataFrame, or a sequence or trait-keyed mapping of them
        One GWAS table per trait, all on the same variants in the same order.
    ld : folder, file(s) or array(s), or None
        LD blocks in data order that together cover every GWAS row; None with ``ld_panel``.
    genes : path or DataFrame
        Gene table (positions or ML-MAGES index columns).
    traits : sequence of str, optional
        Trait names (default: GWAS file names, or ``T1..Tp``).
    ld_panel : LDPanel, str or path-like, optional
        A PLINK reference panel instead of ``ld``: each GWAS is harmonised to it and LD comes from its
        LD store (:func:`bayesmages.pipeline.panel.panel_inputs`).
    gwas_format : str, optional
        GWAS file format (:data:`bayesmages.io.GWAS_FORMATS`; default: from each file's header).
    n : float, optional
        Sample size for GWAS files without an N column.
    progress : bool
        Progress lines of an LD store build on stderr.

    Returns
    -------
    PipelineInputs

    Raises
    ------
    InputError
        Unreadable or malformed files, mismatched numbers of GWAS inputs and trait names, GWAS files on
        different variants, LD blocks that do not cover the GWAS rows, genes outside the data.

    Examples
    --------
    >>> inputs = load_inputs(["gwas_T1.tsv", "gwas_T2.tsv"], "ld/", "genes.tsv")  # doctest: +SKIP
    """
    from bayesmages.genes.mapping import map_genes
    from bayesmages.io import read_genes, validate_genes

    names, tables, sources = _gwas_tables(gwas, traits, gwas_format, n)
    gwas_source = sources[f"gwas:{names[0]}"]
    harmonisation, ld_hash = None, None
    ld_refs: list[str | None] = []
    if ld_panel is not None:
        from bayesmages.pipeline.panel import panel_inputs

        if ld is not None:
            raise InputError("give the LD as ld (LD files) or as ld_panel (a PLINK reference panel), not both")
        harmonisation, store_key = panel_inputs(tables, ld_panel, progress=progress)
        tables, variants, blocks = harmonisation.gwas, harmonisation.variants, harmonisation.blocks
        sources["ld"] = str(getattr(ld_panel, "path", ld_panel))
        shrinkage = getattr(ld_panel, "shrinkage", 0.0)
        ld_hash = _hash_arrays(store_key, shrinkage, harmonisation.block_ids, variants)
    else:
        if ld is None:
            raise InputError("ld: expected LD block files (or a folder of them), or give ld_panel")
        variants = _check_same_variants(names, tables, sources)
        blocks, ld_names, ld_refs = _ld_blocks(ld, variants, gwas_source)
        sources["ld"] = ld_names
    m = len(variants)
    if isinstance(genes, pd.DataFrame):
        gene_table, sources["genes"] = validate_genes(genes, source="genes", n_variants=m), "<DataFrame>"
    else:
        gene_table, sources["genes"] = read_genes(genes, n_variants=m), str(genes)
    gmap = map_genes(gene_table, variants=variants if {"CHR", "POS"} <= set(variants) else None, n_variants=m)
    if len(gmap) == 0:
        raise InputError(f"{sources['genes']}: none of its {len(gene_table)} genes contains a variant of "
                         f"{gwas_source}; check chromosomes and positions (or index ranges)")
    hashes = {f"gwas:{t}": _hash_arrays(tables[t][["BETA", "SE"]].to_numpy(), variants) for t in names}
    # a panel's blocks are named by the store's key (a hash of the panel files) and the variants used
    hashes["ld"] = ld_hash or _hash_arrays(*blocks)
    hashes["genes"] = _hash_arrays(gene_table)
    return PipelineInputs(traits=names, gwas=tables, variants=variants, blocks=blocks, genes=gene_table,
                          hashes=hashes, sources=sources, unmapped_genes=[str(g) for g in gmap.unmapped],
                          harmonisation=harmonisation, ld_files=ld_refs)
