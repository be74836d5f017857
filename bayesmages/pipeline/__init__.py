"""End-to-end pipeline: GWAS summary statistics to gene-level answers, with figures and a report.

``bm.pipeline.run(gwas, ld, genes, out)`` shrinks each trait's effects for LD, clusters them per
trait and tests genes for enrichment, clusters the traits jointly, summarises genes across traits,
and writes tables, figures, ``report.md`` and ``run.json``. Finished steps are reused when the run is
repeated on the same folder (see :mod:`bayesmages.pipeline.steps`).

Examples
--------
>>> import bayesmages as bm
>>> res = bm.pipeline.run(["gwas_T1.tsv", "gwas_T2.tsv"], "ld/", "genes.tsv", "results")  # doctest: +SKIP

With a PLINK reference panel instead of LD files (GWAS harmonised to it, LD computed once and cached):

>>> res = bm.pipeline.run("gwas.y.glm.linear", None, "genes.tsv", "results",
...                       ld_panel=bm.pipeline.LDPanel("ref.bed", shrinkage=0.05))  # doctest: +SKIP
"""

from bayesmages.pipeline.figures import plot_cluster_covariances, plot_top_variants
from bayesmages.pipeline.inputs import PipelineInputs, load_inputs
from bayesmages.pipeline.panel import LDPanel
from bayesmages.pipeline.runner import PipelineResult, run
from bayesmages.pipeline.steps import ClusterOutput, StepRecord

__all__ = [
    "ClusterOutput",
    "LDPanel",
    "PipelineInputs",
    "PipelineResult",
    "StepRecord",
    "load_inputs",
    "plot_cluster_covariances",
    "plot_top_variants",
    "run",
]
