"""The refinement feedback (rps_evals/feedback.py): what it says for each way a program fails on
the training pairs, its bound, that it never shows a test output, and its pinned version."""

from __future__ import annotations

import json

from rps_evals.attempts import Response
from rps_evals.data import Task
from rps_evals.execution import Execution
from rps_evals.feedback import (
    FEEDBACK_VERSION,
    MAX_FEEDBACK_CHARS,
    feedback_hash,
    feedback_text,
    refinement_provenance,
)
from rps_evals.scoring import score_attempt

# training outputs: 2x2, 3x3, 1x1; the test output holds a 7 that no training grid has
TASK = Task("feed0001", train=[([[1, 0], [0, 1]], [[2, 0], [0, 2]]),
                               ([[1, 1, 0], [0, 0, 0], [0, 1, 1]], [[2, 2, 0], [0, 0, 0], [0, 2, 2]]),
                               ([[1]], [[2]])],
            test_inputs=[[[1, 1], [1, 1]]], test_outputs=[[[7, 7], [7, 7]]])


def text_for(status: str, train_outputs, error: str = "", stop_reason: str | None = "stop") -> str:
    execution = Execution(status, [None], train_outputs, error)
    response = Response(TASK.task_id, 1, "an answer", stop_reason)
    record = score_attempt(TASK, response, [None], execution, 1)
    return feedback_text(TASK, record, execution)


def test_no_program():
    text = text_for("no_program", [None, None, None])
    assert text.startswith("Your answer has no Python program defining `transform(grid)`")
    assert "Example" not in text and text.endswith("Predicted test outputs).")


def test_error_shows_the_last_lines_and_the_pairs_that_failed():
    trace = "\n".join(f"line {i}" for i in range(30)) + "\nValueError: boom"
    text = text_for("error", [None, None, None], trace)  # failed on every pair: the error alone
    assert "Your program raised an error:\n```\nline 19\n" in text and "line 18" not in text
    assert "ValueError: boom\n```" in text and "Example" not in text
    text = text_for("error", [[[2, 0], [0, 2]], None, [[2]]], trace)  # some pairs returned grids
    assert "wrong for training example 2 (of 3)" in text and "- Example 2: no valid grid" in text
    assert "Example 2's expected output:\n[\n [2, 2, 0]," in text


def test_wrong_shape_and_differing_cells_of_the_smallest_failing_pair():
    text = text_for("ok", [[[2, 0], [0, 2]], [[2, 2, 0], [0, 1, 0], [0, 2, 1]], [[2, 2]]])
    assert "wrong for training examples 2 and 3 (of 3)" in text and "Example 1:" not in text
    assert "- Example 2: 2 of 9 cells differ." in text
    assert "- Example 3: wrong shape: expected 1x1 (rows x columns), got 1x2." in text
    # the smallest failing pair is 3 (1 cell): wrong shape, so its expected grid and no cell list
    assert "cells that differ" not in text and "Example 3's expected output:\n[\n [2]\n]" in text
    text = text_for("ok", [[[2, 0], [0, 2]], [[2, 2, 0], [0, 1, 0], [0, 2, 1]], [[2]]])
    assert "Example 2, the cells that differ (row, column: expected, got; counted from 0): (1, 1: 0, 1), " \
           "(2, 2: 2, 1)." in text
    assert "Example 2's expected output:\n[\n [2, 2, 0],\n [0, 0, 0],\n [0, 2, 2]\n]" in text


def test_timeout_and_token_limit():
    text = text_for("timeout", [], "a call ran past its 2s limit", stop_reason="max_tokens")
    assert text.startswith("Your answer was cut off at the token limit")
    assert "Your program ran out of time:\n```\na call ran past its 2s limit\n```" in text


def test_bounded_and_never_a_test_output():
    big_in = [[1] * 30 for _ in range(30)]
    big = Task("feed0002", train=[(big_in, [[c % 10 for c in range(30)] for _ in range(30)])] * 3,
               test_inputs=[big_in], test_outputs=[[[7] * 30 for _ in range(30)]])
    execution = Execution("error", [None], [[[0] * 30] * 30] * 3, "E" * 5000)
    record = score_attempt(big, Response(big.task_id, 1, "x", "stop"), [None], execution, 1)
    text = feedback_text(big, record, execution)
    assert len(text) <= MAX_FEEDBACK_CHARS and text.endswith("Predicted test outputs).")
    assert "7, 7, 7" not in text
    for outputs in ([None] * 3, [[[2, 0], [0, 2]], [[0]], [[0]]]):
        assert "7" not in text_for("ok", outputs).replace("Example 7", "")


def test_version_and_hash_are_pinned():
    # change FEEDBACK_VERSION whenever the feedback's wording changes, then update this pair
    assert (FEEDBACK_VERSION, feedback_hash()) == (
        "arc-feedback-v1", "5452258b40145f1538ee678edd79a17c690634fb31d2b5a69320b841b2dce1f3")
    assert refinement_provenance(2) == {"refine": 2, "feedback_version": "arc-feedback-v1",
                                        "feedback_hash": feedback_hash()}
    assert refinement_provenance(0)["feedback_hash"] is None
    json.dumps(refinement_provenance(1))
