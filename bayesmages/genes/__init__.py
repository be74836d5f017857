"""Gene-level analysis (METHODS §C): mapping, single-trait gene tests, multi-trait summaries, figures.

Examples
--------
>>> import numpy as np, pandas as pd, bayesmages as bm
>>> genes = pd.DataFrame({"GENE": ["A"], "CHR": [1], "N_SNPS": [2], "start_idx_chr": [0], "end_idx_chr": [1],
...                       "chr_start_idx_gw": [0]})
>>> bm.genes.enrichment.test(np.array([0.1, 0.2]), np.eye(2), genes, null_variance=0.01).columns.tolist()
['GENE', 'CHR', 'n_variants', 'Q', 'p_value', 'q_value', 'test', 'p_method']
"""

from bayesmages.genes import enrichment, mapping, multitrait, plots
from bayesmages.genes.enrichment import gene_eigenvalues, null_variance_from_fit
from bayesmages.genes.mapping import GeneMap, map_genes
from bayesmages.genes.multitrait import GeneSummary, summarize
from bayesmages.genes.plots import plot_cluster_fractions, plot_gene_pvalues, plot_s_summary

__all__ = [
    "GeneMap",
    "GeneSummary",
    "enrichment",
    "gene_eigenvalues",
    "map_genes",
    "mapping",
    "multitrait",
    "null_variance_from_fit",
    "plot_cluster_fractions",
    "plot_gene_pvalues",
    "plot_s_summary",
    "plots",
    "summarize",
]
