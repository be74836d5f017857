"""The pipeline runner behind ``bayesmages.pipeline.run``: GWAS summary statistics to gene-level answers, resumably.

Steps (each in its own folder of ``out``; see :mod:`bayesmages.pipeline.steps` for reuse):

1. ``shrink_<trait>``: shrink every trait's effects for LD (the blocks of all traits that need it mapped
   together over ``workers``/``scheduler``);
2. ``cluster_<trait>``: a one-trait ``dp_mixture`` on the shrunk effects;
3. ``enrich_<trait>``: the gene-level test (default: the calibrated LD-conditional test; ``gene_test="epsilon"``
   gives the paper's test with epsilon from that clustering);
4. ``cluster_multi`` (two or more traits): a multi-trait ``dp_mixture`` on the shrunk effects;
5. ``genes``: gene summaries (cluster fractions, effect products, S_g, association-type scores) from the
   multi-trait clustering (from the single-trait one when there is one trait);

then ``figures/``, ``report.md`` and ``run.json`` are rebuilt from the step folders.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.outdir import MARKER
from bayesmages.pipeline import gene_steps, steps
from bayesmages.pipeline.inputs import PipelineInputs, load_inputs
from bayesmages.pipeline.steps import ClusterOutput, StepRecord, run_step, step_seed

__all__ = ["PipelineResult", "run"]

MULTI = steps.MULTI
#: most traits of the multi-trait clustering and its association types: a variant's type is a subset of
#: the traits, 2^p of them (16 for 4 traits), each a column of cluster_multi/variants.csv and of the gene
#: type scores; 20 traits would be a million types
MAX_MULTI_TRAITS = 4
#: what the units of a run import in a worker process (imported when the run starts its pool)
WORKER_MODULES = ("bayesmages.shrink.units", "bayesmages.genes.enrichment", "bayesmages.pipeline.steps")


@dataclass
class PipelineResult:
    """Everything a pipeline run produced (tables in memory; files under ``out``).

    Attributes
    ----------
    out : pathlib.Path
        The output folder.
    traits : list of str
        Trait names.
    shrinkage : pandas.DataFrame
        Long table ``SNP, CHR, POS, trait, beta_hat, se, beta_shrunk, sd, lower, upper`` (all traits).
    clusters : dict of str to ClusterOutput
        Per trait, and ``"multi"`` for the multi-trait clustering (two or more traits).
    enrichment : dict of str to pandas.DataFrame
        Per trait: ``GENE, CHR, n_variants, Q, p_value, q_value``.
    genes : dict of str to pandas.DataFrame
        ``gene_cluster_fractions``, ``gene_effect_products``, ``gene_S``, ``gene_type_scores``.
    steps : list of StepRecord
        Per step: key, seconds and whether it was reused.
    figures : list of str
        Figure files, relative to ``out``.
    metadata : dict
        The content of ``run.json``.
    """

    out: Path
    traits: list[str]
    shrinkage: pd.DataFrame
    clusters: dict[str, ClusterOutput]
    enrichment: dict[str, pd.DataFrame]
    genes: dict[str, pd.DataFrame]
    steps: list[StepRecord] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def effects(self) -> pd.DataFrame:
        """(m, p) shrunk effects, one column per trait, indexed by SNP in data order."""
        return _wide(self.shrinkage, self.traits)


def _wide(shrinkage: pd.DataFrame, traits: Sequence[str]) -> pd.DataFrame:
    return steps.wide(shrinkage, traits)


def _model_id(model: Any) -> str:
    """What identifies the shrinker in step keys: ``"default"`` or a content hash of the model file."""
    import hashlib

    if isinstance(model, str) and model == "default":
        return "default"
    if isinstance(model, str | os.PathLike):
        from bayesmages.shrink.api import model_file

        path = model_file(model)  # a train-shrinker folder means its model.pt
        return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    raise InputError(f"model: expected 'default' or a model file path, got {type(model).__name__}")


def _check_settings(seed: Any, workers: Any, truncation: Any, restarts: Any, fdr: Any) -> None:
    for name, value, low in (("seed", seed, 0), ("workers", workers, 1), ("truncation", truncation, 2),
                             ("restarts", restarts, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not (isinstance(fdr, int | float) and 0 < fdr < 1):
        raise InputError(f"fdr: expected a number in (0, 1), got {fdr!r}")


def _legacy_files(folder: Path) -> set[str]:
    """The files of a run folder written before ownership markers existed (run.json or step manifests)."""
    from bayesmages.io.outdir import files_under

    if not ((folder / "run.json").is_file() or any(folder.glob(f"*/{steps.MANIFEST}"))):
        return set()
    files = {n for n in ("report.md", "run.json") if (folder / n).is_file()}
    for d in folder.iterdir():
        if d.is_dir() and (d.name == "figures" or (d / steps.MANIFEST).is_file()):
            files |= {f"{d.name}/{f}" for f in files_under(d)}
    return files


def _adopt_old_leftovers(out: Any) -> list[str]:
    """Move finished steps out of ``.<out>.XXXXXXXX.tmp`` folders that bayesmages 0.1.0 left when killed.

    That version built a new run folder whole under such a name; its finished steps are reused
    rather than recomputed, and the folder is removed when it holds nothing but pipeline outputs.
    """
    import re
    import shutil

    from bayesmages.io.outdir import files_under

    pattern = re.compile(rf"^\.{re.escape(out.path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    adopted = []
    for old in sorted(out.path.parent.iterdir()):
        if not (pattern.match(old.name) and old.is_dir()):
            continue
        entries = list(old.iterdir())
        if not all(e.name.startswith(".") or e.name in ("figures", "report.md", "run.json")
                   or (e / steps.MANIFEST).is_file() for e in entries):
            continue  # something else is in there: leave it alone
        for e in entries:
            if e.is_dir() and (e / steps.MANIFEST).is_file() and not (out.path / e.name).exists():
                out.claim(*[f"{e.name}/{f}" for f in files_under(e)])
                os.rename(e, out.path / e.name)
                adopted.append(e.name)
        shutil.rmtree(old, ignore_errors=True)
    return adopted


def run(
    gwas: Any,
    ld: Any,
    genes: Any,
    out: str | os.PathLike[str],
    *,
    traits: Sequence[str] | None = None,
    model: Any = "default",
    seed: int = 0,
    workers: int = 1,
    scheduler: Any = None,
    force: bool = False,
    overwrite: bool = False,
    fdr: float = 0.05,
    truncation: int = 20,
    restarts: int = 5,
    select: str = "quantile",
    quantile: float = 0.9,
    gene_test: str = "conditional",
    ld_panel: Any = None,
    gwas_format: str | None = None,
    n: float | None = None,
    shrink_method: str = "nn",
    figures: bool = True,
    progress: bool = False,
    arguments: dict[str, Any] | None = None,
    multi_traits: Sequence[str] | None = None,
) -> PipelineResult:
    """Run the end-to-end pipeline: shrink -> cluster and enrichment per trait -> multi-trait clustering -> genes.

    Parameters
    ----------
    gwas : path, DataFrame, or a sequence (or trait-keyed mapping) of them
        One GWAS summary-statistics table per trait (DESIGN §5 columns), all on the same variants in
        the same order.
    ld : folder, file path(s), array(s), or None
        LD blocks in data order that together cover every GWAS row once. A folder means all its
        ``.ld``/``.npy``/``.npz`` files sorted by name. Blocks with variant ids are aligned to the GWAS ids.
        None when ``ld_panel`` gives the LD.
    genes : path or DataFrame
        Gene table: START/END positions or the ML-MAGES index columns.
    out : path
        Output folder: new, or an earlier run to resume (finished steps with unchanged inputs and
        arguments are reused). Each step is built under a temporary name and lands in ``out`` whole,
        so a run killed at any moment (SIGKILL included) resumes from its finished steps; the next run
        removes what the killed one left. A folder that bayesmages did not write is refused unless
        ``overwrite``.
    traits : sequence of str, optional
        Trait names, one per GWAS table (default: the file names without ``gwas_`` and suffixes).
    model : "default" or path
        The shrinker (see :func:`bayesmages.shrink.shrink`).
    seed : int
        Run seed; every step gets its own seed derived from it and the step's name.
    workers : int
        Local worker processes for the LD blocks (and threads for the gene tests).
    scheduler : str or dask.distributed.Client, optional
        A Dask cluster for the LD blocks and the gene tests instead of local workers.
    force : bool
        Recompute every step even when a finished one matches.
    overwrite : bool
        Write into an existing ``out`` that bayesmages did not write. Files bayesmages did not write
        are never deleted; one it would replace stops the run.
    fdr : float
        FDR level of the gene-test figures and report.
    truncation, restarts : int
        ``dp_mixture`` truncation and restarts of every clustering.
    select : {"quantile", "posterior", "all"}
        Which variants the multi-trait clustering uses (:func:`bayesmages.cluster.select_variants`): those
        above the ``quantile`` of |beta_shrunk| in any trait (default: the top 10% of each trait), those with
        ``|beta_shrunk| > 1.96 sd`` in any trait, or all. The others count as unclustered in the gene
        summaries. Single-trait clusterings always use every variant (they estimate the null variance).
    quantile : float
        Quantile of the ``"quantile"`` rule, in [0, 1).
    gene_test : {"conditional", "conditional+single", "marginal", "epsilon"}
        The single-trait gene test (:func:`bayesmages.genes.enrichment.test`): the calibrated LD-conditional
        test (default; p- and q-values are error rates), the same with its optional single-variant part
        (``"conditional+single"``: also error rates, slightly better ranking, slightly more false calls), the
        marginal LD-aware test on raw effects, or the paper's epsilon test (ranking only: its p-values are not
        error rates).
    ld_panel : str, path-like or LDPanel, optional
        A PLINK reference panel (``prefix.bed`` with ``.bim``/``.fam``) instead of ``ld``: every GWAS is
        harmonised to the panel's alleles (:func:`bayesmages.io.harmonise`), the variants every trait has
        and the panel gives LD for are used, and their LD comes from the panel's LD store (built on first
        use, then reused; :func:`bayesmages.io.ld_store`). ``out/harmonisation/`` gets ``report.json``
        (counts that add up to each GWAS's rows) and ``dropped_<trait>.csv`` (one reason per dropped
        variant). :class:`bayesmages.pipeline.LDPanel` sets the store folder, block boundaries, LD
        shrinkage and harmonisation options.
    gwas_format : str, optional
        Format of the GWAS files (:data:`bayesmages.io.GWAS_FORMATS`; default: detected from the header).
    n : float, optional
        Sample size for GWAS files without an N column.
    shrink_method : {"nn", "enet", "susie"}
        The shrinker (:func:`bayesmages.shrink.shrink`'s ``method``): the neural shrinker (default), the
        paper's elastic-net baseline, or ``susie_rss`` (uses each GWAS file's N column when present).
    figures : bool
        Render ``figures/`` (the report then links them).
    progress : bool
        Progress on stderr: a bar on a terminal, otherwise one line when each step starts and
        finishes (with its seconds), e.g. in a log file.
    arguments : dict, optional
        Extra entries for ``run.json`` (the CLI records its command line here).
    multi_traits : sequence of str, optional
        The traits of the multi-trait clustering, its association types and the gene summaries (2 to
        :data:`MAX_MULTI_TRAITS`; the per-trait steps always run for every trait). Default: every trait
        when there are at most :data:`MAX_MULTI_TRAITS`, else the first :data:`MAX_MULTI_TRAITS` (with a
        warning): the association types of p traits are the 2^p subsets of them.

    Returns
    -------
    PipelineResult

    Raises
    ------
    InputError
        Any input problem (see :func:`bayesmages.pipeline.inputs.load_inputs`), bad settings, or an
        ``out`` that exists and was not written by bayesmages. Nothing is written in that case.

    Examples
    --------
    >>> import bayesmages as bm
    >>> res = bm.pipeline.run(["sim/gwas_T1.tsv", "sim/gwas_T2.tsv"], "sim/ld", "sim/genes.tsv",
    ...                       "results", traits=["T1", "T2"], seed=0)  # doctest: +SKIP
    >>> res.enrichment["T1"].sort_values("p_value").head()  # doctest: +SKIP
    """
    started = time.perf_counter()
    _check_settings(seed, workers, truncation, restarts, fdr)
    if select not in ("quantile", "posterior", "all"):
        raise InputError(f"select: expected 'quantile', 'posterior' or 'all', got {select!r}")
    if not (isinstance(quantile, int | float) and 0 <= quantile < 1):
        raise InputError(f"quantile: expected a number in [0, 1), got {quantile!r}")
    from bayesmages.genes.enrichment import TESTS

    if gene_test not in TESTS:
        raise InputError(f"gene_test: expected one of {', '.join(TESTS)}; got {gene_test!r}")
    from bayesmages.shrink.api import METHODS

    if shrink_method not in METHODS:
        raise InputError(f"shrink_method: expected one of {list(METHODS)}, got {shrink_method!r}")
    model_id = _model_id(model) if shrink_method == "nn" else shrink_method
    from bayesmages.io.outdir import OutputDir

    # Checked before reading the inputs (which can take minutes): a folder that is not ours is refused now.
    outdir = OutputDir(out, overwrite=overwrite, command="run", legacy=_legacy_files, what="out").check()
    # the workers import torch and the step modules, and pay their first fit's cost, while the inputs are read
    if scheduler is not None:
        from bayesmages.parallel import warm_dask

        warm_dask(scheduler, preload=WORKER_MODULES, warm=steps.warm_up_worker)
    elif isinstance(workers, int) and workers > 1:
        from bayesmages.parallel import start_pool

        start_pool(workers, preload=WORKER_MODULES, warm=steps.warm_up_worker)
    inputs = load_inputs(gwas, ld, genes, traits, ld_panel=ld_panel, gwas_format=gwas_format, n=n,
                         progress=progress)
    multi = _multi_traits(multi_traits, inputs.traits)
    settings = dict(model=model, model_id=model_id, seed=seed, workers=workers, scheduler=scheduler, force=force,
                    fdr=fdr, truncation=truncation, restarts=restarts, select=select, quantile=quantile,
                    gene_test=gene_test, shrink_method=shrink_method, figures=figures, progress=progress,
                    arguments=arguments or {}, multi_traits=multi,
                    started=started, walls={})
    created = not outdir.path.exists()
    outdir.open()
    report = _Progress(progress, n_steps=4 * len(inputs.traits) + (len(multi) >= 2) + 1 + figures + 1)
    try:
        _adopt_old_leftovers(outdir)
        _write_harmonisation(outdir, inputs)
        return _execute(outdir, Path(out), inputs, settings, report)
    except BaseException:
        # A first run that fails before any step finished leaves nothing (only the marker was written).
        if created and not outdir.owned():
            outdir.release()
            with contextlib.suppress(OSError):
                (outdir.path / MARKER).unlink()
                outdir.path.rmdir()
        raise
    finally:
        outdir.release()
        report.close()


def _multi_traits(given: Sequence[str] | None, traits: list[str]) -> list[str]:
    """The traits of the multi-trait steps (see ``multi_traits`` of :func:`run`)."""
    import warnings

    if given is None:
        if len(traits) > MAX_MULTI_TRAITS:
            warnings.warn(f"{len(traits)} traits: the multi-trait clustering, association types and gene summaries "
                          f"use the first {MAX_MULTI_TRAITS} ({', '.join(traits[:MAX_MULTI_TRAITS])}); choose them "
                          "with multi_traits (--multi-traits); every trait is shrunk, clustered and tested alone",
                          UserWarning, stacklevel=3)
        return traits[:MAX_MULTI_TRAITS]
    chosen = [str(t) for t in given]
    unknown = [t for t in chosen if t not in traits]
    if unknown:
        raise InputError(f"multi_traits: {unknown[0]!r} is not one of the traits {traits}")
    if len(set(chosen)) != len(chosen) or not 2 <= len(chosen) <= MAX_MULTI_TRAITS:
        raise InputError(f"multi_traits: give 2 to {MAX_MULTI_TRAITS} different traits (their 2^p association "
                         f"types are enumerated), got {chosen}")
    return [t for t in traits if t in chosen]  # in the order of the GWAS inputs


def _write_harmonisation(outdir: Any, inputs: PipelineInputs) -> None:
    """``harmonisation/``: report.json and one dropped-variants table per trait (removed when the LD is files)."""
    from bayesmages.io import write_json, write_table

    if inputs.harmonisation is None:
        outdir.remove("harmonisation")
        return
    with outdir.part("harmonisation") as tmp:
        for t in inputs.traits:
            write_table(inputs.harmonisation.dropped[t], tmp / f"dropped_{t}.csv")
        write_json({"traits": inputs.harmonisation.reports, "n_used": inputs.n_variants,
                    "n_blocks": len(inputs.blocks), "block_ids": inputs.harmonisation.block_ids},
                   tmp / "report.json")


class _Progress:
    """Step progress on stderr: a tqdm bar on a terminal, else one line per step start and finish."""

    def __init__(self, enabled: bool, n_steps: int) -> None:
        tty = bool(enabled) and sys.stderr.isatty()
        self.lines = bool(enabled) and not tty
        self.bar = None
        if tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_steps, desc="run", unit="step", file=sys.stderr)

    def start(self, name: str) -> None:
        if self.lines:
            print(f"bayesmages run: {name}: started", file=sys.stderr, flush=True)
        if self.bar is not None:
            self.bar.set_description(name)

    def done(self, name: str, seconds: float, reused: bool = False) -> None:
        if self.lines:
            what = f"reused (computed earlier in {seconds:.1f} s)" if reused else f"done ({seconds:.1f} s)"
            print(f"bayesmages run: {name}: {what}", file=sys.stderr, flush=True)
        if self.bar is not None:
            self.bar.update(1)

    def record(self, rec: StepRecord) -> StepRecord:
        self.done(rec.name, rec.seconds, rec.reused)
        return rec

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _execute(outdir: Any, out: Path, inputs: PipelineInputs, s: dict[str, Any], report: _Progress) -> PipelineResult:
    """Run the steps, landing each in the run folder ``outdir`` as it finishes."""
    seed, force, progress = s["seed"], s["force"], s["progress"]
    folder = outdir.path
    records: list[StepRecord] = []
    shrink_keys, shrunk = {}, []
    specs = {t: {"gwas": inputs.hashes[f"gwas:{t}"], "ld": inputs.hashes["ld"], "model": s["model_id"]}
             for t in inputs.traits}
    pending = [t for t in inputs.traits if force or not steps.is_finished(folder, f"shrink_{t}", specs[t])]
    t0 = time.perf_counter()
    if pending:
        report.start(", ".join(f"shrink_{t}" for t in pending))
    fresh = {}
    parallel = s["workers"] > 1 or s["scheduler"] is not None
    unit_ld: list[Any] = []

    def ld() -> Any:
        # work units read their LD themselves when they leave this process (never shipped with the unit):
        # made once per run, on first use (a resumed run whose steps are all reused writes nothing)
        if not unit_ld:
            unit_ld.append(steps.unit_ld(inputs, outdir, parallel=parallel))
        return unit_ld[0]

    if pending:
        fresh = steps.shrink_traits(inputs, pending, model=s["model"], workers=s["workers"],
                                    scheduler=s["scheduler"], progress=progress, method=s["shrink_method"],
                                    seed=seed, ld=ld())
    share = (time.perf_counter() - t0) / max(len(pending), 1)
    for t in inputs.traits:
        name = f"shrink_{t}"
        # mypy cannot infer a lambda with default arguments: hence ignore[misc] on the run_step calls below
        rec = run_step(outdir, name, specs[t], lambda f, t=t: steps.write_shrinkage(f, fresh[t]), force=force,  # type: ignore[misc]
                       extra_seconds=share)
        records.append(report.record(rec))
        shrink_keys[t] = rec.key
        fresh.pop(t, None)  # written: the table read back replaces it (one copy per trait held, not two)
        shrunk.append(steps.read_shrinkage(folder / name))
    shrinkage = pd.concat(shrunk, ignore_index=True)
    shrunk.clear()  # the per-trait tables are in the long table now: one copy of each, not two
    # each trait's rows of the long table, found once (a factorize of T x m names) for every step below
    positions = steps.trait_rows(shrinkage)
    effects = steps.wide(shrinkage, inputs.traits, rows=positions)

    fit_settings = {"truncation": s["truncation"], "restarts": s["restarts"]}
    clusters: dict[str, ClusterOutput] = {}
    enrichment: dict[str, pd.DataFrame] = {}
    cluster_keys = {}
    # Every clustering is one independent dp_mixture fit with its own step seed: the pending ones are
    # computed together over the workers (largest first), then landed one by one as before.
    fits = steps.cluster_fits(shrinkage, inputs.traits, shrink_keys, seed=seed, select=s["select"],
                              quantile=s["quantile"], multi=s["multi_traits"], rows=positions,
                              blocks=inputs.blocks, types_from="auto", **fit_settings)
    todo = {n: kw for n, (spec, kw) in fits.items() if force or not steps.is_finished(folder, n, spec)}
    t0 = time.perf_counter()
    if todo:
        report.start(", ".join(todo))
    computed = steps.cluster_steps(todo, workers=s["workers"], scheduler=s["scheduler"]) if todo else {}
    s["walls"]["cluster"] = round(time.perf_counter() - t0, 3)

    def land(name: str) -> StepRecord:
        spec = fits[name][0]
        rec = run_step(outdir, name, spec, lambda f: steps.land_cluster_step(f, computed[name]), force=force,
                       extra_seconds=computed[name]["seconds"] if name in computed else 0.0)
        computed.pop(name, None)  # its files are written: their bytes need not stay in memory
        return rec

    def enrich_spec(t: str, cluster_key: str) -> dict[str, Any]:
        return {"effects": shrink_keys[t], "clusters": cluster_key if s["gene_test"] == "epsilon" else None,
                "ld": inputs.hashes["ld"], "genes": inputs.hashes["genes"], "test": s["gene_test"]}

    # The conditional and marginal gene tests of all pending traits are one map of units (genes x traits);
    # the epsilon test needs each trait's clustering, so it runs trait by trait below.
    t0 = time.perf_counter()
    # the columns the gene tests read, per trait (not a copy of every column of every trait)
    tested = shrinkage[["beta_shrunk", "beta_hat", "se"]]
    batched = gene_steps.gene_tests(inputs, {t: tested.iloc[positions[t]] for t in inputs.traits if force or not
                                        steps.is_finished(folder, f"enrich_{t}", enrich_spec(t, ""))},
                               test=s["gene_test"], workers=s["workers"], scheduler=s["scheduler"], ld=ld
                               ) if s["gene_test"] != "epsilon" else {}
    enrich_wall = batch_wall = time.perf_counter() - t0
    for t in inputs.traits:
        name = f"cluster_{t}"
        rec = land(name)
        records.append(report.record(rec))
        cluster_keys[t] = rec.key
        clusters[t] = steps.read_clusters(folder / name, [t])

        name = f"enrich_{t}"
        rows = shrinkage.iloc[positions[t]]
        t0 = time.perf_counter()
        spec = enrich_spec(t, rec.key)
        rec = run_step(outdir, name, spec, lambda f, t=t, rows=rows: gene_steps.enrich_trait(  # type: ignore[misc]
            f, inputs, rows, clusters[t], test=s["gene_test"], workers=s["workers"], scheduler=s["scheduler"],
            ld=ld, result=batched.get(t)), force=force, on_start=lambda n=name: report.start(n),  # type: ignore[misc]
            extra_seconds=batch_wall / len(batched) if t in batched else 0.0)
        enrich_wall += time.perf_counter() - t0
        records.append(report.record(rec))
        enrichment[t] = gene_steps.read_enrichment(folder / name)
        enrichment[t].attrs.update({k: rec.info.get(k) for k in ("test", "null_variance", "null_variance_rule")})
    s["walls"]["enrich"] = round(enrich_wall, 3)

    multi = s["multi_traits"]
    if len(multi) >= 2:
        name = f"cluster_{MULTI}"
        rec = land(name)
        records.append(report.record(rec))
        clusters[MULTI] = steps.read_clusters(folder / name, multi)
        basis, basis_key = clusters[MULTI], rec.key
    else:
        basis, basis_key = clusters[multi[0]], cluster_keys[multi[0]]

    spec = {"effects": [shrink_keys[t] for t in multi], "clusters": basis_key,
            "genes": inputs.hashes["genes"]}
    rec = run_step(outdir, "genes", spec, lambda f: gene_steps.gene_summaries(f, inputs, effects[multi], basis),
                   force=force, on_start=lambda: report.start("genes"))
    records.append(report.record(rec))
    gene_tables = gene_steps.read_gene_tables(folder / "genes")

    steps.remove_stale(outdir, [r.name for r in records])
    result = PipelineResult(out=out, traits=list(inputs.traits), shrinkage=shrinkage, clusters=clusters,
                            enrichment=enrichment, genes=gene_tables, steps=records)
    _finish(outdir, result, inputs, s, report)
    return result


def _finish(outdir: Any, result: PipelineResult, inputs: PipelineInputs, s: dict[str, Any],
            report: _Progress) -> None:
    """Figures, report.md and run.json (always rebuilt: they are cheap and describe this run)."""
    from bayesmages import __version__
    from bayesmages.io import write_json, write_text
    from bayesmages.pipeline.figures import write_figures
    from bayesmages.pipeline.report import render_report

    folder = outdir.path
    timings: dict[str, float] = {}
    if s["figures"]:
        t0 = time.perf_counter()
        report.start("figures")
        with outdir.part("figures") as tmp:
            names = write_figures(tmp, result, fdr=s["fdr"], seed=s["seed"])
        result.figures = [f"figures/{n}" for n in names]
        timings["figures"] = round(time.perf_counter() - t0, 3)
        report.done("figures", timings["figures"])
    result.metadata = {
        "bayesmages_version": __version__,
        "pipeline": "shrink -> cluster + enrich per trait -> cluster_multi -> genes",
        "arguments": {
            "traits": result.traits, "model": str(s["model"]), "seed": s["seed"], "workers": s["workers"],
            "scheduler": None if s["scheduler"] is None else str(s["scheduler"]), "force": s["force"],
            "fdr": s["fdr"], "truncation": s["truncation"], "restarts": s["restarts"], "select": s["select"],
            "gene_test": s["gene_test"],
            "quantile": s["quantile"], "multi_traits": s["multi_traits"], **s["arguments"],
        },
        "inputs": {"sources": inputs.sources, "hashes": inputs.hashes, "n_variants": inputs.n_variants,
                   "n_blocks": len(inputs.blocks), "n_genes": len(inputs.genes),
                   "n_genes_unmapped": len(inputs.unmapped_genes), "unmapped_genes": inputs.unmapped_genes},
        "seeds": {"run": s["seed"], **{r.name: step_seed(s["seed"], r.name) for r in result.steps
                                       if r.name.startswith("cluster_")}},
        "steps": [{"name": r.name, "key": r.key, "seconds": r.seconds, "reused": r.reused, "info": r.info}
                  for r in result.steps],
        # wall seconds of the step groups computed together (a step's "seconds" is its own compute time,
        # which overlaps others' when workers run several at once)
        "step_walls": s["walls"],
        "figures": result.figures,
        **({"harmonisation": inputs.harmonisation.reports} if inputs.harmonisation is not None else {}),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": " ".join(["bayesmages", *sys.argv[1:]]) if s["arguments"] else None,
    }
    t0 = time.perf_counter()
    report.start("report")
    outdir.claim("report.md", "run.json")
    write_text(render_report(result, inputs, folder, fdr=s["fdr"]), folder / "report.md")
    timings["report"] = round(time.perf_counter() - t0, 3)
    timings["total"] = round(time.perf_counter() - s["started"], 3)
    result.metadata["timings"] = {**{r.name: r.seconds for r in result.steps}, **timings}
    write_json(result.metadata, folder / "run.json")
    outdir.prune()
    report.done("report", timings["report"])
