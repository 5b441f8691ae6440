"""The refinement metrics of the core (docs/metrics.md, "Refinement") on hand-built records: what
`_round_0`, `repaired_programs`, `feedback_rounds` and the per-round block count, the same pooled
from per-task counts as summarized over a run, and the replay's multi-round file rules."""

from __future__ import annotations

import json

import pytest

from rps_evals.attempts import AttemptRecord
from rps_evals.data import Dataset, Task
from rps_evals.records import InputError
from rps_evals.scoring import metric_units, pool, round_record, summarize, task_counts

TASKS = {f"t{i}": Task(f"t{i}", [([[1]], [[2]])], [[[1]]], [[[2]]]) for i in range(2)}
DATASET = Dataset("arc1:training", "hash", TASKS)


def answer(task_id: str, attempt: int, status: str, right: bool = False, tokens: int | None = 10,
           api_error: str | None = None) -> AttemptRecord:
    """One answer's record: `ok` programs are train-verified (and right on the test when `right`)."""
    ok = status == "ok"
    return AttemptRecord(task_id, attempt, "executed_program" if ok else "invalid", status,
                         [[[2]] if right else [[3]]] if ok else [None], ["program" if ok else None],
                         [ok and right], ok, api_error=api_error, output_tokens=tokens, input_tokens=tokens,
                         train_accuracy=1.0 if ok else 0.0, completion=None if api_error else "x")


def refined(final: AttemptRecord, *earlier: AttemptRecord) -> AttemptRecord:
    final.rounds = [{**e.to_dict(), "round": i, "feedback": f"feedback {i}"} for i, e in enumerate(earlier)]
    return final


def records() -> list[AttemptRecord]:
    """t0: attempt 1 right at round 0; attempt 2 crashes, crashes, then is right (2 rounds).
    t1: attempt 1 crashes, then an API error in round 1; attempt 2 never train-verified (2 rounds)."""
    return [
        refined(answer("t0", 1, "ok", right=True)),
        refined(answer("t0", 2, "ok", right=True), answer("t0", 2, "error"), answer("t0", 2, "error")),
        refined(answer("t1", 1, "no_program", tokens=None, api_error="boom"), answer("t1", 1, "error")),
        refined(answer("t1", 2, "error"), answer("t1", 2, "error"), answer("t1", 2, "timeout")),
    ]


def test_round_record_is_the_answer_after_round_r():
    r = records()[1]
    assert [round_record(r, i).program_status for i in range(4)] == ["error", "error", "ok", "ok"]
    assert round_record(r, 3).rounds is None and r.rounds is not None  # a copy without rounds


def test_round_0_metrics_repairs_and_feedback_counts():
    result = summarize(DATASET, records(), 2)
    m = {name: (c["n"], c["of"]) for name, c in result["metrics"].items()}
    assert m["task_solves"] == (1, 2) and m["task_solves_round_0"] == (1, 2)
    assert m["train_verified_programs"] == (2, 4) and m["train_verified_programs_round_0"] == (1, 4)
    assert m["api_errors"] == (1, 4) and m["api_errors_round_0"] == (0, 4)
    assert m["program_timeouts_round_0"] == (0, 4) and m["program_errors_round_0"] == (3, 4)
    assert m["repaired_programs"] == (1, 3)  # t0 a2, of t0 a2, t1 a1, t1 a2
    assert m["feedback_rounds"] == (5, 4)  # 0 + 2 + 1 + 2: a count, n may exceed of
    block = result["refinement"]
    assert block["rounds_used"] == 2
    assert [(c["round"], c["train_verified_programs"]["n"], c["task_solves"]["n"]) for c in block["curve"]] == [
        (0, 1, 1), (1, 1, 1), (2, 2, 1)]
    # answers given per round (t1 a1's round-1 answer is an API error: no tokens, not unknown ones)
    assert [(t["answers"], t["output_tokens"]) for t in block["tokens_per_round"]] == [(4, 40), (3, 20), (2, 20)]


def test_pooled_per_task_counts_equal_the_run_summary():
    recs = records()
    pooled = pool(task_counts([r for r in recs if r.task_id == t], 2) for t in TASKS)
    summary = summarize(DATASET, recs, 2)["metrics"]
    assert {name: (c["n"], c["of"]) for name, c in pooled.items()} == {
        name: (c["n"], c["of"]) for name, c in summary.items()}


def test_a_run_that_did_not_refine_has_none_of_it():
    plain = [answer("t0", 1, "ok", right=True), answer("t0", 2, "error"), answer("t1", 1, "error"),
             answer("t1", 2, "error")]
    result = summarize(DATASET, plain, 2)
    assert "refinement" not in result
    assert not [name for name in result["metrics"] if name.endswith("_round_0") or name in (
        "repaired_programs", "feedback_rounds")]
    assert all(set(u.values()) <= {True, False} for u in metric_units(records(), 2).values())


def test_select_policies_get_round_0_twins():
    units = metric_units(records(), 2, "train_verified_first")
    assert sum(units["task_solves_train_verified_first"].values()) == 1
    assert sum(units["task_solves_train_verified_first_round_0"].values()) == 1


def test_replay_reads_rounds(tmp_path):
    pytest.importorskip("inspect_ai")
    from rps_evals.inspect_eval.replay import read_recordings

    path = tmp_path / "r.jsonl"
    lines = [{"task_id": "t0", "attempt": 1, "completion": "a"}, {"task_id": "t0", "attempt": 1, "round": 1,
                                                                    "completion": "b"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    got = read_recordings(path)
    assert {key: r.completion for key, r in got.items()} == {("t0", 1, 0): "a", ("t0", 1, 1): "b"}
    for bad, message in (({"round": -1}, "round must be an integer >= 0"), ({"round": True}, "round must be"),
                         ({"round": 1}, "duplicate response for task t0 attempt 1")):
        path.write_text("".join(json.dumps({**line, **bad}) + "\n" for line in lines))
        with pytest.raises(InputError, match=message):
            read_recordings(path)


def test_view_shows_a_count_above_its_of_without_an_interval(tmp_path):
    pytest.importorskip("matplotlib")
    from rps_evals.reports.view import ShownRun, render_report

    recs = records()
    result = summarize(DATASET, recs, 2)
    page = render_report([ShownRun("r", result, recs, DATASET)])
    assert "<td>feedback_rounds</td><td>5/4 (125.0%)</td>" in page
