"""The documentation site builds with ``mkdocs build --strict`` and holds its key pages.

Strict mode turns every MkDocs warning into a failure: a page missing from the nav, a broken
link or anchor, a docstring mkdocstrings cannot render, a snippet whose file is gone.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bayesmages as bm

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (it is in the dev extra: pip install -e '.[dev]')")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _text(site: Path, page: str) -> str:
    path = site / page / "index.html" if page else site / "index.html"
    assert path.is_file(), f"page {page!r} was not built"
    text = re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))
    return " ".join(html.unescape(text).split())


@pytest.mark.parametrize("page", [
    "", "concepts", "pipeline", "formats", "models", "priors", "diagnostics", "parallel", "examples",
    "shrink", "cluster", "genes", "skat", "simulate", "api",
])
def test_user_guide_pages_exist(site, page):
    assert len(_text(site, page)) > 1000  # a real page, not a stub


def test_every_registered_model_has_a_card_with_its_priors(site):
    for name in bm.list_models():
        text = _text(site, f"models/{name}")
        assert f"Model card: {name}" in text
        for prior in bm.get_model(name).prior_specs(None):
            assert prior in text, f"prior {prior!r} of {name} missing from its model card"


def test_prior_table_is_generated_from_the_registry(site):
    text = _text(site, "priors")
    assert "prior-tables" not in text  # the marker was replaced
    for name in bm.list_models():
        assert name in text
        for prior in bm.get_model(name).prior_specs(None):
            assert prior in text, f"prior {prior!r} of {name} missing from the priors page"
    # shapes are shown with the documented symbols, not the sentinel sizes used to compute them
    assert "(K, p, p)" in text and "(q,)" in text


def test_shipped_shrinker_model_card_is_included_not_copied(site):
    card = (REPO / "bayesmages/shrink/pretrained/MODEL_CARD.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", card, flags=re.M)
    assert headings
    text = _text(site, "models/neural_shrinker")
    for h in headings:
        words = re.sub(r"[`*]", "", h).split()[:3]
        assert " ".join(words) in text, f"model card section {h!r} not included"


@pytest.mark.parametrize(("page", "objects"), [
    ("api/core", ["bayesmages.get_model", "bayesmages.model.BayesianModel", "bayesmages.priors.PriorSpec",
                  "bayesmages.errors.InputError"]),
    ("api/inference", ["bayesmages.infer.run_svi", "bayesmages.infer.psis_khat",
                       "bayesmages.diagnostics.to_inference_data", "bayesmages.diagnostics.plot_elbo"]),
    ("api/io", ["bayesmages.io.read_gwas", "bayesmages.io.read_ld", "bayesmages.io.atomic_dir",
                "bayesmages.io.harmonise", "bayesmages.io.read_bim", "bayesmages.io.detect_gwas_format"]),
    ("api/shrink", ["bayesmages.shrink.shrink", "bayesmages.shrink.NeuralShrinker"]),
    ("api/cluster", ["bayesmages.cluster.DPMixture", "bayesmages.cluster.plot_clusters"]),
    ("api/genes", ["bayesmages.genes.enrichment.test", "bayesmages.genes.summarize"]),
    ("api/skat", ["bayesmages.skat.fit_null", "bayesmages.skat.test", "bayesmages.skat.ecskat.ecskat"]),
    ("api/stats", ["bayesmages.stats.pvalue", "bayesmages.stats.bh"]),
])
def test_api_reference_is_generated_from_docstrings(site, page, objects):
    source = (site / page / "index.html").read_text(encoding="utf-8")
    for obj in objects:
        assert f'id="{obj}"' in source, f"{obj} missing from {page}"
    # numpydoc's Sphinx roles are rendered as code, never shown raw
    assert not re.search(r":(func|class|mod|meth|attr):`", source)
    # numpydoc sections were parsed (no raw 'Parameters' underline left in the page)
    assert "----------" not in source


def test_documented_defaults_match_the_signatures():
    # The API reference shows each parameter's default as parsed from the docstring: a numpydoc
    # choice list must name the default first, and multi-name entries ("a, b : float") must not
    # give every name the first one's default (docs/_hooks/griffe_rst_roles.py splits them).
    griffe = pytest.importorskip("griffe")
    sys.path.insert(0, str(REPO / "docs" / "_hooks"))
    try:
        from griffe_rst_roles import RstRoles
    finally:
        sys.path.pop(0)
    pkg = griffe.load("bayesmages", search_paths=[str(REPO)], docstring_parser="numpy",
                      extensions=griffe.load_extensions(RstRoles))
    wrong, checked, seen = [], 0, set()

    def signature(obj):
        init = obj.members.get("__init__") if obj.is_class else obj
        return {} if init is None or init.is_alias else {p.name: p for p in init.parameters}

    def walk(obj):
        nonlocal checked
        for member in list(obj.members.values()):
            if member.is_alias or member.path in seen or member.name.startswith("_"):
                continue
            seen.add(member.path)
            if member.is_module or member.is_class:
                walk(member)
            if not (member.is_function or member.is_class) or member.docstring is None:
                continue
            params = signature(member)
            for section in member.docstring.parsed:
                if section.kind.value != "parameters":
                    continue
                for p in section.value:
                    sig = params.get(p.name)
                    if sig is None or sig.default is None or p.default is None:
                        continue
                    checked += 1
                    if str(p.default).strip("'\"") != str(sig.default).strip("'\""):
                        wrong.append(f"{member.path}({p.name}): docs {p.default}, code {sig.default}")

    walk(pkg)
    assert checked > 100  # the walk reached the package's parameters
    assert not wrong, "\n".join(wrong)
