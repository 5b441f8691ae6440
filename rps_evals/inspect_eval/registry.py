"""Inspect AI entry point (pyproject `[project.entry-points.inspect_ai]`): makes the tasks
`rps_evals/arc1` and `rps_evals/arc2` and the model provider `rps/replay` known to an installed
Inspect without naming any file."""

from inspect_ai.model import ModelAPI, modelapi

from rps_evals.arc1 import arc1
from rps_evals.arc2 import arc2


@modelapi(name="rps")
def rps() -> type[ModelAPI]:
    """`--model rps/replay [-M responses=FILE.jsonl]`: serve recorded generations."""
    from rps_evals.inspect_eval.replay import ReplayAPI

    return ReplayAPI


__all__ = ["arc1", "arc2", "rps"]
