"""The HTML report of a K = 64 and a K = 256 run (120 ARC-AGI-2 tasks): render time, file size and the
time headless Chromium takes to load it and paint the first screen, per run, with the run's own
files (size) and loading its results.json in the same browser (time) as baselines.

The runs are the ones `benchmarks/scoring_scale.py --keep DIR` writes (DIR/run_k64, DIR/run_k256).
Needs Debian's chromium and the playwright package (docs/report.md).
Usage: python benchmarks/report_scale.py DIR/run_k64 DIR/run_k256
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


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    out_dir = Path(tempfile.mkdtemp(prefix="report_scale."))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for run in args.runs:
            results = json.loads((run / "results.json").read_text())
            attempts = results["num_tasks"] * results["attempts_per_task"]
            html = out_dir / f"{run.name}.html"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rps_evals", "view", str(run), "--out", str(html)],
                           check=True, capture_output=True)
            render = time.perf_counter() - start
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            start = time.perf_counter()
            page.goto((run / "results.json").resolve().as_uri(), wait_until="load")
            baseline = time.perf_counter() - start
            start = time.perf_counter()
            page.goto(html.as_uri(), wait_until="load", timeout=1_800_000)
            page.screenshot()
            loaded = time.perf_counter() - start
            sections = page.locator("section").count()
            page.close()
            own = sum(f.stat().st_size for f in run.iterdir())
            print(f"k = {results['attempts_per_task']:>3} ({attempts} attempts, {sections} task sections): "
                  f"render {render:.1f} s; report {html.stat().st_size / 1e6:.1f} MB "
                  f"(the run's own files {own / 1e6:.1f} MB, ratio {html.stat().st_size / own:.2f}); "
                  f"chromium load + first screenshot {loaded:.1f} s (baseline, results.json: {baseline:.2f} s); "
                  f"{1000 * loaded / attempts:.2f} ms per attempt")
        browser.close()


if __name__ == "__main__":
    main()
