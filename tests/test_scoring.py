"""Scoring rules with hand-computed numbers. Executions are given directly (the sandbox has its own
tests), so every case here is exact and fast."""

import pytest

from rps_evals.data import Task, load_dataset
from rps_evals.execution import Execution, Program, get_executor
from rps_evals.scoring import (
    Response,
    complete_records,
    metric_units,
    missing_record,
    score_attempt,
    submission,
    summarize,
)

G1, G2, G3 = [[1]], [[2, 2]], [[3], [3]]
TASK3 = Task("t3", train=[([[0]], [[5]])], test_inputs=[[[0]], [[0]], [[0]]], test_outputs=[G1, G2, G3])
TASK1 = Task("t1", train=[([[0]], [[5]]), ([[1]], [[5]])], test_inputs=[[[0]]], test_outputs=[G1])


def run(status, tests, train=(), error=""):
    return Execution(status, list(tests), list(train), error)


def attempt(task, execution, json_predictions=None, completion="x", number=1, **kw):
    json_predictions = json_predictions or [None] * task.num_tests
    return score_attempt(task, Response(task.task_id, number, completion, **kw), json_predictions, execution, number)


def test_all_program_outputs_valid_is_executed_program():
    r = attempt(TASK3, run("ok", [G1, G2, [[9]]], [[[5]]]))
    assert r.source == "executed_program"
    assert r.prediction_origins == ["program"] * 3
    assert r.correct == [True, True, False]
    assert r.train_verified


def test_m3_one_invalid_program_output_filled_from_json():
    # the program ran (status ok) but returned a float grid for test input 2; JSON has a valid grid
    r = attempt(TASK3, run("ok", [G1, [[2.0, 2.0]], G3]), json_predictions=[None, G2, None])
    assert r.source == "json_fallback"
    assert r.program_status == "ok"
    assert r.prediction_origins == ["program", "json", "program"]
    assert r.correct == [True, True, True]


def test_m3_one_invalid_program_output_without_json_is_invalid():
    r = attempt(TASK3, run("ok", [G1, [[True, True]], G3]))
    assert r.source == "invalid"
    assert r.predictions == [G1, None, G3]
    assert r.correct == [True, False, True]


def test_numpy_like_outputs_are_accepted_after_conversion():
    r = attempt(TASK1, run("ok", [((1,),)], [((5,),), [[5]]]))
    assert r.source == "executed_program" and r.correct == [True] and r.train_verified


def test_train_verified_needs_every_training_output():
    assert not attempt(TASK1, run("ok", [G1], [[[5]], [[4]]])).train_verified
    assert not attempt(TASK1, run("ok", [G1], [[[5]]])).train_verified  # second call never returned
    assert not attempt(TASK1, run("ok", [G1], [[[5.0]], [[5]]])).train_verified  # float is not a grid


def test_error_on_one_input_keeps_other_outputs():
    r = attempt(TASK3, run("error", [G1, None, G3], error="ZeroDivisionError"), json_predictions=[None, G2, None])
    assert r.program_status == "error"
    assert r.source == "json_fallback"
    assert r.error == "ZeroDivisionError"


def test_api_error_and_missing_and_token_limit():
    api = attempt(TASK1, Execution.nothing_to_run(Program(None, [G1])), completion=None, error="HTTP 500")
    assert api.api_error == "HTTP 500" and api.source == "invalid" and api.program_status == "no_program"
    missing = missing_record(TASK1, 2)
    assert missing.missing and missing.source == "invalid" and missing.api_error is None
    truncated = attempt(TASK1, Execution.nothing_to_run(Program(None, [G1])), number=3, stop_reason="max_tokens")
    units = metric_units([api, missing, truncated], k=3)
    assert sum(units["api_errors"].values()) == 1
    assert sum(units["token_limit_hits"].values()) == 1
    assert sum(units["invalid_attempts"].values()) == 3


def _record(task, a, source, status="ok", correct=None):
    m = task.num_tests
    r = missing_record(task, a)
    r.missing = False
    r.source, r.program_status = source, status
    r.predictions = [G1] * m if source != "invalid" else [None] * m
    r.correct = correct or [False] * m
    return r


