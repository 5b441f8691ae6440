"""`rps-train study`: the plan it prints, what it skips when resumed, and the tiny study end to end.

The end-to-end test runs configs/study_tiny.yaml for real (tiny random Qwen3, Inspect's hf/
provider, the Docker sandbox, TRL on CPU) with the network unreachable (tests/network_guard.py),
kills it between stages and resumes it. Cost on the 2-core development machine with one seed per
arm: 267 s wall (146 s CPU) on a quiet machine, 434 s while shared with other jobs, 747 s at load 12
to 18; with the 2 training seeds per arm of issue 17: 885 s at load average 12 to 14, where the
one-seed steps of the same run took about 1.4x less (marked slow).
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
    # replicates: 4 training seeds (the design rps-evals plan recommends), stage 1 per seed in rps-s<seed>
    assert steps == ["rejected", "data", *[f"{arm}-s{seed}" for seed in range(4) for arm in ("rps", "eps")],
                     "evaluate", "compare"]
    for piece in [
        # 1. the small model's answers on both training sets, through our Inspect task
        "inspect eval rps_evals/arc1 --model vllm/Qwen/Qwen3-0.6B -M max_model_len=40960 -M reasoning_parser=qwen3 "
        "-T split=training -T attempts=2 -T sandbox=docker",
        "inspect eval rps_evals/arc2 --model vllm/Qwen/Qwen3-0.6B -M max_model_len=40960 -M reasoning_parser=qwen3 "
        "-T split=training -T attempts=2 -T sandbox=docker",
        # 2. the published quotas, evaluation data excluded (no --allow-eval-overlap)
        "rps-train data --traces Trelis/arc-agi-2-reasoning-5 --easy_tasks 400 --hard_pairs 600 --hard_tasks 250",
        f"--rejected '{out}/logs/rejected-arc1-training/<log>.eval' '{out}/logs/rejected-arc2-training/<log>.eval'",
        # 3./4. RPS and EPS per training seed, EPS from RPS's stage-1 adapter of the same seed
        f"--output_dir {out}/rps-s0 --schedule_name rps --stage2_lr_ratio 0.1 --seed 0\n",
        f"--output_dir {out}/eps-s3 --schedule_name eps --stage2_lr_ratio 1.0 --seed 3 --stage1_adapter {out}/rps-s3/stage1",
        # 5. one vLLM server with every adapter; base, rps and eps evaluated through it, sampling seed 0
        f"--max-loras 8 --lora-modules rps-s0={out}/rps-s0/stage2 eps-s0={out}/eps-s0/stage2 rps-s1=",
        "inspect eval rps_evals/arc2 --model openai-api/vllm/Qwen/Qwen3-8B -T split=evaluation -T attempts=2",
        "inspect eval rps_evals/arc1 --model openai-api/vllm/eps-s2 -T split=evaluation",
        f"--seed 0 --log-dir {out}/logs/eval-eps-s2-p0-arc1-evaluation",
        f"rps-evals report '{out}/logs/eval-rps-s1-p0-arc2-evaluation/<log>.eval' --out {out}/eval/rps-s1-p0-arc2-evaluation",
        # 6. the comparisons: "X vs Y" is `compare Y... --vs X...`, the difference X - Y
        f"rps-evals compare {out}/eval/eps-s0-p0-arc2-evaluation {out}/eval/eps-s1-p0-arc2-evaluation "
        f"{out}/eval/eps-s2-p0-arc2-evaluation {out}/eval/eps-s3-p0-arc2-evaluation --vs "
        f"{out}/eval/rps-s0-p0-arc2-evaluation {out}/eval/rps-s1-p0-arc2-evaluation",
        f"rps-evals compare {out}/eval/base-p0-arc1-evaluation --vs {out}/eval/rps-s0-p0-arc1-evaluation",
    ]:
        assert piece in printed, piece
    assert "--allow-eval-overlap" not in printed
    assert printed.count("rps-evals compare ") == 6 and printed.count("rps-evals report ") == 2 * (1 + 8)


def test_bad_configs_are_refused_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_config_text().replace('["66e6c45b", "00576224", "be03b35f"]', "[66e6c45b, 00576224]"))
    assert study.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "task_ids must be quoted strings" in capsys.readouterr().err
    bad.write_text("base_model: x\n")
    assert study.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing key 'rejected'" in capsys.readouterr().err
    assert study.main(["--config", str(TINY), "--out", str(tmp_path / "o"), "--until", "nope"]) == 2
    assert ("--until must be one of model, rejected, data, rps-s0, eps-s0, rps-s1, eps-s1, evaluate, compare"
            in capsys.readouterr().err)
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
    assert {"model", "rejected", "data", "evaluate", "compare"} <= set(envs)  # and the training steps
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
    per_seed = ["rps-s0", "eps-s0", "rps-s1", "eps-s1"]  # two training seeds
    assert ran == ["model", "rejected", "data", *per_seed, "evaluate", "compare"]
    ran.clear()
    study.run(str(TINY), str(out), log=lambda *_: None)
    assert ran == []
    changed = tmp_path / "changed.yaml"
    changed.write_text(tiny_config_text().replace("hard_pairs: 4", "hard_pairs: 5"))
    study.run(str(changed), str(out), log=lambda *_: None)
    assert ran == ["data", *per_seed, "evaluate", "compare"]
    ran.clear()
    (out / "eps-s1" / "manifest.json").unlink()  # an output gone: that step and the later ones run again
    study.run(str(changed), str(out), log=lambda *_: None)
    assert ran == ["eps-s1", "evaluate", "compare"]


def test_compare_step_writes_method_level_results_and_plain_verdicts(tmp_path):
    """The compare step on made-up evaluation runs (2 training seeds per arm, the tiny design): every
    comparison is "X vs Y" with the difference X - Y, method level, and the last lines say so."""
    import numpy as np
    from test_replicates import write_generated_run

    from rps_evals.cli import main as rps_evals_main
    from rps_evals.replicates import Generator

    out = tmp_path / "s"
    config = study.load_config(TINY, out)
    step = study.plan(config, out)[-1]
    gen = Generator(tasks=60, base_logit=0.4)
    rng = np.random.default_rng(5)
    tasks = gen.task_effects(rng)
    shift = {"base": 0.0, "eps": 0.0, "rps": 1.55}  # rps 25 points above; eps like base
    for arm in ("base", "rps", "eps"):
        for replicate in study.eval_runs(config, out, arm, "arc1-evaluation"):
            for run_dir in replicate:
                write_generated_run(run_dir, gen.runs(rng, 1, tasks, shift[arm])[0])
    for argv in step.commands:
        assert argv[:2] == ["rps-evals", "compare"]
        assert rps_evals_main(argv[1:]) == 0
    step.finish()
    combined = json.loads((out / "comparison.json").read_text())
    assert list(combined["comparisons"]) == ["rps_vs_eps", "rps_vs_base", "eps_vs_base"]
    rps_vs_eps = combined["comparisons"]["rps_vs_eps"]["arc1-evaluation"]
    row = rps_vs_eps["metrics"][study.PRIMARY]
    assert row["level"] == "method" and len(row["a_runs"]) == len(row["b_runs"]) == 2 and row["diff"] > 0.15
    assert rps_vs_eps["runs"]["b"] == [[str(out / "eval" / f"rps-s{seed}-p0-arc1-evaluation")] for seed in (0, 1)]
    verdicts = combined["verdicts"]
    assert set(verdicts["eps_vs_base"]["arc1-evaluation"]) == set(row_name for row_name in rps_vs_eps["metrics"])
    lines: list[str] = []
    printed = study.print_verdicts(out / "comparison.json", lines.append)
    assert lines == printed and len(lines) == 4
    assert lines[1].startswith("  rps vs eps (arc1-evaluation): method level: rps above eps: the methods differ; "
                               "rps - eps +")
    # 2 seeds against the one base run: 1 degree of freedom, so even +25 points is not shown
    assert lines[2].startswith("  rps vs base (arc1-evaluation): method level: no difference shown between the "
                               "methods; rps - base +")
    assert lines[3].startswith("  eps vs base (arc1-evaluation): method level: no difference shown between the "
                               "methods; eps - base ")


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
    steps = ["model", "rejected", "data", "rps-s0", "eps-s0", "rps-s1", "eps-s1", "evaluate", "compare"]

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for name in ("model", "rejected", "data"):
        assert f"== {name}: up to date, skipped" in second.stdout
    after = json.loads(manifest.read_text())["steps"]
    assert list(after) == steps
    assert all(after[name] == before[name] for name in before)  # the same outputs, untouched

    data = json.loads((out / "data" / "manifest.json").read_text())
    assert data["eval_overlap_tasks"] == 0
    assert data["stages"]["stage1"]["pairs"] == 6 and data["stages"]["stage2"]["pairs"] == 4
    for side in ("chosen", "rejected"):
        assert data["lengths"][side]["empty_reasoning"] == 0 and data["lengths"][side]["reasoning_chars"]["p50"] > 0
    stage1 = {}
    for seed in (0, 1):
        for name in ("rps", "eps"):
            stage2 = json.loads((out / f"{name}-s{seed}" / "stage2" / "rps_stage.json").read_text())
            assert stage2["dropped_pairs"] == 0 and stage2["train_pairs"] == 3  # 4 pairs, 1 held out
        rps_lr = json.loads((out / f"rps-s{seed}" / "manifest.json").read_text())["stage2_learning_rate"]
        eps = json.loads((out / f"eps-s{seed}" / "manifest.json").read_text())
        assert eps["stage2_learning_rate"] == pytest.approx(10 * rps_lr)
        stage1[seed] = json.loads((out / f"rps-s{seed}" / "stage1" / "rps_stage.json").read_text())["adapter_sha256"]
        assert eps["stages"]["stage1"]["adapter_sha256"] == stage1[seed]  # EPS from its own seed's stage 1
    assert stage1[0] != stage1[1]  # two training seeds, two stage-1 models

    combined = json.loads((out / "comparison.json").read_text())
    assert list(combined["comparisons"]) == ["rps_vs_eps", "rps_vs_base", "eps_vs_base"]
    for pair, by_set in combined["comparisons"].items():
        result = by_set["arc1-evaluation"]
        assert result["dataset"] == "arc1:evaluation" and result["level"] == "method"
        assert len(result["metrics"][study.PRIMARY]["a_runs"]) == (1 if pair.endswith("base") else 2)
        assert set(combined["verdicts"][pair]["arc1-evaluation"]) == set(result["metrics"])
    runs = ["base-p0"] + [f"{arm}-s{seed}-p0" for seed in (0, 1) for arm in ("rps", "eps")]
    for name in runs:
        results = json.loads((out / "eval" / f"{name}-arc1-evaluation" / "results.json").read_text())
        assert results["metrics"]["api_errors"] == {"n": 0, "of": 3, "rate": 0.0}
    assert "study finished" in second.stdout
    assert not requests.exists(), requests.read_text()[:2000]  # no request tried to leave the machine
    last = second.stdout.strip().splitlines()[-3:]  # the last lines: one plain verdict per comparison
    assert [line.split(":")[0] for line in last] == [
        "  rps vs eps (arc1-evaluation)", "  rps vs base (arc1-evaluation)", "  eps vs base (arc1-evaluation)"]
    summary = json.loads(manifest.read_text())["summary"]
    assert summary["eval_overlap_tasks"] == 0 and summary["empty_reasoning"] == {"chosen": 0, "rejected": 0}
    assert summary["length_warnings"] == []  # 64 new tokens keep the rejected side within 2x of the chosen
