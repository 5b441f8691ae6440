"""Does the workflow's gate flap under sampling noise? A seeded simulation (docs/ci.md).

One simulated model answers the pinned subset (30 ARC-AGI-2 evaluation tasks, k=2) at temperature
> 0: each task has its own chance that an attempt is a program that runs, a JSON answer or
nothing usable, that a program is right, and a small chance of an API error (tasks differ a lot,
as real ones do). A "run" draws every attempt afresh, as one sampling seed does. The baseline
and the candidate are each `seeds` such runs; the gate is the command of the workflow's gate step
(`.github/workflows/arc-regression.yml`: its flags are read from the YAML), beside the gate the
workflow had before (one run a side, fixed drops, exact McNemar at alpha 0.05).

  - identical candidate: the same model on both sides; every failure is a false alarm;
  - regressed candidate: programs that run become crashes with probability `drop` (so
    attempts_from_executed_programs falls by about drop x 67 points).

Usage: python benchmarks/regression/gate_noise.py [--repeats 300] [--seeds 3] [--drop 0.15] [--alpha A]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ROOT / "benchmarks" / "regression" / "arc2_eval_subset.txt"
MODEL_SEED = 7  # the simulated model's task profile


def subset():
    from rps_evals.data import load_dataset

    ids = [line.strip() for line in SUBSET.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return load_dataset("arc2:evaluation").select(ids)


def model_profile(n_tasks: int, seed: int = MODEL_SEED) -> dict[str, np.ndarray]:
    """Per task: P(program that runs), P(JSON answer | not), P(right | answer), P(API error)."""
    rng = np.random.default_rng(seed)
    return {"runs": rng.beta(2.0, 1.0, n_tasks), "json": rng.beta(1.0, 2.0, n_tasks),
            "right": np.where(rng.random(n_tasks) < 0.3, rng.beta(2.0, 2.0, n_tasks), 0.0),
            "api_error": np.full(n_tasks, 0.01)}


def draw_run(dataset, profile, rng: np.random.Generator, drop: float = 0.0, k: int = 2) -> list:
    """One sampled run's attempt records (what scoring would have made of the answers)."""
    from rps_evals.attempts import AttemptRecord

    records = []
    for i, task in enumerate(dataset.tasks.values()):
        m = task.num_tests
        for attempt in range(1, k + 1):
            u = rng.random(4)
            if u[0] < profile["api_error"][i]:
                records.append(AttemptRecord(task.task_id, attempt, "invalid", "no_program", [None] * m, [None] * m,
                                             [False] * m, False, api_error="simulated API error", train_accuracy=0.0))
                continue
            right = bool(u[2] < profile["right"][i])
            grids = [out if right else [[0]] for out in task.test_outputs]
            if u[1] < profile["runs"][i] * (1 - drop):
                records.append(AttemptRecord(task.task_id, attempt, "executed_program", "ok", grids, ["program"] * m,
                                             [right] * m, False, stop_reason="stop", train_accuracy=0.0))
            elif u[1] < profile["runs"][i]:  # the regression: this program now crashes
                records.append(AttemptRecord(task.task_id, attempt, "invalid", "error", [None] * m, [None] * m,
                                             [False] * m, False, stop_reason="stop", error="IndexError",
                                             train_accuracy=0.0))
            elif u[3] < profile["json"][i]:
                records.append(AttemptRecord(task.task_id, attempt, "json_fallback", "no_program", grids, ["json"] * m,
                                             [right] * m, False, stop_reason="stop", train_accuracy=0.0))
            else:
                records.append(AttemptRecord(task.task_id, attempt, "invalid", "no_program", [None] * m, [None] * m,
                                             [False] * m, False, stop_reason="stop", train_accuracy=0.0))
    return records


