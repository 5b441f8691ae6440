"""K samples, 2 submitted: the selection policies, pass@k, training accuracy, train_verified_but_wrong and
cost, with hand-computed numbers; and `rps-evals score --select` end to end."""

import json
from itertools import combinations
from math import comb

import pytest

from rps_evals.cli import main
from rps_evals.compare import compare_runs
from rps_evals.data import Dataset, Task, load_dataset
from rps_evals.execution import Execution
from rps_evals.records import InputError, read_run, write_run
from rps_evals.scoring import AttemptRecord, Response, metric_units, score_attempt, submission, summarize
from rps_evals.selection import (
    cost_summary,
    k_values,
    mean_train_accuracy,
    pass_at_k,
    pass_at_k_curves,
    select,
    task_pass_at_k,
)

A, B, C, D = [[1]], [[2]], [[3]], [[4]]
WANT = A  # the right answer of test input 0 in these cases


def rec(attempt, predictions, origins=None, status="ok", verified=False, accuracy=0.0, hardcoded=None,
        want=(WANT,), task_id="t"):
    """A scored attempt, built by hand: predictions per test input and where each came from."""
    origins = origins or ["program" if p is not None else None for p in predictions]
    r = AttemptRecord(task_id, attempt, "executed_program", status, list(predictions), list(origins),
                      [p is not None and p == w for p, w in zip(predictions, want)], verified,
                      train_accuracy=accuracy)
    r.hardcoded = hardcoded
    return r


def picked(records, policy="train_vote", j=0):
    return [(c.prediction, c.attempts) for c in select(records, policy)[j]]


# -- train_vote --------------------------------------------------------------------------------------

def test_vote_ranks_train_verified_programs_before_more_numerous_ones():
    records = [rec(1, [B]), rec(2, [B]), rec(3, [B]), rec(4, [A], verified=True, accuracy=1.0)]
    assert picked(records) == [(A, (4,)), (B, (1, 2, 3))]
    assert [c.correct for c in select(records, "train_vote")[0]] == [True, False]


def test_vote_ties_on_verified_count_broken_by_program_count_then_accuracy_then_attempt():
    # one verified program each for B and A; B has 2 programs, A 3: A first
    records = [rec(1, [B], verified=True, accuracy=1.0), rec(2, [B], accuracy=0.5),
               rec(3, [A], verified=True, accuracy=1.0), rec(4, [A]), rec(5, [A])]
    assert picked(records) == [(A, (3, 4, 5)), (B, (1, 2))]
    # same counts (0 verified, 1 program each): best training accuracy decides, C (0.75) > B (0.5) > A (0.25)
    records = [rec(1, [A], accuracy=0.25), rec(2, [B], accuracy=0.5), rec(3, [C], accuracy=0.75)]
    assert picked(records) == [(C, (3,)), (B, (2,))]
    # everything equal: the earliest attempt
    records = [rec(1, [D], accuracy=0.5), rec(2, [C], accuracy=0.5), rec(3, [B], accuracy=0.5)]
    assert picked(records) == [(D, (1,)), (C, (2,))]


def test_vote_best_accuracy_is_the_best_among_the_programs_that_produce_the_grid():
    # B: programs at 0.2 and 0.9; A: programs at 0.6 and 0.6 (same counts): B's best 0.9 wins
    records = [rec(1, [A], accuracy=0.6), rec(2, [B], accuracy=0.2), rec(3, [A], accuracy=0.6),
               rec(4, [B], accuracy=0.9)]
    assert picked(records) == [(B, (2, 4)), (A, (1, 3))]


