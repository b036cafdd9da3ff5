"""LLVM options scoped to the compilation of chosen kernels.

LLVM's loop vectorizer picks an interleave count (how many vectors it processes per loop
iteration) by a cost model. For the SGD update over a factor row padded to a multiple of 16
floats, the chosen count of 2 leaves a 16-float remainder that runs as four 4-wide iterations;
forcing the count to 1 turns a k=100 row (padded to 112) into seven full-width iterations and
makes an update ~15% faster (measured on ml-100k u1, `benchmarks/RESULTS.md`). LLVM options are
process-wide, so they are set only while Numba compiles the chosen kernels and restored right
after: other kernels, and other libraries' Numba code, compile with the defaults.
"""

from __future__ import annotations

from typing import Any, Sequence

import llvmlite.binding as llvm
from numba.core.compiler_lock import global_compiler_lock


def compile_with_llvm_options(dispatcher: Any, options: Sequence[str], defaults: Sequence[str]) -> Any:
    """Make the Numba ``dispatcher`` compile every new specialization with the LLVM command-line
    ``options`` (e.g. ``"-force-vector-interleave=1"``) set, and ``defaults`` set back afterwards.

    Compilation happens on a dispatcher's first call with new argument types (or when its cache
    is loaded: then nothing is compiled and the options do not matter). Returns ``dispatcher``.
    """
    compile_for_args = getattr(dispatcher, "_compile_for_args", None)
    if compile_for_args is None:  # a Numba without this hook: compile with the defaults
        return dispatcher

    def compile_scoped(*args: Any, **kws: Any) -> Any:
        with global_compiler_lock:  # no other thread compiles while the options are changed
            for option in options:
                llvm.set_option("mfrec", option)
            try:
                return compile_for_args(*args, **kws)
            finally:
                for option in defaults:
                    llvm.set_option("mfrec", option)

    dispatcher._compile_for_args = compile_scoped
    return dispatcher
