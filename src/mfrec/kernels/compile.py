"""How mfrec's Numba kernels are compiled and cached, in one place.

- `KERNEL_OPTIONS`: the options every kernel module compiles with (``from mfrec.kernels.compile
  import KERNEL_OPTIONS as _OPTS``; ``@njit(**_OPTS)``).
- The on-disk cache: `install_cache_locator` (run by ``mfrec.kernels`` before any kernel is
  defined) adds one cache location for mfrec's own kernels: when the package directory is not
  writable (site-packages of a system or container install) and ``NUMBA_CACHE_DIR`` is unset,
  kernels cache in `user_cache_dir` (``$MFREC_CACHE_DIR/numba``, else
  ``$XDG_CACHE_HOME/mfrec/numba``, else ``~/.cache/mfrec/numba``) instead of Numba's generic
  fallback. Order: ``NUMBA_CACHE_DIR``, the package's ``__pycache__`` if writable, the user
  directory. Other libraries' Numba functions are not affected.
- The first-use notice: `install_compile_notice` logs one INFO line on logger
  ``mfrec.kernels`` when a fit (or a recommend) makes Numba compile an mfrec kernel, once per
  model class and process; nothing is logged when every kernel loads from the cache. Libraries
  stay quiet (Python's default shows WARNING and above); `show_compile_notices` prints it on stderr (for the CLI).
- `compile_with_llvm_options`: LLVM options scoped to the compilation of chosen kernels.

LLVM's loop vectorizer picks an interleave count (how many vectors it processes per loop
iteration) by a cost model. For the SGD update over a factor row padded to a multiple of 16
floats, the chosen count of 2 leaves a 16-float remainder that runs as four 4-wide iterations;
forcing the count to 1 turns a k=100 row (padded to 112) into seven full-width iterations and
makes an update ~15% faster (measured on ml-100k u1, `benchmarks/RESULTS.md`). LLVM options are
process-wide, so they are set only while Numba compiles the chosen kernels and restored right
after: other kernels, and other libraries' Numba code, compile with the defaults.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import llvmlite.binding as llvm
from numba.core import config, event
from numba.core.compiler_lock import global_compiler_lock

log = logging.getLogger("mfrec.kernels")

FASTMATH = frozenset({"nnan", "ninf", "nsz", "reassoc", "contract", "afn"})
"""LLVM's fast-math flags for the kernels: all of ``fastmath=True`` but ``arcp`` (reciprocal
approximations). With ``arcp`` a kernel compiled in this process and the same kernel loaded from
the cache by the next one gave different bits (ImplicitALS's CG, SVD++'s implicit update): Numba's
JIT and the object code it caches lower approximate reciprocals differently. Without it the
results of a seed do not depend on whether the process compiled (tests/kernels/test_compile.py)."""

KERNEL_OPTIONS: dict[str, Any] = dict(cache=True, fastmath=set(FASTMATH), nogil=True)
"""The Numba options of mfrec's kernels (the one copy; modules import it as ``_OPTS``)."""

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../mfrec

# Cold first-fit seconds per model on a quiet 2-core machine, rounded up, from the slower of the
# machines measured (benchmarks/RESULTS.md section 11.6; 11.2's compiled ~2x faster): the
# notice's "~N s" (a model not listed: by the kernel module that compiles first).
_COMPILE_SECONDS = {"Baseline": 1, "BiasedMF": 5, "FunkMF": 5, "SVDpp": 7, "ALS": 5, "CMF": 6, "ImplicitALS": 4,
                    "BPR": 5, "BayesianMF": 5, "BayesianFM": 5, "sgd": 5, "als": 5, "cmf": 6, "bpr": 5, "bayes": 5,
                    "fm": 5, "topn": 1, "predict": 1}


def user_cache_dir() -> Path:
    """Where mfrec's kernels cache when the package directory is read-only and
    ``NUMBA_CACHE_DIR`` is unset: ``$MFREC_CACHE_DIR/numba``, else ``$XDG_CACHE_HOME/mfrec/numba``,
    else ``~/.cache/mfrec/numba`` (the data cache's root, see README "Datasets")."""
    root = os.environ.get("MFREC_CACHE_DIR", "").strip()
    if root:
        return Path(root).expanduser() / "numba"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mfrec" / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def kernel_cache_dir() -> Path:
    """The directory the kernels of ``mfrec/kernels/`` cache in (as the locators decide)."""
    cache_dir = getattr(config, "CACHE_DIR", "")  # NUMBA_CACHE_DIR
    if cache_dir:
        return Path(cache_dir)
    in_tree = PACKAGE_DIR / "kernels" / "__pycache__"
    return in_tree if _writable(in_tree) else user_cache_dir()


