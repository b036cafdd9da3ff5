"""The model registry: command-line names and model-file class names -> model classes.

Open to user code: decorate a `FactorModel` subclass with ``@register_model("my-model")`` and it
can be saved, loaded (`mfrec.load_model`), tuned and trained from the CLI (``--model my-model``,
once its module is imported; ``--model package.module:ClassName`` imports it). A process that
only loads a model file (``mfrec recommend model.mfrec``, the service) finds a user's class when
its module is imported first, listed in the environment variable ``MFREC_MODELS``
(comma-separated module names), or published by an installed package under the entry-point group
``mfrec.models``; a model file itself never names code to import. The built-in
models are listed here as ``module:class`` strings and imported on first lookup, so reading the
names (``mfrec --help``) imports no model code, and this module imports nothing from `mfrec`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Iterator, Mapping, TypeVar

T = TypeVar("T", bound=type)

#: the built-in models: command-line name -> "module:ClassName" (imported when first looked up)
BUILTIN: dict[str, str] = {
    "baseline": "mfrec.models.baseline:Baseline",
    "funk-mf": "mfrec.models.sgd:FunkMF",
    "biased-mf": "mfrec.models.sgd:BiasedMF",
    "svdpp": "mfrec.models.svdpp:SVDpp",
    "als": "mfrec.models.als:ALS",
    "bayesian-mf": "mfrec.models.bayes:BayesianMF",
    "bayesian-fm": "mfrec.models.bfm:BayesianFM",
    "implicit-als": "mfrec.models.implicit:ImplicitALS",
    "bpr": "mfrec.models.bpr:BPR",
    "cmf": "mfrec.models.cmf:CMF",
}

_entries: dict[str, str | type] = dict(BUILTIN)


def _resolve(target: str | type) -> type:
    if isinstance(target, type):
        return target
    module, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: make a model class known by ``name`` (its CLI name) and by its class
    name (the ``model_class`` stored in model files). A name or class name already taken by a
    different class is a ValueError."""
    if not isinstance(name, str) or not name or name != name.strip() or ":" in name:
        raise ValueError(f"a model name is a non-empty string without ':' or surrounding spaces, got {name!r}")

    def decorate(cls: T) -> T:
        current = _entries.get(name)
        if current is not None and current is not cls and not _same(current, cls):
            raise ValueError(f"model name {name!r} is already registered for {_describe(current)}")
        for other_name, other in _entries.items():
            if other_name != name and _class_name(other) == cls.__name__ and not _same(other, cls):
                raise ValueError(f"a model class named {cls.__name__!r} is already registered "
                                 f"({_describe(other)} as {other_name!r}); model files store class names")
        _entries[name] = cls
        cls.model_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def _class_name(target: str | type) -> str:
    return target.__name__ if isinstance(target, type) else target.rpartition(":")[2].rpartition(".")[2]


def _same(target: str | type, cls: type) -> bool:
    """Whether a registry entry names ``cls``: the same class, or one of the same module and
    qualified name (a built-in string entry; a module reloaded or a notebook cell run again)."""
    if isinstance(target, type):
        return target is cls or (target.__module__, target.__qualname__) == (cls.__module__, cls.__qualname__)
    return target == f"{cls.__module__}:{cls.__qualname__}"


def _describe(target: str | type) -> str:
    return f"{target.__module__}.{target.__qualname__}" if isinstance(target, type) else target.replace(":", ".")


_plugins_loaded = False


def _load_plugins() -> None:
    """Import the modules of ``MFREC_MODELS`` and the ``mfrec.models`` entry points (once): their
    ``@register_model`` classes register themselves."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, (m.strip() for m in os.environ.get("MFREC_MODELS", "").split(","))):
        importlib.import_module(module)
    from importlib.metadata import entry_points

    for ep in entry_points(group="mfrec.models"):
        ep.load()


def _lookup(name: str) -> type | None:
    if name in _entries:
        return _resolve(_entries[name])
    for target in _entries.values():
        if _class_name(target) == name:
            return _resolve(target)
    return None


def model_class(name: str) -> type:
    """The model class for a CLI name (``"biased-mf"``), a class name (``"BiasedMF"``, as model
    files store it) or ``"package.module:ClassName"`` (imported). KeyError naming the known
    models otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"a model name is a string, got {type(name).__name__}")
    found = _lookup(name)
    if found is None and ":" not in name:
        _load_plugins()
        found = _lookup(name)
    if found is not None:
        return found
    if ":" in name:
        try:
            cls = _resolve(name)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot import model {name!r}: {exc}") from None
        if not isinstance(cls, type):
            raise KeyError(f"{name!r} is not a class")
        return cls
    raise KeyError(f"unknown model {name!r}; known: {', '.join(names())} (or package.module:ClassName; a model "
                   "of your own is found once its module is imported, e.g. listed in MFREC_MODELS)")


def names() -> list[str]:
    """The registered CLI names, built-in first (no model code is imported)."""
    return list(_entries)


class _Registry(Mapping[str, type]):
    """Read-only live view: CLI name -> class (classes resolved on access)."""

    def __getitem__(self, name: str) -> type:
        if name not in _entries:
            raise KeyError(name)
        return _resolve(_entries[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(_entries))

    def __len__(self) -> int:
        return len(_entries)

    def __repr__(self) -> str:
        return f"MODEL_NAMES({', '.join(_entries)})"


#: every registered model by CLI name (a live, read-only mapping)
MODEL_NAMES: Mapping[str, type] = _Registry()