def test_hardcoded_programs_do_not_count_as_verified_votes():
    # B comes from 3 train-verified programs that hard-code outputs; A from 1 verified general program
    records = [rec(1, [B], verified=True, accuracy=1.0, hardcoded="literal_output"),
               rec(2, [B], verified=True, accuracy=1.0, hardcoded="literal_output"),
               rec(3, [B], verified=True, accuracy=1.0, hardcoded="constant_output"),
               rec(4, [A], verified=True, accuracy=1.0)]
    assert picked(records) == [(A, (4,)), (B, (1, 2, 3))]
    # without the general program, B's 3 programs still outrank a JSON answer given 4 times
    records = records[:3] + [rec(a, [C], origins=["json"], status="error") for a in (4, 5, 6, 7)]
    assert picked(records) == [(B, (1, 2, 3)), (C, (4, 5, 6, 7))]


def test_json_predictions_come_after_every_program_prediction():
    records = [rec(1, [A], origins=["json"], status="no_program"), rec(2, [A], origins=["json"], status="error"),
               rec(3, [A], origins=["json"], status="no_program"), rec(4, [C], accuracy=0.0)]
    assert picked(records) == [(C, (4,)), (A, (1, 2, 3))]
    # a grid returned by a program that failed on another test input is not a clean program's vote
    records = [rec(1, [B], status="error", accuracy=1.0), rec(2, [C])]
    assert picked(records) == [(C, (2,)), (B, (1,))]


def test_json_only_candidates_rank_by_count_then_attempt():
    records = [rec(1, [B], origins=["json"], status="no_program"), rec(2, [C], origins=["json"], status="no_program"),
               rec(3, [C], origins=["json"], status="no_program"), rec(4, [D], origins=["json"], status="no_program"),
               rec(5, [None], status="no_program")]
    assert picked(records) == [(C, (2, 3)), (B, (1,))]
    # one candidate only: the second slot stays empty ([[0]] in the submission)
    assert picked([rec(1, [None], status="no_program"), rec(2, [D], origins=["json"], status="no_program")]) \
        == [(D, (2,))]
    assert picked([rec(1, [None], status="no_program"), rec(2, [None], status="error")]) == []


def test_two_test_inputs_whose_top_candidates_come_from_different_attempts():
    X0, Z0, Y1, P1, Q1 = [[1]], [[5]], [[2]], [[6]], [[7]]
    want = (X0, Y1)
    rows = {1: [X0, P1], 2: [X0, Q1], 3: [X0, Y1], 4: [Z0, Y1], 5: [Z0, Y1]}
    records = [rec(a, p, verified=True, accuracy=1.0, want=want) for a, p in rows.items()]
    assert picked(records, j=0) == [(X0, (1, 2, 3)), (Z0, (4, 5))]
    assert picked(records, j=1) == [(Y1, (3, 4, 5)), (P1, (1,))]
    units = metric_units(records, 5, "train_vote")
    assert units["task_solves_train_vote"] == {"t": True}
    assert units["test_output_exact_train_vote"] == {("t", 0): True, ("t", 1): True}
    assert units["task_solves"] == {"t": False}  # attempts 1 and 2 miss test output 2
    assert units["test_output_exact"] == {("t", 0): True, ("t", 1): False}


# -- first and train_verified_first ------------------------------------------------------------------

def test_first_is_attempts_1_and_2_whatever_they_hold():
    records = [rec(3, [A], verified=True), rec(1, [None], status="no_program"), rec(2, [B], origins=["json"])]
    assert picked(records, "first") == [(None, (1,)), (B, (2,))]
    assert picked(records[:1], "first") == [(A, (3,))]  # k = 1: one prediction


@pytest.mark.parametrize("verified, chosen", [
    ({3, 5, 6}, (3, 5)),   # the first two train-verified attempts
    ({4}, (4, 1)),         # one: then attempt 1
    ({1}, (1, 2)),
    ({2}, (2, 1)),
    (set(), (1, 2)),       # none: first
])
def test_train_verified_first(verified, chosen):
    records = [rec(a, [[[a]]], verified=a in verified) for a in range(1, 7)]
    assert [c.attempts[0] for c in select(records, "train_verified_first")[0]] == list(chosen)


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown selection policy 'best'"):
        select([rec(1, [A])], "best")


