"""What one attempt is: the `Response` a front end recorded and the `AttemptRecord` scoring made of it.

Kept apart from `scoring` (which computes every metric from records) so that `selection` and the
readers can use records without importing the metrics, and the metrics can use `selection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rps_evals.data import Task
from rps_evals.parse import Grid


@dataclass(frozen=True)
class Response:
    """One generation for one (task, attempt), as recorded by any front end."""

    task_id: str
    attempt: int  # 1-based
    completion: str | None
    stop_reason: str | None = None  # stop | max_tokens | model_length | None (unknown)
    error: str | None = None  # set when generation failed after retries
    reasoning: str | None = None  # the model's reasoning, when its provider returned it apart from the text
    output_tokens: int | None = None  # tokens generated, where the front end knows them
    reasoning_tokens: int | None = None  # of which reasoning, where the provider reports them apart
    input_tokens: int | None = None  # prompt tokens billed for this attempt, where the front end knows them


@dataclass
class AttemptRecord:
    """Everything scored about one attempt; one line of attempts.jsonl."""

    task_id: str
    attempt: int
    source: str  # executed_program | json_fallback | invalid
    program_status: str  # ok | error | timeout | no_program
    predictions: list[Grid | None]
    prediction_origins: list[str | None]  # "program" | "json" | None, per test input
    correct: list[bool]
    train_verified: bool
    stop_reason: str | None = None
    api_error: str | None = None
    missing: bool = False
    error: str = ""  # tail of the program's error, if any
    hardcoded: str | None = None  # literal_output | constant_output | None (see hardcoded_reason)
    completion: str | None = field(default=None, repr=False)
    reasoning: str | None = field(default=None, repr=False)  # reasoning returned apart from the completion
    output_tokens: int | None = None  # usage, where the front end knows it (see rps_evals.provenance)
    reasoning_tokens: int | None = None
    train_accuracy: float | None = None  # fraction of training pairs reproduced exactly (None: older record)
    input_tokens: int | None = None  # prompt tokens billed for this attempt (for the cost, rps_evals.selection)
    # refinement (docs/metrics.md): the answers before this final one, in order, each a record dict
    # with `round` and the `feedback` sent after it; None when the run did not refine
    rounds: list[dict[str, Any]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data. Shallow: the grids are shared, not copied (asdict's deep
        copy was most of the time spent writing a run)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def missing_record(task: Task, attempt: int) -> AttemptRecord:
    m = task.num_tests
    return AttemptRecord(task.task_id, attempt, "invalid", "no_program", [None] * m, [None] * m,
                         [False] * m, False, missing=True, train_accuracy=0.0)
