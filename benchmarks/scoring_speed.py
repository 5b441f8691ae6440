"""Time scoring without program execution: parse + combine + every metric, 400 tasks x 2 attempts.

Target (issue 2): under 1 s. Execution is measured separately (sandbox_throughput.py); here each
attempt's Execution is given, as if returned by the sandbox, so only our own Python is timed.
Usage: python benchmarks/scoring_speed.py [--repeat 5]
"""

import argparse
import json
import platform
import os
import time

from rps_evals.data import load_dataset
from rps_evals.execution import Execution
from rps_evals.scoring import Response, program_for, score_attempt, submission, summarize


def completion_for(task, attempt):
    """A realistic long answer: reasoning, a program, and JSON predictions for every test input."""
    reasoning = "<think>" + "Looking at the grids, colours move. " * 200 + "</think>\nReasoning:\n" + "step " * 300
    program = "```python\nimport numpy as np\n\ndef transform(grid):\n    g = np.array(grid)\n" + "    g = g.copy()\n" * 30 + "    return g.tolist()\n```\n"
    return f"{reasoning}\n\nPython program:\n{program}\nPredicted test outputs:\n```json\n{json.dumps(task.test_outputs)}\n```\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
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


if __name__ == "__main__":
    main()