# -- pass@k --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 2, 1 - 3 / 6),      # 1 - C(3,2)/C(4,2)
    (5, 2, 2, 1 - 3 / 10),     # 1 - C(3,2)/C(5,2)
    (8, 0, 4, 0.0),
    (8, 5, 4, 1.0),            # fewer than k wrong samples: every draw holds a correct one
    (10, 3, 1, 0.3),           # pass@1 = c / n
    (64, 3, 8, 1 - (56 * 55 * 54) / (64 * 63 * 62)),  # C(61,8)/C(64,8), the common factors cancelled
])
def test_pass_at_k_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_chen_product_form_and_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                product = 1.0
                for i in range(n - c + 1, n + 1):
                    product *= 1 - k / i
                hits = sum(any(s < c for s in subset) for subset in combinations(range(n), k))
                assert pass_at_k(n, c, k) == pytest.approx(1 - product, abs=1e-12)
                assert pass_at_k(n, c, k) == pytest.approx(hits / comb(n, k), abs=1e-12)


def test_task_pass_at_k_needs_every_test_output_covered():
    # attempt 1 matches output 1 only, attempt 2 output 2 only: 2 of 4 attempts must both be drawn
    correct = [[True, False], [False, True], [False, False], [False, False]]
    assert [task_pass_at_k(correct, k) for k in (1, 2, 3, 4)] == pytest.approx([0, 1 / 6, 3 / 6, 1])
    # attempt 1 matches both: pairs {1,x} (3) and {2,3} cover both, 4 of 6
    correct = [[True, True], [True, False], [False, True], [False, False]]
    assert task_pass_at_k(correct, 2) == pytest.approx(4 / 6)
    assert task_pass_at_k(correct, 1) == pytest.approx(1 / 4)


def test_task_pass_at_k_matches_enumeration_on_constructed_tasks():
    import random

    rng = random.Random(7)
    for _ in range(40):
        n, m = rng.randint(1, 7), rng.randint(1, 4)
        correct = [[rng.random() < 0.3 for _ in range(m)] for _ in range(n)]
        for k in range(1, n + 1):
            subsets = list(combinations(range(n), k))
            covered = sum(all(any(correct[a][j] for a in s) for j in range(m)) for s in subsets)
            assert task_pass_at_k(correct, k) == pytest.approx(covered / len(subsets), abs=1e-12)


def test_k_values_and_curves():
    assert k_values(64) == [1, 2, 4, 8, 16, 32, 64]
    assert k_values(6) == [1, 2, 4, 6]
    assert k_values(1) == [1] and k_values(2) == [1, 2]
    # task t: 1 of 4 attempts right (pass@1 1/4, @2 1/2, @4 1); task u: never
    by_task = {"t": [rec(a, [A if a == 3 else B]) for a in range(1, 5)],
               "u": [rec(a, [B], task_id="u") for a in range(1, 5)]}
    curves = pass_at_k_curves(by_task, 4)
    assert curves["task_solves"] == pytest.approx({"1": 1 / 8, "2": 1 / 4, "4": 1 / 2})
    assert curves["test_output_exact"] == pytest.approx({"1": 1 / 8, "2": 1 / 4, "4": 1 / 2})


# -- training accuracy, train_verified_but_wrong ------------------------------------------------------

TASK = Task("tr", train=[([[0]], [[5]]), ([[1]], [[6]]), ([[2]], [[7]])], test_inputs=[[[0]]], test_outputs=[A])


def scored(execution, completion="x", attempt=1):
    return score_attempt(TASK, Response("tr", attempt, completion), [None], execution, attempt)


def test_train_accuracy_is_the_fraction_of_training_pairs_matched():
    assert scored(Execution("ok", [A], [[[5]], [[6]], [[7]]], "")).train_accuracy == 1.0
    assert scored(Execution("ok", [A], [[[5]], [[0]], [[7]]], "")).train_accuracy == pytest.approx(2 / 3)
    assert scored(Execution("ok", [A], [[[5]]], "")).train_accuracy == pytest.approx(1 / 3)  # later calls never returned
    assert scored(Execution("ok", [A], [[[5.0]], [[6]], None], "")).train_accuracy == pytest.approx(1 / 3)
    assert scored(Execution("no_program", [None], [], "")).train_accuracy == 0.0
    assert score_attempt(TASK, None, [None], Execution("no_program", [None], [], ""), 2).train_accuracy == 0.0