def write_side(directory: Path, dataset, profile, rng, seeds: int, drop: float = 0.0) -> None:
    """`seeds` runs as the workflow lays them out: DIR/seed-1, DIR/seed-2, ..."""
    from rps_evals.provenance import build_provenance, generation_settings
    from rps_evals.records import write_run

    for seed in range(1, seeds + 1):
        sandbox = {"backend": "docker", "image": None, "python": "3.11.2", "numpy": "1.24.2"}
        provenance = build_provenance(dataset, 2, "allowed", 2.0, sandbox, "openai-api/vllm/candidate",
                                      generation_settings(temperature=0.7, top_p=0.8, top_k=20, seed=seed, num_choices=2))
        write_run(directory / f"seed-{seed}", dataset, draw_run(dataset, profile, rng, drop), 2, provenance=provenance)


def gate_once(gate_argv: list[str], baseline: Path, candidate: Path, dataset, profile, rng, seeds: int,
              drop: float = 0.0) -> tuple[int, str]:
    """Fresh baseline and candidate runs at the paths `gate_argv` names (written over the last ones);
    the gate's exit code and output."""
    from rps_evals.cli import main

    write_side(baseline, dataset, profile, rng, seeds)
    write_side(candidate, dataset, profile, rng, seeds, drop)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(gate_argv)
    return code, out.getvalue()


def workflow_gate_flags() -> list[str]:
    """The flags of the workflow's `rps-evals gate` command (everything after the two sides' runs)."""
    import shlex

    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "arc-regression.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["regression"]["steps"] if s.get("name") == "Gate against the baseline"]
    script = step["run"].replace("\\\n", " ")
    (line,) = [line for line in script.splitlines() if line.strip().startswith("rps-evals gate ")]
    tokens = shlex.split(line)[2:]
    flags, i = [], 0
    while i < len(tokens) and tokens[i] not in ("||", "&&", ";", "|"):
        if tokens[i] in ("--baseline", "--candidate"):
            i += 2
        else:
            flags.append(tokens[i])
            i += 1
    return flags


def workflow_gate_argv(seeds: int, baseline: Path, candidate: Path) -> list[str]:
    """The workflow's gate command for `seeds` runs a side, each side one model's sampling passes."""
    runs = lambda d: ",".join(str(d / f"seed-{s}") for s in range(1, seeds + 1))  # noqa: E731
    return ["gate", "--baseline", runs(baseline), "--candidate", runs(candidate), *workflow_gate_flags()]


# The gate this workflow had before: one run a side, fixed drops, exact McNemar at alpha 0.05.
OLD_GATE_FLAGS = ["--alpha", "0.05", "--max-drop", "attempts_from_executed_programs=0.05",
                  "--max-drop", "tasks_all_attempts_executed=0.05", "--max-drop", "test_output_exact=0.02",
                  "--max-drop", "invalid_attempts=0.05", "--max-drop", "api_errors=0.0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--drop", type=float, default=0.15)
    parser.add_argument("--alpha", default=None, help="try another --alpha than the workflow's")
    args = parser.parse_args()
    dataset = subset()
    profile = model_profile(len(dataset.tasks))
    work = Path(tempfile.mkdtemp(prefix="gate-noise-"))
    base, cand = work / "baseline", work / "candidate"
    alpha = ["--alpha", args.alpha] if args.alpha else []  # the last --alpha wins
    designs = [(f"workflow gate, {args.seeds} seeds a side", workflow_gate_argv(args.seeds, base, cand) + alpha,
                args.seeds),
               ("old gate, 1 run a side", ["gate", str(cand / "seed-1"), "--baseline", str(base / "seed-1"),
                                           *OLD_GATE_FLAGS], 1)]
    print(f"{len(dataset.tasks)} tasks, k=2; the model's executed-program rate {profile['runs'].mean():.3f}; "
          f"workflow gate flags: {' '.join(workflow_gate_flags())}")
    for name, argv, seeds in designs:
        for label, drop in (("identical candidate", 0.0), (f"regressed (drop {args.drop:g})", args.drop)):
            rng = np.random.default_rng(0)
            started = time.perf_counter()
            failed = sum(gate_once(argv, base, cand, dataset, profile, rng, seeds, drop)[0] == 1
                         for _ in range(args.repeats))
            print(f"{name:<32}{label:<26} failed {failed:>4}/{args.repeats} ({100 * failed / args.repeats:5.1f}%)"
                  f"  [{time.perf_counter() - started:.1f} s]")
    shutil.rmtree(work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
