"""The model registry.

Built-in models register themselves with :func:`register_model`; third-party packages add
models through the entry-point group ``bayesmages.models`` (each entry point names a
:class:`~bayesmages.model.BayesianModel` subclass or a factory returning one).

Examples
--------
>>> import bayesmages as bm
>>> "glm_gaussian" in bm.list_models()
True
>>> model = bm.get_model("glm_gaussian")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from bayesmages.errors import InputError

__all__ = ["ENTRY_POINT_GROUP", "get_model", "get_model_class", "list_models", "register_model"]

ENTRY_POINT_GROUP = "bayesmages.models"

# Modules whose import registers the built-in models. They are imported lazily so that
# `import bayesmages` stays cheap and so that the registry cannot be half-filled by import order.
_BUILTIN_MODULES: tuple[str, ...] = (
    "bayesmages.glm",
    "bayesmages.cluster.dpmixture",
    "bayesmages.shrink.network",
    "bayesmages.shrink.susie_model",
)

_REGISTRY: dict[str, Callable[..., Any]] = {}
_loaded = False

T = TypeVar("T", bound=Callable[..., Any])


def register_model(name: str) -> Callable[[T], T]:
    """Register a model class (or factory) under ``name``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"dp_mixture"``. Must be unique.

    Returns
    -------
    callable
        A class decorator that returns the class unchanged.

    Examples
    --------
    >>> from bayesmages.model import BayesianModel
    >>> @register_model("my_model")  # doctest: +SKIP
    ... class MyModel(BayesianModel): ...
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise InputError(f"model name must be an identifier-like string, got {name!r}")

    def decorator(obj: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
            raise InputError(f"a model named {name!r} is already registered ({_qualname(existing)})")
        _REGISTRY[name] = obj
        if isinstance(obj, type):
            # registry_name is a ClassVar of BayesianModel; a registered class is not required to subclass it
            obj.registry_name = name  # type: ignore[attr-defined]
        return obj

    return decorator


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _load_builtins_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only tolerate the module itself being absent (a capability not installed yet);
            # a missing dependency *inside* the module is a real error.
            if exc.name != module:
                raise
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            _REGISTRY[ep.name] = ep.load()
        except Exception as exc:  # a broken plug-in must not break the built-in models
            import warnings

            warnings.warn(f"could not load bayesmages model plug-in {ep.name!r}: {exc}", stacklevel=2)


def list_models() -> list[str]:
    """Names of all registered models, sorted.

    Returns
    -------
    list of str
    """
    _load_builtins_and_plugins()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> Callable[..., Any]:
    """The class (or factory) registered under ``name``.

    Raises
    ------
    InputError
        If no model has that name; the message lists the available names.
    """
    _load_builtins_and_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise InputError(f"unknown model {name!r}; available models: {available}") from None


def get_model(name: str, **kwargs: Any) -> Any:
    """Create the model registered under ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **kwargs
        Passed to the model's constructor (e.g. ``priors=...``, ``truncation=...``).

    Returns
    -------
    BayesianModel
        An unfitted model.

    Raises
    ------
    InputError
        If the name is unknown (the message lists the available names) or an argument is invalid.

    Examples
    --------
    >>> import bayesmages as bm
    >>> import pyro.distributions as dist
    >>> m = bm.get_model("glm_gaussian", priors={"scale": dist.HalfCauchy(1.0)})
    """
    return get_model_class(name)(**kwargs)
