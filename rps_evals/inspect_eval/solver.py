"""The arc tasks' solver: k attempts at one task's prompt, each recorded for the scorer.

Providers that take `n` get one request for all the attempts (the prompt is prefilled once); the
attempts a provider did not return are asked for one call at a time. Each attempt keeps its text,
the reasoning its provider returned apart from the text, its stop reason and its own token counts
where they are known; a request that failed after Inspect's retries is that attempt's api error.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ContentReasoning,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import LimitExceededError

from rps_evals.data import load_dataset
from rps_evals.inspect_eval.generation import (
    CHOICE_USAGE,
    ESTIMATED_USAGE,
    AttemptMissing,
    SelectionAware,
    api_error_message,
    current_attempt,
    task_retries_only,
)

STORE_KEY = "rps_evals:attempts"
USAGE_KEY = "rps_evals:usage"  # the sample's token totals over all its requests
# Providers that take `n` (several choices per request): the prompt is prefilled once for k attempts.
NUM_CHOICES_APIS = ("OpenAIAPI", "OpenAICompatibleAPI", "VLLMAPI", "SGLangAPI", "ReplayAPI")
# Inspect's stop reasons mapped to the core's (stop | max_tokens | model_length | None = unknown).
_STOP_REASONS = {"stop": "stop", "max_tokens": "max_tokens", "model_length": "model_length",
                 "tool_calls": "stop", "content_filter": "stop"}


def takes_num_choices(model: Model) -> bool:
    """Whether one request of this model can return several choices (`n`)."""
    return type(model.api).__name__ in NUM_CHOICES_APIS


@solver
def arc_attempts(attempts: int = 2, dataset: str | None = None, task_ids: list[str] | None = None) -> Solver:
    """Generate `attempts` independent completions of the task prompt and record each one.

    Providers that accept `num_choices` get one request for all attempts (the prompt is prefilled
    once); any attempts a provider did not return are generated one call at a time. A call that
    fails after Inspect's retries is recorded as that attempt's error; once every attempt has been
    tried the sample is failed, so it is scored with the error counted and `eval-retry` redoes it.
    `dataset` and `task_ids` name the task's selection, which a replay file must answer in part.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        model = get_model()
        if dataset is not None and isinstance(model.api, SelectionAware):
            # `inspect eval` refuses such a model when it builds the task; a task built before the
            # model was known (Python API) refuses here, in every sample, before generating
            model.api.check_covers(load_dataset(dataset).select(task_ids))
        task_id = str(state.metadata.get("task_id", state.sample_id))
        recorded: list[dict[str, Any]] = []
        choices: list[ChatCompletionChoice] = []
        errors: list[str] = []
        usage = {"output_tokens": 0, "reasoning_tokens": None, "total_tokens": 0, "known": True}
        want_choices = attempts > 1 and takes_num_choices(model)
        try:
            while len(recorded) < attempts:
                first = len(recorded) + 1
                batch = attempts - len(recorded) if want_choices else 1
                want_choices = False  # a provider that ignored `n` gets single calls for the rest
                try:
                    output = await _generate(model, state, task_id, first, batch)
                except LimitExceededError:
                    raise  # a sample limit ends the sample; attempts not made count as missing
                except AttemptMissing:  # the model has no such attempt: missing, as in `rps-evals score`
                    recorded.append({"attempt": first, "missing": True})
                    continue
                except Exception as exc:  # failed after Inspect's own retries: an api error
                    message = api_error_message(exc)
                    errors.append(f"attempt {first}: {message}")
                    recorded += [_attempt(a, None, None, message[:2000]) for a in range(first, first + batch)]
                    continue
                tokens = _add_usage(usage, output)
                served = output.choices[:attempts - len(recorded)]
                # each attempt's own counts: a request's usage when it made one attempt (providers
                # report one usage for all the choices of a request), or what the replay recorded
                per_choice = (output.metadata or {}).get(CHOICE_USAGE) or ([tokens] if len(served) == 1 else [])
                for i, choice in enumerate(served):
                    recorded.append(_attempt(len(recorded) + 1, choice.message.text, choice.stop_reason,
                                             reasoning=reasoning_of(choice.message)))
                    if i < len(per_choice) and per_choice[i]:
                        recorded[-1].update(per_choice[i])
                    choices.append(choice)
                if not output.choices:
                    message = output.error or "the model returned no completion"
                    errors.append(f"attempt {first}: {message}")
                    recorded.append(_attempt(first, None, None, message[:2000]))
        finally:
            state.store.set(STORE_KEY, recorded)
            state.store.set(USAGE_KEY, usage if usage.pop("known") else None)
        if choices:  # the log's sample output shows every attempt that got a completion
            state.output = ModelOutput(model=str(model), choices=choices)
            state.messages.append(choices[0].message)
        if errors:
            raise GenerationFailed(task_id, errors)
        return state

    return solve


def _add_usage(totals: dict[str, Any], output: ModelOutput) -> dict[str, int | None] | None:
    """Add one request's token usage to the sample's totals; the request's own counts, or None when
    the provider reported none (or the replay model only estimated them): then totals are unknown."""
    usage = output.usage
    if usage is None or (output.metadata or {}).get(ESTIMATED_USAGE):
        totals["known"] = False
        return None
    totals["output_tokens"] += usage.output_tokens
    totals["total_tokens"] += usage.total_tokens
    if usage.reasoning_tokens is not None:
        totals["reasoning_tokens"] = (totals["reasoning_tokens"] or 0) + usage.reasoning_tokens
    return {"output_tokens": usage.output_tokens, "reasoning_tokens": usage.reasoning_tokens}


def _attempt(attempt: int, completion: str | None, stop_reason: str | None, error: str | None = None,
             reasoning: str | None = None) -> dict:
    """What the solver keeps of one attempt (the scorer builds the core's Response from it)."""
    return {"attempt": attempt, "completion": completion, "reasoning": reasoning,
            "stop_reason": _STOP_REASONS.get(stop_reason or ""), "inspect_stop_reason": stop_reason, "error": error}


def reasoning_of(message: Any) -> str | None:
    """The reasoning a provider returned apart from the text (Inspect's ContentReasoning parts: vLLM's
    `reasoning_content`, or `<think>` that Inspect's OpenAI-compatible provider moved out of the text).
    `message.text` leaves these out, and a DPO pair built without them would compare a long chosen
    reasoning with a short rejected one; None when there is none (it may still be `<think>` in the text)."""
    content = message.content
    if isinstance(content, str):
        return None
    parts = [c.reasoning for c in content if isinstance(c, ContentReasoning) and not c.redacted and c.reasoning]
    return "\n\n".join(parts) if parts else None


class GenerationFailed(RuntimeError):
    """Some attempts of a sample got no completion; they are scored as api_errors."""

    def __init__(self, task_id: str, errors: list[str]):
        super().__init__(f"task {task_id}: generation failed for {len(errors)} request(s): " + "; ".join(errors))


async def _generate(model: Model, state: TaskState, task_id: str, first: int, n: int) -> ModelOutput:
    token = current_attempt.set((task_id, first))
    task_retries_only(model)  # Inspect's retries are the only ones (docs/inspect.md)
    try:
        config = GenerateConfig(num_choices=n) if n > 1 else GenerateConfig()
        return await model.generate(list(state.messages), config=config)
    finally:
        current_attempt.reset(token)
