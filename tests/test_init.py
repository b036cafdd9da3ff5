"""``import mfrec`` is the one import users need, and it is lazy (PEP 562): every name of
``mfrec.__all__`` (and of ``mfrec.models``) is there, by attribute and by ``from mfrec import``,
is the object its module defines, and a submodule named like a function (``mfrec.evaluate``,
``mfrec.tune``) never replaces the function."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import mfrec
import mfrec.models

SRC = Path(__file__).resolve().parents[1] / "src"
EXPECTED = {"ALS", "BPR", "AmbiguousTitleError", "AttributeEncoder", "CMF", "Baseline", "BayesianFM", "BayesianMF",
            "BiasedMF", "DataError", "Dataset", "DatasetNotFoundError", "FactorModel", "FoldInError", "FunkMF", "IdMap",
            "InvalidParameterError", "ImplicitALS", "ModelFileError", "NotFittedError", "Ratings", "SVDpp",
            "TitleMatch", "TrainingDivergedError", "TuneResult", "__version__", "cross_validate", "evaluate",
            "find_items", "load_dataset", "load_model", "match_title", "metrics", "read_items", "save_model",
            "split", "synthetic", "tune"}


def test_all_is_the_public_api():
    assert set(mfrec.__all__) == EXPECTED  # the names of the eager __init__ before it became lazy
    assert len(mfrec.__all__) == len(set(mfrec.__all__))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_public_name_by_attribute_and_from_import(name):
    value = getattr(mfrec, name)
    namespace: dict = {}
    exec(f"from mfrec import {name} as got", namespace)
    assert namespace["got"] is value
    assert name in dir(mfrec)
    if isinstance(value, types.ModuleType):
        assert value is importlib.import_module(value.__name__) and value.__name__.endswith(f".{name}")
    elif name != "__version__":
        assert getattr(importlib.import_module(value.__module__), value.__name__) is value


def test_submodules_and_star_import():
    assert callable(mfrec.metrics.rmse) and callable(mfrec.split.random_split)
    namespace: dict = {}
    exec("from mfrec import *", namespace)
    assert EXPECTED <= set(namespace)
    assert mfrec.BiasedMF is mfrec.models.BiasedMF
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mfrec.Nope  # noqa: B018
    assert not hasattr(mfrec, "_private_thing")


@pytest.mark.parametrize("name", sorted(mfrec.models.__all__))
def test_every_model_package_name(name):
    value = getattr(mfrec.models, name)
    namespace: dict = {}
    exec(f"from mfrec.models import {name} as got", namespace)
    assert namespace["got"] is value


def fresh(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("first", ["import mfrec.evaluation", "from mfrec.evaluation.search import tune",
                                   "import mfrec; mfrec.tune", "import mfrec; mfrec.cross_validate"])
def test_the_evaluation_functions_in_a_fresh_process(first):
    fresh(f"{first}\nimport types, mfrec\n"
          "for name in ('evaluate', 'tune', 'cross_validate'):\n"
          "    assert not isinstance(getattr(mfrec, name), types.ModuleType), name\n"
          "assert mfrec.evaluate.__name__ == 'evaluate' and mfrec.tune.__name__ == 'tune'\n"
          "assert mfrec.metrics.__name__ == 'mfrec.evaluation.metrics'\n")


PACKAGE = """
from mfrec._lazy import attach

_LAZY = {"run": "lazypkg.run", "helpers": "lazypkg"}
__getattr__, __dir__ = attach(__name__, _LAZY)
"""


@pytest.mark.parametrize("first", ["import lazypkg.run", "from lazypkg.run import run", "import lazypkg.helpers",
                                   "import lazypkg; lazypkg.helpers"])
def test_a_submodule_never_shadows_the_lazy_function_of_its_name(tmp_path, first):
    """A package whose function ``run`` lives in its submodule ``run`` (as mfrec.evaluate and
    mfrec.tune did): importing the submodule makes the import system set ``package.run`` to the
    module; `mfrec._lazy.attach` keeps the function. A lazy submodule entry is still the module."""
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PACKAGE)
    (pkg / "run.py").write_text("import lazypkg.helpers\n\ndef run():\n    return 'ran'\n")
    (pkg / "helpers.py").write_text("import lazypkg.run\nVALUE = 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    code = (f"{first}\nimport types, lazypkg\nassert lazypkg.run() == 'ran', lazypkg.run\n"
            "assert isinstance(lazypkg.helpers, types.ModuleType) and lazypkg.helpers.VALUE == 1\n"
            "assert 'run' in dir(lazypkg)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr


def test_monkeypatching_a_public_name_works(monkeypatch):
    monkeypatch.setattr(mfrec, "load_model", "patched")
    assert mfrec.load_model == "patched"
