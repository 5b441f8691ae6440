"""`rps-evals score` end to end on a constructed responses file, and its bad-input handling."""

import json
import subprocess
import sys

import pytest

from rps_evals.cli import main

KRON = "import numpy as np\ndef transform(grid):\n    g = np.array(grid)\n    return np.kron(g != 0, g)\n"


def block(src):
    return f"Reasoning:\nsee code\n\nPython program:\n```python\n{src}```\n"


def preds(grids):
    return "Predicted test outputs:\n```json\n" + json.dumps(grids) + "\n```\n"


ROT180_OUT = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]


def responses_file(tmp_path):
    from rps_evals.data import load_dataset

    tasks = load_dataset("arc1:training").tasks
    t2_out = tasks["3c9b0459"].test_outputs[0]
    t5_out = tasks["68b16354"].test_outputs[0]
    t7_in, t7_out = tasks["25ff71a9"].test_inputs, tasks["25ff71a9"].test_outputs
    shift_raise_second = (f"def transform(grid):\n    if grid == {t7_in[1]!r}:\n        raise IndexError('no')\n"
                          "    return [[0] * len(grid[0])] + grid[:-1]\n")
    rows = [
        # T1: two correct programs (numpy array return, list return)
        ("007bbfb7", 1, block(KRON) + preds([[0]]), "stop", None),
        ("007bbfb7", 2, block(KRON.replace("return np.kron(g != 0, g)", "return np.kron(g != 0, g).tolist()")), "stop", None),
        # T2: a crashing program with a correct JSON answer; an endless loop with nothing else
        ("3c9b0459", 1, block("def transform(grid):\n    return 1 / 0\n") + preds([t2_out]), "stop", None),
        ("3c9b0459", 2, block("def transform(grid):\n    while True:\n        pass\n"), "stop", None),
        # T3: a bool grid with no JSON; a float grid with a valid (wrong) JSON grid
        ("6150a2bd", 1, block("import numpy as np\ndef transform(grid):\n    return np.array(grid) > 0\n"), "stop", None),
        ("6150a2bd", 2, block("import numpy as np\ndef transform(grid):\n    return np.array(grid) * 1.0\n")
         + preds([ROT180_OUT]), "stop", None),
        # T4: an API error; a response cut at the token limit inside the code fence
        ("67a3c6ac", 1, None, None, "Connection reset after 3 retries"),
        ("67a3c6ac", 2, "Reasoning: long\n```python\ndef transform(grid):\n    return [r[::-1] for r in", "max_tokens", None),
        # T5: JSON only (correct); attempt 2 missing from the file
        ("68b16354", 1, "<think>flip it</think>Reasoning: flip\n" + preds([t5_out]), "stop", None),
        # T6: a correct transpose; a valid but wrong identity
        ("74dd1130", 1, block("def transform(grid):\n    return [list(r) for r in zip(*grid)]\n"), "stop", None),
        ("74dd1130", 2, block("def transform(grid):\n    return grid\n"), "stop", None),
        # T7 (two test inputs): correct; raises on test input 2, JSON fills it (wrongly)
        ("25ff71a9", 1, block("def transform(grid):\n    return [[0] * len(grid[0])] + grid[:-1]\n"), "stop", None),
        ("25ff71a9", 2, block(shift_raise_second) + preds([t7_out[0], [[9]]]), "stop", None),
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "attempt": a, "completion": c, "stop_reason": s, "error": e}) + "\n"
                            for t, a, c, s, e in rows))
    return path


TASK_IDS = ["007bbfb7", "3c9b0459", "6150a2bd", "67a3c6ac", "68b16354", "74dd1130", "25ff71a9"]
EXPECTED = {  # computed by hand from the rows above
    "task_solves": (5, 7),
    "test_output_exact": (6, 8),
    "valid_output_attempts": (11, 16),
    "token_limit_hits": (1, 14),
    "api_errors": (1, 14),
    "attempts_from_executed_programs": (5, 14),
    "attempts_from_general_programs": (5, 14),  # no program returns a literal or constant answer
    "hardcoded_output_programs": (0, 14),
    "program_executions_without_error": (7, 14),
    "json_fallback_attempts": (4, 14),
    "invalid_attempts": (5, 14),
    "program_timeouts": (1, 14),
    "program_errors": (2, 14),
    "train_verified_programs": (5, 14),
    "train_verified_but_wrong": (1, 14),  # 25ff71a9 attempt 2: right on training, JSON wrong on test 2
    "tasks_all_attempts_executed": (2, 7),
    "tasks_any_attempt_executed": (3, 7),
    "tasks_no_attempt_executed": (4, 7),
}


