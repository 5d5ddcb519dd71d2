"""The run life cycle as an explicit state machine.

A run moves RECORDING → CLOSED → UPLOADED → ON_S3 → ON_TAPE → RECONSTRUCTED. Each forward
step may instead fail into a ``*_FAILED`` state, from which the same step can be retried.
The table below is the single source of truth: the catalogue refuses any other move, so a
late or duplicated event can never drag a run backwards (for instance a stale
``transfer-done`` for S3 arriving after the run is already on tape).
"""

from __future__ import annotations

import enum


class RunState(str, enum.Enum):
    # str mixin, not enum.StrEnum (3.11+): the Rucio-side plugin runs on Python 3.9. __str__ and
    # __format__ give the value, as StrEnum does, so f-strings and logs read the same.
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)

    RECORDING = "RECORDING"
    CLOSED = "CLOSED"
    UPLOADED = "UPLOADED"
    ON_S3 = "ON_S3"
    ON_TAPE = "ON_TAPE"
    RECONSTRUCTED = "RECONSTRUCTED"
    # Failure states: each names the step that failed, and allows a retry of that step.
    ABORTED = "ABORTED"
    UPLOAD_FAILED = "UPLOAD_FAILED"
    S3_FAILED = "S3_FAILED"
    TAPE_FAILED = "TAPE_FAILED"
    RECO_FAILED = "RECO_FAILED"

    @property
    def failed(self) -> bool:
        return self in FAILURE_STATES


FAILURE_STATES = frozenset(
    {RunState.ABORTED, RunState.UPLOAD_FAILED, RunState.S3_FAILED, RunState.TAPE_FAILED, RunState.RECO_FAILED}
)

#: Allowed moves. ABORTED is final: a run whose recording was aborted is never shipped.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.RECORDING: frozenset({RunState.CLOSED, RunState.ABORTED}),
    RunState.CLOSED: frozenset({RunState.UPLOADED, RunState.UPLOAD_FAILED}),
    RunState.UPLOAD_FAILED: frozenset({RunState.UPLOADED, RunState.CLOSED}),
    RunState.UPLOADED: frozenset({RunState.ON_S3, RunState.S3_FAILED}),
    RunState.S3_FAILED: frozenset({RunState.ON_S3, RunState.UPLOADED}),
    RunState.ON_S3: frozenset({RunState.ON_TAPE, RunState.TAPE_FAILED}),
    RunState.TAPE_FAILED: frozenset({RunState.ON_TAPE, RunState.ON_S3}),
    RunState.ON_TAPE: frozenset({RunState.RECONSTRUCTED, RunState.RECO_FAILED}),
    RunState.RECO_FAILED: frozenset({RunState.RECONSTRUCTED, RunState.ON_TAPE}),
    RunState.RECONSTRUCTED: frozenset(),
    RunState.ABORTED: frozenset(),
}

#: The happy path, in order: used to tell how far a run has come.
LIFECYCLE: tuple[RunState, ...] = (
    RunState.RECORDING,
    RunState.CLOSED,
    RunState.UPLOADED,
    RunState.ON_S3,
    RunState.ON_TAPE,
    RunState.RECONSTRUCTED,
)


class IllegalTransition(Exception):
    """A move the life cycle does not allow; raised before anything is written."""

    def __init__(self, run: str, current: RunState, target: RunState) -> None:
        self.run, self.current, self.target = run, current, target
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is final"
        super().__init__(
            f"run {run}: illegal transition {current} → {target} (allowed from {current}: {allowed}); "
            "nothing was changed"
        )


def parse_state(text: str) -> RunState:
    """A state from user input, case-insensitively, with the valid names in the error."""
    try:
        return RunState(text.strip().upper())
    except ValueError:
        names = ", ".join(s.value for s in RunState)
        raise ValueError(f"unknown run state {text!r}; valid states: {names}") from None


def check_transition(run: str, current: RunState, target: RunState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(run, current, target)
