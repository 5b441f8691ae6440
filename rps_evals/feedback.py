"""The feedback a refining front end sends after an answer whose program is not train-verified.

It says what a person checking the program on the training examples would say: that there was no
program to run, the error's last lines, and which training examples came out wrong and how (wrong
shape, no valid grid, or the differing cells of the smallest failing example, with its expected
grid; not repeated for a program that failed on every example, whose error says it all). Only
training pairs are ever shown: never a test output. The text is bounded (MAX_FEEDBACK_CHARS) and
versioned like the prompt: FEEDBACK_VERSION and the SHA-256 of its template pieces
(`feedback_hash`) go into the provenance of every refining run, since scores after feedback are
only comparable under the same feedback. Change the version whenever a piece changes
(tests/test_feedback.py pins the hash to the version).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from rps_evals.attempts import AttemptRecord
from rps_evals.data import Task
from rps_evals.execution import Execution
from rps_evals.parse import Grid, as_grid
from rps_evals.prompt import format_grid

FEEDBACK_VERSION = "arc-feedback-v1"
MAX_FEEDBACK_CHARS = 6000  # a 30x30 expected grid is about 2,800 characters
ERROR_LINES = 12  # the error's last lines shown ...
ERROR_CHARS = 1200  # ... and at most this many characters of them
MAX_CELLS_LISTED = 30  # differing cells listed for the smallest failing example

# The template pieces: every word the feedback can say (their hash is `feedback_hash`).
CUT_OFF = "Your answer was cut off at the token limit before it was complete."
NO_PROGRAM = ("Your answer has no Python program defining `transform(grid)` that could be run, so it could not "
              "be checked on the training examples.")
TIMED_OUT = "Your program ran out of time:\n```\n{error}\n```"
RAISED = "Your program raised an error:\n```\n{error}\n```"
WRONG = "Your program's output is wrong for training example{s} {which} (of {total})."
PAIR_NO_GRID = "- Example {i}: no valid grid (the call failed, or did not return a list of rows of ints 0-9)."
PAIR_SHAPE = "- Example {i}: wrong shape: expected {want} (rows x columns), got {got}."
PAIR_CELLS = "- Example {i}: {count} of {cells} cells differ."
CELLS = "Example {i}, the cells that differ (row, column: expected, got; counted from 0): {cells}{more}."
EXPECTED = "Example {i}'s expected output:\n{grid}"
CLOSING = ("Correct the program so that it reproduces every training example, and answer again in the same "
           "structure as before (Reasoning, Python program, Predicted test outputs).")
_PIECES = (CUT_OFF, NO_PROGRAM, TIMED_OUT, RAISED, WRONG, PAIR_NO_GRID, PAIR_SHAPE, PAIR_CELLS, CELLS, EXPECTED,
           CLOSING)


def feedback_template() -> str:
    return "\n".join(_PIECES)


def feedback_hash() -> str:
    """SHA-256 (hex) of the feedback's template pieces: what `feedback_hash` in a provenance is."""
    return hashlib.sha256(feedback_template().encode("utf-8")).hexdigest()


def refinement_provenance(refine: int) -> dict[str, Any]:
    """The provenance keys of refinement: the rounds allowed, and the feedback's version and hash
    (null when no feedback can be sent)."""
    return {"refine": refine, "feedback_version": FEEDBACK_VERSION if refine else None,
            "feedback_hash": feedback_hash() if refine else None}


def _error_tail(error: str) -> str:
    lines = error.strip().splitlines()[-ERROR_LINES:]
    return "\n".join(lines)[-ERROR_CHARS:] or "(no message)"


def _shape(grid: Grid) -> str:
    return f"{len(grid)}x{len(grid[0])}"


def feedback_text(task: Task, record: AttemptRecord, execution: Execution) -> str:
    """What went wrong with one answer on the task's training pairs, for the next user message.
    `record` and `execution` are the answer's (from `scoring.score_attempt` and the executor)."""
    parts = [CUT_OFF] if record.stop_reason in ("max_tokens", "model_length") else []
    if execution.status == "no_program":
        parts.append(NO_PROGRAM)
    elif execution.status == "timeout":
        parts.append(TIMED_OUT.format(error=_error_tail(execution.error)))
    elif execution.status == "error":
        parts.append(RAISED.format(error=_error_tail(execution.error)))
    returned = [as_grid(v) for v in execution.train_outputs]
    if execution.status == "ok" or any(g is not None for g in returned):  # a crash on every pair: its error says it
        parts += _wrong_pairs(task.train, returned)
    parts.append(CLOSING)
    return _bounded(parts)


def _wrong_pairs(train: Sequence[tuple[Grid, Grid]], returned: Sequence[Grid | None]) -> list[str]:
    """The lines about the training pairs the program got wrong (none when all are right)."""
    got = [returned[i] if i < len(returned) else None for i in range(len(train))]
    failing = [i for i, (_, want) in enumerate(train) if got[i] != want]
    if not failing:
        return []
    which = ", ".join(str(i + 1) for i in failing[:-1]) + (" and " if len(failing) > 1 else "") + str(failing[-1] + 1)
    lines = [WRONG.format(s="s" if len(failing) > 1 else "", which=which, total=len(train))]
    for i in failing:
        want, have = train[i][1], got[i]
        if have is None:
            lines.append(PAIR_NO_GRID.format(i=i + 1))
        elif _shape(have) != _shape(want):
            lines.append(PAIR_SHAPE.format(i=i + 1, want=_shape(want), got=_shape(have)))
        else:
            lines.append(PAIR_CELLS.format(i=i + 1, count=len(_differing(want, have)),
                                           cells=len(want) * len(want[0])))
    detail = []
    smallest = min(failing, key=lambda i: (len(train[i][1]) * len(train[i][1][0]), i))
    want, have = train[smallest][1], got[smallest]
    if have is not None and _shape(have) == _shape(want):
        cells = _differing(want, have)
        shown = ", ".join(f"({r}, {c}: {want[r][c]}, {have[r][c]})" for r, c in cells[:MAX_CELLS_LISTED])
        more = f", and {len(cells) - MAX_CELLS_LISTED} more" if len(cells) > MAX_CELLS_LISTED else ""
        detail.append(CELLS.format(i=smallest + 1, cells=shown, more=more))
    detail.append(EXPECTED.format(i=smallest + 1, grid=format_grid(want)))
    return ["\n".join(lines), *detail]


def _differing(want: Grid, have: Grid) -> list[tuple[int, int]]:
    return [(r, c) for r, row in enumerate(want) for c, value in enumerate(row) if have[r][c] != value]


def _bounded(parts: list[str]) -> str:
    """The parts joined, within MAX_FEEDBACK_CHARS: the longest middle parts (an expected grid, a
    cell list) go first, then the text is cut, keeping the closing request."""
    while len("\n\n".join(parts)) > MAX_FEEDBACK_CHARS and len(parts) > 2:
        longest = max(range(len(parts) - 1), key=lambda i: len(parts[i]))
        parts = parts[:longest] + parts[longest + 1:]
    text = "\n\n".join(parts)
    if len(text) > MAX_FEEDBACK_CHARS:
        cut = " [...]\n\n"
        text = text[:MAX_FEEDBACK_CHARS - len(cut) - len(CLOSING)] + cut + CLOSING
    return text