def score(tmp_path, *extra, responses=None, out="run"):
    return main(["score", "--dataset", "arc1:training", "--responses", str(responses or responses_file(tmp_path)),
                 "--out", str(tmp_path / out), "--sandbox", "local", "--timeout", "1", *extra])


def test_score_counts_every_outcome(tmp_path, capsys):
    assert score(tmp_path, "--task-ids", *TASK_IDS) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {k: (v["n"], v["of"]) for k, v in result["metrics"].items()} == EXPECTED
    assert result["arc_prize_score"] == pytest.approx(5 / 7)
    assert result["dataset"] == "arc1:training" and len(result["dataset_hash"]) == 64
    # a responses file does not say which prompt made it: the run says so instead of guessing
    assert result["attempts_per_task"] == 2 and result["prompt_version"] == "unknown"
    assert result["provenance"]["prompt_version"] is None
    out = capsys.readouterr().out
    assert "attempts_from_executed_programs   5/14 (35.7%)" in out
    assert "task_solves                       5/7 (71.4%)" in out

    records = [json.loads(line) for line in (tmp_path / "run" / "attempts.jsonl").read_text().splitlines()]
    assert len(records) == 14
    by_key = {(r["task_id"], r["attempt"]): r for r in records}
    assert by_key[("3c9b0459", 1)]["program_status"] == "error" and "ZeroDivisionError" in by_key[("3c9b0459", 1)]["error"]
    assert by_key[("3c9b0459", 2)]["program_status"] == "timeout"
    assert by_key[("68b16354", 2)]["missing"] is True
    assert by_key[("25ff71a9", 2)]["prediction_origins"] == ["program", "json"]
    assert by_key[("25ff71a9", 2)]["correct"] == [True, False]

    sub = json.loads((tmp_path / "run" / "submission.json").read_text())
    assert list(sub) == TASK_IDS
    assert sub["67a3c6ac"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]


def test_all_tasks_are_denominators_without_task_ids(tmp_path):
    assert score(tmp_path) == 0
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert (metrics["task_solves"]["n"], metrics["task_solves"]["of"]) == (5, 400)
    assert metrics["attempts_from_executed_programs"]["of"] == 800
    assert metrics["test_output_exact"]["of"] == 416


@pytest.mark.parametrize("line, message", [
    ('{"task_id": "007bbfb7", "attempt": 1, "completion": "x"}\nnot json\n', "responses.jsonl:2: not valid JSON"),
    ('{"task_id": "nope", "attempt": 1, "completion": "x"}\n', "task id 'nope' is not in arc1:training"),
    ('{"task_id": "007bbfb7", "attempt": 3, "completion": "x"}\n', "attempt 3 is outside 1..2"),
    ('{"task_id": "007bbfb7", "attempt": 0, "completion": "x"}\n', "attempt 0 is outside 1..2"),
    ('{"task_id": "007bbfb7", "attempt": 1, "completion": "x"}\n{"task_id": "007bbfb7", "attempt": 1, "completion": "y"}\n',
     "responses.jsonl:2: duplicate response for task 007bbfb7 attempt 1 (first at"),
    ('{"task_id": "007bbfb7", "attempt": "1", "completion": "x"}\n', "attempt must be an integer"),
    ('{"task_id": "007bbfb7", "attempt": 1, "completion": "x", "stop_reason": "length"}\n', "stop_reason must be one of"),
    ('[1, 2]\n', "expected a JSON object"),
])
def test_bad_responses_exit_2_and_write_nothing(tmp_path, capsys, line, message):
    path = tmp_path / "responses.jsonl"
    path.write_text(line)
    assert score(tmp_path, responses=path) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unknown_task_id_and_dataset(tmp_path, capsys):
    assert score(tmp_path, "--task-ids", "007bbfb7", "zzz") == 2
    assert "task ids not in arc1:training: zzz" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "rps_evals", "score", "--dataset", "arc9:training",
                           "--responses", "x", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown dataset 'arc9:training'" in proc.stderr


def test_missing_responses_file(tmp_path, capsys):
    assert score(tmp_path, responses=tmp_path / "absent.jsonl") == 2
    assert "cannot read responses file" in capsys.readouterr().err


def test_task_ids_score_the_selection_of_a_file_that_holds_other_tasks(tmp_path, capsys):
    """13 lines in the file, 4 of them for the two selected tasks: the other 9 are counted, not scored."""
    path = responses_file(tmp_path)
    assert score(tmp_path, "--task-ids", "007bbfb7", "3c9b0459", responses=path) == 0
    out = capsys.readouterr().out
    assert f"note: 9 of the 13 lines of {path} answer tasks outside --task-ids; they are not scored" in out
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert (metrics["task_solves"]["n"], metrics["task_solves"]["of"]) == (2, 2)  # KRON; JSON after a crash
    assert (metrics["attempts_from_executed_programs"]["n"], metrics["attempts_from_executed_programs"]["of"]) == (2, 4)
    # a line for a task that is in no split of the dataset is still an error, named as such
    with path.open("a") as f:
        f.write(json.dumps({"task_id": "nope", "attempt": 1, "completion": "x"}) + "\n")
    assert score(tmp_path, "--task-ids", "007bbfb7", responses=path, out="run2") == 2
    assert "responses.jsonl:14: task id 'nope' is not in arc1:training" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()