def test_mean_train_accuracy_over_every_attempt_unknown_for_old_records():
    records = [rec(1, [A], accuracy=1.0), rec(2, [A], accuracy=0.5), rec(3, [None], status="no_program")]
    assert mean_train_accuracy(records) == pytest.approx(0.5)
    old = rec(4, [A])
    old.train_accuracy = None  # a record written before the field existed
    assert mean_train_accuracy(records + [old]) is None
    assert AttemptRecord.from_dict({k: v for k, v in old.to_dict().items() if k != "train_accuracy"}).train_accuracy is None


def test_train_verified_but_wrong_counts_verified_attempts_that_miss_a_test_output():
    want = (A, B)
    records = [rec(1, [A, B], verified=True, want=want),    # verified and right
               rec(2, [A, C], verified=True, want=want),    # verified, misses output 2
               rec(3, [C, C], verified=False, want=want),   # wrong but not verified
               rec(4, [None, None], status="error", verified=True, want=want)]  # verified, no test output
    units = metric_units(records, 4)["train_verified_but_wrong"]
    assert units == {("t", 1): False, ("t", 2): True, ("t", 3): False, ("t", 4): True}


# -- cost ----------------------------------------------------------------------------------------------

def test_cost_per_task_and_in_total_from_prices_per_million_tokens():
    t1 = [rec(1, [A]), rec(2, [A])]
    t1[0].input_tokens, t1[0].output_tokens, t1[0].completion = 1000, 3000, "x"
    t1[1].input_tokens, t1[1].output_tokens, t1[1].completion = 0, 1000, "x"  # second choice of one request
    t2 = [rec(1, [A], task_id="u"), rec(2, [A], task_id="u")]
    t2[0].input_tokens, t2[0].output_tokens, t2[0].completion = 2000, 500, "x"
    t2[1].completion = "x"  # a front end that reported no counts
    cost = cost_summary({"t": t1, "u": t2}, price_in=0.5, price_out=2.0)
    # t: (1000 * 0.5 + 4000 * 2) / 1e6 = 0.0085; u: (2000 * 0.5 + 500 * 2) / 1e6 = 0.002
    assert cost["per_task"] == pytest.approx({"t": 0.0085, "u": 0.002})
    assert cost["total"] == pytest.approx(0.0105) and cost["per_task_mean"] == pytest.approx(0.00525)
    assert (cost["input_tokens"], cost["output_tokens"], cost["attempts_without_token_counts"]) == (3000, 4500, 1)
    tokens_only = cost_summary({"t": t1}, None, None)
    assert "total" not in tokens_only and tokens_only["output_tokens"] == 4000


# -- results, submission, comparison -----------------------------------------------------------------

DATASET = Dataset("toy", "0" * 64, {"t": Task("t", [([[0]], [[9]])], [[[0]]], [WANT])})


def vote_wins_records():
    """8 attempts: 1-4 wrong, 5 the only train-verified program and right, 6-8 the same wrong grid."""
    records = [rec(a, [B], accuracy=0.0) for a in (1, 2, 3, 4)]
    records.append(rec(5, [A], verified=True, accuracy=1.0))
    records += [rec(a, [C], accuracy=0.0) for a in (6, 7, 8)]
    return records


