"""GWAS output of PLINK 2, REGENIE, SAIGE and GWAS-SSF files, read into one canonical table.

Each format names its effect allele differently; this module maps every format onto the columns
``SNP, CHR, POS, A1, A2, BETA, SE, N`` (+ ``EAF`` when the file has an effect-allele frequency),
where ``A1`` is the allele whose dosage ``BETA`` is the effect of and ``A2`` the other allele.

Rows a format marks as failed (PLINK 2 ``ERRCODE`` other than ``.``, REGENIE ``TEST_FAIL``) and
multi-allelic PLINK 2 rows are not errors of the file: they are left out of the table and
recorded, with a reason, in ``table.attrs["dropped"]`` so that :func:`bayesmages.io.harmonise`
can account for every variant of the file.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import find_column

__all__ = ["GWAS_FORMATS", "DroppedRowsWarning", "detect_gwas_format", "standardise_gwas"]

#: formats :func:`bayesmages.io.read_gwas` accepts (``format=``); ``"generic"`` = the alias table
GWAS_FORMATS: tuple[str, ...] = ("generic", "plink2", "regenie", "saige", "ssf")

#: extra effect-allele-frequency names picked up by the generic reader (an additive column)
EAF_ALIASES: tuple[str, ...] = ("EAF", "A1_FREQ", "A1FREQ", "FRQ", "EFFECT_ALLELE_FREQUENCY")


class DroppedRowsWarning(UserWarning):
    """A GWAS reader left rows out (failed tests, multi-allelic rows); they are listed in ``attrs["dropped"]``."""


@dataclass(frozen=True)
class _Spec:
    """Where one format keeps each canonical column (aliases, case-insensitive)."""

    name: str
    chr: tuple[str, ...]
    pos: tuple[str, ...]
    snp: tuple[str, ...]
    effect: tuple[str, ...]
    other: tuple[str, ...]
    beta: tuple[str, ...]
    odds: tuple[str, ...]
    se: tuple[str, ...]
    n: tuple[str, ...]
    eaf: tuple[str, ...]
    test: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


_SPECS: dict[str, _Spec] = {
    # PLINK 2 --glm: A1 is the counted (effect) allele; the other allele is whichever of REF/ALT is
    # not A1, so "other" is resolved per row from REF and ALT (see _plink2_alleles).
    "plink2": _Spec(
        name="plink2", chr=("#CHROM", "CHROM"), pos=("POS",), snp=("ID",), effect=("A1",), other=(),
        beta=("BETA",), odds=("OR",), se=("SE", "LOG(OR)_SE"), n=("OBS_CT",), eaf=("A1_FREQ",),
        test=("TEST",), extra={"REF": ("REF",), "ALT": ("ALT", "ALT1"), "ERRCODE": ("ERRCODE",)},
    ),
    # REGENIE step 2: BETA is the effect of ALLELE1, A1FREQ its frequency.
    "regenie": _Spec(
        name="regenie", chr=("CHROM",), pos=("GENPOS",), snp=("ID",), effect=("ALLELE1",), other=("ALLELE0",),
        beta=("BETA",), odds=(), se=("SE",), n=("N",), eaf=("A1FREQ",), test=("TEST",),
        extra={"EXTRA": ("EXTRA",)},
    ),
    # SAIGE step 2: BETA is the effect of Allele2, AF_Allele2 its frequency; binary traits may give
    # N_case and N_ctrl instead of N.
    "saige": _Spec(
        name="saige", chr=("CHR",), pos=("POS",), snp=("MarkerID", "SNPID", "rsid"), effect=("Allele2",),
        other=("Allele1",), beta=("BETA",), odds=(), se=("SE",), n=("N",), eaf=("AF_Allele2",),
        extra={"N_CASE": ("N_case",), "N_CTRL": ("N_ctrl",)},
    ),
    # GWAS-SSF: standard_error is read as the SE of beta, i.e. of log(odds_ratio) for odds ratios.
    "ssf": _Spec(
        name="ssf", chr=("chromosome",), pos=("base_pair_location",), snp=("rsid", "variant_id"),
        effect=("effect_allele",), other=("other_allele",), beta=("beta",), odds=("odds_ratio",),
        se=("standard_error",), n=("n",), eaf=("effect_allele_frequency",),
    ),
}


def detect_gwas_format(columns: list[str]) -> str:
    """The format of a GWAS table from its header (one of :data:`GWAS_FORMATS`).

    Parameters
    ----------
    columns : list of str
        The header names.

    Returns
    -------
    str
        ``"plink2"`` (REF, ALT and A1 with TEST, OBS_CT, ERRCODE or ``#CHROM``), ``"regenie"``
        (ALLELE0 and ALLELE1 with GENPOS, A1FREQ or LOG10P), ``"saige"`` (Allele1 and Allele2 with
        MarkerID, AC_Allele2, AF_Allele2 or p.value), ``"ssf"`` (effect_allele, other_allele and
        base_pair_location), otherwise ``"generic"``.

    Examples
    --------
    >>> detect_gwas_format(["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "N", "TEST",
    ...                     "BETA", "SE", "CHISQ", "LOG10P"])
    'regenie'
    >>> detect_gwas_format(["SNP", "A1", "A2", "BETA", "SE"])
    'generic'
    """
    up = {str(c).strip().upper() for c in columns}
    if {"REF", "A1"} <= up and up & {"ALT", "ALT1"} and up & {"TEST", "OBS_CT", "ERRCODE", "#CHROM"}:
        return "plink2"
    if {"ALLELE0", "ALLELE1"} <= up and up & {"GENPOS", "A1FREQ", "LOG10P"}:
        return "regenie"
    if {"ALLELE1", "ALLELE2"} <= up and up & {"MARKERID", "AC_ALLELE2", "AF_ALLELE2", "P.VALUE"}:
        return "saige"
    if {"EFFECT_ALLELE", "OTHER_ALLELE", "BASE_PAIR_LOCATION"} <= up:
        return "ssf"
    return "generic"


def standardise_gwas(
    raw: pd.DataFrame,
    source: str | Path,
    *,
    validate_generic: Callable[[pd.DataFrame, str | Path], pd.DataFrame],
    format: str | None = None,
    n: float | None = None,
) -> pd.DataFrame:
    """Map a raw GWAS table of any supported format onto the canonical columns.

    Parameters
    ----------
    raw : pandas.DataFrame
        The file as read (header names as in the file).
    source : str or Path
        The file, for error messages.
    validate_generic : callable
        ``(raw, source) -> table``: the reader of generic (alias-column) tables,
        :func:`bayesmages.io.gwas.validate_gwas` (passed in so that this module does not import its caller).
    format : str, optional
        One of :data:`GWAS_FORMATS`; detected from the header when omitted.
    n : float, optional
        Sample size of every variant; it replaces the file's N column when given.

    Returns
    -------
    pandas.DataFrame
        See :func:`bayesmages.io.read_gwas`. ``attrs`` holds ``format``, ``n_rows`` (data rows
        read), ``non_additive_rows`` and ``dropped`` (a list of records with SNP, CHR, POS, A1,
        A2, reason, detail).

    Raises
    ------
    InputError
        A required column is missing or a value is invalid; the message names file, column and row.
    """
    if format is not None and format not in GWAS_FORMATS:
        raise InputError(f"{source}: unknown GWAS format {format!r}; expected one of {list(GWAS_FORMATS)}")
    if n is not None and not (np.isfinite(n) and n > 0):
        raise InputError(f"{source}: the sample size n must be a positive number, got {n!r}")
    fmt = format or detect_gwas_format(list(raw.columns))
    if fmt == "generic":
        out = validate_generic(raw, source)
        cols = list(raw.columns)
        eaf_col = find_column(cols, EAF_ALIASES)
        if n is not None:
            out["N"] = float(n)
        if eaf_col is not None:
            out["EAF"] = _frequency(raw, eaf_col, np.ones(len(raw), dtype=bool), source)
        out.attrs.update(format="generic", n_rows=len(raw), non_additive_rows=0, dropped=[])
        return out
    return _Reader(raw, Path(source), _SPECS[fmt], n).run()


class _Reader:
    """One pass over a raw table of a known format."""

    def __init__(self, raw: pd.DataFrame, source: Path, spec: _Spec, n: float | None):
        if spec.name == "ssf":
            # GWAS-SSF writes missing values as '#NA'
            raw = raw.replace("#NA", np.nan)
        self.raw = raw
        self.source = source
        self.spec = spec
        self.n = n
        self.cols = list(raw.columns)
        self.keep = np.ones(len(raw), dtype=bool)
        self.dropped: list[dict[str, Any]] = []

    def col(self, aliases: tuple[str, ...], what: str, required: bool = True) -> str | None:
        found = find_column(self.cols, aliases) if aliases else None
        if found is None and required:
            raise InputError(
                f"{self.source}: {self.spec.name} format needs a {what} column ({' or '.join(aliases)}); "
                f"found {self.cols}"
            )
        return found

    def text(self, column: str) -> np.ndarray:
        values = self.raw[column]
        return np.where(values.isna(), "", values.astype(str).str.strip()).astype(object)

    def drop(self, mask: np.ndarray, reason: str, detail: np.ndarray | str) -> None:
        """Move the kept rows in ``mask`` to the dropped records."""
        rows = np.flatnonzero(mask & self.keep)
        details = np.broadcast_to(np.asarray(detail, dtype=object), (len(self.raw),))
        for i in rows:
            self.dropped.append({"row": int(i) + 1, "reason": reason, "detail": str(details[i])})
        self.keep &= ~mask

    def run(self) -> pd.DataFrame:
        spec, raw, source = self.spec, self.raw, self.source
        chr_col = self.col(spec.chr, "chromosome")
        pos_col = self.col(spec.pos, "position")
        snp_col = self.col(spec.snp, "variant id", required=False)
        beta_col = self.col(spec.beta, "BETA", required=False)
        odds_col = self.col(spec.odds, "odds-ratio", required=False)
        if beta_col is None and odds_col is None:
            raise InputError(f"{source}: {spec.name} format needs an effect column "
                             f"({' or '.join(spec.beta + spec.odds)}); found {self.cols}")
        se_col = self.col(spec.se, "standard-error")
        assert chr_col is not None and pos_col is not None and se_col is not None  # required above
        n_rows = len(raw)

        # 1. only the additive test of each variant (PLINK 2 adds covariate rows without hide-covar;
        #    REGENIE/PLINK 2 add DOM/REC/... rows with other models)
        non_additive = 0
        test_col = self.col(spec.test, "TEST", required=False)
        if test_col is not None:
            additive = np.char.upper(self.text(test_col).astype(str)) == "ADD"
            non_additive = int((~additive).sum())
            if not additive.any():
                raise InputError(f"{source}: no row with {test_col} == ADD (the additive test); "
                                 f"found tests {sorted(set(self.text(test_col)))[:5]}")
            self.keep &= additive

        # 2. rows the program itself marks as failed
        if spec.name == "plink2":
            err_col = self.col(spec.extra["ERRCODE"], "ERRCODE", required=False)
            if err_col is not None:
                codes = self.text(err_col)
                self.drop((codes != "") & (codes != "."), "errcode", codes)
        if spec.name == "regenie":
            extra_col = self.col(spec.extra["EXTRA"], "EXTRA", required=False)
            if extra_col is not None:
                extra = self.text(extra_col)
                failed = np.array(["TEST_FAIL" in e.upper() for e in extra], dtype=bool)
                self.drop(failed, "test_failed", extra)

        # 3. effect and other allele
        if spec.name == "plink2":
            a1, a2 = self._plink2_alleles()
        else:
            effect_col = self.col(spec.effect, "effect-allele")
            other_col = self.col(spec.other, "other-allele")
            assert effect_col is not None and other_col is not None  # required above
            a1, a2 = np.char.upper(self.text(effect_col).astype(str)), np.char.upper(self.text(other_col).astype(str))
            for column, alleles in ((effect_col, a1), (other_col, a2)):
                self._no_missing(alleles == "", column, "an allele")

        # 4. numbers, checked on the rows kept
        if beta_col is not None:
            beta = self.numeric(beta_col)
        else:
            assert odds_col is not None
            odds = self.numeric(odds_col)
            bad = self.keep & ~(odds > 0)
            self._first_bad(bad, odds_col, "an odds ratio > 0")
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = np.log(odds)
        se = self.numeric(se_col)
        self._first_bad(self.keep & ~(se > 0), se_col, "a standard error > 0")
        pos = self.numeric(pos_col)
        self._first_bad(self.keep & ((pos < 0) | (pos != np.round(pos))), pos_col,
                        "a non-negative integer position")
        N = self._sample_size()
        eaf_col = self.col(spec.eaf, "effect-allele frequency", required=False)

        if pd.api.types.is_float_dtype(raw[chr_col]):
            # a chromosome column read as float (numbers and a blank) must not turn into '1.0'
            raw = self.raw = raw.assign(**{chr_col: raw[chr_col].astype("Int64")})
        chrom = pd.Series(self.text(chr_col)).str.replace(r"^chr", "", regex=True, case=False).to_numpy()
        self._no_missing(chrom == "", chr_col, "a chromosome")
        snp = self.text(snp_col) if snp_col is not None else np.full(n_rows, "", dtype=object)
        # a missing id ('.' in PLINK 2) becomes CHR:POS:OTHER:EFFECT so every row has one
        no_id = (snp == "") | (snp == ".")
        if no_id.any():
            pos_text = np.where(np.isfinite(pos), np.nan_to_num(pos).astype(np.int64).astype(str), "")
            synthetic = np.array([f"{c}:{p}:{o}:{e}" for c, p, o, e in zip(chrom, pos_text, a2, a1)], dtype=object)
            snp = np.where(no_id, synthetic, snp)

        for rec in self.dropped:
            i = rec["row"] - 1
            rec.update(SNP=str(snp[i]), CHR=str(chrom[i]), POS=_int_or_none(pos[i]), A1=str(a1[i]), A2=str(a2[i]))
        k = self.keep
        out = pd.DataFrame({
            "SNP": snp[k].astype(str), "CHR": chrom[k].astype(str), "POS": pos[k].astype(np.int64),
            "A1": a1[k].astype(str), "A2": a2[k].astype(str), "BETA": beta[k], "SE": se[k], "N": N[k],
        })
        if eaf_col is not None:
            out["EAF"] = _frequency(raw, eaf_col, k, source)[k]
        out.attrs.update(format=spec.name, n_rows=n_rows, non_additive_rows=non_additive,
                         dropped=[{key: r[key] for key in ("SNP", "CHR", "POS", "A1", "A2", "reason", "detail")}
                                  | {"row": r["row"]} for r in self.dropped])
        if self.dropped:
            # never silent: a caller that does not look at attrs (e.g. a run on dense LD files) is told
            counts = Counter(r["reason"] for r in self.dropped)
            warnings.warn(
                f"{source}: {len(self.dropped)} of {n_rows} rows left out "
                f"({', '.join(f'{k} {v}' for k, v in counts.items())}); they are listed in the table's "
                "attrs['dropped'] and in the dropped table of bayesmages.io.harmonise",
                DroppedRowsWarning, stacklevel=4,
            )
        return out

    def _plink2_alleles(self) -> tuple[np.ndarray, np.ndarray]:
        """Effect allele A1 and the other allele (the one of REF/ALT that is not A1)."""
        ref_col = self.col(self.spec.extra["REF"], "REF")
        alt_col = self.col(self.spec.extra["ALT"], "ALT")
        a1_col = self.col(self.spec.effect, "A1")
        assert ref_col is not None and alt_col is not None and a1_col is not None  # required above
        ref = np.char.upper(self.text(ref_col).astype(str))
        alt = np.char.upper(self.text(alt_col).astype(str))
        a1 = np.char.upper(self.text(a1_col).astype(str))
        for column, alleles in ((ref_col, ref), (alt_col, alt), (a1_col, a1)):
            self._no_missing(alleles == "", column, "an allele")
        # ALT lists every alternative allele ('A,T'): the other allele of A1 is then not one allele
        multi = np.char.find(alt, ",") >= 0
        self.drop(multi, "multiallelic", np.array([f"ALT={x}" for x in alt], dtype=object))
        other = np.where(a1 == ref, alt, np.where(a1 == alt, ref, ""))
        bad = self.keep & (other == "")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{self.source}: column {a1_col} at row {i + 1} is {str(a1[i])!r}, expected REF "
                             f"({str(ref[i])!r}) or ALT ({str(alt[i])!r})")
        return a1, other

    def numeric(self, column: str) -> np.ndarray:
        values = pd.to_numeric(self.raw[column], errors="coerce").to_numpy(dtype=float)
        nonnumeric = self.keep & np.isnan(values) & self.raw[column].notna().to_numpy()
        if nonnumeric.any():
            i = int(np.flatnonzero(nonnumeric)[0])
            raise InputError(f"{self.source}: column {column} has a non-numeric value "
                             f"{self.raw[column].iloc[i]!r} at row {i + 1}; expected a number")
        self._first_bad(self.keep & ~np.isfinite(values), column, "a finite number (it is missing or infinite)")
        return values

    def _first_bad(self, bad: np.ndarray, column: str, expected: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{self.source}: column {column} at row {i + 1} is {_show(self.raw[column].iloc[i])}; "
                             f"expected {expected}")

    def _no_missing(self, missing: np.ndarray, column: str, expected: str) -> None:
        bad = self.keep & missing
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{self.source}: column {column} is empty at row {i + 1}; expected {expected}")

    def _sample_size(self) -> np.ndarray:
        n_rows = len(self.raw)
        if self.n is not None:
            return np.full(n_rows, float(self.n))
        n_col = self.col(self.spec.n, "N", required=False)
        if n_col is None and self.spec.name == "saige":
            case_col = self.col(self.spec.extra["N_CASE"], "N_case", required=False)
            ctrl_col = self.col(self.spec.extra["N_CTRL"], "N_ctrl", required=False)
            if case_col is not None and ctrl_col is not None:
                N = self.numeric(case_col) + self.numeric(ctrl_col)
                self._first_bad(self.keep & ~(N > 0), case_col, "N_case + N_ctrl > 0")
                return N
        if n_col is None:
            raise InputError(f"{self.source}: no sample-size column ({' or '.join(self.spec.n)}) in this "
                             f"{self.spec.name} file; give the sample size with n= (--n on the command line)")
        N = self.numeric(n_col)
        self._first_bad(self.keep & ~(N > 0), n_col, "a sample size > 0")
        return N


def _frequency(raw: pd.DataFrame, column: str, keep: np.ndarray, source: str | Path) -> np.ndarray:
    """An allele-frequency column; missing values are allowed (NaN), others must lie in [0, 1]."""
    series = raw[column].replace("#NA", np.nan)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = keep & ((np.isnan(values) & series.notna().to_numpy()) | (values < 0) | (values > 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: column {column} at row {i + 1} is {_show(raw[column].iloc[i])}; "
                         "expected an allele frequency in [0, 1]")
    return values


def _show(value: Any) -> str:
    """A cell for an error message: strings quoted, numbers plain."""
    return repr(value) if isinstance(value, str) else str(value)


def _int_or_none(value: float) -> int | None:
    return int(value) if np.isfinite(value) else None
