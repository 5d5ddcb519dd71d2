from __future__ import annotations

import itertools

import pytest
from rucio_inlet.catalog_states import (
    FAILURE_STATES,
    LIFECYCLE,
    TRANSITIONS,
    IllegalTransition,
    RunState,
    check_transition,
    parse_state,
)


def test_happy_path_is_allowed_step_by_step() -> None:
    for current, target in itertools.pairwise(LIFECYCLE):
        check_transition("cygno/1", current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (RunState.RECORDING, RunState.UPLOADED),  # skipping CLOSED
        (RunState.ON_TAPE, RunState.ON_S3),  # backwards
        (RunState.RECONSTRUCTED, RunState.RECORDING),  # out of a final state
        (RunState.ABORTED, RunState.CLOSED),
        (RunState.CLOSED, RunState.CLOSED),  # same state is not a transition
        (RunState.UPLOADED, RunState.TAPE_FAILED),  # failing a step not yet begun
    ],
)
def test_illegal_transitions_name_current_target_and_allowed(current: RunState, target: RunState) -> None:
    with pytest.raises(IllegalTransition) as err:
        check_transition("cygno/7", current, target)
    msg = str(err.value)
    assert f"{current} → {target}" in msg
    assert "cygno/7" in msg
    assert "nothing was changed" in msg
    for allowed in TRANSITIONS[current]:
        assert allowed in msg


def test_every_failure_state_has_a_way_back_except_aborted() -> None:
    for state in FAILURE_STATES - {RunState.ABORTED}:
        assert TRANSITIONS[state], state
    assert not TRANSITIONS[RunState.ABORTED]


def test_every_state_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(RunState)


def test_parse_state_is_case_insensitive_and_lists_valid_names() -> None:
    assert parse_state(" on_s3 ") is RunState.ON_S3
    with pytest.raises(ValueError, match="valid states: RECORDING, CLOSED"):
        parse_state("ONS3")
