"""Helpers shared by the Inspect tests: the demo's task ids and the core-vs-Inspect comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rps_evals.cli import main as rps_main
from rps_evals.scoring import METRICS

ROOT = Path(__file__).resolve().parents[1]
# The tasks of rps_evals/data/demo_arc1_training.jsonl (arc1:training), in its order.
DEMO_IDS = ["3c9b0459", "25ff71a9", "67a3c6ac", "74dd1130", "a416b8f3", "dae9d2b5", "6150a2bd", "ed36ccf7"]


def core_score(responses: Path, out: Path, task_ids=DEMO_IDS, dataset="arc1:training", k=2,
               timeout: float | None = None) -> dict:
    """`rps-evals score --sandbox local` on a responses file; its results.json."""
    code = rps_main(["score", "--dataset", dataset, "--responses", str(responses), "--out", str(out),
                     "--sandbox", "local", "--attempts", str(k), "--task-ids", *task_ids]
                    + (["--timeout", str(timeout)] if timeout else []))
    assert code == 0
    return json.loads((out / "results.json").read_text())


def scores_of(result: dict) -> dict:
    """A results.json without what legitimately differs between front ends on the same answers:
    provenance and the prompt version (the prompt is unknown to `rps-evals score`, the model to a
    file) and usage (wall time)."""
    return {key: value for key, value in result.items() if key not in ("provenance", "usage", "prompt_version")}


def report(log_path: str, out: Path, *options: str) -> dict:
    """`rps-evals report LOG [options]`; its results.json."""
    assert rps_main(["report", log_path, "--out", str(out), *options]) == 0
    return json.loads((out / "results.json").read_text())


def inspect_metrics(log) -> dict[str, float]:
    """Inspect's metrics (rates and arc_prize_score) plus each metric's `_n` and `_of`, recovered
    from the log's samples as `rps-evals report` and the end-of-eval table do."""
    from rps_evals.inspect_eval.counts import log_counts

    (score,) = log.results.scores
    out = {name: metric.value for name, metric in score.metrics.items()}
    for name, c in log_counts(log).items():
        out[f"{name}_n"], out[f"{name}_of"] = c["n"], c["of"]
    return out


def assert_same_numbers(inspect: dict[str, float], core: dict) -> None:
    """Every metric's n and of (and rate) in the Inspect results equals the core's."""
    for name in METRICS:
        want = core["metrics"][name]
        assert (inspect[f"{name}_n"], inspect[f"{name}_of"]) == (want["n"], want["of"]), name
        assert inspect[name] == pytest.approx(want["rate"]), name
    assert inspect["arc_prize_score"] == pytest.approx(core["arc_prize_score"])
