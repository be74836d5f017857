"""Allele harmonisation of GWAS summary statistics against an LD reference panel (METHODS §F).

A GWAS variant is matched to a panel variant by chromosome, position and the unordered allele pair
(or by variant id with ``by="id"``). Its effect is then expressed for the panel's ``A1`` allele:
``BETA`` is negated (and ``EAF`` replaced by ``1 - EAF``) when the GWAS effect allele is the
panel's ``A2``; alleles reported on the other strand (complements) are recognised. Every GWAS
variant ends in exactly one place: the harmonised table, or the dropped table with one reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = ["DROP_REASONS", "Harmonised", "harmonise", "normalise_chromosomes", "read_bim"]

#: every reason a variant can be dropped for, in the order they are checked
DROP_REASONS: tuple[str, ...] = (
    "errcode",  # PLINK 2 ERRCODE other than '.' (from read_gwas)
    "test_failed",  # REGENIE TEST_FAIL (from read_gwas)
    "multiallelic",  # several allele pairs at one position, in the GWAS or the panel
    "invalid_alleles",  # missing allele, A1 == A2, or not made of A/C/G/T
    "duplicate",  # the same variant (position + allele pair, or id) twice, in the GWAS or the panel
    "not_in_panel",  # no panel variant at that position (or with that id)
    "allele_mismatch",  # the panel variant there has other alleles, on either strand
    "ambiguous_strand",  # A/T or C/G: the strand cannot be told from the alleles
)

_COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}
_CHROM_CODES = {"X": "23", "Y": "24", "XY": "25", "M": "26", "MT": "26"}
_ALLELE = re.compile(r"^[ACGT]+$")


class Harmonised(NamedTuple):
    """The result of :func:`harmonise` (unpacks as ``table, dropped, report``).

    Attributes
    ----------
    table : pandas.DataFrame
        Harmonised variants in panel order: ``SNP, CHR, POS, A1, A2`` (the panel's; ``A1`` is the
        effect allele), ``BETA, SE, N`` (+ ``EAF``, the frequency of ``A1``), ``PANEL_INDEX``
        (0-based row of the panel), ``GWAS_ROW`` (0-based row of the GWAS table), ``GWAS_SNP``,
        ``SWAPPED`` (the GWAS effect allele was the panel's A2: BETA negated) and
        ``STRAND_FLIPPED`` (the GWAS reported the other strand).
    dropped : pandas.DataFrame
        One row per dropped variant: ``SNP, CHR, POS, A1, A2`` (as in the GWAS), ``reason`` (one of
        :data:`DROP_REASONS`), ``detail``, ``GWAS_ROW`` and ``FILE_ROW`` (1-based data row of the
        file, for rows :func:`~bayesmages.io.read_gwas` left out).
    report : dict
        Counts: ``n_input == n_harmonised + n_dropped``, ``dropped`` by reason, ``n_swapped``,
        ``n_strand_flipped``, panel counts and the options used.
    """

    table: pd.DataFrame
    dropped: pd.DataFrame
    report: dict[str, Any]


def read_bim(path: str | os.PathLike[str]) -> pd.DataFrame:
    r"""Read a PLINK 1 ``.bim`` file as a panel table for :func:`harmonise`.

    Parameters
    ----------
    path : str or path-like
        ``prefix.bim``, ``prefix.bed`` or ``prefix``.

    Returns
    -------
    pandas.DataFrame
        ``SNP, CHR, POS, A1, A2`` in file order (``A1`` = the .bim's fifth column, the allele
        bed-reader counts by default).

    Raises
    ------
    InputError
        Missing file, a line without six fields, a non-integer position.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "ref.bim"
    >>> _ = f.write_text("1\trs1\t0\t100\tG\tA\n1\trs2\t0\t200\tT\tC\n")
    >>> read_bim(f)[["SNP", "POS", "A1", "A2"]].values.tolist()
    [['rs1', 100, 'G', 'A'], ['rs2', 200, 'T', 'C']]
    """
    p = Path(path)
    if p.suffix != ".bim":
        p = p.with_suffix(".bim") if p.suffix == ".bed" else p.with_name(p.name + ".bim")
    if not p.is_file():
        raise InputError(f"{p}: no such .bim file")
    try:
        raw = pd.read_csv(p, sep=r"\s+", header=None, dtype=str, compression="infer", keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{p}: cannot parse the .bim file ({exc}); expected 6 whitespace-separated fields "
                         "per line: CHR SNP CM POS A1 A2") from None
    if raw.shape[1] != 6:
        raise InputError(f"{p}: {raw.shape[1]} fields per line; a .bim line has 6 (CHR SNP CM POS A1 A2)")
    pos = pd.to_numeric(raw[3], errors="coerce")
    bad = pos.isna() | (pos < 0) | (pos != pos.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{p}: position (field 4) at row {i + 1} is {raw[3].iloc[i]!r}; "
                         "expected a non-negative integer")
    return pd.DataFrame({"SNP": raw[1], "CHR": raw[0], "POS": pos.astype(np.int64),
                         "A1": raw[4].str.upper(), "A2": raw[5].str.upper()})


def harmonise(
    gwas: pd.DataFrame,
    panel: pd.DataFrame,
    *,
    by: Literal["position", "id"] = "position",
    ambiguous: Literal["drop", "frequency"] = "drop",
    freq_margin: float = 0.1,
) -> Harmonised:
    """Express GWAS effects for the alleles of a reference panel; account for every variant.

    Parameters
    ----------
    gwas : pandas.DataFrame
        From :func:`~bayesmages.io.read_gwas`: ``A1`` (effect allele), ``A2``, ``BETA``, ``SE``,
        and ``CHR``, ``POS`` (``by="position"``) or ``SNP`` (``by="id"``); optional ``N``, ``EAF``.
        Rows the reader left out (``attrs["dropped"]``) are carried into the dropped table.
    panel : pandas.DataFrame
        ``SNP, CHR, POS, A1, A2`` (e.g. :func:`read_bim`); optional ``FREQ``, the frequency of the
        panel's ``A1``, used for strand-ambiguous variants.
    by : {"position", "id"}
        Match on chromosome, position and the unordered allele pair, or on the variant id.
    ambiguous : {"drop", "frequency"}
        A/T and C/G variants are dropped (default), or kept when the GWAS ``EAF`` is farther than
        ``freq_margin`` from 0.5 and, when the panel has ``FREQ``, that is too and both put the
        allele on the same side of 0.5 (if they disagree, the GWAS is taken to report the other
        strand). Without ``FREQ`` the GWAS is assumed to report the panel's strand.
    freq_margin : float
        Frequencies in ``0.5 ± freq_margin`` cannot tell the strand (default 0.1).

    Returns
    -------
    Harmonised
        ``(table, dropped, report)``; see :class:`Harmonised`.

    Raises
    ------
    InputError
        A required column is missing from either table, or an option is invalid.

    Examples
    --------
    >>> import pandas as pd
    >>> gwas = pd.DataFrame({"SNP": ["a", "b", "c"], "CHR": ["1", "1", "1"], "POS": [10, 20, 30],
    ...                      "A1": ["G", "C", "A"], "A2": ["A", "T", "T"], "BETA": [0.5, 0.2, 0.1],
    ...                      "SE": [0.1, 0.1, 0.1], "N": [1000, 1000, 1000]})
    >>> panel = pd.DataFrame({"SNP": ["rs1", "rs2", "rs3"], "CHR": ["1", "1", "1"], "POS": [10, 20, 30],
    ...                       "A1": ["A", "G", "A"], "A2": ["G", "A", "T"]})
    >>> table, dropped, report = harmonise(gwas, panel)
    >>> table[["SNP", "A1", "BETA", "SWAPPED", "STRAND_FLIPPED"]].values.tolist()
    [['rs1', 'A', -0.5, True, False], ['rs2', 'G', 0.2, False, True]]
    >>> dropped[["SNP", "reason"]].values.tolist()
    [['c', 'ambiguous_strand']]
    >>> report["n_input"] == report["n_harmonised"] + report["n_dropped"]
    True
    """
    if by not in ("position", "id"):
        raise InputError(f"harmonise: by must be 'position' or 'id', got {by!r}")
    if ambiguous not in ("drop", "frequency"):
        raise InputError(f"harmonise: ambiguous must be 'drop' or 'frequency', got {ambiguous!r}")
    if not 0 <= freq_margin < 0.5:
        raise InputError(f"harmonise: freq_margin must be in [0, 0.5), got {freq_margin!r}")
    keys = ["CHR", "POS"] if by == "position" else ["SNP"]
    _require(gwas, "GWAS table", ["A1", "A2", "BETA", "SE", *keys])
    _require(panel, "panel", ["SNP", "CHR", "POS", "A1", "A2"])
    if ambiguous == "frequency" and "EAF" not in gwas:
        raise InputError("harmonise: ambiguous='frequency' needs an EAF column in the GWAS table")

    n = len(gwas)
    g = _variants(gwas, by)
    p = _variants(panel, by)
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def drop(mask: np.ndarray, why: str, text: np.ndarray | str) -> None:
        new = mask & (reason == "")
        reason[new] = why
        detail[new] = np.broadcast_to(np.asarray(text, dtype=object), (n,))[new]

    # GWAS-side problems first: they do not depend on the panel
    g_status = _site_status(g, by)
    drop(g_status == "invalid_alleles", "invalid_alleles", "in the GWAS")
    drop(g_status == "multiallelic", "multiallelic", "several allele pairs at this position in the GWAS")
    drop(g_status == "duplicate", "duplicate", "this variant is in the GWAS more than once")

    # one panel row per site (position, or id); sites with several variants cannot be matched
    p_status = _site_status(p, by)
    site = ["chrom", "pos"] if by == "position" else ["id"]
    # panel rows with invalid alleles (e.g. PLINK's '0' for a monomorphic site) are never matched
    usable = p.assign(status=p_status)[p_status != "invalid_alleles"]
    # _site_status gives every usable row of a site the same status, so the first row speaks for the site
    p_sites = usable.drop_duplicates(site, keep="first")
    m = g[site].merge(p_sites.rename(columns={"a1": "p1", "a2": "p2", "row": "panel_row"}), on=site, how="left")
    found = m["panel_row"].notna().to_numpy()
    pstat = m["status"].fillna("").to_numpy(dtype=object)
    drop(~found, "not_in_panel", f"no panel variant with this {'position' if by == 'position' else 'id'}")
    drop(found & (pstat == "multiallelic"), "multiallelic", "several allele pairs at this position in the panel")
    drop(found & (pstat == "duplicate"), "duplicate", "this variant is in the panel more than once")

    # allele comparison
    a1, a2 = g["a1"].to_numpy(dtype=object), g["a2"].to_numpy(dtype=object)
    p1 = m["p1"].fillna("").to_numpy(dtype=object)
    p2 = m["p2"].fillna("").to_numpy(dtype=object)
    c1 = _per_distinct(_complement, a1)
    c2 = _per_distinct(_complement, a2)
    same = (a1 == p1) & (a2 == p2)
    swap = (a1 == p2) & (a2 == p1)
    flip = (c1 == p1) & (c2 == p2) & (c1 != "")
    flipswap = (c1 == p2) & (c2 == p1) & (c1 != "")
    palindromic = (c1 == a2) & (c1 != "")
    mismatch = ~(same | swap | flip | flipswap)
    drop(mismatch, "allele_mismatch", _per_distinct(lambda x, y, u, v: f"GWAS {x}/{y}, panel {u}/{v}", a1, a2, p1, p2))
    # the literal reading first: for A/T and C/G a swap is also a strand flip (and vice versa)
    sign = np.where(same, 1.0, np.where(swap, -1.0, np.where(flip, 1.0, -1.0)))
    strand_flipped = (flip | flipswap) & ~(same | swap)

    if ambiguous == "drop":
        drop(palindromic, "ambiguous_strand", "A/T or C/G variant (ambiguous='drop')")
    else:
        eaf = pd.to_numeric(gwas["EAF"], errors="coerce").to_numpy(dtype=float)
        # frequency of the panel's A1 if the GWAS reports the panel's strand
        f_same = np.where(same, eaf, 1.0 - eaf)
        uninformative = ~np.isfinite(eaf) | (np.abs(eaf - 0.5) < freq_margin)
        drop(palindromic & uninformative, "ambiguous_strand", f"A/T or C/G variant with EAF missing or within "
             f"0.5 ± {freq_margin}")
        if "FREQ" in panel:
            pf = pd.to_numeric(panel["FREQ"], errors="coerce").to_numpy(dtype=float)
            rows = m["panel_row"].fillna(-1).to_numpy(dtype=np.int64)
            pfreq = np.where(rows >= 0, pf[np.clip(rows, 0, None)] if len(pf) else np.nan, np.nan)
            drop(palindromic & (~np.isfinite(pfreq) | (np.abs(pfreq - 0.5) < freq_margin)), "ambiguous_strand",
                 f"A/T or C/G variant with panel FREQ missing or within 0.5 ± {freq_margin}")
            # frequencies on opposite sides of 0.5: the GWAS reports the other strand, so its effect
            # allele is the complement, i.e. the other panel allele
            other_strand = palindromic & ((f_same - 0.5) * (pfreq - 0.5) < 0)
            sign = np.where(other_strand, -sign, sign)
            strand_flipped = np.where(palindromic, other_strand, strand_flipped)
        else:
            strand_flipped = np.where(palindromic, False, strand_flipped)

    kept = reason == ""
    rows = m["panel_row"].to_numpy()[kept].astype(np.int64)
    out = pd.DataFrame({
        "SNP": panel["SNP"].astype(str).to_numpy()[rows],
        "CHR": panel["CHR"].astype(str).to_numpy()[rows],
        "POS": pd.to_numeric(panel["POS"]).to_numpy()[rows].astype(np.int64),
        "A1": p["a1"].to_numpy()[rows], "A2": p["a2"].to_numpy()[rows],
        "BETA": gwas["BETA"].to_numpy(dtype=float)[kept] * sign[kept],
        "SE": gwas["SE"].to_numpy(dtype=float)[kept],
        "N": gwas["N"].to_numpy(dtype=float)[kept] if "N" in gwas else np.full(int(kept.sum()), np.nan),
    })
    if "EAF" in gwas:
        eaf_k = pd.to_numeric(gwas["EAF"], errors="coerce").to_numpy(dtype=float)[kept]
        out["EAF"] = np.where(sign[kept] > 0, eaf_k, 1.0 - eaf_k)
    out["PANEL_INDEX"] = rows
    out["GWAS_ROW"] = np.flatnonzero(kept)
    out["GWAS_SNP"] = g["snp"].to_numpy()[kept]
    out["SWAPPED"] = sign[kept] < 0
    out["STRAND_FLIPPED"] = np.asarray(strand_flipped, dtype=bool)[kept]
    out = out.sort_values("PANEL_INDEX", kind="stable").reset_index(drop=True)

    dropped = _dropped_table(gwas, g, reason, detail)
    counts = {r: int((dropped["reason"] == r).sum()) for r in DROP_REASONS}
    report: dict[str, Any] = {
        "n_input": int(n + len(gwas.attrs.get("dropped", []))),
        "n_harmonised": len(out),
        "n_dropped": len(dropped),
        "n_same": int((~out["SWAPPED"] & ~out["STRAND_FLIPPED"]).sum()),
        "n_swapped": int(out["SWAPPED"].sum()),
        "n_strand_flipped": int(out["STRAND_FLIPPED"].sum()),
        "dropped": counts,
        "n_panel": len(panel),
        "n_panel_unmatched": len(panel) - len(out),
        "n_non_additive_rows": int(gwas.attrs.get("non_additive_rows", 0)),
        "by": by,
        "ambiguous": ambiguous,
        "freq_margin": freq_margin,
        "gwas_format": gwas.attrs.get("format", "table"),
    }
    # the promise of this function: nothing is lost without a reason
    assert report["n_harmonised"] + report["n_dropped"] == report["n_input"] == len(out) + sum(counts.values())
    return Harmonised(out, dropped, report)


def _require(df: pd.DataFrame, what: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"harmonise: the {what} has no column(s) {missing}; found {list(df.columns)}")


def normalise_chromosomes(values: pd.Series) -> np.ndarray:
    """Chromosome names as compared across files: no 'chr' prefix, upper case, X/Y/XY/MT as PLINK numbers.

    Parameters
    ----------
    values : pandas.Series
        Chromosome names or numbers.

    Returns
    -------
    numpy.ndarray
        Object array of normalised names.

    Examples
    --------
    >>> normalise_chromosomes(pd.Series(["chr1", "1", "X", "chrMT"])).tolist()
    ['1', '1', '23', '26']
    """
    # a genome has few chromosome names: normalise each distinct name once
    codes, names = pd.factorize(values.astype(str), use_na_sentinel=False)
    norm = [re.sub(r"^CHR", "", str(c).strip().upper()) for c in names]
    return np.array([_CHROM_CODES.get(c, c) for c in norm], dtype=object)[codes]


def _per_distinct(func: Any, *columns: np.ndarray) -> np.ndarray:
    """``func`` applied to each row of ``columns``, computed once per distinct row (alleles repeat a lot)."""
    frame = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(frame)) if len(columns) > 1 else pd.factorize(frame["0"])
    values = [func(*u) if len(columns) > 1 else func(u) for u in uniques]
    return np.array(values, dtype=object)[codes] if len(codes) else np.array([], dtype=object)


def _variants(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Normalised keys of a GWAS or panel table (row, chrom, pos, id, a1, a2, pair)."""
    a1 = _per_distinct(lambda a: str(a).strip().upper(), df["A1"].astype(str).to_numpy(dtype=object))
    a2 = _per_distinct(lambda a: str(a).strip().upper(), df["A2"].astype(str).to_numpy(dtype=object))
    out = pd.DataFrame({"row": np.arange(len(df)), "a1": a1, "a2": a2})
    if by == "position":
        out["chrom"] = normalise_chromosomes(df["CHR"])
        pos = pd.to_numeric(df["POS"], errors="coerce")
        if pos.isna().any():
            i = int(np.flatnonzero(pos.isna().to_numpy())[0])
            raise InputError(f"harmonise: POS at row {i + 1} is missing or not a number")
        out["pos"] = pos.astype(np.int64).to_numpy()
    out["id"] = df["SNP"].astype(str).to_numpy() if "SNP" in df else np.arange(len(df)).astype(str)
    out["snp"] = out["id"]
    out["pair"] = _per_distinct(_pair_key, a1, a2)
    return out


def _complement(allele: str) -> str:
    """The allele on the other strand; '' for anything but a single base (indels are not flipped)."""
    return _COMPLEMENT.get(allele, "")


def _pair_key(x: str, y: str) -> str:
    """The same string for an allele pair in either order and on either strand; '' if invalid."""
    if not (_ALLELE.match(x) and _ALLELE.match(y)) or x == y:
        return ""
    keys = ["/".join(sorted((x, y)))]
    cx, cy = _complement(x), _complement(y)
    if cx and cy:
        keys.append("/".join(sorted((cx, cy))))
    return min(keys)


def _site_status(v: pd.DataFrame, by: str) -> np.ndarray:
    """Per row: 'invalid_alleles', 'multiallelic', 'duplicate' or '' (usable)."""
    status = np.where(v["pair"].to_numpy() == "", "invalid_alleles", "").astype(object)
    valid = status == ""
    site = ["chrom", "pos"] if by == "position" else ["id"]
    sub = v[valid]
    if by == "position":
        n_pairs = sub.groupby(site, sort=False)["pair"].transform("nunique").to_numpy()
        status[np.flatnonzero(valid)[n_pairs > 1]] = "multiallelic"
        dup = sub.duplicated([*site, "pair"], keep=False).to_numpy() & (n_pairs == 1)
    else:
        dup = sub.duplicated(site, keep=False).to_numpy()
    status[np.flatnonzero(valid)[dup]] = "duplicate"
    return status


def _dropped_table(gwas: pd.DataFrame, g: pd.DataFrame, reason: np.ndarray, detail: np.ndarray) -> pd.DataFrame:
    """Variants the reader left out, then those harmonise dropped (in GWAS order)."""
    cols = ["SNP", "CHR", "POS", "A1", "A2", "reason", "detail", "GWAS_ROW", "FILE_ROW"]
    records = [
        {**{k: rec.get(k) for k in ("SNP", "CHR", "POS", "A1", "A2", "reason", "detail")},
         "GWAS_ROW": None, "FILE_ROW": rec.get("row")}
        for rec in gwas.attrs.get("dropped", [])
    ]
    idx = np.flatnonzero(reason != "")
    here = pd.DataFrame({
        "SNP": g["snp"].to_numpy()[idx],
        "CHR": gwas["CHR"].astype(str).to_numpy()[idx] if "CHR" in gwas else None,
        "POS": pd.to_numeric(gwas["POS"], errors="coerce").to_numpy()[idx] if "POS" in gwas else None,
        "A1": g["a1"].to_numpy()[idx], "A2": g["a2"].to_numpy()[idx],
        "reason": reason[idx], "detail": detail[idx], "GWAS_ROW": idx, "FILE_ROW": None,
    })
    out = pd.concat([pd.DataFrame.from_records(records, columns=cols), here], ignore_index=True) if records else here
    out = out[cols]
    for c in ("POS", "GWAS_ROW", "FILE_ROW"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
    return out
