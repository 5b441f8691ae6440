"""K = 64 samples per task on ARC-AGI-2 evaluation: `rps-evals score` wall time and programs/s next to
the bare sandbox on the same programs, measured in the same run.

The responses file (120 tasks x 64 attempts = 7,680) holds realistic answers: reasoning, a program
drawn from tests/sandbox_programs.py (general numpy / pure-Python transforms such as rotations, flips,
tilings, recolourings, most of them wrong for these tasks; typical crashing bugs; a few endless
loops), predicted test outputs in JSON; some answers are JSON only (a share of them right) and some
programs return a task's test output as a literal (hard-coded, `literal_output`); 5% of the JSON
predictions are right. Then:

  score      `rps-evals score --attempts 64 --select train_vote` as a user runs it (a subprocess:
             start-up, parsing, the Docker sandbox, every metric, the selection, pass@k, files)
  sandbox    rps_evals.execution.docker.DockerExecutor.run on the same programs, nothing else
             (container start-up included): the floor `score` cannot go below
  selection  summarize + submission for each policy on the scored records (no execution)

Usage: python benchmarks/k_samples.py [--k 64] [--timeout 1] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sandbox_programs import CRASH, SOLVES, TIMEOUT, WRONG  # noqa: E402

from rps_evals.data import load_dataset  # noqa: E402
from rps_evals.execution import Execution  # noqa: E402
from rps_evals.execution.docker import DockerExecutor  # noqa: E402
from rps_evals.execution.image import ensure_image  # noqa: E402
from rps_evals.records import read_attempts, read_responses  # noqa: E402
from rps_evals.scoring import program_for, submission, summarize  # noqa: E402
from rps_evals.selection import POLICIES  # noqa: E402

GENERAL = sorted(set(SOLVES.values()) | set(WRONG.values()))
BUGGY = sorted(set(CRASH.values()))
ENDLESS = sorted(set(TIMEOUT.values()))
SHARES = {"program": 0.86, "buggy": 0.08, "json_only": 0.03, "literal": 0.02, "endless": 0.002}


def completion(kind: str, task, rng: random.Random) -> str:
    """One answer in the prompt's format: reasoning, a program, predicted test outputs."""
    reasoning = "<think>" + "The colours move with the shapes; check every training pair. " * rng.randint(20, 120) + "</think>"
    guess = [task.test_outputs[j] if rng.random() < 0.05 else task.test_inputs[j] for j in range(task.num_tests)]
    predicted = "Predicted test outputs:\n```json\n" + json.dumps(guess) + "\n```\n"
    if kind == "json_only":
        return f"{reasoning}\nReasoning: I could not write it as code.\n\n{predicted}"
    if kind == "literal":
        source = f"def transform(grid):\n    return {task.test_outputs[0]!r}\n"
    else:
        source = rng.choice({"program": GENERAL, "buggy": BUGGY, "endless": ENDLESS}[kind])
    return f"{reasoning}\nReasoning: see the program.\n\nPython program:\n```python\n{source}```\n\n{predicted}"


