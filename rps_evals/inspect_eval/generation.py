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


SERVER_MESSAGE_CHARS = 500  # how much of the server's own error text a record keeps


def api_error_message(exc: BaseException) -> str:
    """What an attempt's record says about a generation that failed after Inspect's retries: the
    HTTP status and the first SERVER_MESSAGE_CHARS of what the server said, e.g.
    `HTTP 500 InternalServerError after 4 tries: {"error": ...}`.

    Inspect raises the retry library's RetryError, whose text names only a Future; the provider's
    exception (an openai APIStatusError carries status_code and the response) is inside it."""
    if isinstance(exc, RecordedAPIError):
        return str(exc)
    tries = None
    last_attempt = getattr(exc, "last_attempt", None)  # tenacity.RetryError
    if last_attempt is not None and last_attempt.failed:
        tries = getattr(last_attempt, "attempt_number", None)
        exc = last_attempt.exception()
    after = f" after {tries} tries" if tries and tries > 1 else ""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status} {type(exc).__name__}{after}: {_server_text(exc)}"
    return f"{type(exc).__name__}{after}: {exc}"


def _server_text(exc: BaseException) -> str:
    """The body of the failed response (its first SERVER_MESSAGE_CHARS), else the exception's text."""
    try:
        text = exc.response.text  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no response, or a streamed body that was not read
        text = None
    text = " ".join((text or str(exc)).split())
    return text[:SERVER_MESSAGE_CHARS] + ("..." if len(text) > SERVER_MESSAGE_CHARS else "")


def task_retries_only(model) -> None:
    """Make Inspect's retries (the task's `max_retries`, default 3) the only ones: the OpenAI SDK
    client under Inspect's openai, openai-api and vllm providers retries twice more inside each of
    Inspect's tries, so a persistently failing request cost 3 x 4 HTTP requests instead of 4.

    Sets the client's `max_retries` to 0, also for clients the provider makes later (vllm makes its
    client on the first request, and any provider remakes it after a credential refresh). A user's
    own `-M max_retries=N` (openai, openai-api) is kept. Providers without such a client: untouched."""
    api = model.api
    if getattr(api, "_rps_task_retries_only", False) or "max_retries" in (getattr(api, "model_args", None) or {}):
        return
    create = getattr(api, "_create_client", None)
    if create is None:
        return

    def create_without_retries():
        client = create()
        if isinstance(getattr(client, "max_retries", None), int):
            client.max_retries = 0
        return client

    api._create_client = create_without_retries
    if isinstance(getattr(getattr(api, "client", None), "max_retries", None), int):
        api.client.max_retries = 0
    api._rps_task_retries_only = True
