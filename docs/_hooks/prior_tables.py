"""MkDocs hook: prior tables generated from the model registry.

A page containing the line ``<!-- prior-tables -->`` gets, in its place, one table per
registered model (and per prior-relevant constructor variant) listing each prior's name,
shape, support, default and description, read from ``model.prior_specs``;
``<!-- prior-table: NAME -->`` inserts the tables of one model (the model cards). The tables are
therefore always those of the installed code; a model added to the registry without an entry
in ``VARIANTS`` still gets a table (with shapes shown as the model reports them before data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MARKER = "<!-- prior-tables -->"
ONE_MODEL = re.compile(r"<!-- prior-table: (\w+) -->")


@dataclass(frozen=True)
class Variant:
    """One constructor setting of a model whose priors are shown.

    ``dims`` are sentinel sizes passed to ``prior_specs``; ``symbols`` maps each sentinel back to
    the letter used in the docs, so the table shows ``(K, p, p)`` instead of numbers. Sentinels
    are primes no default uses, so a number in a shape can only come from a data dimension.
    """

    title: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, int] | None = None
    symbols: dict[int, str] = field(default_factory=dict)


_GLM = [Variant("default (`fit_intercept=True`)", {}, {"n_features": 7}, {7: "q"})]
VARIANTS: dict[str, list[Variant]] = {
    "dp_mixture": [
        Variant('`covariance_prior="wishart"` (default)', {"truncation": 11},
                {"n_traits": 3, "truncation": 11}, {11: "K", 3: "p"}),
        Variant('`covariance_prior="lkj"`', {"truncation": 11, "covariance_prior": "lkj"},
                {"n_traits": 3, "truncation": 11}, {11: "K", 3: "p"}),
    ],
    "glm_gaussian": _GLM,
    "glm_logistic": _GLM,
    "neural_shrinker": [
        Variant('`mode="bayesian"` (the point and ensemble modes train without priors)', {"mode": "bayesian"}),
    ],
}


def _number(x: float) -> str:
    return f"{x:g}"


def _value(v: Any) -> str:
    """Compact text for a distribution parameter (scalar, c·I, constant array or shape)."""
    import torch

    if not isinstance(v, torch.Tensor):
        return _number(v) if isinstance(v, int | float) else str(v)
    t = v.detach().to(torch.float64)
    if t.numel() == 1:
        return _number(float(t))
    if t.ndim >= 2 and t.shape[-1] == t.shape[-2]:
        eye = torch.eye(t.shape[-1], dtype=t.dtype)
        c = float(t.reshape(-1, *t.shape[-2:])[0, 0, 0])
        if torch.allclose(t, c * eye.expand_as(t)):
            return f"{_number(c)}·I" if c != 1 else "I"
    flat = t.flatten()
    if torch.all(flat == flat[0]):
        return f"{_number(float(flat[0]))} (each)"
    return f"tensor of shape {tuple(t.shape)}"


def _describe(d: Any) -> str:
    """``Name(param=value, ...)`` for a torch/Pyro distribution, parameters in their given form."""
    parts = []
    if type(d).__name__ == "LKJCholesky":
        parts.append(f"dim={d.dim}")
    keys = list(getattr(d, "arg_constraints", {}))
    # Only the parametrisation the default was built with (stored on the instance): the others
    # are lazily derived and would repeat it. Transformed distributions (HalfCauchy, ...) store
    # their parameters on the base distribution, so they fall back to the properties.
    given = [k for k in keys if k in vars(d)] or keys
    for key in given:
        value = getattr(d, key)
        if key == "log_density" and float(value) == 0.0:
            continue
        parts.append(f"{key}={_value(value)}")
    return f"{type(d).__name__}({', '.join(parts)})"


def _shape(shape: tuple[int, ...] | None, symbols: Mapping[int, str]) -> str:
    if shape is None:
        return "any (broadcast)"
    if shape == ():
        return "`()`"
    inner = ", ".join(symbols.get(s, str(s)) for s in shape)
    return f"`({inner},)`" if len(shape) == 1 else f"`({inner})`"


_SUPPORTS = {
    "Real()": "real",
    "GreaterThanEq(lower_bound=0.0)": "[0, ∞)",
    "GreaterThan(lower_bound=0.0)": "(0, ∞)",
    "PositiveDefinite()": "positive definite",
    "CorrCholesky()": "correlation Cholesky",
}


def _support(c: Any) -> str:
    return _SUPPORTS.get(str(c), f"`{c}`")


def model_tables() -> str:
    """Markdown: for every registered model a heading, its one-line summary and its tables."""
    import bayesmages as bm

    out = []
    for name in bm.list_models():
        summary = (bm.registry.get_model_class(name).__doc__ or "").strip().splitlines()
        out.append(f"### `{name}`\n")
        if summary:
            out.append(f"{summary[0]}\n")
        out.append(model_table(name))
    return "\n".join(out)


def model_table(name: str) -> str:
    """Markdown: the prior tables of one registered model (one per variant)."""
    import bayesmages as bm

    out = []
    for variant in VARIANTS.get(name, [Variant("default")]):
        model = bm.get_model(name, **variant.kwargs)
        specs = model.prior_specs(variant.dims)
        defaults = model.prior_specs(None)  # defaults as shown before data (p = 2 for dp_mixture)
        out.append(f"*{variant.title}*\n")
        if not specs:
            out.append("No user-set priors: the prior variances are estimated by empirical Bayes.\n")
            continue
        out.append("| name | shape | support | default | what it is |")
        out.append("|---|---|---|---|---|")
        for key, spec in specs.items():
            default = _describe(defaults[key].default()) if key in defaults else _describe(spec.default())
            out.append(f"| `{key}` | {_shape(spec.shape, variant.symbols)} | {_support(spec.support)} | "
                       f"`{default}` | {spec.doc} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the marker with the generated tables (MkDocs ``on_page_markdown`` event)."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, model_tables())
    return ONE_MODEL.sub(lambda m: model_table(m.group(1)), markdown)
