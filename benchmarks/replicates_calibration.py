"""Calibration and power of the method-level test (rps_evals.replicates) by simulation.

Data like the study's: 120 tasks x 2 attempts, a metric near 80%, task effects (logit sd 1.0), a run
(training seed) effect and a task x run effect, both sides on the same tasks. For each setting and
each number of runs per side it prints
  - the false-positive rate at alpha 0.05 when both sides come from the same generator, beside the
    single-run exact McNemar test's (run A1 against run B1, what `compare A B` does): the baseline;
  - the coverage of the 95% interval for a known population difference (new tasks each time);
  - the power for logit shifts of 0.25, 0.5 and 1.0 (their rate differences are printed).
Usage: python benchmarks/replicates_calibration.py [--reps 2000] [--seed 0]
"""

import argparse
import time

import numpy as np

from rps_evals.compare import mcnemar_exact
from rps_evals.replicates import Generator, method_difference

SETTINGS = {"run sd 0.2, task x run sd 0.3": (0.2, 0.3), "run sd 0.3, task x run sd 0.5": (0.3, 0.5)}
RUNS = (2, 3, 4, 8)
SHIFTS = (0.25, 0.5, 1.0)


def simulate(gen: Generator, runs: int, reps: int, rng: np.random.Generator) -> dict[str, float]:
    task_of_unit = gen.task_of_unit()
    truth = {shift: gen.rate_difference(shift) for shift in SHIFTS}
    false_pos = mcnemar = 0
    covered = {shift: 0 for shift in SHIFTS}
    found = {shift: 0 for shift in SHIFTS}
    for _ in range(reps):
        tasks = gen.task_effects(rng)
        a, b = gen.runs(rng, runs, tasks), gen.runs(rng, runs, tasks)
        false_pos += method_difference(a, b, task_of_unit).p_value < 0.05
        mcnemar += mcnemar_exact(int((a[0] * (1 - b[0])).sum()), int(((1 - a[0]) * b[0]).sum())) < 0.05
        for shift in SHIFTS:
            result = method_difference(a, gen.runs(rng, runs, tasks, shift), task_of_unit)
            found[shift] += result.p_value < 0.05
            covered[shift] += result.ci95[0] <= truth[shift] <= result.ci95[1]
    out = {"fpr": false_pos / reps, "mcnemar_fpr": mcnemar / reps}
    for shift in SHIFTS:
        out[f"power {truth[shift]:+.3f}"] = found[shift] / reps
        out[f"coverage {truth[shift]:+.3f}"] = covered[shift] / reps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} simulated comparisons per row; alpha 0.05; 120 tasks x 2 attempts, rate near 0.81")
    for name, (run_sd, task_run_sd) in SETTINGS.items():
        gen = Generator(run_sd=run_sd, task_run_sd=task_run_sd)
        print(f"\n{name}")
        rows = {runs: simulate(gen, runs, args.reps, rng) for runs in RUNS}
        keys = list(rows[RUNS[0]])
        print(f"{'runs/side':>10}" + "".join(f"{key:>18}" for key in keys))
        for runs, row in rows.items():
            print(f"{runs:>10}" + "".join(f"{row[key]:>18.3f}" for key in keys))
        worst_fpr = max(row["fpr"] for row in rows.values())
        worst_cover = min(v for row in rows.values() for k, v in row.items() if k.startswith("coverage"))
        print(f"worst false-positive rate {worst_fpr:.3f} (target <= 0.06; single-run McNemar "
              f"{np.mean([row['mcnemar_fpr'] for row in rows.values()]):.3f}, ratio "
              f"{np.mean([row['mcnemar_fpr'] for row in rows.values()]) / max(worst_fpr, 1e-9):.1f}x); "
              f"worst coverage {worst_cover:.3f} (target >= 0.93)")
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