def test_missing_responses_count_in_denominators():
    dataset = load_dataset("arc1:evaluation")
    task = next(iter(dataset.tasks.values()))
    result = summarize(dataset, [_record(task, 1, "executed_program", correct=[True] * task.num_tests)], k=2)
    metrics = result["metrics"]
    assert metrics["attempts_from_executed_programs"] == {"n": 1, "of": 800, "rate": 1 / 800}
    assert metrics["invalid_attempts"]["n"] == 799
    assert metrics["task_solves"] == {"n": 1, "of": 400, "rate": 1 / 400}
    assert metrics["test_output_exact"]["of"] == 419
    assert metrics["valid_output_attempts"]["of"] == 838
    assert result["arc_prize_score"] == pytest.approx(1 / 400)


def test_solves_use_attempts_1_and_2_per_test_output_and_extras_feed_the_oracle():
    # test output 1 matched by attempt 1, test output 2 by attempt 2, test output 3 only by attempt 3
    recs = [_record(TASK3, 1, "executed_program", correct=[True, False, False]),
            _record(TASK3, 2, "executed_program", correct=[False, True, False]),
            _record(TASK3, 3, "executed_program", correct=[False, False, True])]
    units = metric_units(recs, k=3)
    assert units["test_output_exact"] == {("t3", 0): True, ("t3", 1): True, ("t3", 2): False}
    assert units["task_solves"] == {"t3": False}
    assert units["oracle_task_solves"] == {"t3": True}
    two = metric_units(recs[:2] + [_record(TASK3, 3, "invalid")], k=3)
    assert two["task_solves"] == {"t3": False}
    one = metric_units([_record(TASK3, 1, "executed_program", correct=[True, True, True])], k=1)
    assert one["task_solves"] == {"t3": True} and "oracle_task_solves" not in one


def test_arc_prize_score_is_mean_of_task_fractions():
    dataset = load_dataset("arc2:evaluation").select(["0934a4d8", "135a2760"])
    a, b = dataset.tasks.values()
    recs = [_record(a, 1, "executed_program", correct=[True] * a.num_tests),
            _record(b, 2, "json_fallback", correct=[True] + [False] * (b.num_tests - 1))]
    result = summarize(dataset, recs, k=2)
    assert result["arc_prize_score"] == pytest.approx((1 + 1 / b.num_tests) / 2)


