"""docs/lm-eval.md's CPU recipe, run as written (a tiny local model, lm-eval's hf backend, the
Docker sandbox, `rps-evals report`) in a scratch folder that has the checkout's `tasks`."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def recipe() -> list[str]:
    text = (ROOT / "docs" / "lm-eval.md").read_text()
    section = text.split("## On a CPU first", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_the_recipe_is_small_and_offline():
    lines = recipe()
    assert [line.split()[0] for line in lines] == ["rps-train", "HF_HUB_OFFLINE=1", "rps-evals"]
    assert "--limit 2" in lines[1] and "max_gen_toks=32" in lines[1] and "--model hf" in lines[1]


@pytest.mark.slow
@pytest.mark.docker
def test_the_cpu_recipe_runs(tmp_path):
    pytest.importorskip("lm_eval")
    pytest.importorskip("transformers")
    from docker_support import require_image

    require_image()
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE") and k != "RPS_SANDBOX"}
    for line in recipe():
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, (line, done.stderr[-3000:])
    result = json.loads((tmp_path / "runs" / "tiny-arc1" / "results.json").read_text())
    assert (result["dataset"], result["num_tasks"], result["attempts_per_task"]) == ("arc1:evaluation", 2, 2)
    assert result["metrics"]["invalid_attempts"]["of"] == 4
    assert result["provenance"]["sandbox"]["backend"] == "docker"
