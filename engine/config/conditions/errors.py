"""The error a condition that does not parse raises."""

from __future__ import annotations


class ConditionError(ValueError):
    """A condition that does not parse; ``column`` is 1-based and points at the problem."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"
