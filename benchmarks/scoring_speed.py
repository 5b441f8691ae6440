"""Time scoring: (1) our own Python without program execution, 400 tasks x 2 attempts; (2) a whole
ARC-AGI-2 evaluation scored from a file in Docker, split between running programs and the rest.

(1) Target (issue 2): under 1 s. Each attempt's Execution is given, as if returned by the sandbox,
so only parse + combine + every metric is timed.
(2) `rps-evals score --dataset arc2:evaluation --sandbox docker` on 120 tasks x 2 attempts (240), as
a user runs it (a fresh process), then the same steps in this process, each timed: what is not
"running programs" is the overhead the issue asks to keep small. Needs Docker and the image.
Usage: python benchmarks/scoring_speed.py [--repeat 5] [--no-docker]
"""

import argparse
import json
import platform
import os
import subprocess
import tempfile
import time
from pathlib import Path

from rps_evals.data import load_dataset
from rps_evals.execution import Execution
from rps_evals.scoring import Response, program_for, score_attempt, submission, summarize


def completion_for(task, attempt):
    """A realistic long answer: reasoning, a program, and JSON predictions for every test input."""
    reasoning = "<think>" + "Looking at the grids, colours move. " * 200 + "</think>\nReasoning:\n" + "step " * 300
    program = "```python\nimport numpy as np\n\ndef transform(grid):\n    g = np.array(grid)\n" + "    g = g.copy()\n" * 30 + "    return g.tolist()\n```\n"
    return f"{reasoning}\n\nPython program:\n{program}\nPredicted test outputs:\n```json\n{json.dumps(task.test_outputs)}\n```\n"


def whole_evaluation() -> None:
    """(2): the split of `rps-evals score` on a whole ARC-AGI-2 evaluation file, in Docker."""
    from rps_evals.execution import get_executor
    from rps_evals.records import read_responses, write_run
    from rps_evals.scoring import score_attempts

    dataset = load_dataset("arc2:evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        responses_file = tmp / "responses.jsonl"
        with responses_file.open("w") as f:
            for t in dataset.tasks.values():
                for a in (1, 2):
                    f.write(json.dumps({"task_id": t.task_id, "attempt": a, "completion": completion_for(t, a),
                                        "stop_reason": "stop"}) + "\n")
        start = time.perf_counter()
        subprocess.run(["rps-evals", "score", "--dataset", "arc2:evaluation", "--responses", str(responses_file),
                        "--out", str(tmp / "cli"), "--sandbox", "docker"], check=True, capture_output=True)
        cli_s = time.perf_counter() - start

        steps: list[tuple[str, float]] = []

        def step(name, fn):
            t0 = time.perf_counter()
            out = fn()
            steps.append((name, time.perf_counter() - t0))
            return out

        t_all = time.perf_counter()
        responses = step("read and check the responses file", lambda: read_responses(responses_file, dataset, 2))
        executor = step("connect to Docker, check the image", lambda: get_executor("docker"))
        step("start the containers", executor.start)
        prepared = step("parse 240 completions", lambda: [program_for(dataset.tasks[r.task_id], r) for r in responses])
        executions = step("run the programs", lambda: executor.run([p for p, _ in prepared]))
        records = step("combine into records", lambda: [
            score_attempt(dataset.tasks[r.task_id], r, json_predictions, e, r.attempt)
            for r, (_, json_predictions), e in zip(responses, prepared, executions)])
        step("close the containers", executor.close)
        from rps_evals.execution.image import image_identity

        step("image identity for provenance", lambda: image_identity(executor.image))
        step("every metric, write the run files", lambda: write_run(tmp / "inproc", dataset, records, 2))
        total = time.perf_counter() - t_all
        with get_executor("docker") as again:  # score_attempts as the CLI calls it, for the record count
            assert len(score_attempts(dataset, responses, again, 2)) == 240
    programs = dict(steps)["run the programs"]
    print(f"\nwhole ARC-AGI-2 evaluation from a file, Docker sandbox, 240 attempts:")
    print(f"  rps-evals score (a fresh process): {cli_s:.2f} s")
    print(f"  the same steps in this process: {total:.2f} s = running programs {programs:.2f} s "
          f"+ the rest {total - programs:.2f} s")
    for name, seconds in steps:
        print(f"    {name:<38}{seconds:6.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-docker", action="store_true", help="skip (2), the whole evaluation in Docker")
    args = parser.parse_args()
    dataset = load_dataset("arc1:evaluation")
    tasks = list(dataset.tasks.values())
    responses = [(t, Response(t.task_id, a, completion_for(t, a), "stop")) for t in tasks for a in (1, 2)]
    # half the attempts "ran" and returned the right grids, half crashed (JSON fallback path)
    executions = [
        Execution("ok", t.test_outputs, [out for _, out in t.train]) if r.attempt == 1
        else Execution("error", [None] * t.num_tests, [None] * len(t.train), "Traceback ...")
        for t, r in responses
    ]
    chars = sum(len(r.completion) for _, r in responses)
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        records = []
        for (task, response), execution in zip(responses, executions):
            _, json_predictions = program_for(task, response)
            records.append(score_attempt(task, response, json_predictions, execution, response.attempt))
        result = summarize(dataset, records, 2)
        submission(dataset, records, 2)
        timings.append(time.perf_counter() - start)
    assert result["metrics"]["attempts_from_executed_programs"]["n"] == 400
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"scored {len(responses)} attempts ({chars / 1e6:.1f} M characters of completions), {len(tasks)} tasks")
    print(f"best {min(timings):.3f} s   median {sorted(timings)[len(timings) // 2]:.3f} s   (target < 1 s)")
    if not args.no_docker:
        whole_evaluation()


if __name__ == "__main__":
    main()
