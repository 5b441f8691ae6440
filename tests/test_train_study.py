"""`rps-train study`: the plan it prints, what it skips when resumed, and the tiny study end to end.

The end-to-end test runs configs/study_tiny.yaml for real (tiny random Qwen3, Inspect's hf/
provider, the Docker sandbox, TRL on CPU) with the network unreachable (tests/network_guard.py),
kills it between stages and resumes it. Cost on the 2-core development machine: 267 s wall (146 s
CPU) on a quiet machine, 434 s while shared with other jobs, 747 s at load 12 to 18 (marked slow).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rps_train import study

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "study_tiny.yaml"
QWEN3_8B = ROOT / "configs" / "study_qwen3_8b.yaml"


def tiny_config_text() -> str:
    """configs/study_tiny.yaml with its relative paths made absolute, to be written elsewhere."""
    return (TINY.read_text().replace("../rps_train", str(ROOT / "rps_train"))
            .replace("config: tiny_cpu.yaml", f"config: {ROOT}/configs/tiny_cpu.yaml"))


def test_dry_run_prints_the_complete_published_study(tmp_path, capsys):
    out = tmp_path / "s"
    assert study.main(["--config", str(QWEN3_8B), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not out.exists()  # nothing run, nothing written
    steps = [line.split()[2].rstrip(":") for line in printed.splitlines() if line.startswith("# step ")]
    assert steps == ["rejected", "data", "rps", "eps", "evaluate", "compare"]
    for piece in [
        # 1. the small model's answers on both training sets, through our Inspect task
        "inspect eval rps_evals/arc1 --model vllm/Qwen/Qwen3-0.6B -M max_model_len=40960 -M reasoning_parser=qwen3 "
        "-T split=training -T attempts=2 -T sandbox=docker",
        "inspect eval rps_evals/arc2 --model vllm/Qwen/Qwen3-0.6B -M max_model_len=40960 -M reasoning_parser=qwen3 "
        "-T split=training -T attempts=2 -T sandbox=docker",
        # 2. the published quotas, evaluation data excluded (no --allow-eval-overlap)
        "rps-train data --traces Trelis/arc-agi-2-reasoning-5 --easy_tasks 400 --hard_pairs 600 --hard_tasks 250",
        f"--rejected '{out}/logs/rejected-arc1-training/<log>.eval' '{out}/logs/rejected-arc2-training/<log>.eval'",
        # 3./4. RPS and EPS, EPS from RPS's stage-1 adapter
        f"--output_dir {out}/rps --schedule_name rps --stage2_lr_ratio 0.1",
        f"--output_dir {out}/eps --schedule_name eps --stage2_lr_ratio 1.0 --stage1_adapter {out}/rps/stage1",
        # 5. one vLLM server with both adapters; base, rps and eps evaluated through it
        f"--max-loras 2 --lora-modules rps={out}/rps/stage2 eps={out}/eps/stage2 --reasoning-parser qwen3 &",
        "inspect eval rps_evals/arc2 --model openai-api/vllm/Qwen/Qwen3-8B -T split=evaluation -T attempts=2",
        "inspect eval rps_evals/arc1 --model openai-api/vllm/eps -T split=evaluation",
        f"rps-evals report '{out}/logs/eval-rps-arc2-evaluation/<log>.eval' --out {out}/eval/rps-arc2-evaluation",
        # 6. the comparisons
        f"rps-evals compare {out}/eval/eps-arc2-evaluation {out}/eval/rps-arc2-evaluation",
        f"rps-evals compare {out}/eval/rps-arc1-evaluation {out}/eval/base-arc1-evaluation",
    ]:
        assert piece in printed, piece
    assert "--allow-eval-overlap" not in printed
    assert printed.count("rps-evals compare ") == 6 and printed.count("rps-evals report ") == 6


def test_bad_configs_are_refused_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_config_text().replace('["66e6c45b", "00576224", "be03b35f"]', "[66e6c45b, 00576224]"))
    assert study.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "task_ids must be quoted strings" in capsys.readouterr().err
    bad.write_text("base_model: x\n")
    assert study.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing key 'rejected'" in capsys.readouterr().err
    assert study.main(["--config", str(TINY), "--out", str(tmp_path / "o"), "--until", "nope"]) == 2
    assert "--until must be one of model, rejected, data, rps, eps, evaluate, compare" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_steps_run_offline_and_without_the_callers_vllm_server(tmp_path, monkeypatch, capsys):
    """A study made of paths needs no Hub: its steps get the offline switches. No step inherits the
    caller's VLLM_BASE_URL (Inspect's vllm/ provider would silently use that server)."""
    for name in study.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLLM_BASE_URL", "http://elsewhere:8000/v1")
    envs: dict[str, dict] = {}

    def fake_run_step(step, env, log):
        envs[step.name] = env
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.name) if path.suffix else path.mkdir(exist_ok=True)

    monkeypatch.setattr(study, "run_step", fake_run_step)
    monkeypatch.setattr(study, "_summary", lambda out, log: {})
    study.run(str(TINY), str(tmp_path / "s"), log=lambda *_: None)
    assert list(envs) == list(study.STEPS)
    for env in envs.values():
        assert "VLLM_BASE_URL" not in env
        assert {k: env.get(k) for k in study.OFFLINE_ENV} == study.OFFLINE_ENV
    # the published study downloads its models and traces: no offline switches, still no VLLM_BASE_URL
    published = study._environment(study.load_config(str(QWEN3_8B), tmp_path / "p"))
    assert "VLLM_BASE_URL" not in published and "HF_HUB_OFFLINE" not in published
    assert study.main(["--config", str(TINY), "--out", str(tmp_path / "d"), "--dry-run"]) == 0
    assert ("# steps run without the caller's VLLM_BASE_URL and with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
            "TRANSFORMERS_OFFLINE=1") in capsys.readouterr().out


def test_resume_skips_what_is_up_to_date(tmp_path, monkeypatch):
    """Each step's key is its commands plus the content of its inputs: a second run skips everything;
    a changed data setting re-runs data and what follows it, never the steps before."""
    ran: list[str] = []

    def fake_run_step(step, env, log):
        ran.append(step.name)
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix:
                path.write_text(f"{step.name} {len(ran)}")
            else:
                path.mkdir(exist_ok=True)
                (path / "part").write_text(f"{step.name} {len(ran)}")

    monkeypatch.setattr(study, "run_step", fake_run_step)
    monkeypatch.setattr(study, "_summary", lambda out, log: {})
    out = tmp_path / "s"
    study.run(str(TINY), str(out), log=lambda *_: None)
    assert ran == list(study.STEPS)
    ran.clear()
    study.run(str(TINY), str(out), log=lambda *_: None)
    assert ran == []
    changed = tmp_path / "changed.yaml"
    changed.write_text(tiny_config_text().replace("hard_pairs: 4", "hard_pairs: 5"))
    study.run(str(changed), str(out), log=lambda *_: None)
    assert ran == ["data", "rps", "eps", "evaluate", "compare"]
    ran.clear()
    (out / "eps" / "manifest.json").unlink()  # an output gone: that step and the later ones run again
    study.run(str(changed), str(out), log=lambda *_: None)
    assert ran == ["eps", "evaluate", "compare"]


@pytest.mark.slow
@pytest.mark.docker
def test_tiny_study_end_to_end_killed_and_resumed(tmp_path):
    """configs/study_tiny.yaml for real: killed once the data exists, then resumed to the comparison."""
    pytest.importorskip("trl")
    pytest.importorskip("inspect_ai")
    from docker_support import require_image

    require_image()
    from network_guard import guarded_env

    out = tmp_path / "study"
    # the network unreachable, no offline switches from the caller (the study sets its own), and a
    # VLLM_BASE_URL that no step may use
    env = {k: v for k, v in os.environ.items() if k not in study.OFFLINE_ENV}
    env, requests = guarded_env({**env, "VLLM_BASE_URL": "http://127.0.0.1:9/v1"}, tmp_path / "guard")
    argv = [sys.executable, "-m", "rps_train", "study", "--config", str(TINY), "--out", str(out)]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    manifest = out / "study.json"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and first.poll() is None:
            if manifest.exists() and "data" in json.loads(manifest.read_text()).get("steps", {}):
                break
            time.sleep(1)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # the study and the training it started
        first.wait()
    before = json.loads(manifest.read_text())["steps"]
    assert list(before) == ["model", "rejected", "data"], "killed before the training stages"

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for name in ("model", "rejected", "data"):
        assert f"== {name}: up to date, skipped" in second.stdout
    after = json.loads(manifest.read_text())["steps"]
    assert list(after) == list(study.STEPS)
    assert all(after[name] == before[name] for name in before)  # the same outputs, untouched

    data = json.loads((out / "data" / "manifest.json").read_text())
    assert data["eval_overlap_tasks"] == 0
    assert data["stages"]["stage1"]["pairs"] == 6 and data["stages"]["stage2"]["pairs"] == 4
    for side in ("chosen", "rejected"):
        assert data["lengths"][side]["empty_reasoning"] == 0 and data["lengths"][side]["reasoning_chars"]["p50"] > 0
    for name in ("rps", "eps"):
        stage2 = json.loads((out / name / "stage2" / "rps_stage.json").read_text())
        assert stage2["dropped_pairs"] == 0 and stage2["train_pairs"] == 3  # 4 pairs, 1 held out
    rps_lr = json.loads((out / "rps" / "manifest.json").read_text())["stage2_learning_rate"]
    eps = json.loads((out / "eps" / "manifest.json").read_text())
    assert eps["stage2_learning_rate"] == pytest.approx(10 * rps_lr)
    assert eps["stages"]["stage1"]["adapter_sha256"] == json.loads(
        (out / "rps" / "stage1" / "rps_stage.json").read_text())["adapter_sha256"]

    comparison = json.loads((out / "comparison.json").read_text())["comparisons"]
    assert set(comparison) == {"eps_vs_rps", "rps_vs_base", "eps_vs_base"}
    for pair in comparison.values():
        result = pair["arc1-evaluation"]
        assert result["dataset"] == "arc1:evaluation"
    for name in ("base", "rps", "eps"):
        results = json.loads((out / "eval" / f"{name}-arc1-evaluation" / "results.json").read_text())
        assert results["metrics"]["api_errors"] == {"n": 0, "of": 3, "rate": 0.0}
    assert "study finished" in second.stdout
    assert not requests.exists(), requests.read_text()[:2000]  # no request tried to leave the machine
    summary = json.loads(manifest.read_text())["summary"]
    assert summary["eval_overlap_tasks"] == 0 and summary["empty_reasoning"] == {"chosen": 0, "rejected": 0}
    assert summary["length_warnings"] == []  # 64 new tokens keep the rejected side within 2x of the chosen