def write_responses(path: Path, dataset, k: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    kinds, weights = zip(*SHARES.items())
    counts: dict[str, int] = {}
    with path.open("w", encoding="utf-8") as f:
        for task in dataset.tasks.values():
            for attempt in range(1, k + 1):
                kind = rng.choices(kinds, weights)[0]
                counts[kind] = counts.get(kind, 0) + 1
                text = completion(kind, task, rng)
                f.write(json.dumps({"task_id": task.task_id, "attempt": attempt, "completion": text,
                                    "stop_reason": "stop", "input_tokens": 6000 if attempt == 1 else 0,
                                    "output_tokens": len(text) // 4}) + "\n")
    return counts


def score_split(dataset, responses: Path, workdir: Path, k: int, executions) -> dict[str, float]:
    """What `score` does besides running programs, each step timed alone in this process (the
    executions are the sandbox-alone run's): the part of score's wall time the sandbox is not."""
    from rps_evals.records import write_run
    from rps_evals.scoring import score_attempt

    steps: dict[str, float] = {}

    def step(name, fn):
        start = time.perf_counter()
        value = fn()
        steps[name] = round(time.perf_counter() - start, 2)
        return value

    steps["start-up: python3 -m rps_evals, imports"] = round(min(_startup() for _ in range(3)), 2)
    read = step("read and check the responses file", lambda: read_responses(responses, dataset, k))
    by_key = {(r.task_id, r.attempt): r for r in read}
    slots = [(task, a, by_key[(task.task_id, a)]) for task in dataset.tasks.values() for a in range(1, k + 1)]
    prepared = step("extract programs and JSON predictions", lambda: [program_for(t, r) for t, _, r in slots])
    ran = iter(executions)
    merged = [next(ran) if program.source else None for program, _ in prepared]
    records = step("combine into records", lambda: [
        score_attempt(task, response, json_predictions, execution or Execution.nothing_to_run(program), a)
        for (task, a, response), (program, json_predictions), execution in zip(slots, prepared, merged)])
    step("metrics, train_vote selection, pass@k, write the files", lambda: write_run(
        workdir / "split", dataset, records, k, select="train_vote"))
    return steps


def _startup() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import rps_evals.cli"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=64, help="attempts per task")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per transform call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the responses file and run directory here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    dataset = load_dataset("arc2:evaluation")
    image = ensure_image(quiet=True)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="k_samples."))
    workdir.mkdir(parents=True, exist_ok=True)
    responses = workdir / "responses.jsonl"
    counts = write_responses(responses, dataset, args.k, args.seed)
    n = len(dataset.tasks) * args.k
    size_mb = responses.stat().st_size / 1e6

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rps_evals", "score", "--dataset", "arc2:evaluation",
                           "--responses", str(responses), "--out", str(workdir / "run"), "--attempts", str(args.k),
                           "--select", "train_vote", "--timeout", str(args.timeout),
                           "--price-in", "0.2", "--price-out", "0.8"], capture_output=True, text=True)
    score_wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"rps-evals score failed ({done.returncode}):\n{done.stderr[-3000:]}")

    by_key = {(r.task_id, r.attempt): r for r in read_responses(responses, dataset, args.k)}
    programs = [program_for(task, by_key[(task.task_id, a)])[0]
                for task in dataset.tasks.values() for a in range(1, args.k + 1)]
    to_run = [p for p in programs if p.source]
    start = time.perf_counter()
    with DockerExecutor(timeout=args.timeout, image=image) as executor:
        executions = executor.run(to_run)
    sandbox_wall = time.perf_counter() - start
    statuses = [e.status for e in executions]
    split = score_split(dataset, responses, workdir, args.k, executions)

    records = read_attempts(workdir / "run")
    selection_s = {}
    for policy in POLICIES:
        start = time.perf_counter()
        result = summarize(dataset, records, args.k, select=policy)
        submission(dataset, records, args.k, policy)
        selection_s[policy] = round(time.perf_counter() - start, 2)
        if policy != "first":
            selection_s[f"task_solves_{policy}"] = result["metrics"][f"task_solves_{policy}"]["n"]
    result = json.loads((workdir / "run" / "results.json").read_text())

    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "load_avg_1m": round(os.getloadavg()[0], 2), "image": image, "timeout_s": args.timeout}
    figures = {
        "machine": machine, "k": args.k, "attempts": n, "programs_run": len(to_run), "answer_kinds": counts,
        "responses_mb": round(size_mb, 1),
        "score": {"wall_s": round(score_wall, 2), "attempts_per_s": round(n / score_wall, 1),
                  "programs_per_s": round(len(to_run) / score_wall, 1)},
        "sandbox": {"wall_s": round(sandbox_wall, 2), "programs_per_s": round(len(to_run) / sandbox_wall, 1),
                    "statuses": {s: statuses.count(s) for s in sorted(set(statuses))}},
        "score_over_sandbox_wall": round(score_wall / sandbox_wall, 2),
        "score_steps_besides_the_sandbox_s": split,
        "selection_and_metrics_s": selection_s,
        "results": {"task_solves": result["metrics"]["task_solves"]["n"],
                    "task_solves_train_vote": result["metrics"]["task_solves_train_vote"]["n"],
                    "oracle_task_solves": result["metrics"]["oracle_task_solves"]["n"],
                    "pass_at_k_tasks": result["pass_at_k"]["task_solves"],
                    "cost_total": round(result["cost"]["total"], 4)},
    }
    print(f"machine: {machine}")
    print(f"{n} attempts ({len(to_run)} programs, {size_mb:.1f} MB of responses), kinds {counts}")
    print(f"{'':34s}{'wall s':>9s}{'programs/s':>12s}")
    print(f"{'rps-evals score (train_vote)':34s}{score_wall:9.2f}{len(to_run) / score_wall:12.1f}")
    print(f"{'sandbox alone (DockerExecutor)':34s}{sandbox_wall:9.2f}{len(to_run) / sandbox_wall:12.1f}")
    print(f"score / sandbox wall time: {score_wall / sandbox_wall:.2f}x (target <= 1.1x)")
    print(f"score's steps besides the sandbox, each alone (s): {split}; sum {sum(split.values()):.2f} s, "
          f"score - sandbox {score_wall - sandbox_wall:.2f} s")
    print(f"summarize + submission per policy (s, and task_solves): {selection_s}")
    print(f"results: {figures['results']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
