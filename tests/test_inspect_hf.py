"""Inspect's `hf/` provider on a tiny random Qwen3 (built offline by rps_train/tiny.py): a real
local model end to end. Its output is gibberish, which the scorer must count as invalid attempts."""

from __future__ import annotations

import pytest

pytest.importorskip("inspect_ai")
pytest.importorskip("transformers")

from inspect_ai import eval as inspect_eval  # noqa: E402

from rps_evals.arc1 import arc1  # noqa: E402
from rps_evals.inspect_eval.counts import SCORER_NAME  # noqa: E402
from rps_evals.scoring import METRICS  # noqa: E402

TASK_IDS = ["3c9b0459", "25ff71a9"]  # 3 test outputs in all


@pytest.mark.slow
def test_tiny_qwen3_through_the_hf_provider(tiny_qwen3, tmp_path):
    task = arc1(split="training", task_ids=TASK_IDS, sandbox="local")
    (log,) = inspect_eval(task, model="hf/tiny-qwen3", model_args={"model_path": str(tiny_qwen3), "device": "cpu"},
                          max_tokens=24, seed=0, log_dir=str(tmp_path), display="none")
    assert log.status == "success", log.error
    assert not any(s.error for s in log.samples)
    from inspect_support import inspect_metrics

    metrics = inspect_metrics(log)  # Inspect's rates plus each metric's n and of, from the log's samples
    attempts = 2 * len(TASK_IDS)
    assert (metrics["invalid_attempts_n"], metrics["invalid_attempts_of"]) == (attempts, attempts)
    assert metrics["api_errors_n"] == 0 and metrics["task_solves_n"] == 0
    assert (metrics["valid_output_attempts_n"], metrics["valid_output_attempts_of"]) == (0, 3 * 2)
    assert all(metrics[f"{name}_of"] > 0 for name in METRICS)
    for sample in log.samples:
        records = sample.scores[SCORER_NAME].metadata["attempts"]
        assert [r["attempt"] for r in records] == [1, 2]
        assert all(r["completion"] is not None and r["api_error"] is None for r in records)
        # hf/ gives no finish reason: recorded as unknown, never guessed as a token-limit hit
        assert all(r["stop_reason"] is None for r in records)