def test_results_name_the_policy_and_submission_holds_the_selected_two():
    records = vote_wins_records()
    first = summarize(DATASET, records, 8)
    assert first["selection"] == "first" and "task_solves_train_vote" not in first["metrics"]
    assert first["metrics"]["task_solves"]["n"] == 0 and first["metrics"]["oracle_task_solves"]["n"] == 1
    vote = summarize(DATASET, records, 8, select="train_vote")
    assert vote["selection"] == "train_vote"
    assert vote["metrics"]["task_solves_train_vote"] == {"n": 1, "of": 1, "rate": 1.0}
    assert vote["metrics"]["task_solves"]["n"] == 0  # the official rule is still reported as is
    assert vote["arc_prize_score_train_vote"] == 1.0 and vote["arc_prize_score"] == 0.0
    assert vote["pass_at_k"]["task_solves"] == pytest.approx({"1": 1 / 8, "2": 1 / 4, "4": 1 / 2, "8": 1.0})
    assert vote["mean_train_accuracy"] == pytest.approx(1 / 8)
    assert submission(DATASET, records, 8, "train_vote") == {"t": [{"attempt_1": A, "attempt_2": B}]}  # B: 4 programs, C: 3
    assert submission(DATASET, records, 8) == {"t": [{"attempt_1": B, "attempt_2": B}]}
    with pytest.raises(ValueError, match="give both prices"):
        summarize(DATASET, records, 8, price_in=1.0)


def test_comparison_pairs_the_selected_predictions(tmp_path):
    write_run(tmp_path / "a", DATASET, vote_wins_records(), 8, select="train_vote")
    worse = vote_wins_records()
    worse[4] = rec(5, [D], verified=True, accuracy=1.0)  # the verified program now returns a wrong grid
    write_run(tmp_path / "b", DATASET, worse, 8, select="train_vote")
    comparison = compare_runs(read_run(tmp_path / "a"), read_run(tmp_path / "b"))
    row = comparison["metrics"]["task_solves_train_vote"]
    assert (row["both"], row["only_a"], row["only_b"], row["neither"]) == (0, 1, 0, 0)
    write_run(tmp_path / "c", DATASET, worse, 8)
    with pytest.raises(InputError, match="runs differ in selection: 'train_vote' vs 'first'"):
        compare_runs(read_run(tmp_path / "a"), read_run(tmp_path / "c"))


# -- the command line ------------------------------------------------------------------------------------

TRANSPOSE = "def transform(grid):\n    return [list(r) for r in zip(*grid)]\n"


def block(src):
    return f"Reasoning:\nsee code\n\nPython program:\n```python\n{src}```\n"


def eight_attempts(tmp_path):
    """Responses for 74dd1130 (a transpose): attempt 5 is the only right and train-verified program."""
    task = load_dataset("arc1:training").tasks["74dd1130"]
    wrong_json = "Predicted test outputs:\n```json\n" + json.dumps([task.test_inputs[0]]) + "\n```\n"
    completions = {
        1: block("def transform(grid):\n    return grid\n"),                         # runs, wrong
        2: "Reasoning: it is the same grid\n" + wrong_json,                           # JSON only, wrong
        3: block("def transform(grid):\n    return 1 / 0\n"),                         # crashes
        4: block("def transform(grid):\n    return [r[::-1] for r in grid]\n"),      # runs, wrong
        5: block(TRANSPOSE),                                                          # right, train-verified
        6: block("def transform(grid):\n    return grid\n"),
        7: block("def transform(grid):\n    return grid\n"),
        8: block("def transform(grid):\n    return [r[::-1] for r in grid][::-1]\n"),
    }
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps({"task_id": "74dd1130", "attempt": a, "completion": c, "stop_reason": "stop",
                                        "output_tokens": 100 * a, "input_tokens": 1000})
                            + "\n" for a, c in completions.items()))
    return task, path


