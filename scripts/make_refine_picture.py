"""Make docs/refine_view.png: `rps-evals view` of a repaired attempt, from a refine=2 Inspect run.

A two-line recording of one ARC-AGI-1 training task (a416b8f3: each row is repeated to its right)
is replayed with `rps/replay` and `-T refine=2`: round 0 crashes, round 1 (after the error's
feedback) stacks the grid the wrong way, round 2 (after the wrong-shape feedback) is right. The
run is reported, viewed, and the attempt screenshot in headless Chromium (Debian's `chromium`,
driven by Playwright). Usage: python scripts/make_refine_picture.py [OUT.png]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "a416b8f3"
ROUNDS = [
    "Reasoning:\nThe output is the input twice, side by side.\n\nPython program:\n```python\nimport numpy as np\n\n"
    "def transform(grid):\n    return np.hstack(grid, grid).tolist()\n```",
    "Reasoning:\nhstack takes one sequence; put the two copies together.\n\nPython program:\n```python\n"
    "def transform(grid):\n    return grid + grid\n```",
    "Reasoning:\nThe copies go side by side, not one above the other: repeat each row.\n\nPython program:\n"
    "```python\ndef transform(grid):\n    return [row + row for row in grid]\n```",
]


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines = [{"task_id": TASK, "attempt": 1, "round": r, "completion": text, "stop_reason": "stop",
                  "output_tokens": 60 + 10 * r} for r, text in enumerate(ROUNDS)]
        lines.append({"task_id": TASK, "attempt": 2, "completion": ROUNDS[2], "stop_reason": "stop", "output_tokens": 70})
        (tmp / "rounds.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        subprocess.run(["inspect", "eval", "rps_evals/arc1", "--model", "rps/replay", "-M",
                        f"responses={tmp / 'rounds.jsonl'}", "-T", "split=training", "-T", f"task_ids={TASK}",
                        "-T", "refine=2", "-T", "sandbox=local", "--log-dir", str(tmp / "logs"), "--display", "none"],
                       check=True, cwd=ROOT)
        (log,) = (tmp / "logs").glob("*.eval")
        subprocess.run(["rps-evals", "report", str(log), "--out", str(tmp / "run")], check=True, cwd=ROOT)
        subprocess.run(["rps-evals", "view", str(tmp / "run"), "--out", str(tmp / "view.html")], check=True, cwd=ROOT)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto((tmp / "view.html").as_uri())
            page.eval_on_selector_all(".rounds details", "els => els.forEach(e => e.open = true)")
            page.locator(".attempt").first.screenshot(path=str(out))
            browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "refine_view.png")
