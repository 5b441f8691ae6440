"""Commands that say what is wrong: strict responses lines, the count of (task, attempt) pairs a
file does not answer, `--out` on a file, a closed stdout, `rps-evals tasks`, and `--help` that
states what each argument is and its default."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from rps_evals.cli import build_parser, main

IDENTITY = "```python\ndef transform(grid):\n    return grid\n```"


def write_lines(path, *objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def score(tmp_path, responses, *extra):
    return main(["score", "--dataset", "arc1:training", "--responses", str(responses),
                 "--out", str(tmp_path / "run"), "--sandbox", "local", "--timeout", "1", *extra])


@pytest.mark.parametrize("field, message", [
    ("completon", "responses.jsonl:2: unknown field 'completon' (did you mean 'completion'?)"),
    ("eror", "responses.jsonl:2: unknown field 'eror' (did you mean 'error'?)"),
    ("model", "responses.jsonl:2: unknown field 'model' (known fields: task_id, attempt, completion,"),
])
def test_an_unknown_field_is_an_error_naming_line_and_field(tmp_path, capsys, field, message):
    path = write_lines(tmp_path / "responses.jsonl",
                       {"task_id": "007bbfb7", "attempt": 1, "completion": IDENTITY},
                       {"task_id": "007bbfb7", "attempt": 2, field: IDENTITY})
    assert score(tmp_path, path) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pairs_without_a_line_are_counted_before_the_table(tmp_path, capsys):
    path = write_lines(tmp_path / "r.jsonl", {"task_id": "007bbfb7", "attempt": 1, "completion": IDENTITY},
                       {"task_id": "00d62c1b", "attempt": 2, "completion": IDENTITY})
    assert score(tmp_path, path, "--task-ids", "007bbfb7", "00d62c1b", "017c7c7b") == 0
    out = capsys.readouterr().out
    note = f"note: 4 of the 6 selected (task, attempt) pairs have no line in {path}; they are scored as missing"
    assert note in out and out.index(note) < out.index("task_solves")
    one = write_lines(tmp_path / "one.jsonl", {"task_id": "007bbfb7", "attempt": 1, "completion": IDENTITY})
    assert score(tmp_path, one, "--task-ids", "007bbfb7", "--attempts", "1") == 0
    assert "selected (task, attempt) pairs have no line" not in capsys.readouterr().out


def test_out_on_an_existing_file_is_one_clean_line(tmp_path, capsys):
    path = write_lines(tmp_path / "r.jsonl", {"task_id": "007bbfb7", "attempt": 1, "completion": IDENTITY})
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    assert main(["score", "--dataset", "arc1:training", "--responses", str(path), "--out", str(taken),
                 "--sandbox", "local", "--task-ids", "007bbfb7"]) == 2
    err = capsys.readouterr().err
    assert err == f"rps-evals: error: --out {taken} is a file; give a run directory (new or existing) to write into\n"
    assert taken.read_text() == "keep me"


def test_a_closed_stdout_ends_without_a_traceback(tmp_path):
    """`rps-evals compare A B | head -1`: the reader is gone before the output is written, for a
    long output (written while printing) and a short one (written when the process flushes)."""
    path = write_lines(tmp_path / "r.jsonl", {"task_id": "007bbfb7", "attempt": 1, "completion": IDENTITY})
    assert score(tmp_path, path, "--task-ids", "007bbfb7") == 0
    for argv in (["tasks", "arc1:training"], ["compare", str(tmp_path / "run"), str(tmp_path / "run")]):
        proc = subprocess.Popen([sys.executable, "-m", "rps_evals", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1, argv
        assert err == "", (argv, err)


def test_tasks_lists_ids_sizes_and_test_counts(capsys):
    assert main(["tasks", "arc2:evaluation"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "arc2:evaluation: 120 tasks, 167 test outputs"
    assert lines[1].split() == ["task_id", "train", "test", "largest", "grid"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 120 and sum(int(r[2]) for r in rows) == 167
    from rps_evals.data import load_dataset

    task = next(iter(load_dataset("arc2:evaluation").tasks.values()))
    assert rows[0][:3] == [task.task_id, str(len(task.train)), str(task.num_tests)]
    assert main(["tasks", "arc3:training"]) == 2
    assert "unknown dataset 'arc3:training'" in capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser):
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices.items()


def test_help_names_every_argument_and_its_default():
    """Each positional argument has a help text; each option with a default value says it."""
    for name, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}: no help"
            default = action.default
            if default not in (None, False, [], argparse.SUPPRESS) and action.option_strings:
                assert "default" in action.help, f"{name} {action.option_strings[0]}: default {default!r} unstated"
    gate = dict(_subparsers(build_parser()))["gate"]
    (max_drop,) = [a for a in gate._actions if "--max-drop" in a.option_strings]
    assert max_drop.help.startswith("required, repeatable")


def test_rps_train_data_help_says_evaluation_tasks_are_left_out_by_default():
    pytest.importorskip("trl")
    from rps_train.data import make_parser, parse_config

    text = " ".join(make_parser().format_help().split())
    at = text.index("--allow-eval-overlap, --allow_eval_overlap")
    assert "(default: True)" not in text[at:at + 250] and "default: left out" in text[at:at + 250]
    base = ["--traces", "t.jsonl", "--rejected", "r.jsonl", "--out", "o"]
    assert parse_config(base).exclude_eval_overlap is True
    assert parse_config(base + ["--allow-eval-overlap"]).exclude_eval_overlap is False
