"""Bad task parameters end in one clear message, not a traceback: they are Inspect
PrerequisiteErrors, which `inspect eval` prints alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai._util.error import PrerequisiteError  # noqa: E402
from inspect_ai.model import get_model  # noqa: E402

from rps_evals.arc1 import arc1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("params, message", [
    ({"split": "train"}, "split must be 'training' or 'evaluation' (or a named copy: evaluation@kaggle2024), "
                         "got 'train'"),
    ({"attempts": 0}, "attempts must be an integer >= 1, got 0"),
    ({"task_ids": "zzzz"}, "task ids not in arc1:evaluation: zzzz"),
])
def test_bad_task_parameters_are_prerequisite_errors(params, message):
    with pytest.raises(PrerequisiteError) as info:
        arc1(sandbox="local", **params)
    assert info.value.message == message
    assert isinstance(info.value, ValueError)  # still a ValueError for Python callers


def test_a_missing_replay_file_is_a_prerequisite_error(tmp_path):
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(PrerequisiteError) as info:
        get_model("rps/replay", responses=str(missing), memoize=False)
    assert info.value.message == f"rps/replay: cannot read responses file {missing}: No such file or directory"


def test_no_docker_engine_is_a_prerequisite_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(PrerequisiteError) as info:
        arc1(split="training", task_ids="007bbfb7", sandbox="docker")
    assert info.value.message.startswith(f"sandbox=docker: no Docker engine answers at unix://{tmp_path}/no-docker.sock")


def test_inspect_eval_prints_the_message_without_a_traceback(tmp_path):
    proc = subprocess.run(["inspect", "eval", "rps_evals/arc1", "-T", "split=train", "-T", "sandbox=local",
                           "--model", "mockllm/model", "--log-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "split must be 'training' or 'evaluation'" in output and "got 'train'" in output
    assert "Traceback" not in output and len(output.splitlines()) <= 10, output