def test_cli_train_vote_submits_a_correct_attempt_5_that_first_misses(tmp_path, capsys):
    task, path = eight_attempts(tmp_path)

    def score(out, *extra):
        return main(["score", "--dataset", "arc1:training", "--responses", str(path), "--out", str(tmp_path / out),
                     "--sandbox", "local", "--timeout", "1", "--attempts", "8", "--task-ids", "74dd1130", *extra])

    assert score("first", "--select", "first") == 0
    assert score("vote", "--select", "train_vote", "--price-in", "1", "--price-out", "4") == 0
    out = capsys.readouterr().out
    assert "task_solves_train_vote" in out and "submitting by train_vote" in out
    right = task.test_outputs[0]
    first_sub = json.loads((tmp_path / "first" / "submission.json").read_text())["74dd1130"][0]
    vote_sub = json.loads((tmp_path / "vote" / "submission.json").read_text())["74dd1130"][0]
    assert right not in first_sub.values()
    # attempt 5 (the one train-verified program) first; then the identity, given by attempts 1, 6 and 7
    assert vote_sub == {"attempt_1": right, "attempt_2": task.test_inputs[0]}
    first, vote = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("first", "vote"))
    assert first["selection"] == "first" and first["metrics"]["task_solves"]["n"] == 0
    assert vote["selection"] == "train_vote" and vote["metrics"]["task_solves_train_vote"]["n"] == 1
    assert vote["metrics"]["oracle_task_solves"]["n"] == 1
    assert vote["pass_at_k"]["task_solves"]["8"] == 1.0 and vote["pass_at_k"]["task_solves"]["1"] == 1 / 8
    # 8 x 1000 input tokens at 1 per million, 100 + 200 + ... + 800 = 3600 output tokens at 4 per million
    assert vote["cost"]["total"] == pytest.approx((8000 * 1 + 3600 * 4) / 1e6)
    assert vote["cost"]["per_task"] == {"74dd1130": pytest.approx(0.0224)}
    assert "cost" in out and "0.0224 in all" in out


