"""Lazy package attributes (PEP 562): a package's public names are imported on first use.

``import mfrec`` then costs only this module, so ``mfrec --help`` does not pay for pandas, scipy,
pyarrow and Numba; ``mfrec.BiasedMF`` imports the models on first access. A package declares
its names once, as ``{name: module}`` read like ``from module import name``::

    _LAZY = {"BiasedMF": "mfrec.models", "split": "mfrec"}   # from mfrec import split: a submodule
    __getattr__, __dir__ = attach(__name__, _LAZY)

A submodule whose name is also one of the package's lazy functions (a module ``pkg/run.py``
defining ``run``, as ``mfrec/evaluate.py`` once did) cannot shadow the function: the import system
binds a submodule on its parent with ``setattr``, which `attach` makes keep the declared name.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable, Mapping


class _LazyPackage(types.ModuleType):
    """A package module whose declared lazy names cannot be overwritten by a same-named submodule."""

    _lazy_names: Mapping[str, str] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        target = self._lazy_names.get(name)
        if (target is not None and target != self.__name__ and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):
            return  # the import system binding submodule `name`: the lazy attribute of that name wins
        super().__setattr__(name, value)


def attach(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` serving ``names`` (name -> the module to take it
    from; ``package`` itself means the submodule ``package.name``). Each name is imported once and
    then kept in the package's namespace."""
    module = sys.modules[package]
    namespace = vars(module)
    module.__class__ = type("LazyPackage", (_LazyPackage,), {"_lazy_names": dict(names)})

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if target == package:
            value = importlib.import_module(f"{package}.{name}")
        else:
            value = getattr(importlib.import_module(target), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
