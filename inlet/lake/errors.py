"""Errors that tell an operator what went wrong and what to do about it."""

from __future__ import annotations

from inlet.errors import InletError


class LakeError(InletError):
    """A lake problem with the fix spelled out: ``str(err)`` is what the CLI prints."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}"
