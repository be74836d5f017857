"""Prior specifications: documented defaults, validation and merging.

A model declares its priors as a mapping ``name -> PriorSpec``. Users pass Pyro
distributions by name (``priors={"scale": dist.HalfCauchy(2.0)}``); :func:`resolve_priors`
merges them with the defaults and checks name, shape and support *before* any fitting, so a
mistake costs an error message, not a silent mis-specified model.

Examples
--------
>>> import pyro.distributions as dist
>>> from torch.distributions import constraints
>>> specs = {"scale": PriorSpec(lambda: dist.HalfNormal(1.0), constraints.positive, shape=())}
>>> resolve_priors(specs, {"scale": dist.HalfCauchy(2.0)})["scale"]
HalfCauchy()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution, constraints

from bayesmages.errors import InputError

__all__ = ["PriorSpec", "describe_priors", "resolve_priors", "support_within"]


@dataclass(frozen=True)
class PriorSpec:
    """Specification of one named prior.

    Parameters
    ----------
    default : callable
        Zero-argument factory returning the default distribution (a factory, so that defaults
        can depend on nothing mutable and are built fresh for every model).
    support : torch.distributions.constraints.Constraint
        The set the parameter lives in; a user prior must have a support inside it.
    shape : tuple of int or None
        Required ``batch_shape + event_shape`` of the prior (after broadcasting a scalar prior
        with ``.expand``); ``None`` means any shape is accepted.
    doc : str
        One-line description shown by :func:`describe_priors`.
    """

    default: Callable[[], Distribution]
    support: constraints.Constraint
    shape: tuple[int, ...] | None = None
    doc: str = ""


def support_within(inner: constraints.Constraint, outer: constraints.Constraint) -> bool:
    """Whether the support ``inner`` is contained in ``outer`` (conservative).

    Only recognised constraint families return True; an unknown pair returns False so that
    the caller can fall back to checking draws.
    """
    inner = _unwrap(inner)
    outer = _unwrap(outer)
    if outer is constraints.real or isinstance(outer, type(constraints.real)):
        return inner.event_dim == outer.event_dim or (outer.event_dim == 0 and inner.event_dim == 0)
    if type(inner) is type(outer) and inner == outer:
        return True
    if type(inner) is type(outer) and not hasattr(outer, "lower_bound") and not hasattr(outer, "upper_bound"):
        return True  # parameter-free families (simplex, positive_definite, corr_cholesky, ...)
    lo_in, hi_in = _bounds(inner)
    lo_out, hi_out = _bounds(outer)
    if lo_in is None or hi_in is None or lo_out is None or hi_out is None:  # both ends or neither
        return False
    # Whether an end point is open or closed is ignored: for a continuous prior the boundary has
    # probability zero (HalfCauchy's support is [0, inf) and it is the classic prior for a scale > 0).
    return bool(lo_in[0] >= lo_out[0] and hi_in[0] <= hi_out[0])


def _unwrap(c: constraints.Constraint) -> constraints.Constraint:
    while isinstance(c, constraints.independent):
        c = c.base_constraint
    return c


def _bounds(c: constraints.Constraint) -> tuple[tuple[float, bool], tuple[float, bool]] | tuple[None, None]:
    """(lower, closed?), (upper, closed?) for interval-like constraints on the real line."""
    inf = float("inf")
    if c is constraints.real or isinstance(c, type(constraints.real)):
        return (-inf, False), (inf, False)
    if isinstance(c, constraints.greater_than_eq):
        return (float(c.lower_bound), True), (inf, False)
    if isinstance(c, constraints.greater_than):
        return (float(c.lower_bound), False), (inf, False)
    if isinstance(c, constraints.less_than):
        return (-inf, False), (float(c.upper_bound), False)
    if isinstance(c, constraints.half_open_interval):
        return (float(c.lower_bound), True), (float(c.upper_bound), False)
    if isinstance(c, constraints.interval):
        return (float(c.lower_bound), True), (float(c.upper_bound), True)
    return None, None


def _shape_ok(d: Distribution, shape: tuple[int, ...]) -> bool:
    full = tuple(d.batch_shape) + tuple(d.event_shape)
    if full == tuple(shape):
        return True
    # A scalar-batched prior with the right event shape broadcasts over the required batch shape.
    ev = tuple(d.event_shape)
    if len(ev) <= len(shape) and tuple(shape[len(shape) - len(ev) :]) == ev:
        try:
            d.expand(torch.Size(shape[: len(shape) - len(ev)]))
        except (RuntimeError, ValueError, NotImplementedError):
            return False
        return True
    return False


def resolve_priors(
    specs: Mapping[str, PriorSpec],
    user: Mapping[str, Any] | None,
    *,
    model_name: str = "model",
) -> dict[str, Distribution]:
    """Merge user priors with defaults and validate them.

    Parameters
    ----------
    specs : mapping
        ``name -> PriorSpec`` declared by the model.
    user : mapping or None
        ``name -> torch/Pyro Distribution`` supplied by the user.
    model_name : str
        Used in error messages.

    Returns
    -------
    dict
        ``name -> Distribution`` for every declared prior.

    Raises
    ------
    InputError
        Unknown prior name, not a distribution, wrong shape, or support outside the
        parameter's domain.
    """
    user = dict(user or {})
    unknown = sorted(set(user) - set(specs))
    if unknown:
        raise InputError(
            f"{model_name}: unknown prior name(s) {unknown}; this model's priors are {sorted(specs)}"
        )
    out: dict[str, Distribution] = {}
    for name, spec in specs.items():
        d = user.get(name)
        if d is None:
            out[name] = spec.default()
            continue
        if not isinstance(d, Distribution):
            raise InputError(
                f"{model_name}: prior {name!r} must be a Pyro/torch Distribution, got {type(d).__name__}"
            )
        if spec.shape is not None and not _shape_ok(d, spec.shape):
            got = tuple(d.batch_shape) + tuple(d.event_shape)
            raise InputError(
                f"{model_name}: prior {name!r} has shape {got} (batch {tuple(d.batch_shape)}, event "
                f"{tuple(d.event_shape)}); expected {tuple(spec.shape)} or a scalar prior that broadcasts to it"
            )
        support = d.support
        if support is None:
            raise InputError(f"{model_name}: prior {name!r} declares no support")
        if not support_within(support, spec.support):
            # Unknown constraint pairs: accept only if draws land in the domain.
            ok = False
            if _bounds(_unwrap(support))[0] is None:
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    try:
                        draws = d.sample((256,))
                        ok = bool(spec.support.check(draws).all())
                    except (NotImplementedError, RuntimeError, ValueError):
                        ok = False
            if not ok:
                raise InputError(
                    f"{model_name}: prior {name!r} has support {d.support}, which is not inside the "
                    f"parameter's domain {spec.support}"
                )
        out[name] = d
    return out


def describe_priors(specs: Mapping[str, PriorSpec], priors: Mapping[str, Distribution]) -> str:
    """A human-readable table of priors (name, distribution, support, doc)."""
    lines = []
    for name, spec in specs.items():
        lines.append(f"{name:<16} {priors[name]!r:<40} support={spec.support}  {spec.doc}")
    return "\n".join(lines)
