"""The `lm_eval` command itself, `hf` backend, on a tiny random Qwen3 built in the session: the run
completes, its garbage is scored as invalid attempts, stop reasons come from the model's tokenizer,
`rps-evals report` reads the output; without --confirm_run_unsafe_code lm-eval refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lmeval_support import OFFLINE_ENV, TASKS_DIR

from rps_evals.cli import main as rps_main

MAX_GEN_TOKS = 12


def _lm_eval(tmp_path, model_dir, *extra):
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={model_dir},dtype=float32", "--device", "cpu",
           "--tasks", "arc1_prog", "--limit", "2", "--include_path", str(TASKS_DIR),
           "--apply_chat_template", "--gen_kwargs", f"max_gen_toks={MAX_GEN_TOKS}", *extra]
    env = {**os.environ, **OFFLINE_ENV, "RPS_SANDBOX": "local"}  # the docker sandbox has its own tests
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_hf_backend_run_counts_garbage_as_invalid_and_reports(tmp_path, tiny_qwen3):
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    proc = _lm_eval(tmp_path, tiny_qwen3, "--confirm_run_unsafe_code", "--output_path", str(out), "--log_samples")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "arc1_prog" in proc.stdout and "invalid_attempts" in proc.stdout

    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["arc1_prog"]
    assert results["invalid_attempts,all_attempts"] == 1.0  # random weights: no program, no grid
    assert results["attempts_from_executed_programs,all_attempts"] == 0.0
    assert results["api_errors,all_attempts"] == 0.0  # a local model never has API errors
    assert results["stop_reason_unknown,all_attempts"] == 0.0  # the tokenizer came from pretrained=
    assert results["attempt_records,all_attempts"] == 4

    samples = [json.loads(line) for line in next(out.rglob("samples_arc1_prog_*.jsonl")).read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    hits = 0
    for sample in samples:
        assert sample["arguments"]["gen_args_0"]["arg_1"]["max_gen_toks"] == MAX_GEN_TOKS
        for text, record in zip(sample["resps"][0], sample["attempt_records"]):
            used = len(tokenizer.encode(text, add_special_tokens=False))
            assert record["stop_reason"] == ("max_tokens" if used >= MAX_GEN_TOKS else "stop")
            hits += used >= MAX_GEN_TOKS
    assert results["token_limit_hits,all_attempts"] == hits / 4

    assert rps_main(["report", str(out), "--out", str(tmp_path / "run")]) == 0
    run = json.loads((tmp_path / "run" / "results.json").read_text())
    assert run["metrics"]["invalid_attempts"] == {"n": 4, "of": 4, "rate": 1.0}
    assert run["metrics"]["token_limit_hits"]["n"] == hits
    assert (run["dataset"], run["num_tasks"], run["attempts_per_task"]) == ("arc1:evaluation", 2, 2)


@pytest.mark.slow
def test_without_confirm_run_unsafe_code_lm_eval_refuses(tmp_path, tiny_qwen3):
    proc = _lm_eval(tmp_path, tiny_qwen3, "--output_path", str(tmp_path / "out"), "--log_samples")
    assert proc.returncode != 0
    assert "arc1_prog which is marked as unsafe" in proc.stderr
    assert "confirm_run_unsafe_code=True" in proc.stderr
    assert not list(tmp_path.rglob("samples_*.jsonl"))  # refused before generating anything
