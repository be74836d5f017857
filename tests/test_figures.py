"""Every public figure function renders headless (Agg) to a non-trivial image file.

"Non-trivial" is checked on the saved PNG: its size (a blank canvas of these sizes at 80 dpi
compresses to about 2-4 kB) and its colours (at least one chromatic colour besides the white
background and black text, i.e. the data were drawn). A completeness test discovers the
package's figure functions and fails when one has no rendering check here or elsewhere.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.errors import InputError

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parents[1]
MIN_BYTES = 6_000  # blank canvases of these figure sizes at 80 dpi are ~2-4 kB

# Figure functions rendered in another test file. The pipeline's figures are checked there with
# the same criteria (size and more than one colour). The two model methods are thin wrappers of
# plot_elbo / plot_clusters (fully checked here); test_cluster_model.py renders them on its fitted
# model, which avoids a second model fit just for a figure.
CHECKED_ELSEWHERE = {
    "bayesmages.pipeline.figures.plot_cluster_covariances": "tests/test_pipeline.py",
    "bayesmages.pipeline.figures.plot_top_variants": "tests/test_pipeline.py",
    "bayesmages.model.BayesianModel.plot_elbo": "tests/test_cluster_model.py",
    "bayesmages.cluster.dpoutput.DPMixtureOutput.plot_clusters": "tests/test_cluster_model.py",
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")  # pyplot-based figures must not accumulate across tests


def assert_nontrivial_png(fig, path: Path) -> None:
    fig.savefig(path, dpi=80)
    assert path.stat().st_size > MIN_BYTES, f"{path.name}: {path.stat().st_size} bytes looks blank"
    rgb = mpimg.imread(path)[..., :3].reshape(-1, 3)
    colours = np.unique(np.round(rgb * 255).astype(np.uint8), axis=0)
    assert len(colours) > 2, f"{path.name}: only {len(colours)} distinct colours"
    # chromatic = channels differ by > 0.15 (anti-aliased greys and black text do not)
    assert (np.ptp(rgb, axis=1) > 0.15).any(), f"{path.name}: no coloured pixel; were the data drawn?"


# ----------------------------------------------------------------------------------- builders


def _elbo_figures() -> list:
    rng = np.random.default_rng(0)
    hist = -np.geomspace(5000, 100, 300) + rng.normal(scale=5, size=300)
    idata = bm.diagnostics.to_inference_data({"mu": rng.normal(size=50)}, elbo=hist)
    restarts = {f"restart {r}": hist + 20 * r for r in range(3)}
    fig_ax, ax = plt.subplots()
    figs = [
        bm.diagnostics.plot_elbo(hist),
        bm.diagnostics.plot_elbo(restarts, skip=50, title="three restarts"),
        bm.diagnostics.plot_elbo(idata),
        bm.diagnostics.plot_elbo(hist, ax=ax),
    ]
    # what was drawn: one line per history, the first `skip` steps left out, the given axes used
    assert len(figs[1].axes[0].lines) == 3 and figs[1].axes[0].lines[0].get_xdata()[0] == 50
    assert figs[3] is fig_ax
    return figs


def _cluster_figures() -> list:
    rng = np.random.default_rng(2)
    covs = np.array([np.diag([1.0, 0.01, 0.01]), np.diag([0.01, 1.0, 0.5]), 0.001 * np.eye(3)])
    labels = rng.integers(0, 3, 600)
    X = np.stack([rng.multivariate_normal(np.zeros(3), covs[k]) for k in labels])
    cats = ["specific:A", "shared:B+C", "non-prioritised"]
    figs = [
        bm.cluster.plot_clusters(X[:, 0], labels, covs[:, :1, :1], categories=cats),        # one trait: histogram
        bm.cluster.plot_clusters(X[:, :2], labels, covs[:, :2, :2], trait_names=["A", "B"]),  # two: one scatter
        bm.cluster.plot_clusters(X, labels, covs, max_points=300, seed=1),                   # three: pairwise panels
    ]
    assert len([ax for ax in figs[2].axes if ax.get_visible()]) == 3  # pairs (A,B), (A,C), (B,C)
    with pytest.raises(InputError, match="disagree"):
        bm.cluster.plot_clusters(X, labels[:-1], covs)
    return figs


def _gene_results():
    rng = np.random.default_rng(4)
    n_genes = 30
    p = rng.uniform(size=n_genes) ** 2
    p[:3] = [1e-12, 1e-8, 1e-6]
    res = pd.DataFrame({"GENE": [f"G{i}" for i in range(n_genes)], "p_value": p, "q_value": bm.stats.bh(p)})
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(6)], "CHR": "1", "N_SNPS": 10,
                          "start_idx_chr": np.arange(6) * 10, "end_idx_chr": np.arange(6) * 10 + 9,
                          "chr_start_idx_gw": 0})
    effects = rng.normal(size=(60, 2))
    summary = bm.genes.summarize(effects, genes, rng.integers(-1, 3, 60),
                                 ["specific:T1", "shared:T1+T2", "non-prioritised"])
    return res, summary


def _gene_pvalue_figures() -> list:
    res, _ = _gene_results()
    return [bm.genes.plot_gene_pvalues(res), bm.genes.plot_gene_pvalues(res.assign(q_value=1.0))]  # none significant


def _gene_fraction_figures() -> list:
    _, summary = _gene_results()
    return [bm.genes.plot_cluster_fractions(summary.fractions)]


def _s_summary_figures() -> list:
    _, summary = _gene_results()
    return [bm.genes.plot_s_summary(summary.S_array, summary.fractions.GENE.tolist(), summary.traits)]


BUILDERS: dict[str, Callable[[], list]] = {
    "bayesmages.diagnostics.plot_elbo": _elbo_figures,
    "bayesmages.cluster.plots.plot_clusters": _cluster_figures,
    "bayesmages.genes.plots.plot_gene_pvalues": _gene_pvalue_figures,
    "bayesmages.genes.plots.plot_cluster_fractions": _gene_fraction_figures,
    "bayesmages.genes.plots.plot_s_summary": _s_summary_figures,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_figure_renders_headless_to_a_nontrivial_png(name, tmp_path):
    figs = BUILDERS[name]()
    assert figs
    for i, fig in enumerate(figs):
        assert isinstance(fig, matplotlib.figure.Figure)
        assert_nontrivial_png(fig, tmp_path / f"{name.rsplit('.', 1)[-1]}_{i}.png")


def _returns_figure(obj) -> bool:
    return "Figure" in str(inspect.signature(obj).return_annotation)


def _figure_functions() -> set[str]:
    """Public functions and methods named ``plot_*`` or annotated to return a Figure."""
    found = set()
    for info in pkgutil.walk_packages(bm.__path__, "bayesmages."):
        if info.name.endswith("__main__") or any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) and (name.startswith("plot_") or _returns_figure(obj)):
                found.add(f"{module.__name__}.{name}")
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_") and (
                            attr.startswith("plot_") or _returns_figure(member)):
                        found.add(f"{module.__name__}.{name}.{attr}")
    return found


def test_every_figure_function_is_checked():
    found = _figure_functions()
    assert "bayesmages.diagnostics.plot_elbo" in found  # the discovery itself works
    unchecked = found - set(BUILDERS) - set(CHECKED_ELSEWHERE)
    assert not unchecked, f"figure functions without a rendering test: {sorted(unchecked)}"
    for name, test_file in CHECKED_ELSEWHERE.items():
        if name in found:
            assert name.rsplit(".", 1)[-1] in (REPO / test_file).read_text(encoding="utf-8"), (name, test_file)
