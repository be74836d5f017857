"""The pipeline's resumable steps: what each computes, what it writes, and when it is reused.

A step writes its files into its own folder of the output (``shrink_<trait>/``, ``cluster_<trait>/``,
``enrich_<trait>/``, ``cluster_multi/``, ``genes/``), built under a temporary name and landed with
:meth:`bayesmages.io.outdir.OutputDir.part` (a new folder is one rename; an existing one is updated with
its manifest removed first and moved in last, so a step killed at any moment never looks finished),
with a manifest ``step.json`` holding the step's *key*: a hash of everything its result depends on (the
content hashes of its inputs, the keys of the steps it reads, its arguments and seed, the package
version). A folder whose manifest carries the same key is reused; any other is recomputed, and since
a step's key includes its upstream keys, a changed input or argument invalidates everything
downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import ConvergenceWarning, InputError, PruningWarning
from bayesmages.pipeline.inputs import PipelineInputs

__all__ = ["ClusterOutput", "StepRecord", "is_finished", "remove_stale", "run_step", "step_seed"]

MANIFEST = "step.json"
#: the folder of the run's spilled LD blocks (:func:`unit_ld`)
LD_CACHE = "ld_cache"


@dataclass(frozen=True)
class StepRecord:
    """What happened to one step in this run.

    Attributes
    ----------
    name : str
        The step (= its folder name).
    key : str
        Hash of everything the step's result depends on.
    seconds : float
        Compute time of the step (from its manifest when reused).
    reused : bool
        True when a finished folder with the same key was found and kept.
    info : dict
        Step-specific facts (null variance, number of clusters, convergence notes, ...).
    """

    name: str
    key: str
    seconds: float
    reused: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterOutput:
    """A DP-mixture clustering as written by a cluster step.

    Attributes
    ----------
    traits : list of str
        Traits clustered (one for single-trait steps).
    variants : pandas.DataFrame
        ``SNP, cluster, prob, category, selected, p_pruned, pruned_label_change, type, type_prob`` and
        ``p_<type>`` per association type, per variant in data order (cluster ``-1``: not clustered).
    clusters : pandas.DataFrame
        ``cluster, weight, trace, category, cov_<a>_<b>`` per kept cluster.
    elbo : numpy.ndarray
        ELBO history of the kept restart.
    """

    traits: list[str]
    variants: pd.DataFrame
    clusters: pd.DataFrame
    elbo: np.ndarray

    @property
    def covariances(self) -> np.ndarray:
        """(K, p, p) cluster covariances rebuilt from the ``cov_<a>_<b>`` columns."""
        p, k = len(self.traits), len(self.clusters)
        cov = np.zeros((k, p, p))
        for a in range(p):
            for b in range(a, p):
                col = self.clusters[f"cov_{self.traits[a]}_{self.traits[b]}"].to_numpy(np.float64)
                cov[:, a, b] = cov[:, b, a] = col
        return cov

    @property
    def weights(self) -> np.ndarray:
        """(K,) cluster weights."""
        return self.clusters["weight"].to_numpy(np.float64)

    @property
    def categories(self) -> list[str]:
        """Category of each cluster."""
        return self.clusters["category"].astype(str).tolist()

    @property
    def labels(self) -> np.ndarray:
        """(m,) cluster label per variant, ``-1`` for variants that were not clustered."""
        return self.variants["cluster"].to_numpy(np.int64)

    @property
    def selected(self) -> np.ndarray:
        """(m,) True for the variants that were clustered."""
        return self.labels >= 0

    @property
    def type_probabilities(self) -> pd.DataFrame | None:
        """(m, T) association-type probabilities of every variant (columns = types), or None (older runs)."""
        cols = [c for c in self.variants.columns if str(c).startswith("p_") and c != "p_pruned"]
        if not cols:
            return None
        return self.variants[cols].rename(columns=lambda c: str(c)[2:]).astype(np.float64)


def step_seed(seed: int, name: str) -> int:
    """The seed of step ``name``: depends on the run seed and the step's name only.

    Naming rather than numbering the steps keeps a trait's seeds unchanged when traits are added.

    Examples
    --------
    >>> step_seed(0, "cluster_T1") == step_seed(0, "cluster_T1") != step_seed(0, "cluster_T2")
    True
    """
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(name.encode()),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def step_key(name: str, spec: Mapping[str, Any]) -> str:
    """Hash of a step's name, spec and the package version."""
    from bayesmages import __version__

    text = json.dumps({"step": name, "version": __version__, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finished(out: Path, name: str, key: str) -> dict[str, Any] | None:
    """The manifest of ``out/name`` when it carries ``key``, else None."""
    manifest = out / name / MANIFEST
    if not manifest.is_file():
        return None
    try:
        old = json.loads(manifest.read_text())
    except (OSError, ValueError):  # an unreadable manifest is a step to redo, not an error
        return None
    return old if old.get("key") == key else None


def is_finished(out: Path, name: str, spec: Mapping[str, Any]) -> bool:
    """True when ``out/name`` holds a finished step with this spec (it would be reused)."""
    return _finished(out, name, step_key(name, spec)) is not None


def _as_output(out: Any) -> Any:
    from bayesmages.io.outdir import OutputDir

    return out if isinstance(out, OutputDir) else OutputDir(out, overwrite=True)


def run_step(
    out: Any, name: str, spec: Mapping[str, Any], compute: Callable[[Path], dict[str, Any]], *, force: bool,
    extra_seconds: float = 0.0, on_start: Callable[[], None] | None = None,
) -> StepRecord:
    """Reuse the finished folder ``out/name`` when its key matches; otherwise run ``compute`` atomically.

    ``out`` is the run folder (a path or a :class:`bayesmages.io.outdir.OutputDir`). ``compute(folder)``
    writes the step's files into ``folder`` and returns its ``info``; ``extra_seconds`` is this step's
    share of work done before the call (steps computed together); ``on_start`` is called before a
    computation (not for a reused step).
    """
    from bayesmages.io import write_json

    out = _as_output(out)
    key = step_key(name, spec)
    old = None if force else _finished(out.path, name, key)
    if old is not None:
        return StepRecord(name, key, float(old.get("seconds", 0.0)), True, dict(old.get("info", {})))
    if on_start is not None:
        on_start()
    started = time.perf_counter()
    with out.part(name, last=(MANIFEST,)) as tmp:
        info = compute(tmp)
        seconds = round(time.perf_counter() - started + extra_seconds, 3)
        write_json({"step": name, "key": key, "spec": dict(spec), "seconds": seconds, "info": info}, tmp / MANIFEST)
    return StepRecord(name, key, seconds, False, info)


def remove_stale(out: Any, current: Sequence[str]) -> list[str]:
    """Delete step folders of an earlier run that this run has no step for (e.g. a trait left out).

    Only folders holding a step manifest are touched, and in them only the files bayesmages wrote
    (a file the user added keeps its folder); returns their names.
    """
    out = _as_output(out)
    stale = sorted(p.name for p in out.path.iterdir()
                   if p.is_dir() and p.name not in current and (p / MANIFEST).is_file())
    for name in stale:
        out.remove(name)
    return stale


# pandas 3 parses floats exactly by default; pandas 2 only with the round-trip parser (deprecated in 3)
_EXACT_FLOATS: dict[str, Any] = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _read(path: Path) -> pd.DataFrame:
    # Only empty cells are missing: categories such as "none" stay text. Floats are read back exactly
    # (write_table writes their shortest round-trip form): a resumed run sees the numbers that were written.
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **_EXACT_FLOATS)


# ----------------------------------------------------------------------------------------- shrink
def unit_ld(inputs: PipelineInputs, outdir: Any, *, parallel: bool) -> Any:
    """The LD as the shrink units get it: by reference when they leave this process, else the blocks in memory.

    From an LD store: its block files (rows and shrinkage applied by each worker). From ``.npy`` files that
    validation left unchanged: those files. Otherwise (text files, blocks in memory) each block is written
    once to ``<out>/ld_cache/<content hash>.npy``, files recorded as bayesmages's in the output folder
    (a file there that bayesmages did not write is never replaced: the run stops naming it).
    """
    from bayesmages.io.ldrefs import LDRefs, content_name, spill_blocks

    if not parallel:
        return list(inputs.blocks)
    h = inputs.harmonisation
    if h is not None and h.store is not None:
        return LDRefs.from_store(h.store, h.block_ids, h.block_rows, h.shrinkage)
    if inputs.ld_files and all(f is not None for f in inputs.ld_files):
        return LDRefs(tuple(str(f) for f in inputs.ld_files))
    out = _as_output(outdir)
    names = [content_name(R) for R in inputs.blocks]
    out.remove(LD_CACHE)  # the previous run's cache (only the files bayesmages wrote there)
    out.claim(*sorted({f"{LD_CACHE}/{n}" for n in names}))  # before writing: ownership is known if killed
    return spill_blocks(inputs.blocks, out.path / LD_CACHE, names=names)


def shrink_traits(inputs: PipelineInputs, traits: Sequence[str], *, model: Any, workers: int, scheduler: Any,
                  progress: bool, method: str = "nn", seed: int = 0, ld: Any = None) -> dict[str, pd.DataFrame]:
    """Shrink several traits together; the shrinkage table of each trait.

    One unit is a group of LD blocks x all ``traits`` (:mod:`bayesmages.shrink.units`): each block's LD
    is opened once per unit and its features computed once for every trait, and one map starts one
    process pool (or Dask submission) for everything. ``ld``: from :func:`unit_ld` (default: the blocks
    in memory). ``attrs["units"]`` of each table: the units' accounting.
    """
    from bayesmages.genes.mapping import block_layout
    from bayesmages.shrink.api import OUTPUT_COLUMNS, resolve_shrinker, shrink_blocks

    sizes = [R.shape[0] for R in inputs.blocks]
    starts = block_layout(sizes)
    cuts = [slice(int(a), int(a) + m) for a, m in zip(starts, sizes)]
    beta = np.stack([inputs.gwas[t]["BETA"].to_numpy(np.float64) for t in traits])
    se = np.stack([inputs.gwas[t]["SE"].to_numpy(np.float64) for t in traits])
    # The neural shrinker and susie are deterministic; the seed only matters for the elastic net's CV.
    # n (the GWAS N column, block medians) is used by susie when every trait has one.
    n = None
    if method == "susie" and all("N" in inputs.gwas[t] for t in traits):
        n_all = np.stack([inputs.gwas[t]["N"].to_numpy(np.float64) for t in traits])
        n = [[float(np.median(n_all[i, c])) for i in range(len(traits))] for c in cuts]
    unit_model = resolve_shrinker(model, method, sizes=sizes)
    per_block, stats = shrink_blocks([beta[:, c] for c in cuts], [se[:, c] for c in cuts],
                                     ld if ld is not None else list(inputs.blocks), model=unit_model, method=method,
                                     n=n, workers=workers, scheduler=scheduler, seed=seed, progress=progress)
    out = {}
    for i, t in enumerate(traits):
        mean, sd, lower, upper = (np.concatenate([r[k][i] for r in per_block]) for k in range(4))
        table = pd.DataFrame({**{c: inputs.variants[c].to_numpy() if c in inputs.variants else None
                                 for c in ("SNP", "CHR", "POS")},
                              "trait": t, "beta_hat": beta[i], "se": se[i], "beta_shrunk": mean, "sd": sd,
                              "lower": lower, "upper": upper})[OUTPUT_COLUMNS]
        if method == "susie":
            table["pip"] = np.concatenate([r[4][i] for r in per_block])
            table["cs"] = np.concatenate([np.where(r[5][i] == "", "", np.char.add(f"{b + 1}:", r[5][i].astype(str)))
                                          for b, r in enumerate(per_block)])
        table.attrs["units"] = stats
        out[t] = table
    return out


def write_shrinkage(folder: Path, table: pd.DataFrame) -> dict[str, Any]:
    """Write one trait's shrinkage table (DESIGN §6 columns) as ``shrinkage.csv``."""
    from bayesmages.io import write_table

    write_table(table, folder / "shrinkage.csv")
    return {"n_variants": len(table), **({"units": table.attrs["units"]} if "units" in table.attrs else {})}


def read_shrinkage(folder: Path) -> pd.DataFrame:
    """The shrinkage table of a finished shrink step."""
    df = _read(folder / "shrinkage.csv")
    df["SNP"] = df["SNP"].astype(str)
    return df


# ---------------------------------------------------------------------------------------- cluster
def cluster_effects(folder: Path, effects: pd.DataFrame, *, truncation: int, restarts: int, seed: int,
                    progress: bool, selected: np.ndarray | None = None, se: pd.DataFrame | None = None,
                    sd: pd.DataFrame | None = None, fit_noise: bool = False,
                    pip: pd.DataFrame | None = None, observed: pd.DataFrame | None = None,
                    observed_noise: pd.DataFrame | None = None) -> dict[str, Any]:
    """Fit ``dp_mixture`` to the (m, p) effects; writes ``variants.csv``, ``clusters.csv``, ``elbo.csv``.

    With ``selected`` (a boolean mask), only those rows are clustered; the others get cluster ``-1``
    and category ``"not clustered"`` in ``variants.csv``. Every variant, clustered or not, gets
    association-type probabilities (``type``, ``type_prob``, ``p_<type>`` columns) with its noise from
    ``sd`` (the shrinker's posterior sds, capped; see :func:`bayesmages.cluster.types.variant_noise`)
    and the null level following ``se`` (the GWAS standard errors) when given. With ``fit_noise`` the
    clustered rows are also fitted as ``N(0, Sigma_k + diag(sd^2))``. The ``p_<type>`` columns give the type of
    the association signal a variant carries (LD tags of a causal variant included); with ``pip`` (per-trait
    posterior inclusion probabilities from ``susie``) the ``causal_p_<type>`` columns give the probability that
    the variant itself carries a non-zero effect of the type
    (:func:`bayesmages.cluster.types.causal_type_probabilities`). With ``observed`` and ``observed_noise``
    (LD-deconvolved GWAS effects and their noise variances, :mod:`bayesmages.cluster.observations`) the type
    probabilities are computed from those instead of the shrunk effects (the clustering is unchanged).
    """
    from bayesmages.io import write_table
    from bayesmages.registry import get_model

    mask = np.ones(len(effects), dtype=bool) if selected is None else np.asarray(selected, dtype=bool)
    if mask.sum() <= effects.shape[1]:
        raise InputError(f"only {int(mask.sum())} variants are selected for clustering {list(effects.columns)}; "
                         "too few (use another selection rule)")
    model = get_model("dp_mixture", truncation=truncation, restarts=restarts, trait_names=list(effects.columns))
    X = effects.to_numpy(np.float64)
    data: Any = X[mask] if sd is None or not fit_noise else {"effects": X[mask], "sd": sd.to_numpy(np.float64)[mask]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", PruningWarning)
        model.fit(data, seed=seed, progress=progress)
    notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    pruning = [str(w.message) for w in caught if issubclass(w.category, PruningWarning)]
    fitted = model.variant_table(ids=effects.index[mask].tolist(), types=False)
    table = pd.DataFrame({"SNP": effects.index.astype(str), "cluster": -1, "prob": np.nan,
                          "category": "not clustered", "selected": mask, "p_pruned": np.nan,
                          "pruned_label_change": False})
    cols = ["cluster", "prob", "category", "p_pruned", "pruned_label_change"]
    table.loc[mask, cols] = fitted[cols].to_numpy()
    table["cluster"] = table["cluster"].astype(np.int64)
    table["pruned_label_change"] = table["pruned_label_change"].astype(bool)
    sd_arr = None if sd is None else sd.to_numpy(np.float64)
    if sd_arr is not None and not np.isfinite(sd_arr).all():
        sd_arr = None  # a shrinker without posterior sds (the elastic net): the robust null level instead
    pip_arr = None if pip is None or sd_arr is None or se is None else pip.to_numpy(np.float64)
    if observed is not None and observed_noise is not None:
        probs = model.association_types(observed.to_numpy(np.float64), noise_var=observed_noise.to_numpy(np.float64),
                                        null_scales=(0.0,), seed=seed)
    else:
        probs = model.association_types(X, sd=sd_arr, se=None if se is None else se.to_numpy(np.float64),
                                        pip=pip_arr, seed=seed)
    table["type"] = probs.columns.to_numpy(dtype=object)[probs.to_numpy().argmax(1)]
    table["type_prob"] = probs.to_numpy().max(1)
    for name in probs.columns:
        table[f"p_{name}"] = probs[name].to_numpy()
    if pip is not None:
        from bayesmages.cluster.types import causal_type_probabilities

        causal = causal_type_probabilities(probs.to_numpy(), pip.to_numpy(np.float64))
        for j, name in enumerate(probs.columns):
            table[f"causal_p_{name}"] = causal[:, j]
    write_table(table, folder / "variants.csv")
    write_table(model.cluster_table(), folder / "clusters.csv")
    elbo = np.asarray(model.elbo_, dtype=np.float64).ravel()
    write_table(pd.DataFrame({"step": np.arange(elbo.size), "elbo": elbo}), folder / "elbo.csv")
    return {"n_clusters": int(model.n_components_), "categories": list(model.categories_),
            "n_clustered": int(mask.sum()), "convergence_notes": notes, "pruning_notes": pruning,
            "pruned_label_changes": int(table["pruned_label_change"].sum()),
            "type_counts": {str(k): int(v) for k, v in table["type"].value_counts().items()},
            # what the association types were computed from (cluster_fits' types_from)
            "types_from": "deconvolved" if observed is not None and observed_noise is not None else "shrunk"}


MULTI = "multi"


def trait_rows(shrinkage: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of each trait in a long shrinkage table, in table order.

    One pass over the trait column for all traits (comparing the column with each trait's name costs a
    pass per trait: minutes of a many-trait run's serial time at 20 traits x 1M variants).
    """
    codes, names = pd.factorize(shrinkage["trait"], sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {str(name): order[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}


def wide(shrinkage: pd.DataFrame, traits: Sequence[str], column: str = "beta_shrunk",
         rows: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """(m, p) table of one shrinkage column, one column per trait, indexed by SNP in data order.

    ``rows``: :func:`trait_rows` of ``shrinkage`` when the caller has it.
    """
    rows = trait_rows(shrinkage) if rows is None else rows
    values = shrinkage[column].to_numpy()
    cols = {t: values[rows[t]] for t in traits}
    snps = shrinkage["SNP"].iloc[rows[traits[0]]].astype(str).to_numpy()
    return pd.DataFrame(cols, index=pd.Index(snps, name="SNP"))


#: what the multi-trait step's association types are computed from (``cluster_fits(types_from=...)``)
TYPES_FROM = ("shrunk", "auto", "deconvolved")


def cluster_fits(shrinkage: pd.DataFrame, traits: Sequence[str], shrink_keys: Mapping[str, str], *, seed: int,
                 truncation: int, restarts: int, select: str, quantile: float,
                 multi: Sequence[str] | None = None, rows: Mapping[str, np.ndarray] | None = None,
                 blocks: Sequence[np.ndarray] | None = None, types_from: str = "shrunk",
                 ) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The clusterings of a run: per step name, its spec (for the step key) and its :func:`cluster_effects` arguments.

    One ``cluster_<trait>`` per trait and, with two or more ``multi`` traits (default: all ``traits``),
    ``cluster_multi`` of those traits on the selected variants. ``rows``: :func:`trait_rows` of ``shrinkage``
    when the caller has it.

    ``types_from`` says what ``cluster_multi``'s association types are computed from: ``"shrunk"`` (the
    shrunk effects with the shrinker's sds, the previous rule), ``"deconvolved"`` (the GWAS effects minus the
    LD contribution of the other variants' shrunk effects, with noise ``se^2``:
    :func:`bayesmages.cluster.observations.deconvolved_observations`; needs ``blocks``, the LD blocks in data
    order) or ``"auto"``: deconvolved when ``blocks`` are given and the shrinker gave joint effects (its table
    has PIPs: ``susie``), else shrunk; ``run`` asks for ``"auto"``. The default stays ``"shrunk"``: on
    ``bench/multitrait.py`` the deconvolved observations raised the susie gene-level average precision (held out:
    0.75 / 0.77 / 0.81 ->
    0.81 / 0.83 / 0.85) and narrowed the causal claim's pooled top-bin gap (0.151 -> 0.111) but met no goal of
    issue 13 that the shrunk effects miss; with ``nn`` (whose means are not joint effects) they lowered the
    average precision and the demo's ratios (numbers in docs/cluster.md).
    """
    from bayesmages.cluster import select_variants

    # checked whatever the number of traits: a bad value is a mistake even where no multi-trait fit runs
    if types_from not in TYPES_FROM:
        raise InputError(f"types_from: expected one of {', '.join(TYPES_FROM)}, got {types_from!r}")
    if types_from == "deconvolved" and blocks is None:
        raise InputError("types_from='deconvolved' needs the LD blocks (blocks=...)")
    fit_settings = {"truncation": truncation, "restarts": restarts}
    rows = trait_rows(shrinkage) if rows is None else rows
    effects = wide(shrinkage, traits, rows=rows)
    fits: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for t in traits:
        name = f"cluster_{t}"
        spec = {"effects": shrink_keys[t], **fit_settings, "seed": step_seed(seed, name)}
        fits[name] = (spec, {"effects": effects[[t]], "seed": spec["seed"], "progress": False, **fit_settings})
    multi = list(traits if multi is None else multi)
    if len(multi) >= 2:
        name = f"cluster_{MULTI}"
        rule = {"select": select, "quantile": quantile if select == "quantile" else None}
        # "types": what the step writes beyond the clustering (per-variant association types, issue 13)
        deconvolve = types_from == "deconvolved" or (types_from == "auto" and blocks is not None
                                                     and "pip" in shrinkage)
        spec = {"effects": [shrink_keys[t] for t in multi], **fit_settings, **rule,
                "seed": step_seed(seed, name), "types": "probabilities-v5-deconvolved" if deconvolve
                else "probabilities-v4"}
        sds, ses = wide(shrinkage, multi, "sd", rows=rows), wide(shrinkage, multi, "se", rows=rows)
        # susie's PIPs turn association types into causal types (causal_p_<type> columns)
        pips = wide(shrinkage, multi, "pip", rows=rows) if "pip" in shrinkage else None
        mask = select_variants(effects[multi].to_numpy(), sds.to_numpy(), rule=select, quantile=quantile)
        extra: dict[str, Any] = {}
        if deconvolve:
            from bayesmages.cluster.observations import deconvolved_observations

            x, nv = deconvolved_observations(wide(shrinkage, multi, "beta_hat", rows=rows).to_numpy(np.float64),
                                             ses.to_numpy(np.float64), effects[multi].to_numpy(np.float64),
                                             list(blocks or []))
            extra = {"observed": pd.DataFrame(x, index=effects.index, columns=multi),
                     "observed_noise": pd.DataFrame(nv, index=effects.index, columns=multi)}
        fits[name] = (spec, {"effects": effects[multi], "seed": spec["seed"], "progress": False, "selected": mask,
                             "se": ses, "sd": sds, "pip": pips, **extra, **fit_settings})
    return fits


def warm_up_worker() -> None:
    """Pay a process's first-fit cost now: a ``dp_mixture`` fit and its association types on 200 seeded rows.

    The first Pyro fit of a process costs about 1.7 s more than the next ones (lazy initialisation in torch and
    Pyro that importing does not trigger; measured: a 100,000-row fit 2.8 s first, 0.7 s after this warm-up).
    ``run`` has its pool workers do it while the main process reads the inputs, so that a clustering unit's time
    does not depend on whether its worker fitted before. Results are discarded; nothing is shared.
    """
    from bayesmages._threads import one_blas_thread, torch_threads
    from bayesmages.registry import get_model

    rows = np.random.default_rng(0).normal(size=(200, 1))
    with one_blas_thread(), torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model("dp_mixture", truncation=3, restarts=1, trait_names=["warm-up"])
        model.fit(rows, seed=0)
        model.association_types()


def _cluster_unit(unit: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """One cluster step computed in a private folder (on any worker): its files' bytes, info and seconds.

    BLAS and torch run on one thread here, in the calling process as in a worker, so that a step's
    numbers do not depend on where it ran.
    """
    import tempfile

    from bayesmages._threads import one_blas_thread, torch_threads

    _, kwargs = unit
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bayesmages-cluster-") as tmp, one_blas_thread(), torch_threads(1):
        info = cluster_effects(Path(tmp), **kwargs)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    return {"files": files, "info": info, "seconds": time.perf_counter() - started}


def cluster_steps(units: Mapping[str, dict[str, Any]], *, workers: int, scheduler: Any) -> dict[str, dict[str, Any]]:
    """Compute several cluster steps (independent ``dp_mixture`` fits) over ``workers`` or ``scheduler``.

    ``units`` maps a step name to the keyword arguments of :func:`cluster_effects` (without ``folder``;
    each carries its own step seed, so a fit's result does not depend on where or with what it ran).
    The largest fits go first, so that the workers finish together. Returns, per step, what
    :func:`land_cluster_step` writes.
    """
    from bayesmages.parallel import map_units

    def size(name: str) -> int:
        kw = units[name]
        rows = len(kw["effects"]) if kw.get("selected") is None else int(np.sum(kw["selected"]))
        return rows * kw["effects"].shape[1]

    names = sorted(units, key=lambda n: -size(n))
    results = map_units(_cluster_unit, [(n, units[n]) for n in names], workers=workers, scheduler=scheduler,
                        desc="cluster", names=names)
    return dict(zip(names, results))


def land_cluster_step(folder: Path, computed: Mapping[str, Any]) -> dict[str, Any]:
    """Write the files of a cluster step computed by :func:`cluster_steps` into ``folder``; its info."""
    for name, data in computed["files"].items():
        (folder / name).write_bytes(data)
    return dict(computed["info"])


def read_clusters(folder: Path, traits: Sequence[str]) -> ClusterOutput:
    """The clustering of a finished cluster step."""
    variants = _read(folder / "variants.csv")
    variants["SNP"] = variants["SNP"].astype(str)
    return ClusterOutput(traits=list(traits), variants=variants, clusters=_read(folder / "clusters.csv"),
                         elbo=_read(folder / "elbo.csv")["elbo"].to_numpy(np.float64))
