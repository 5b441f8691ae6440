"""The Inspect tasks with their default sandbox: Inspect's docker sandbox on sandbox/compose.yaml.
Same responses, same numbers as `rps-evals score` (which runs the programs in the local runner)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402

from rps_evals.arc1 import arc1  # noqa: E402
from rps_evals.cli import main as rps_main  # noqa: E402
from rps_evals.inspect_eval.replay import demo_responses_path  # noqa: E402
from docker_support import require_image  # noqa: E402
from inspect_support import DEMO_IDS, assert_same_numbers, core_score, inspect_metrics  # noqa: E402


@pytest.mark.docker
@pytest.mark.slow
def test_demo_in_the_docker_sandbox_equals_core_score(tmp_path):
    require_image()  # skips only when no Docker engine answers; builds a missing image
    core = core_score(demo_responses_path(), tmp_path / "core")
    task = arc1(split="training", task_ids=DEMO_IDS)  # sandbox=docker is the default
    (log,) = inspect_eval(task, model="rps/replay", log_dir=str(tmp_path / "logs"), display="none")
    assert log.eval.sandbox is not None and log.eval.sandbox.type == "docker"
    assert_same_numbers(inspect_metrics(log), core)
    assert rps_main(["report", log.location, "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == core
    # the loop was stopped by the runner's per-call limit inside the container
    (looping,) = [s for s in log.samples if s.id == "67a3c6ac"]
    first = looping.scores["arc_scorer"].metadata["attempts"][0]
    assert first["program_status"] == "timeout"
