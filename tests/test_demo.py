"""The README's demo, run as written: its one command prints the table the README shows, and
`rps-evals view` of its log draws every task. A README that drifts from the product fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from docker_support import require_image
from rps_evals.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO_TASKS = ["3c9b0459", "25ff71a9", "67a3c6ac", "74dd1130", "a416b8f3", "dae9d2b5", "6150a2bd", "ed36ccf7"]


def _demo_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Run the demo", 1)[1].split("\n## ", 1)[0]


def test_only_the_bundled_demo_selects_its_tasks(tmp_path):
    pytest.importorskip("inspect_ai")
    from rps_evals.inspect_eval.replay import ReplayAPI, demo_responses_path

    demo = ReplayAPI("replay")
    assert demo.default_task_ids("arc1:training") == DEMO_TASKS  # in the file's order
    assert demo.default_task_ids("arc1:evaluation") is None
    other = tmp_path / "answers.jsonl"
    other.write_text(demo_responses_path().read_text(encoding="utf-8"), encoding="utf-8")
    assert ReplayAPI("replay", responses=str(other)).default_task_ids("arc1:training") is None


@pytest.mark.docker
def test_readme_demo_prints_what_the_readme_shows(tmp_path):
    require_image()
    section = _demo_section()
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.DOTALL)
    commands = [body.strip() for lang, body in blocks if lang == "bash"]
    assert len(commands) == 1, "the README's demo is one command"
    command = commands[0].split()
    assert command[:2] == ["inspect", "eval"] and "task_ids" not in commands[0], "no id list in the demo"
    printed = [body for lang, body in blocks if not lang and body.startswith("arc1:training")]
    assert len(printed) == 1, "the README shows what the demo prints"

    inspect_cli = [sys.executable, "-m", "inspect_ai"] + command[1:]
    # from a directory of the user's own, not the checkout: the demo needs only the installed package
    done = subprocess.run(inspect_cli + ["--log-dir", str(tmp_path / "logs")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout[done.stdout.index("arc1:training  (k=2"):].strip()
    assert table == printed[0].strip(), "README.md 'Run the demo' shows another table than the demo prints"

    (log,) = (tmp_path / "logs").glob("*.eval")
    out = tmp_path / "demo.html"
    assert main(["view", str(log), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count('<section class="task') == 8  # the demo's 8 tasks, each drawn
    assert (ROOT / "docs" / "view_demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the README's picture
