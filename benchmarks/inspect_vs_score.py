"""Inspect at the speed of the core: the same responses file scored by `rps-evals score` and replayed
through `inspect eval ... --model rps/replay`, in the same sandbox, timed in this run.

The file has 60 ARC-AGI-1 evaluation tasks x 2 attempts: right programs, wrong ones, crashes, JSON
answers, garbage. Both runs must give the same n/of for every metric (Inspect's through
`rps-evals report LOG`); the figure is the ratio of their wall times, each a fresh process as a user
runs it. Target: Inspect within 4x of `rps-evals score` with `-T sandbox=docker`.

Usage: python benchmarks/inspect_vs_score.py [--tasks 60] [--sandbox docker] [--also inspect-docker]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rps_evals.data import load_dataset

REPO = Path(__file__).resolve().parents[1]


def _fence(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```"


def completion(task, attempt: int, kind: int) -> str:
    """One of five kinds of answer, each with some reasoning around it."""
    table = {json.dumps(i): o for i, o in list(zip(task.test_inputs, task.test_outputs)) + task.train}
    programs = {
        0: f"import json\nTABLE = {table!r}\n\ndef transform(grid):\n    return TABLE.get(json.dumps(grid), grid)",
        1: "import numpy as np\n\ndef transform(grid):\n    return np.rot90(np.array(grid)).tolist()",
        2: "def transform(grid):\n    return [row[::-1] for row in grid[0]]",  # crashes on ints
    }
    reasoning = "Reasoning:\nThe grids change by a rule I try below. " * 20
    if kind in programs:
        return f"{reasoning}\n\nPython program:\n{_fence('python', programs[kind])}\n"
    if kind == 3:
        return f"{reasoning}\n\nPredicted test outputs:\n{_fence('json', json.dumps(task.test_outputs))}\n"
    return "I could not find the rule."


def write_responses(path: Path, tasks) -> None:
    with path.open("w") as f:
        for i, task in enumerate(tasks):
            for attempt in (1, 2):
                kind = (i + attempt) % 5
                f.write(json.dumps({"task_id": task.task_id, "attempt": attempt,
                                    "completion": completion(task, attempt, kind), "stop_reason": "stop"}) + "\n")


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command[:4])} ...\n{done.stderr[-3000:]}")
    return elapsed


def counts(results_file: Path) -> dict:
    metrics = json.loads(results_file.read_text())["metrics"]
    return {name: (m["n"], m["of"]) for name, m in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--sandbox", default="docker", choices=("docker", "local"))
    parser.add_argument("--also", nargs="*", default=[], metavar="SANDBOX",
                        help="also time Inspect with these -T sandbox values (e.g. inspect-docker)")
    args = parser.parse_args()
    tasks = list(load_dataset("arc1:evaluation").tasks.values())[:args.tasks]
    ids = [t.task_id for t in tasks]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        responses = tmp / "responses.jsonl"
        write_responses(responses, tasks)
        score_s = timed(["rps-evals", "score", "--dataset", "arc1:evaluation", "--responses", str(responses),
                         "--out", str(tmp / "score"), "--sandbox", args.sandbox, "--task-ids", *ids], env)
        want = counts(tmp / "score" / "results.json")
        rows = [(f"rps-evals score --sandbox {args.sandbox}", score_s, None)]
        for sandbox in [args.sandbox, *args.also]:
            logs = tmp / f"logs-{sandbox}"
            inspect_s = timed(["inspect", "eval", "rps_evals/arc1.py", "--model", "rps/replay",
                               "-M", f"responses={responses}", "-T", f"task_ids={','.join(ids)}",
                               "-T", f"sandbox={sandbox}", "--log-dir", str(logs), "--display", "none"], env)
            (log,) = logs.glob("*.eval")
            subprocess.run(["rps-evals", "report", str(log), "--out", str(tmp / f"report-{sandbox}")],
                           cwd=REPO, env=env, check=True, capture_output=True)
            got = counts(tmp / f"report-{sandbox}" / "results.json")
            if got != want:
                sys.exit(f"-T sandbox={sandbox}: different numbers from rps-evals score: "
                         + ", ".join(f"{k} {got.get(k)} vs {v}" for k, v in want.items() if got.get(k) != v))
            target = " (target <= 4x)" if sandbox == args.sandbox else ""
            rows.append((f"inspect eval -T sandbox={sandbox}", inspect_s, f"{inspect_s / score_s:.1f}x rps-evals score{target}"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}")
    print(f"{len(tasks)} tasks x 2 attempts ({len(tasks) * 2} attempts); every metric's n/of identical in all runs")
    for name, seconds, ratio in rows:
        print(f"{name:<42}{seconds:7.1f} s" + (f"   {ratio}" if ratio else ""))


if __name__ == "__main__":
    main()
