"""inlet's one error base: what went wrong, and what the operator should do about it.

Every error a user can cause or cure (bad input, a missing file, a service that is not
running, a wrong setting) is an :class:`InletError` carrying a ``problem`` and a ``fix``.
The CLI catches them in one place (:mod:`inlet.cli.failures`) and prints them as one line;
services log ``str(err)``. Keeping the fix a separate field, rather than folded into the
message, is what lets both render it well.

This module imports nothing and keeps to Python 3.9 syntax: code that runs inside Rucio
(policies, plugins) may use it.
"""

from __future__ import annotations


class InletError(Exception):
    """A problem with its fix spelled out.

    ``exit_code`` is what the CLI exits with: 2 (bad input or an unmet precondition) unless
    a subclass says otherwise.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem
