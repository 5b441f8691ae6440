"""The bundled demo responses against the expectations written by hand in scripts/make_demo_responses.py.

The oracle is the script's `cases()`: for each attempt the source and program status its author
intended, and here the tasks a person sees solved. Scoring the demo file (core, and Inspect through
the replay model) must give exactly those; no number is taken from an earlier run of the code.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rps_evals.data import load_dataset
from rps_evals.inspect_eval.replay import demo_responses_path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_demo_responses", ROOT / "scripts" / "make_demo_responses.py")
demo_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_script)

CASES = demo_script.cases(load_dataset(demo_script.DATASET).tasks)
EXPECTED = {(line["task_id"], line["attempt"]): want for line, want in CASES}
TASK_IDS = list(dict.fromkeys(task_id for task_id, _ in EXPECTED))
# By hand, from the cases' comments: solved by attempt 1 or 2 on every test input of the task.
# dae9d2b5: a wrong program, then invalid; 6150a2bd: cut off, then floats (invalid).
SOLVED = {"3c9b0459", "25ff71a9", "67a3c6ac", "74dd1130", "a416b8f3", "ed36ccf7"}
# Seconds per transform call: far above what the demo's programs need even on a machine busy with
# other work, so only the endless loop times out (it then costs this long once).
TIMEOUT = 10.0


def hand_counts() -> dict[str, tuple[int, int]]:
    """The metrics the cases determine, counted from the cases themselves."""
    wants = list(EXPECTED.values())
    lines = [line for line, _ in CASES]
    attempts = len(wants)
    return {
        "task_solves": (len(SOLVED), len(TASK_IDS)),
        "attempts_from_executed_programs": (sum(s == "executed_program" for s, _ in wants), attempts),
        "json_fallback_attempts": (sum(s == "json_fallback" for s, _ in wants), attempts),
        "invalid_attempts": (sum(s == "invalid" for s, _ in wants), attempts),
        "program_executions_without_error": (sum(p == "ok" for _, p in wants), attempts),
        "program_timeouts": (sum(p == "timeout" for _, p in wants), attempts),
        "program_errors": (sum(p == "error" for _, p in wants), attempts),
        "api_errors": (sum(line["error"] is not None for line in lines), attempts),
        "token_limit_hits": (sum(line["stop_reason"] in ("max_tokens", "model_length") for line in lines), attempts),
    }


def check_run(run: Path) -> None:
    records = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    got = {(r["task_id"], r["attempt"]): (r["source"], r["program_status"]) for r in records}
    assert got == EXPECTED
    by_task = {t: [r for r in records if r["task_id"] == t and r["attempt"] <= 2] for t in TASK_IDS}
    solved = {t for t, rs in by_task.items() if all(any(r["correct"][j] for r in rs)
                                                     for j in range(len(rs[0]["correct"])))}
    assert solved == SOLVED
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    for name, (n, of) in hand_counts().items():
        assert (metrics[name]["n"], metrics[name]["of"]) == (n, of), name


def test_the_bundled_file_is_what_the_script_writes():
    lines = [json.loads(line) for line in demo_responses_path().read_text().splitlines() if line.strip()]
    assert lines == [line for line, _ in CASES]


def test_the_hand_counts_are_the_ones_the_demo_was_written_for():
    # the cases' comments, counted by a person: 8 tasks, 16 attempts
    assert hand_counts() == {
        "task_solves": (6, 8), "attempts_from_executed_programs": (8, 16), "json_fallback_attempts": (2, 16),
        "invalid_attempts": (6, 16), "program_executions_without_error": (9, 16), "program_timeouts": (1, 16),
        "program_errors": (2, 16), "api_errors": (1, 16), "token_limit_hits": (2, 16),
    }


def test_core_scores_the_demo_as_written_by_hand(tmp_path):
    from inspect_support import core_score

    core_score(demo_responses_path(), tmp_path / "core", task_ids=TASK_IDS, timeout=TIMEOUT)
    check_run(tmp_path / "core")


@pytest.mark.slow
def test_inspect_scores_the_demo_as_written_by_hand(tmp_path):
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval

    from inspect_support import report
    from rps_evals.arc1 import arc1

    task = arc1(split="training", task_ids=",".join(TASK_IDS), sandbox="local", exec_timeout=TIMEOUT)
    (log,) = inspect_eval(task, model="rps/replay", display="none", log_dir=str(tmp_path / "logs"))
    report(log.location, tmp_path / "run")
    check_run(tmp_path / "run")