def test_report_arithmetic_on_a_constructed_arc2_run():
    """Rebuild the shape of the RPS report's ARC-AGI-2 run: 214 + 18 + 8 = 240 attempts, 234 clean
    program runs, 319/334 valid outputs, 100 / 114 / 6 tasks by executed attempts, 0 solves."""
    dataset = load_dataset("arc2:evaluation")
    tasks = list(dataset.tasks.values())
    assert (len(tasks), dataset.num_test_outputs) == (120, 167)
    wrong = [[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]]  # a valid grid matching no test output
    assert all(wrong != out for t in tasks for out in t.test_outputs)

    # order tasks so the 6 with no executed attempt have the most test inputs
    by_m = sorted(tasks, key=lambda t: -t.num_tests)
    none_exec, one_exec, both_exec = by_m[:6], by_m[6:20], by_m[20:]
    records = []

    def add(task, a, kind, missing_slots=0):
        m = task.num_tests
        if kind == "executed":
            execution, json_preds = run("ok", [wrong] * m), [None] * m
        elif kind == "json":  # the program ran but returned a float grid; JSON fills in
            execution, json_preds = run("ok", [[[1.0]]] * m), [wrong] * m
        elif kind == "invalid_ok":  # ran cleanly, bad grids, JSON gives some inputs
            execution, json_preds = run("ok", [[[True]]] * m), [wrong] * (m - missing_slots) + [None] * missing_slots
        else:  # invalid_crash: the program raised; JSON gives some inputs
            execution, json_preds = run("error", [None] * m), [wrong] * (m - missing_slots) + [None] * missing_slots
        records.append(score_attempt(task, Response(task.task_id, a, "text"), json_preds, execution, a))

    for t in both_exec:
        add(t, 1, "executed"); add(t, 2, "executed")  # noqa: E702
    for t in one_exec:
        add(t, 1, "executed"); add(t, 2, "json")  # noqa: E702  (14 json)
    # 6 tasks with no executed attempt: 4 json + 8 invalid; 15 (test input, attempt) slots missing
    invalid_slots = [(t, a) for t in none_exec for a in (1, 2)][:8]
    json_slots = [(t, a) for t in none_exec for a in (1, 2)][8:]
    capacity = [t.num_tests for t, _ in invalid_slots]
    missing = [1] * 8
    for i in range(8):  # spread the remaining 7 missing slots over the larger tasks
        while sum(missing) < 15 and missing[i] < capacity[i]:
            missing[i] += 1
    assert sum(missing) == 15
    for i, (t, a) in enumerate(invalid_slots):
        add(t, a, "invalid_ok" if i < 2 else "invalid_crash", missing[i])
    for t, a in json_slots:
        add(t, a, "json")

    result = summarize(dataset, records, k=2)
    got = {name: (m["n"], m["of"]) for name, m in result["metrics"].items()}
    assert got["attempts_from_executed_programs"] == (214, 240)
    assert got["json_fallback_attempts"] == (18, 240)
    assert got["invalid_attempts"] == (8, 240)
    assert got["program_executions_without_error"] == (234, 240)
    assert got["valid_output_attempts"] == (319, 334)
    assert got["test_output_exact"] == (0, 167)
    assert got["task_solves"] == (0, 120)
    assert got["tasks_all_attempts_executed"] == (100, 120)
    assert got["tasks_any_attempt_executed"] == (114, 120)
    assert got["tasks_no_attempt_executed"] == (6, 120)
    assert f"{result['metrics']['attempts_from_executed_programs']['rate']:.1%}" == "89.2%"
    assert (got["attempts_from_executed_programs"][0] + got["json_fallback_attempts"][0]
            + got["invalid_attempts"][0]) == 240


def test_arc1_evaluation_rate_matches_the_report_figure():
    dataset = load_dataset("arc1:evaluation")
    recs, solved = [], 0
    for task in dataset.tasks.values():  # 17 matched test outputs, one per task, from attempt 1
        hit = solved < 17
        solved += hit
        recs.append(_record(task, 1, "executed_program", correct=[hit] + [False] * (task.num_tests - 1)))
    metrics = summarize(dataset, recs, k=2)["metrics"]
    assert (metrics["test_output_exact"]["n"], metrics["test_output_exact"]["of"]) == (17, 419)
    assert f"{metrics['test_output_exact']['rate']:.1%}" == "4.1%"  # as the report prints 17/419


