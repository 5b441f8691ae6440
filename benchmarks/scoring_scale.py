"""Scoring cost at K = 64 and K = 256 samples per task (ARC-AGI-2 evaluation, 120 tasks), the sandbox
left out: is the host's own work per attempt the same at 4x the attempts, and how much memory does it
take?

The responses are k_samples.py's realistic answers (reasoning, a program from tests/sandbox_programs.py,
JSON predictions; some JSON-only, some hard-coded literals). Each K runs in a fresh process doing what
`rps-evals score` does (read and check the file, parse, combine each attempt's execution into its
record, every metric, write the run directory) with a stand-in for the sandbox that answers at once,
as the runner would answer (outputs decoded from JSON): 92% of programs return grids, 6% crash, 2%
return floats (invalid). Printed per K: the time per attempt outside the sandbox and the process's
peak memory (ru_maxrss), then the K = 256 / K = 64 ratio (the goal: within 1.2), of wall time and of
CPU time (which a shared machine's load disturbs less).

Usage: python benchmarks/scoring_scale.py [--ks 64 256] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r"""
import hashlib, json, resource, sys, time
from rps_evals.data import load_dataset
from rps_evals.execution import Execution
from rps_evals.records import read_responses, write_run
from rps_evals.scoring import score_attempts

responses_file, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])


class AnswersAtOnce:
    # the sandbox's answers without the sandbox: what the runner would send back, decoded from JSON
    waited = 0.0
    waited_cpu = 0.0

    def run(self, programs, progress=None):
        start, start_cpu = time.perf_counter(), time.process_time()
        answers = []
        for p in programs:
            inputs = list(p.test_inputs) + list(p.train_inputs)
            if p.source is None:
                answers.append(Execution("no_program", [None] * len(p.test_inputs), [None] * len(p.train_inputs)))
                continue
            h = hashlib.blake2b(p.source.encode(), digest_size=2).digest()[0] % 50
            if h < 3:
                answers.append(Execution("error", [None] * len(p.test_inputs), [None] * len(p.train_inputs),
                                         "Traceback (most recent call last): ...\nIndexError: list index out of range"))
                continue
            outputs = json.loads(json.dumps([[[float(c) for c in row] for row in g] if h == 3 else g for g in inputs]))
            answers.append(Execution("ok", outputs[:len(p.test_inputs)], outputs[len(p.test_inputs):]))
        AnswersAtOnce.waited += time.perf_counter() - start
        AnswersAtOnce.waited_cpu += time.process_time() - start_cpu
        return answers


start, start_cpu = time.perf_counter(), time.process_time()
dataset = load_dataset("arc2:evaluation")
responses = read_responses(responses_file, dataset, k)
records = score_attempts(dataset, responses, AnswersAtOnce(), k)
result = write_run(out, dataset, records, k)
total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
print(json.dumps({"attempts": len(records), "seconds": total - AnswersAtOnce.waited,
                  "cpu_seconds": total_cpu - AnswersAtOnce.waited_cpu,
                  "stand_in_seconds": AnswersAtOnce.waited,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "invalid": result["metrics"]["invalid_attempts"]["n"],
                  "hardcoded": result["metrics"]["hardcoded_output_programs"]["n"]}))
"""


def main() -> None:
    from k_samples import write_responses

    from rps_evals.data import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--keep", type=Path, help="keep the responses files and run directories here")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="scoring_scale."))
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("arc2:evaluation")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    figures = {}
    for k in args.ks:
        responses = workdir / f"responses_k{k}.jsonl"
        write_responses(responses, dataset, k, seed=0)
        # cwd: `python -c` puts the working directory first on sys.path; the child must import the
        # same rps_evals as this script (PYTHONPATH or the installed one), not a checkout it runs in
        done = subprocess.run([sys.executable, "-c", CHILD, str(responses), str(workdir / f"run_k{k}"), str(k)],
                              capture_output=True, text=True, cwd=workdir)
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        figures[k] = json.loads(done.stdout.strip().splitlines()[-1])
        f = figures[k]
        run_mb = sum(p.stat().st_size for p in (workdir / f"run_k{k}").iterdir()) / 1e6
        print(f"K = {k:>3}: {f['attempts']:>6} attempts, responses {responses.stat().st_size / 1e6:6.1f} MB, "
              f"run directory {run_mb:6.1f} MB | outside the sandbox {f['seconds']:6.1f} s = "
              f"{1000 * f['seconds'] / f['attempts']:.2f} ms per attempt (CPU {1000 * f['cpu_seconds'] / f['attempts']:.2f} ms) "
              f"| peak memory {f['peak_mb']:,.0f} MB "
              f"| invalid {f['invalid']}, hard-coded {f['hardcoded']}")
    if len(args.ks) >= 2:
        small, large = min(args.ks), max(args.ks)
        per = {k: figures[k]["seconds"] / figures[k]["attempts"] for k in (small, large)}
        cpu = {k: figures[k]["cpu_seconds"] / figures[k]["attempts"] for k in (small, large)}
        print(f"per-attempt time K = {large} / K = {small}: wall {per[large] / per[small]:.2f}, CPU "
              f"{cpu[large] / cpu[small]:.2f} (goal: at most 1.2; wall time follows the other jobs' load); "
              f"peak memory ratio {figures[large]['peak_mb'] / figures[small]['peak_mb']:.2f} "
              f"for {large // small}x the attempts")


if __name__ == "__main__":
    main()
