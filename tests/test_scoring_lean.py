"""Scoring that stays lean at K = 256: one parse per attempt, grids validated in bulk with exactly
the strict rule, and an attempt whose program ran but returned no grid says why (down to the HTML
report). Timings are in benchmarks/scoring_scale.py, not here."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rps_evals import scoring
from rps_evals.data import Task
from rps_evals.execution import Execution
from rps_evals.parse import MAX_SIDE, as_grid, grid_problem
from rps_evals.scoring import Response, score_attempt, score_attempts

TASK = Task("t1", train=[([[0]], [[5]]), ([[1]], [[6]])], test_inputs=[[[0]]], test_outputs=[[[1]]])
PROGRAM = "```python\ndef transform(grid):\n    return [[1.0]]\n```"


def reference_as_grid(value):
    """The strict rule written plainly, cell by cell (what as_grid's bulk path must agree with)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_SIDE:
        return None
    rows = []
    for row in value:
        if isinstance(row, np.ndarray):
            row = row.tolist()
        if not isinstance(row, (list, tuple)) or not 1 <= len(row) <= MAX_SIDE or len(row) != len(value[0]):
            return None
        if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, Integral) or not 0 <= c <= 9 for c in row):
            return None
        rows.append([int(c) for c in row])
    return rows


CELLS = st.one_of(st.integers(-2, 12), st.booleans(), st.floats(0, 9), st.just(None), st.text(max_size=1),
                  st.integers(0, 9).map(np.int64))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.lists(CELLS, max_size=4), st.tuples(CELLS, CELLS), st.integers(0, 9)),
                max_size=4),
       st.booleans())
def test_bulk_grid_check_is_the_strict_rule(rows, as_tuple):
    value = tuple(rows) if as_tuple else rows
    assert as_grid(value) == reference_as_grid(value)
    assert (grid_problem(value) is None) == (as_grid(value) is not None)


def test_sizes_at_the_limits():
    assert as_grid([[9] * 30] * 30) == [[9] * 30] * 30
    assert as_grid([[9] * 31]) is None and as_grid([[9]] * 31) is None
    assert as_grid([[1, 2], [3]]) is None and as_grid([[]]) is None and as_grid([]) is None


def test_one_parse_per_attempt(monkeypatch):
    calls = []
    real = scoring.parse_response
    monkeypatch.setattr(scoring, "parse_response", lambda *a: calls.append(a) or real(*a))

    class Identity:
        def run(self, programs, progress=None):
            return [Execution("ok", list(p.test_inputs), list(p.train_inputs)) if p.source
                    else Execution.nothing_to_run(p) for p in programs]

    from rps_evals.data import Dataset

    dataset = Dataset("toy", "0" * 64, {"t1": TASK})
    identity = "```python\ndef transform(grid):\n    return grid\n```"
    records = score_attempts(dataset, [Response("t1", a, identity) for a in (1, 2, 3)], Identity(), k=4)
    assert len(records) == 4 and len(calls) == 4  # three answers and one missing attempt, each parsed once
    assert [r.program_status for r in records] == ["ok", "ok", "ok", "no_program"]


def test_an_invalid_attempt_whose_program_ran_says_why():
    record = score_attempt(TASK, Response("t1", 1, PROGRAM), [None], Execution("ok", [[[1.0]]], [[[1.0]], [[1.0]]]), 1)
    assert (record.source, record.program_status) == ("invalid", "ok")
    assert record.error == ("the program ran, but its output for test 1 is not a grid: "
                            "cell [0][0] is the float 1.0 (cells are ints 0-9)")
    crashed = score_attempt(TASK, Response("t1", 1, PROGRAM), [None], Execution("error", [None], [None, None], "boom"), 1)
    assert crashed.error == "boom"  # the program's own error is kept as it was
    fine = score_attempt(TASK, Response("t1", 1, PROGRAM), [None], Execution("ok", [[[1]]], [[[5]], [[6]]]), 1)
    assert fine.error == "" and fine.train_verified and fine.correct == [True]


def test_the_html_report_shows_why(tmp_path):
    from rps_evals.cli import main

    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"task_id": "007bbfb7", "attempt": 1, "completion": '
                         '"```python\\ndef transform(grid):\\n    return [[0.5] * 9] * 9\\n```"}\n')
    assert main(["score", "--dataset", "arc1:training", "--responses", str(responses), "--out", str(tmp_path / "run"),
                 "--sandbox", "local", "--task-ids", "007bbfb7", "--attempts", "1"]) == 0
    assert main(["view", str(tmp_path / "run"), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "the program ran, but its output for test 1 is not a grid: cell [0][0] is the float 0.5" in html
