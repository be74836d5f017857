"""Readers and writers with validation (DESIGN §5-6).

Every reader raises :class:`bayesmages.errors.InputError` naming the file and the column,
row or property at fault; every writer is atomic.
"""

from bayesmages.io.genes import read_genes, validate_genes
from bayesmages.io.genotypes import (
    GenotypeFile,
    GenotypeRef,
    Genotypes,
    is_plink_fileset,
    open_genotypes,
    read_genotypes,
)
from bayesmages.io.gwas import GWAS_ALIASES, read_gwas, validate_gwas
from bayesmages.io.gwas_formats import GWAS_FORMATS, DroppedRowsWarning, detect_gwas_format
from bayesmages.io.harmonisation import DROP_REASONS, Harmonised, harmonise, read_bim
from bayesmages.io.ld import LDBlock, read_ld, validate_ld
from bayesmages.io.ldstore import LDStore, build_ld_store, ld_store, shrink_ld
from bayesmages.io.tables import (
    atomic_dir,
    atomic_path,
    read_table,
    write_json,
    write_npz,
    write_table,
    write_text,
)

__all__ = [
    "DROP_REASONS",
    "GWAS_ALIASES",
    "GWAS_FORMATS",
    "DroppedRowsWarning",
    "GenotypeFile",
    "GenotypeRef",
    "Genotypes",
    "Harmonised",
    "LDBlock",
    "LDStore",
    "atomic_dir",
    "atomic_path",
    "build_ld_store",
    "detect_gwas_format",
    "harmonise",
    "is_plink_fileset",
    "ld_store",
    "open_genotypes",
    "read_bim",
    "read_genes",
    "read_genotypes",
    "read_gwas",
    "read_ld",
    "read_table",
    "shrink_ld",
    "validate_genes",
    "validate_gwas",
    "validate_ld",
    "write_json",
    "write_npz",
    "write_table",
    "write_text",
]
