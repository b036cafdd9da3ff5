"""Start-up: ``mfrec --help`` and ``mfrec --version`` import none of the heavy libraries (they
cost ~2.6 s when every command imported pandas, pyarrow, scipy and Numba). Deterministic: each
case runs in a fresh interpreter and reports what it imported; the timing is
benchmarks/bench_startup.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mfrec
from tests.cli.helpers import src_env
HEAVY = ("numpy", "pandas", "scipy", "numba", "llvmlite", "pyarrow", "matplotlib", "threadpoolctl")

REPORT = """
import json, sys
HEAVY = {heavy!r}
def report():
    sys.stderr.write("\\nLOADED " + json.dumps([m for m in HEAVY if m in sys.modules]) + "\\n")
{body}
report()
"""


def loaded(body: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """The heavy modules a fresh interpreter has imported after running ``body``."""
    proc = subprocess.run([sys.executable, "-c", REPORT.format(heavy=HEAVY, body=body)], capture_output=True,
                          text=True, timeout=120, env=src_env())
    marker = [line for line in proc.stderr.splitlines() if line.startswith("LOADED ")]
    assert proc.returncode == 0 and marker, proc.stderr
    return json.loads(marker[-1][len("LOADED "):]), proc


def command(*args: str) -> str:
    """Run the console script's entry point (mfrec.cli:main) with ``args``, as `mfrec ARGS` does."""
    return (f"sys.argv = ['mfrec', *{list(args)!r}]\nfrom mfrec.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n")


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("train", "--help"), ("recommend", "--help"),
                                  ("data", "--help")])
def test_help_and_version_import_no_heavy_library(args):
    heavy, proc = loaded(command(*args))
    assert heavy == []
    assert ("mfrec " + mfrec.__version__) in proc.stdout if args == ("--version",) else "Usage" in proc.stdout


def test_python_dash_m_mfrec_help_imports_no_heavy_library():
    heavy, proc = loaded("import runpy\nsys.argv = ['mfrec', '--help']\ntry:\n"
                         "    runpy.run_module('mfrec', run_name='__main__')\nexcept SystemExit:\n    pass\n")
    assert heavy == [] and "train" in proc.stdout


def test_import_mfrec_and_the_model_names_import_no_heavy_library():
    heavy, _ = loaded("import mfrec\nfrom mfrec.models.registry import names\nassert 'biased-mf' in names()\n"
                      "assert mfrec.__version__ and 'BiasedMF' in dir(mfrec)\n")
    assert heavy == []


def test_a_command_still_imports_what_it_needs():
    """The counter-check: the report sees heavy imports when they happen."""
    heavy, _ = loaded("import mfrec\nmfrec.BiasedMF\n")
    assert {"numpy", "pandas", "numba"} <= set(heavy)
