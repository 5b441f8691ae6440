"""The n/of counts of an Inspect log of the arc tasks, read from its samples' scores.

Each sample's score holds its task's n per metric (the value) and of (the metadata); pooled here by
the core's `pool`, they give `rps-evals score`'s table: printed at the end of an eval (`hooks.py`)
and written by `rps-evals report LOG` (`reports/readers.py`).
"""

from __future__ import annotations

from typing import Any

from inspect_ai.scorer import Score

from rps_evals.scoring import METRICS, format_table, pool

SCORER_NAME = "arc_scorer"  # the key of the task's scores in a log sample


def sample_counts(score: Score) -> dict[str, tuple[float, float]]:
    """One sample's (n, of) per metric."""
    of = (score.metadata or {})["of"]
    return {name: (float(score.value[name]), float(of[name])) for name in of}


def log_counts(log) -> dict[str, dict[str, Any]]:
    """Every metric's {n, of, rate} of an Inspect log of these tasks (from its samples' scores)."""
    scores = [sample.scores[SCORER_NAME] for sample in log.samples or [] if SCORER_NAME in (sample.scores or {})]
    pooled = pool(sample_counts(score) for score in scores)
    names = [*METRICS, *(name for name in pooled if name not in METRICS)]
    return {name: {**pooled[name], "n": int(pooled[name]["n"]), "of": int(pooled[name]["of"])}
            for name in names if name in pooled}


def results_table(log) -> str | None:
    """`rps-evals score`'s table for a log of the arc tasks (None for other tasks or no samples)."""
    meta = (log.eval.metadata or {}).get("rps_evals")
    if not meta or not log.samples:
        return None
    counts = log_counts(log)
    if not counts:
        return None
    prize = [float(s.scores[SCORER_NAME].value["arc_prize_score"]) for s in log.samples
             if SCORER_NAME in (s.scores or {})]
    return format_table({"dataset": meta["dataset"], "attempts_per_task": meta["attempts"],
                         "prompt_version": meta["prompt_version"], "metrics": counts,
                         "arc_prize_score": sum(prize) / len(prize) if prize else 0.0})