def _is_mfrec_source(py_file: str) -> bool:
    try:
        return Path(py_file).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def _locator_class() -> type | None:
    """Numba cache locator for mfrec's sources into `user_cache_dir` (None on a Numba whose
    caching internals differ: its own fallback, ``~/.cache/numba``, then applies)."""
    from numba.core import caching

    _CacheLocator = getattr(caching, "_CacheLocator", None)
    _SourceFileBackedLocatorMixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if _CacheLocator is None or _SourceFileBackedLocatorMixin is None:  # pragma: no cover
        return None

    class MfrecUserCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):  # type: ignore[misc, valid-type]
        """mfrec kernels whose package directory is not writable cache in `user_cache_dir`."""

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(user_cache_dir() / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self) -> str:
            return self._cache_path

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not _is_mfrec_source(py_file):
                return None
            return super().from_function(py_func, py_file)

    return MfrecUserCacheLocator


def install_cache_locator() -> None:
    """Put mfrec's user-directory locator right after Numba's in-tree one (idempotent)."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # renamed in Numba 0.61
    classes = getattr(impl, "_locator_classes", None)
    in_tree = getattr(caching, "InTreeCacheLocator", None) or getattr(caching, "_InTreeCacheLocator", None)
    if not isinstance(classes, list):  # pragma: no cover - other Numba versions: Numba's own fallback
        return
    if any(getattr(c, "__name__", "") == "MfrecUserCacheLocator" for c in classes):
        return
    locator = _locator_class()
    if locator is None:  # pragma: no cover
        return
    at = classes.index(in_tree) + 1 if in_tree in classes else 0
    classes.insert(at, locator)


_announced: set[str] = set()


def _fitting_model() -> str | None:
    """The class name of the mfrec model whose method is on the call stack, if any."""
    model_cls = getattr(sys.modules.get("mfrec.models.base"), "Estimator", None)
    frame: Any = sys._getframe(2)
    while frame is not None and model_cls is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, model_cls):
            return type(owner).__name__
        frame = frame.f_back
    return None


def _mfrec_kernel(ev: Any) -> Any | None:
    """The Python function of a ``numba:compile`` event when it is one of mfrec's kernels."""
    py_func = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
    return py_func if (getattr(py_func, "__module__", "") or "").startswith("mfrec.") else None


class _CompileNotice(event.Listener):
    """Logs the first-use line when Numba starts compiling (not loading) an mfrec kernel."""

    def on_start(self, ev: Any) -> None:
        py_func = _mfrec_kernel(ev)
        if py_func is None:
            return
        family = py_func.__module__.rsplit(".", 1)[-1]
        model = _fitting_model()
        name = model or f"mfrec.kernels.{family}"
        if name in _announced:
            return
        _announced.add(name)
        seconds = _COMPILE_SECONDS.get(model or "", _COMPILE_SECONDS.get(family, 5))
        log.info("compiling mfrec kernels for %s (first use, ~%d s; cached afterwards in %s)", name, seconds,
                 kernel_cache_dir())

    def on_end(self, ev: Any) -> None:
        pass


class _CompileRecorder(event.Listener):
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def on_start(self, ev: Any) -> None:
        py_func = _mfrec_kernel(ev)
        if py_func is not None:
            self.names.append(py_func.__name__)

    def on_end(self, ev: Any) -> None:
        pass


def record_compiles() -> list[str]:
    """From now on, append the name of every mfrec kernel specialization Numba compiles (not
    loads from the cache) in this process to the returned list (benchmarks and tests count them)."""
    names: list[str] = []
    event.register("numba:compile", _CompileRecorder(names))
    return names


_notice: _CompileNotice | None = None


def install_compile_notice() -> None:
    """Register the first-use notice listener (idempotent)."""
    global _notice
    if _notice is None:
        _notice = _CompileNotice()
        event.register("numba:compile", _notice)


def show_compile_notices() -> None:
    """Print the first-use notices (INFO on ``mfrec.kernels``) to stderr, as they happen: for
    command-line tools (idempotent; writes to whatever ``sys.stderr`` is at that moment). A
    library user configures logging instead."""
    if any(isinstance(h, _StderrHandler) for h in log.handlers):
        return
    log.addHandler(_StderrHandler())
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(record.getMessage(), file=sys.stderr, flush=True)
        except Exception:  # pragma: no cover - a closed stream must not break a fit
            self.handleError(record)


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


def specializations(factory: Callable[[Any], Any], choices: Sequence[Any] = (False, True)) -> dict[Any, Any]:
    """One kernel per value of a compile-time choice: ``{c: factory(c) for c in choices}``.

    ``factory(c)`` defines and returns a kernel that reads ``c`` as a closure constant: Numba then
    prunes the branches of the other choices before typing them, so a fit compiles only the
    solver it uses (a runtime flag compiles every branch: ImplicitALS's unused exact solve was
    ~5 s of its first fit). Each choice caches apart (Numba keys the cache by the closure's
    values). Dispatchers are created here, compiled on first call."""
    return {choice: factory(choice) for choice in choices}
