"""What the arc tasks' solver tells a model about each request, and what a model may tell it back.

Any Inspect model works with the tasks; these are the few optional extras a model can use, kept here
so that the task knows no model class by name (the replay model, `rps/replay`, uses all of them):
- `current_attempt`: the (task id, first attempt) a request is for, set around each generate call,
  and `current_round`: its refinement round (0: the first answer; r: the answer after r feedbacks);
- `CHOICE_USAGE` / `ESTIMATED_USAGE`: ModelOutput.metadata keys for each choice's own token counts,
  and for usage that is a guess (never reported as a count);
- `AttemptMissing`: raised when a model has no answer for an attempt (counted `missing`, as in
  `rps-evals score`), `RecordedAPIError`: a failure recorded earlier, replayed as an api error;
- `SelectionAware`: a model that can name the tasks it answers and refuse a selection it cannot serve.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol, runtime_checkable

ESTIMATED_USAGE = "rps_replay_estimated_usage"  # ModelOutput.metadata key: usage is a guess, not a count
CHOICE_USAGE = "rps_replay_choice_usage"  # ModelOutput.metadata key: each choice's recorded token counts
current_attempt: ContextVar[tuple[str, int] | None] = ContextVar("rps_evals_attempt", default=None)
current_round: ContextVar[int] = ContextVar("rps_evals_round", default=0)


class RecordedAPIError(RuntimeError):
    """A generation that failed when it was recorded: replayed as an api error with its own message."""


class AttemptMissing(LookupError):
    """The model has no answer for this (task, attempt): the attempt is missing, not an api error."""


@runtime_checkable
class SelectionAware(Protocol):
    """A model API that knows which tasks it can answer (a recording does; a live model does not)."""

    def default_task_ids(self, dataset_name: str) -> list[str] | None:
        """The tasks to evaluate when none were named (None: every task of the dataset)."""

    def check_covers(self, dataset) -> None:
        """Raise ValueError, naming why, when the model answers none of the dataset's tasks."""


def api_error_message(exc: BaseException) -> str:
    """What an attempt's record says about a generation that failed after Inspect's retries."""
    if isinstance(exc, RecordedAPIError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