def test_submission_format_writes_00_for_missing_predictions():
    dataset = load_dataset("arc1:training").select(["25ff71a9"])
    task = dataset.tasks["25ff71a9"]
    r = _record(task, 1, "json_fallback")
    r.predictions = [G1, None]
    sub = submission(dataset, [r], k=2)
    assert sub == {"25ff71a9": [{"attempt_1": G1, "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}]}


def test_complete_records_orders_and_fills():
    dataset = load_dataset("arc1:training").select(["25ff71a9", "007bbfb7"])
    recs = complete_records(dataset, [_record(dataset.tasks["007bbfb7"], 2, "invalid")], k=2)
    assert [(r.task_id, r.attempt, r.missing) for r in recs] == [
        ("25ff71a9", 1, True), ("25ff71a9", 2, True), ("007bbfb7", 1, True), ("007bbfb7", 2, False)]


def test_timeout_is_checked_before_error_in_the_sandbox():
    """Test input 1 raises, test input 2 loops: the attempt is a timeout, not an error."""
    src = ("def transform(grid):\n    if grid == [[1]]:\n        raise ValueError('bad')\n"
           "    while True:\n        pass\n")
    with get_executor("local", timeout=0.5) as executor:
        [execution] = executor.run([Program(src, [[[1]], [[2]]])])
    assert execution.status == "timeout"
    assert execution.test_outputs == [None, None]


# --- hard-coded programs (hand-made tasks; executions given as the sandbox would return them) --------
IN1, OUT1 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
IN2, OUT2 = [[0, 1, 0], [1, 1, 1], [0, 0, 1]], [[0, 1, 0], [1, 1, 1], [1, 0, 0]]
TIN, TOUT = [[6, 4, 4], [6, 6, 4], [4, 6, 7]], [[4, 4, 6], [4, 6, 6], [7, 6, 4]]
MIRROR = Task("mirror", train=[(IN1, OUT1), (IN2, OUT2)], test_inputs=[TIN], test_outputs=[TOUT])


def program_attempt(task, source, tests, train, status="ok"):
    completion = f"Reasoning: see below\n```python\n{source}```\n"
    return attempt(task, run(status, tests, train), completion=completion)


def mirrored(grid):
    return [row[::-1] for row in grid]


def test_literal_test_output_is_hardcoded():
    src = "def transform(grid):\n    return [[4, 4, 6], [4, 6, 6], [7, 6, 4]]\n"
    r = program_attempt(MIRROR, src, [TOUT], [TOUT, TOUT])
    assert r.source == "executed_program" and r.correct == [True]  # its output still counts as exact
    assert r.hardcoded == "literal_output"  # also constant, but the literal is the first reason


def test_literal_training_output_in_an_if_lookup_is_hardcoded():
    src = ("def transform(grid):\n"
           "    if grid == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]:\n"  # an input grid: ordinary code
           "        return [[3, 2, 1], [6, 5, 4], [9, 8, 7]]\n"  # OUT1: a stored answer
           "    return [row[::-1] for row in grid]\n")
    r = program_attempt(MIRROR, src, [mirrored(TIN)], [OUT1, mirrored(IN2)])
    assert r.hardcoded == "literal_output"
    assert r.source == "executed_program" and r.correct == [True]


def test_constant_output_is_hardcoded():
    src = "def transform(grid):\n    return [[0] * 3 for _ in range(3)]\n"
    zeros = [[0] * 3] * 3
    r = program_attempt(MIRROR, src, [zeros], [zeros, zeros])
    assert r.hardcoded == "constant_output"


@pytest.mark.parametrize("task, src, tests, train", [
    # identity: different output for every input
    (MIRROR, "def transform(grid):\n    return grid\n", [TIN], [IN1, IN2]),
    # the honest mirror
    (MIRROR, "def transform(grid):\n    return [list(reversed(r)) for r in grid]\n", [TOUT], [OUT1, mirrored(IN2)]),
    # a palette table: a grid-shaped literal that is no output of the task, and a flat list
    (MIRROR, "SWAP = [[1, 5], [2, 6], [3, 4]]\nORDER = [0, 5, 6, 4, 3, 8, 9, 1, 2, 7]\n"
             "def transform(grid):\n    table = dict(SWAP)\n    return [[table.get(c, ORDER[c]) for c in r] for r in grid]\n",
     [TIN], [IN1, IN2]),
])
def test_honest_programs_are_not_hardcoded(task, src, tests, train):
    assert program_attempt(task, src, tests, train).hardcoded is None


CLASSIFY = Task("classify", train=[([[1, 1], [1, 0]], [[8]]), ([[2, 0], [0, 0]], [[1]])],
                test_inputs=[[[3, 3], [3, 3]]], test_outputs=[[[8]]])


def test_small_literal_in_a_classification_task_is_not_hardcoded():
    src = "def transform(grid):\n    return [[8]] if sum(c > 0 for r in grid for c in r) > 2 else [[1]]\n"
    assert program_attempt(CLASSIFY, src, [[[8]]], [[[8]], [[1]]]).hardcoded is None


def test_constant_task_and_output_equal_to_an_input_are_not_hardcoded():
    same = Task("same", train=[([[1]], [[5]]), ([[2]], [[5]])], test_inputs=[[[3]]], test_outputs=[[[5]]])
    assert program_attempt(same, "def transform(grid):\n    return [[5]]\n", [[[5]]], [[[5]], [[5]]]).hardcoded is None
    # the test output equals a training input: a literal of it is not a stored answer
    echo = Task("echo", train=[(IN1, OUT1), (TOUT, IN2)], test_inputs=[TIN], test_outputs=[TOUT])
    src = "def transform(grid):\n    return [[4, 4, 6], [4, 6, 6], [7, 6, 4]] if grid[0][0] == 6 else grid\n"
    assert program_attempt(echo, src, [TOUT], [IN1, TOUT]).hardcoded is None


def test_hardcoded_needs_status_ok_and_feeds_the_two_metrics():
    literal = "def transform(grid):\n    return [[4, 4, 6], [4, 6, 6], [7, 6, 4]]\n"
    crashed = program_attempt(MIRROR, literal + "    1 / 0\n", [None], [None, None], status="error")
    assert crashed.hardcoded is None
    # json_fallback: the literal program ran (ok) but returned a float grid on the test input
    floaty = "def transform(grid):\n    x = [[4, 4, 6], [4, 6, 6], [7, 6, 4]]\n    return [[1.0]]\n"
    fallback = attempt(MIRROR, run("ok", [[[1.0]]], [[[1.0]], [[1.0]]]), json_predictions=[TOUT],
                       completion=f"```python\n{floaty}```", number=2)
    assert fallback.source == "json_fallback" and fallback.hardcoded == "literal_output"
    honest = program_attempt(MIRROR, "def transform(grid):\n    return [r[::-1] for r in grid]\n",
                             [TOUT], [OUT1, mirrored(IN2)])
    records = [program_attempt(MIRROR, literal, [TOUT], [TOUT, TOUT]), fallback]
    honest_task = Task("mirror2", MIRROR.train, MIRROR.test_inputs, MIRROR.test_outputs)
    records += [score_attempt(honest_task, Response("mirror2", a, honest.completion), [None], run(
        "ok", [TOUT], [OUT1, mirrored(IN2)]), a) for a in (1, 2)]
    crashed_task = Task("mirror3", MIRROR.train, MIRROR.test_inputs, MIRROR.test_outputs)
    records += [score_attempt(crashed_task, Response("mirror3", 1, crashed.completion), [None],
                              run("error", [None], [None, None]), 1), missing_record(crashed_task, 2)]
    units = metric_units(records, k=2)
    counted = {name: (sum(units[name].values()), len(units[name]))
               for name in ("attempts_from_executed_programs", "attempts_from_general_programs",
                            "hardcoded_output_programs", "program_executions_without_error")}
    assert counted == {"attempts_from_executed_programs": (3, 6), "attempts_from_general_programs": (2, 6),
                       "hardcoded_output_programs": (2, 6), "program_executions_without_error": (4, 6)}


def test_records_without_the_hardcoded_field_still_load():
    from rps_evals.scoring import AttemptRecord

    data = missing_record(TASK1, 1).to_dict()
    del data["hardcoded"]
    assert AttemptRecord.from_dict(data).hardcoded is None


def test_grid_literals_reads_source_without_running_it():
    from rps_evals.scoring import grid_literals

    src = "A = ((1, 2), (3, 4))\nB = [[1, 2, 3]]\nC = [[1, True], [2, 3]]\nD = [[[5, 5], [5, 5]]]\nE = [[1, -1], [2, 2]]\n"
    assert grid_literals(src) == [[[1, 2], [3, 4]], [[5, 5], [5, 5]]]
    # written in ways that still make a grid literal: comments and continuations between the
    # tokens, parenthesised cells, rows of one cell, a tuple of rows without parentheses
    assert grid_literals("G = [  # the answer\n    [ # row 1\n 7,\n  6], [4, \\\n 4]]\n") == [[[7, 6], [4, 4]]]
    assert grid_literals("G = [[(7), (6)], [(4), 4]]\n") == [[[7, 6], [4, 4]]]
    assert grid_literals("G = [[7], [6], [4], [4]]\n") == [[[7], [6], [4], [4]]]
    assert grid_literals("def transform(grid):\n    return [7, 6], [4, 4]\n") == [[[7, 6], [4, 4]]]
    assert grid_literals("def transform(grid):\n    return [r[::-1] for r in grid[0:3]]\n") == []
    # read by Python's own parser: brackets in a string are text (a regex scan of this was quadratic)
    assert grid_literals('S = "[' + "(" * 200_000 + '"\nG = [[1, 2], [3, 4]]\n') == [[[1, 2], [3, 4]]]
    assert grid_literals("def transform(grid:\n") == []
    assert grid_literals("x = " + "[" * 5000 + "]" * 5000) == []


def test_grid_literals_fold_signs_and_sums_of_list_literals():
    """Red-team finding 13: `+3` is a literal 3, and a sum of list literals is one literal grid; the
    4-cell minimum is the whole grid's (rows of 3 cells, 9 in all)."""
    from rps_evals.scoring import grid_literals

    assert grid_literals("G = [[+3, +3], [3, -0]]\n") == [[[3, 3], [3, 0]]]
    assert grid_literals("G = [[3, 3, 3]] + [[3, 0, 3]] + [[3, 3, 3]]\n") == [
        [[3, 3, 3], [3, 0, 3], [3, 3, 3]], [[3, 3, 3], [3, 0, 3]]]  # the sum, then its first two terms
    assert grid_literals("G = [[1, 2]] + ((3, 4),)\n") == [[[1, 2], [3, 4]]]
    assert grid_literals("G = [[1, 2]] - [[3, 4]]\nH = [[1, 2]] + rows\nI = [[1, -2], [3, 4]]\n") == []
    assert grid_literals("G = [[1]] + [[2]] + [[3]]\n") == []  # 3 cells in all
    assert grid_literals("G = " + " + ".join(["[[1, 2]]"] * 31) + "\n")[0] == [[1, 2]] * 30  # 31 rows: no grid


def test_unary_plus_and_concatenated_rows_are_hardcoded():
    """Finding 13 end to end: the evasions a red team wrote for the mirror task's test output."""
    for body in ("[[+4, +4, +6], [+4, +6, +6], [+7, +6, +4]]", "[[4, 4, 6]] + [[4, 6, 6]] + [[7, 6, 4]]"):
        src = f"def transform(grid):\n    if grid[0][0] == 6:\n        return {body}\n    return [r[::-1] for r in grid]\n"
        assert program_attempt(MIRROR, src, [TOUT], [OUT1, mirrored(IN2)]).hardcoded == "literal_output", body


def test_constant_output_is_compared_as_grids():
    """Red-team finding 15: tuples, lists and numpy arrays of the same cells are the same grid, and a
    numpy array among the outputs must not raise (its == is elementwise)."""
    import numpy as np

    from rps_evals.scoring import hardcoded_reason

    src = "def transform(grid):\n    return [[0] * 3 for _ in range(3)]\n"
    zeros = [[0] * 3] * 3
    as_tuples = tuple((0, 0, 0) for _ in range(3))
    assert hardcoded_reason(MIRROR, src, run("ok", [as_tuples], [zeros, zeros])) == "constant_output"
    arrays = [np.zeros((3, 3), dtype=np.int64) for _ in range(3)]
    assert hardcoded_reason(MIRROR, src, run("ok", arrays[:1], arrays[1:])) == "constant_output"
    varying = [np.zeros((3, 3), dtype=np.int64), np.ones((3, 3), dtype=np.int64), np.zeros((3, 3), dtype=np.int64)]
    assert hardcoded_reason(MIRROR, src, run("ok", varying[:1], varying[1:])) is None


def test_banner_comments_do_not_stall_the_literal_check():
    """Red-team finding 1: the old regex pre-filter backtracked exponentially on a '#' * 80 banner
    after a line ending in ')' (an honest program hung the scorer). Python's parser reads it."""
    from rps_evals.scoring import grid_literals

    banner = "import numpy as np\nx = np.zeros(3)\n" + "#" * 80 + "\n# Main\n" + "#" * 80 + "\n"
    honest = banner + "def transform(grid):\n    return [r[::-1] for r in grid]\n"
    assert grid_literals(honest) == []
    assert program_attempt(MIRROR, honest, [TOUT], [OUT1, mirrored(IN2)]).hardcoded is None
    stored = banner + "def transform(grid):\n    return [[4, 4, 6], [4, 6, 6], [7, 6, 4]]\n"
    assert program_attempt(MIRROR, stored, [TOUT], [TOUT, TOUT]).hardcoded == "literal_output"
