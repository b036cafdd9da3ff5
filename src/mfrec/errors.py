"""Error types with a location: every data problem says what is wrong and where."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the source (file, line or row, column) and the value."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        elif row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        self.source, self.line, self.row, self.column = source, line, row, column
        self.reason = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class InvalidParameterError(ValueError, TypeError):
    """A hyperparameter or request argument has a wrong type or value; the message names it."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable."""


class ModelFileError(ValueError):
    """A model file is missing, truncated, tampered with or of another version."""


class NotFittedError(RuntimeError):
    """The estimator was used before `fit`."""


class FoldInError(ValueError):
    """A new user's ridge system has no usable solution under the model's parameters
    (``regularization=0`` with fewer ratings than factors, a precision so large it overflows)."""


class TrainingDivergedError(ArithmeticError):
    """Training produced NaN or infinite values (learning rate too high, regularization too low)."""
