"""What the Inspect scorer shows: per-task counts pooled by the core into rates, the n/of table of
`rps-evals score` recovered from a log, and the markdown explanation `inspect view` renders."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.scorer import SampleScore  # noqa: E402

from rps_evals.data import load_dataset  # noqa: E402
from rps_evals.inspect_eval.counts import SCORER_NAME, log_counts, results_table  # noqa: E402
from rps_evals.inspect_eval.scorer import explain, reliability, task_score  # noqa: E402
from rps_evals.scoring import AttemptRecord  # noqa: E402

DATASET = load_dataset("arc1:training")
ONE = DATASET.tasks["3c9b0459"]  # 1 test output, 3x3 grids
TWO = DATASET.tasks["25ff71a9"]  # 2 test outputs


def record(task, attempt, source, status, correct, predictions=None, train_verified=False, **extra) -> AttemptRecord:
    m = task.num_tests
    return AttemptRecord(task.task_id, attempt, source, status,
                         predictions if predictions is not None else [None] * m,
                         ["program" if source == "executed_program" else None] * m, correct, train_verified, **extra)


def test_metrics_are_rates_pooled_over_tasks_not_means_of_task_rates():
    one = task_score([record(ONE, 1, "executed_program", "ok", [True]),
                      record(ONE, 2, "invalid", "error", [False])], 2)
    two = task_score([record(TWO, 1, "executed_program", "ok", [True, False]),
                      record(TWO, 2, "executed_program", "ok", [False, False])], 2)
    rates = reliability()([SampleScore(score=one), SampleScore(score=two)])
    # test outputs matched: 1 of 1 and 1 of 2 -> 2/3 pooled (the mean of the task rates would be 3/4)
    assert rates["test_output_exact"] == pytest.approx(2 / 3)
    assert rates["task_solves"] == pytest.approx(1 / 2)
    assert rates["attempts_from_executed_programs"] == pytest.approx(3 / 4)
    assert rates["arc_prize_score"] == pytest.approx((1 + 1 / 2) / 2)
    assert not any(name.endswith(("_n", "_of")) for name in rates)


def test_the_n_of_table_is_recovered_from_the_log():
    scores = [task_score([record(ONE, 1, "executed_program", "ok", [True]),
                          record(ONE, 2, "json_fallback", "error", [False])], 2),
              task_score([record(TWO, 1, "invalid", "timeout", [False, False]),
                          record(TWO, 2, "invalid", "no_program", [False, False])], 2)]
    log = SimpleNamespace(samples=[SimpleNamespace(scores={SCORER_NAME: s}) for s in scores],
                          eval=SimpleNamespace(metadata={"rps_evals": {
                              "dataset": "arc1:training", "attempts": 2, "prompt_version": "arc-prog-v1"}}))
    counts = log_counts(log)
    assert (counts["task_solves"]["n"], counts["task_solves"]["of"]) == (1, 2)
    assert (counts["test_output_exact"]["n"], counts["test_output_exact"]["of"]) == (1, 3)
    assert (counts["program_timeouts"]["n"], counts["program_timeouts"]["of"]) == (1, 4)
    table = results_table(log).splitlines()
    assert table[0] == "arc1:training  (k=2, prompt arc-prog-v1)"
    assert [line.split()[1:] for line in table if line.startswith(("task_solves ", "json_fallback_attempts "))] == [
        ["1/2", "(50.0%)"], ["1/4", "(25.0%)"]]
    assert table[-1].split() == ["arc_prize_score", "0.5000"]


def test_a_log_of_another_task_gets_no_table():
    log = SimpleNamespace(samples=[], eval=SimpleNamespace(metadata={}))
    assert results_table(log) is None


def test_explanation_lists_each_attempt_and_draws_small_grids_side_by_side():
    want, mirrored = [[1, 2], [3, 4]], [[2, 1], [4, 3]]
    attempts = [
        AttemptRecord("t", 1, "executed_program", "ok", [want], ["program"], [True], True),
        AttemptRecord("t", 2, "json_fallback", "error", [mirrored], ["json"], [False], False),
        AttemptRecord("t", 3, "invalid", "no_program", [None], [None], [False], False, api_error="HTTP 503"),
    ]
    nbsp = "\u00a0"  # inspect view collapses runs of spaces but keeps these
    assert explain(attempts, [want]) == "\n".join([
        "**attempt 1**: executed_program, program ok, train-verified; tests ✓",
        "**attempt 2**: json_fallback, program error; tests ✗",
        "**attempt 3**: API error: HTTP 503; tests ✗",
        "",
        "**test 1**: expected │ attempt 1 │ attempt 2 │ attempt 3",
        "12 │ 12 │ 21 │ —",
        f"34 │ 34 │ 43 │ {nbsp}",
    ])


def test_large_grids_are_not_drawn():
    big = [[1] * 11 for _ in range(11)]
    text = explain([record(ONE, 1, "json_fallback", "no_program", [False], [big])], ONE.test_outputs)
    assert text == "**attempt 1**: json_fallback, program no_program; tests ✗"


def test_pooled_task_counts_are_the_runs_counts():
    """The front ends that score task by task (Inspect, lm-eval) pool task_counts; the CLI counts
    the whole run at once: the same n/of for every metric."""
    from rps_evals.scoring import pool, summarize, task_counts

    by_task = {
        ONE.task_id: [record(ONE, 1, "executed_program", "ok", [True]), record(ONE, 2, "invalid", "timeout", [False])],
        TWO.task_id: [record(TWO, 1, "json_fallback", "error", [True, False]),
              record(TWO, 2, "executed_program", "ok", [False, True], train_verified=True)],
    }
    pooled = pool(task_counts(records, 2) for records in by_task.values())
    run = summarize(DATASET.select([ONE.task_id, TWO.task_id]), [r for rs in by_task.values() for r in rs], 2)
    assert {name: (c["n"], c["of"]) for name, c in pooled.items()} == \
        {name: (c["n"], c["of"]) for name, c in run["metrics"].items()}
    assert (pooled["test_output_exact"]["n"], pooled["test_output_exact"]["of"]) == (3, 3)  # by hand
    assert (pooled["task_solves"]["n"], pooled["program_timeouts"]["n"]) == (2, 1)
