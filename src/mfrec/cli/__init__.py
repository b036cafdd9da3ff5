"""The `mfrec` command line: data, train, evaluate, tune, recommend, similar, plot, demo, serve.

One module per command (``mfrec/cli/<command>.py``), the helpers they share in `_common`, and
here the app and the one error handler (:class:`_GuardedGroup`): any expected error (bad data,
damaged model file, bad argument, unusable path, unknown id) becomes one ``error: ...`` line on
stderr and exit code 1, never a traceback. Outputs are checked before any training starts.
``--json`` gives machine-readable output (strict JSON: undefined values are ``null``),
``--quiet`` hides progress bars.

Importing this package imports typer and rich only: each command imports numpy, pandas and the
models inside its function, so ``mfrec --help`` and ``mfrec --version`` answer at once.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from mfrec.cli._common import err_console
from mfrec.errors import TrainingDivergedError

#: what the shared handler turns into one line (DataError, ModelFileError, DatasetNotFoundError,
#: NotFittedError, InvalidParameterError and the title errors are subclasses of these)
EXPECTED_ERRORS = (ValueError, OSError, KeyError, TypeError, ImportError, RuntimeError, TrainingDivergedError,
                   MemoryError)


def _error_message(exc: BaseException) -> str:
    """One line for an expected error: the message, the path for OS errors, the text of a KeyError."""
    if isinstance(exc, KeyError):  # mfrec's say what is unknown; a bare key is named as missing
        key = exc.args[0] if exc.args else None
        msg = key if isinstance(key, str) and " " in key.strip() else f"missing or unknown key {key!r}"
    elif isinstance(exc, OSError) and exc.strerror and str(exc).startswith("[Errno"):
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    elif isinstance(exc, MemoryError):
        msg = f"out of memory{': ' + str(exc) if str(exc) else ''}"
    else:
        msg = str(exc)
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    return _cli_hints(lines[0].rstrip(":")) if lines else type(exc).__name__


#: the library's hints in Python keywords, as the command line spells them
_HINTS = ((re.compile(r"pass sep=('[^']*')"), r"pass --sep \1"),
          (re.compile(r"pass duplicates='last' or 'mean' to merge them"),
           "pass --duplicates last or mean to merge them"),
          (re.compile(r"pass encoding='([^']*)'"), r"pass --encoding \1"))


def _cli_hints(message: str) -> str:
    for pattern, replacement in _HINTS:
        message = pattern.sub(replacement, message)
    return message


def _fail(message: str, code: int = 1) -> None:
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _GuardedGroup(TyperGroup):
    """The root command group: runs every (sub)command inside the one shared error handler."""

    def invoke(self, ctx: Any) -> Any:
        twice = _repeated_option(self, ctx)
        if twice:  # click would keep the last value silently
            _fail(f"{twice} given twice; give it once")
        try:
            return super().invoke(ctx)
        except typer.Exit:
            raise
        except EXPECTED_ERRORS as exc:
            _fail(_error_message(exc))


def _repeated_option(group: Any, ctx: Any) -> str | None:
    """The first single-valued option of the invoked command given more than once, or None."""
    args = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
    if not args:
        return None
    cmd = group.get_command(ctx, args[0])
    if cmd is None or hasattr(cmd, "commands"):  # a group (mfrec data ...): its commands parse their own
        return None
    counts: dict[str, int] = {}
    for param in cmd.params:  # duck-typed: typer's options need not be this click's Option class
        if getattr(param, "param_type_name", "") != "option" or param.multiple or getattr(param, "count", False):
            continue
        names = [*param.opts, *param.secondary_opts]
        n = 0
        for token in args[1:]:
            if token == "--":
                break
            if token in names or any(token.startswith(name + "=") for name in names if name.startswith("--")):
                n += 1
        if n > 1:
            counts[param.opts[0]] = n
    return next(iter(counts), None)


app = typer.Typer(cls=_GuardedGroup, help="mfrec: fast matrix-factorization recommenders.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _show_version(value: bool) -> None:
    if value:
        from mfrec import __version__

        print(f"mfrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="Print the mfrec version and exit.")) -> None:
    """mfrec: fast matrix-factorization recommenders."""


# the commands, in the order --help lists them (each module is cheap to import)
from mfrec.cli import data, demo, evaluate, plot, recommend, serve, similar, train, tune  # noqa: E402

app.add_typer(data.app, name="data")
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("tune")(tune.tune)
app.command("recommend", epilog=recommend.TITLE_RULE)(recommend.recommend)
app.command("similar", epilog=similar.TITLE_RULE)(similar.similar)
app.command("plot")(plot.plot)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """Warnings as one ``warning: ...`` line on stderr (not Python's source path and code line)."""
    from mfrec.cli._common import note

    note(f"warning: {message}")


def main() -> None:
    """The ``mfrec`` console script (and ``python -m mfrec``)."""
    import warnings

    warnings.showwarning = _show_warning
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