def test_a_file_that_answers_nothing_selected_is_refused(tmp_path, capsys):
    """A wrong file or dataset would score as all-missing (0/N) without a word; the replay refuses it too."""
    path = responses_file(tmp_path)  # 13 lines, none for 00d62c1b
    assert score(tmp_path, "--task-ids", "00d62c1b", responses=path) == 2
    assert (f"{path} has no response for the 1 selected tasks of arc1:training (13 lines in all); "
            "nothing scored") in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert score(tmp_path, responses=empty) == 2
    assert f"{empty} has no response for any task of arc1:training (0 lines in all)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


VOLATILE = ("wall_time_s", "started_at", "finished_at", "created_at")  # when and how long, nothing else


def without_volatile(value):
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def test_scoring_twice_writes_the_same_run(tmp_path):
    path = responses_file(tmp_path)
    assert score(tmp_path, "--task-ids", *TASK_IDS, responses=path, out="first") == 0
    assert score(tmp_path, "--task-ids", *TASK_IDS, responses=path, out="second") == 0
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("first", "second"))
    assert without_volatile(first) == without_volatile(second)
    assert first["metrics"]["program_timeouts"]["n"] == 1  # the endless loop is in both runs
    for name in ("attempts.jsonl", "submission.json"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "second" / name).read_text()


def test_hardcoded_programs_are_flagged_in_the_run(tmp_path, capsys):
    """3c9b0459 (rotate by 180): the literal test output (the issue's example) and an honest rotation;
    6150a2bd: an all-zero grid for every input, and the identity (wrong, but computed)."""
    rows = [
        ("3c9b0459", 1, "def transform(grid):\n    return [[7, 6, 4], [4, 6, 6], [4, 4, 6]]\n"),
        ("3c9b0459", 2, "def transform(grid):\n    return [row[::-1] for row in grid[::-1]]\n"),
        ("6150a2bd", 1, "def transform(grid):\n    return [[0] * len(grid[0]) for _ in grid]\n"),
        ("6150a2bd", 2, "def transform(grid):\n    return grid\n"),
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "attempt": a, "completion": block(src), "stop_reason": "stop"}) + "\n"
                            for t, a, src in rows))
    assert score(tmp_path, "--task-ids", "3c9b0459", "6150a2bd", responses=path) == 0
    out = capsys.readouterr().out
    assert "attempts_from_general_programs    2/4 (50.0%)" in out
    assert "hardcoded_output_programs         2/4 (50.0%)" in out
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert (metrics["attempts_from_executed_programs"]["n"], metrics["task_solves"]["n"]) == (4, 1)
    records = [json.loads(line) for line in (tmp_path / "run" / "attempts.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["attempt"], r["hardcoded"]) for r in records] == [
        ("3c9b0459", 1, "literal_output"), ("3c9b0459", 2, None),
        ("6150a2bd", 1, "constant_output"), ("6150a2bd", 2, None)]
    assert records[0]["correct"] == [True]  # a hard-coded answer still counts for exactness


def test_runs_scored_the_same_way_compare_cleanly_and_a_timeout_change_warns(tmp_path, capsys):
    """The issue's case: the same answers scored with two timeouts used to compare without a word."""
    from rps_evals.prompt import prompt_hash

    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps({"task_id": "74dd1130", "attempt": 1, "stop_reason": "stop",
                                "completion": block("def transform(grid):\n    return [list(r) for r in zip(*grid)]\n")}) + "\n")
    common = ["--task-ids", "74dd1130", "--program-synthesis", "allowed"]
    assert score(tmp_path, *common, responses=path, out="a") == 0
    assert score(tmp_path, *common, responses=path, out="b") == 0
    assert score(tmp_path, *common, "--timeout", "3", responses=path, out="c") == 0
    provenance = json.loads((tmp_path / "a" / "results.json").read_text())["provenance"]
    assert (provenance["program_synthesis"], provenance["prompt_hash"]) == ("allowed", prompt_hash("allowed"))
    assert provenance["exec_timeout"] == 1.0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--strict"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    assert "WARNING: the runs differ in exec_timeout: A 1.0, B 3.0" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--strict"]) == 2