@pytest.mark.parametrize("extra, message", [
    (["--select", "best"], "invalid choice: 'best'"),
    (["--price-in", "1"], "--price-in and --price-out go together"),
    (["--price-in", "-1", "--price-out", "1"], "must be numbers >= 0"),
])
def test_cli_bad_selection_options_exit_2(tmp_path, capsys, extra, message):
    path = tmp_path / "responses.jsonl"
    path.write_text('{"task_id": "74dd1130", "attempt": 1, "completion": "x"}\n')
    with pytest.raises(SystemExit) as exc:
        main(["score", "--dataset", "arc1:training", "--responses", str(path), "--out", str(tmp_path / "o"),
              "--sandbox", "local", *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- Inspect and lm-eval options ---------------------------------------------------------------------------

def test_lmeval_metadata_options():
    from rps_evals.lmeval import ScoringContext

    context = ScoringContext.from_metadata({"rps_select": "train_vote", "rps_price_in": "0.5", "rps_price_out": 2})
    assert context.summary_options() == {"select": "train_vote", "price_in": 0.5, "price_out": 2.0}
    assert ScoringContext.from_metadata(None).summary_options() == {"select": "first", "price_in": None,
                                                                     "price_out": None}
    with pytest.raises(ValueError, match="unknown selection policy 'vote'"):
        ScoringContext.from_metadata({"rps_select": "vote"})
    with pytest.raises(ValueError, match="give both prices"):
        ScoringContext.from_metadata({"rps_price_out": 2})


@pytest.mark.slow
def test_inspect_select_and_prices_reach_the_results(tmp_path):
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.task import TaskParameterError

    with pytest.raises(TaskParameterError, match="unknown selection policy 'best'"):
        arc1(split="training", task_ids="74dd1130", sandbox="local", select="best")
    with pytest.raises(TaskParameterError, match="give both prices"):
        arc1(split="training", task_ids="74dd1130", sandbox="local", price_in=1.0)
    task, path = eight_attempts(tmp_path)
    (log,) = inspect_eval(arc1(split="training", task_ids="74dd1130", attempts=8, sandbox="local", exec_timeout=3,
                               select="train_vote", price_in=1.0, price_out=4.0),
                          model="rps/replay", model_args={"responses": str(path)}, display="none",
                          log_dir=str(tmp_path / "logs"))
    metrics = {name: m.value for name, m in log.results.scores[0].metrics.items()}
    assert metrics["task_solves"] == 0.0 and metrics["task_solves_train_vote"] == 1.0
    assert main(["report", log.location, "--out", str(tmp_path / "run")]) == 0
    reported = json.loads((tmp_path / "run" / "results.json").read_text())
    assert reported["selection"] == "train_vote" and reported["metrics"]["task_solves_train_vote"]["n"] == 1
    assert reported["cost"]["price_in_per_million"] == 1.0 and "total" in reported["cost"]
    sub = json.loads((tmp_path / "run" / "submission.json").read_text())["74dd1130"][0]
    assert sub["attempt_1"] == task.test_outputs[0]
    # `--select` on the command line overrides what the run used
    assert main(["report", log.location, "--out", str(tmp_path / "first"), "--select", "first"]) == 0
    assert json.loads((tmp_path / "first" / "results.json").read_text())["selection"] == "first"


def test_html_report_shows_pass_at_k_and_what_was_submitted_and_why():
    pytest.importorskip("matplotlib")
    from rps_evals.reports.view import ShownRun, render_report

    records = vote_wins_records()
    results = summarize(DATASET, records, 8, select="train_vote")
    page = render_report([ShownRun("vote", results, records, DATASET)])
    assert "<h2>pass@k</h2>" in page and "alt='pass@k curves'" in page
    # tasks: 1/8, 1/4, 1/2, 1 (one right attempt of 8)
    assert "<tr><td>A tasks</td><td>0.125</td><td>0.250</td><td>0.500</td><td>1.000</td></tr>" in page
    assert ("submitted by <b>train_vote</b>: test 1: ✓ attempt 5 (1 train-verified general program(s), "
            "1 program(s), best train accuracy 1.00, first at attempt 5); ✗ attempts 1, 2, 3, 4") in page
    # k = 2 and the default policy: nothing more to say
    two = summarize(DATASET, records[:2], 2)
    page = render_report([ShownRun("two", two, records[:2], DATASET)])
    assert "pass@k" not in page and "submitted by" not in page


@pytest.mark.slow
def test_lmeval_rps_select_reports_the_selected_predictions(tmp_path):
    """repeats 3 with rps_select=train_vote: only attempt 3 has a program (right on every input), so
    train_vote submits it while first (attempts 1 and 2) has nothing; report keeps the policy."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager
    from lmeval_support import SCRIPTED_MODEL, TASKS_DIR, lookup_program, register_scripted_model
    from test_lmeval_scripted import _save_like_the_cli

    from rps_evals.reports.readers import read_lmeval_output

    register_scripted_model()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "k3.yaml").write_text(
        f"include: {TASKS_DIR / 'arc_prog' / 'arc1_prog_training.yaml'}\ntask: arc1_prog_k3v\nrepeats: 3\n")
    tasks = list(load_dataset("arc1:training").tasks.values())[:2]
    rows = [{"task_id": t.task_id, "attempt": a, "completion": lookup_program(t) if a == 3 else "no idea"}
            for t in tasks for a in (1, 2, 3)]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manager = TaskManager(include_path=[str(TASKS_DIR), str(tmp_path / "tasks")], include_defaults=False,
                          metadata={"rps_sandbox": "local", "rps_select": "train_vote",
                                    "rps_price_in": 1, "rps_price_out": 2})
    results = lm_eval.simple_evaluate(
        model=SCRIPTED_MODEL, model_args=f"responses={responses}", tasks=["arc1_prog_k3v"], limit=2,
        task_manager=manager, confirm_run_unsafe_code=True, log_samples=True, bootstrap_iters=0)
    got = results["results"]["arc1_prog_k3v"]
    assert got["task_solves,all_attempts"] == 0.0 and got["task_solves_train_vote,all_attempts"] == 1.0
    _save_like_the_cli(results, tmp_path / "out")
    dataset, records, k, options = read_lmeval_output(tmp_path / "out")
    assert (k, options["select"], options["price_in"], options["price_out"]) == (3, "train_vote", 1.0, 2.0)
