"""Time `rps-evals view` on two full runs: 400 ARC-AGI-1 evaluation tasks x 2 attempts each.

Target (issue 12): under 30 s, and a file a browser handles. Printed beside each figure is a
baseline measured in the same run: reading the two run directories (json.loads of every record,
what any report must do at least) for the time, and the size of the runs' own files for the size.
With --browser, also the time headless Chromium takes to load the page and to apply a filter.
Usage: python benchmarks/report_speed.py [--repeat 3] [--browser]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from rps_evals.data import load_dataset
from rps_evals.records import read_run, write_run
from rps_evals.reports.view import load_shown_run, write_report
from rps_evals.attempts import AttemptRecord

PROGRAM = ("Reasoning:\n" + "The pattern repeats. " * 100 + "\n\nPython program:\n```python\nimport numpy as np\n\n"
           "def transform(grid):\n    g = np.array(grid)\n" + "    g = g.copy()\n" * 30 + "    return g.tolist()\n```\n")


def records_for(dataset, variant: int) -> list[AttemptRecord]:
    """Attempt 1 right, attempt 2 a program whose output has its first row wrong; run B (variant 1)
    crashes on every third task instead, so the runs differ."""
    records = []
    for i, task in enumerate(dataset.tasks.values()):
        for attempt in (1, 2):
            if variant == 1 and attempt == 2 and i % 3 == 0:
                records.append(AttemptRecord(task.task_id, attempt, "invalid", "error", [None] * task.num_tests,
                                             [None] * task.num_tests, [False] * task.num_tests, False, stop_reason="stop",
                                             error="Traceback (most recent call last):\n  ...\nIndexError: list index out of range",
                                             completion=PROGRAM))
                continue
            predictions = [[row[:] for row in out] for out in task.test_outputs]
            if attempt == 2:
                for grid in predictions:
                    grid[0] = [(c + 1) % 10 for c in grid[0]]
            records.append(AttemptRecord(task.task_id, attempt, "executed_program", "ok", predictions,
                                         ["program"] * task.num_tests,
                                         [p == want for p, want in zip(predictions, task.test_outputs)],
                                         attempt == 1, stop_reason="stop", completion=PROGRAM))
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time loading it in headless Chromium")
    args = parser.parse_args()
    dataset = load_dataset("arc1:evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [Path(tmp) / "a", Path(tmp) / "b"]
        for variant, run in enumerate(runs):
            write_run(run, dataset, records_for(dataset, variant), 2)
        run_bytes = sum(f.stat().st_size for run in runs for f in run.iterdir())
        out = Path(tmp) / "report.html"
        reads, renders = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for run in runs:
                read_run(run)
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_report([load_shown_run(run) for run in runs], out)
            renders.append(time.perf_counter() - start)
        size = out.stat().st_size
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"two runs of {len(dataset.tasks)} tasks x 2 attempts ({dataset.num_test_outputs} test outputs each)")
        print(f"render: best {min(renders):.2f} s (target < 30 s); baseline, reading the two run directories: "
              f"{min(reads):.2f} s; ratio {min(renders) / min(reads):.1f}x")
        print(f"report: {size / 1e6:.1f} MB; baseline, the two runs' files: {run_bytes / 1e6:.1f} MB; "
              f"ratio {size / run_bytes:.2f}x")
        if args.browser:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                page.goto(out.as_uri(), wait_until="load")
                page.screenshot()
                loaded = time.perf_counter() - start
                start = time.perf_counter()
                page.locator("label[for=f-error]").click()
                page.screenshot()
                filtered = time.perf_counter() - start
                start = time.perf_counter()
                page.goto(Path(runs[0] / "results.json").as_uri(), wait_until="load")
                baseline = time.perf_counter() - start
                browser.close()
            print(f"chromium: load + first screenshot {loaded:.2f} s, filter 'error' + screenshot {filtered:.2f} s; "
                  f"baseline, loading results.json: {baseline:.2f} s")


if __name__ == "__main__":
    main()
