"""The arc tasks' solver: k attempts at one task's prompt, each recorded for the scorer.

Providers that take `n` get one request for all the attempts (the prompt is prefilled once); the
attempts a provider did not return are asked for one call at a time. Each attempt keeps its text,
the reasoning its provider returned apart from the text, its stop reason and its own token counts
where they are known; a request that failed after Inspect's retries is that attempt's api error.

With `refine=R` (docs/metrics.md, "Refinement") each attempt whose answer is not train-verified
goes on in its own conversation: its program is run on the training inputs with the core (the
scorer's `run_programs`, `scoring.score_attempt`), the feedback (`rps_evals.feedback`) is the next
user message, and the model answers again (one choice per request), until a train-verified program
or R feedback rounds. Every round is stored (answer, record, feedback) so the scorer runs nothing
twice: it scores the final answer and keeps the rounds in the attempt's record.
"""

from __future__ import annotations

from typing import Any

import anyio
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageUser,
    ContentReasoning,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import LimitExceededError

from rps_evals.attempts import AttemptRecord, Response
from rps_evals.data import Task, load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, Execution
from rps_evals.feedback import feedback_text
from rps_evals.inspect_eval.generation import (
    CHOICE_USAGE,
    ESTIMATED_USAGE,
    AttemptMissing,
    SelectionAware,
    api_error_message,
    current_attempt,
    current_round,
    task_retries_only,
)
from rps_evals.scoring import program_for, score_attempt

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
def arc_attempts(attempts: int = 2, dataset: str | None = None, task_ids: list[str] | None = None,
                 refine: int = 0, sandbox: str = "docker", exec_timeout: float = DEFAULT_TIMEOUT) -> Solver:
    """Generate `attempts` independent completions of the task prompt and record each one.

    Providers that accept `num_choices` get one request for all attempts (the prompt is prefilled
    once); any attempts a provider did not return are generated one call at a time. A call that
    fails after Inspect's retries is recorded as that attempt's error; once every attempt has been
    tried the sample is failed, so it is scored with the error counted and `eval-retry` redoes it.
    `dataset` and `task_ids` name the task's selection, which a replay file must answer in part.
    `refine` > 0: up to that many feedback rounds per attempt (programs run in `sandbox`, as the
    scorer runs them); an API error in a later round ends that attempt's conversation as its error.
    """
    if refine and dataset is None:
        raise ValueError("refine needs the dataset whose training pairs check the programs")

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        model = get_model()
        if dataset is not None and isinstance(model.api, SelectionAware):
            # `inspect eval` refuses such a model when it builds the task; a task built before the
            # model was known (Python API) refuses here, in every sample, before generating
            model.api.check_covers(load_dataset(dataset).select(task_ids))
        task_id = str(state.metadata.get("task_id", state.sample_id))
        recorded: list[dict[str, Any]] = []
        choices: list[ChatCompletionChoice] = []
        first_choices: dict[int, ChatCompletionChoice] = {}  # attempt -> its round-0 choice
        shown = False  # whether the log's messages already show a conversation
        errors: list[str] = []
        usage = {"output_tokens": 0, "reasoning_tokens": None, "total_tokens": 0, "known": True}
        if refine:
            usage["by_round"] = []  # [input, output] tokens of each round's requests
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
                    first_choices[len(recorded)] = choice
                if not output.choices:
                    message = output.error or "the model returned no completion"
                    errors.append(f"attempt {first}: {message}")
                    recorded.append(_attempt(first, None, None, message[:2000]))
            if refine:
                task = load_dataset(dataset).tasks[task_id]
                finals = await _refine(model, list(state.messages), task, recorded, first_choices, refine,
                                       sandbox, exec_timeout, usage, errors)
                if finals:  # the log's messages show attempt 1's conversation, its output the final answers
                    state.messages, shown = finals[0][1], True
                    choices = [choice for choice, _ in finals]
        finally:
            state.store.set(STORE_KEY, recorded)
            state.store.set(USAGE_KEY, usage if usage.pop("known") else None)
        if choices:  # the log's sample output shows every attempt that got a completion
            state.output = ModelOutput(model=str(model), choices=choices)
            if not shown:
                state.messages.append(choices[0].message)
        if errors:
            raise GenerationFailed(task_id, errors)
        return state

    return solve


def _add_usage(totals: dict[str, Any], output: ModelOutput, round: int = 0) -> dict[str, int | None] | None:
    """Add one request's token usage to the sample's totals (and, when refining, to its round's
    [input, output] in `by_round`); the request's own counts, or None when the provider reported
    none (or the replay model only estimated them): then totals are unknown."""
    usage = output.usage
    if usage is None or (output.metadata or {}).get(ESTIMATED_USAGE):
        totals["known"] = False
        return None
    totals["output_tokens"] += usage.output_tokens
    totals["total_tokens"] += usage.total_tokens
    if "by_round" in totals:
        by_round = totals["by_round"]
        by_round += [[0, 0] for _ in range(round + 1 - len(by_round))]
        by_round[round][0] += usage.total_tokens - usage.output_tokens
        by_round[round][1] += usage.output_tokens
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


async def _generate(model: Model, state: TaskState | list[ChatMessage], task_id: str, first: int, n: int,
                    round: int = 0) -> ModelOutput:
    messages = state if isinstance(state, list) else state.messages
    token, round_token = current_attempt.set((task_id, first)), current_round.set(round)
    task_retries_only(model)  # Inspect's retries are the only ones (docs/inspect.md)
    try:
        config = GenerateConfig(num_choices=n) if n > 1 else GenerateConfig()
        return await model.generate(list(messages), config=config)
    finally:
        current_attempt.reset(token)
        current_round.reset(round_token)


# -- refinement ------------------------------------------------------------------------------------

ANSWER_KEYS = ("completion", "reasoning", "stop_reason", "inspect_stop_reason", "error",
               "output_tokens", "reasoning_tokens", "input_tokens")


def stored_response(task_id: str, stored: dict[str, Any]) -> Response:
    """The core's Response for one stored answer (an attempt's final one, or one of its rounds)."""
    return Response(task_id, stored["attempt"], stored["completion"], stored["stop_reason"], stored["error"],
                    reasoning=stored.get("reasoning"), output_tokens=stored.get("output_tokens"),
                    reasoning_tokens=stored.get("reasoning_tokens"), input_tokens=stored.get("input_tokens"))


async def check_answers(task: Task, answers: list[dict[str, Any]], sandbox: str,
                        timeout: float) -> list[tuple[AttemptRecord, Execution]]:
    """Run and score stored answers with the core, as the scorer does (one batch of programs)."""
    from rps_evals.inspect_eval.scorer import run_programs  # the scorer imports this module

    responses = [stored_response(task.task_id, a) for a in answers]
    prepared = [program_for(task, response) for response in responses]
    executions = await run_programs([program for program, _ in prepared], sandbox, timeout)
    return [(score_attempt(task, response, json_predictions, execution, response.attempt, program.source), execution)
            for response, (program, json_predictions), execution in zip(responses, prepared, executions)]


async def _refine(model: Model, prompt: list[ChatMessage], task: Task, recorded: list[dict[str, Any]],
                  first_choices: dict[int, ChatCompletionChoice], refine: int, sandbox: str, timeout: float,
                  usage: dict[str, Any], errors: list[str]) -> list[tuple[ChatCompletionChoice, list[ChatMessage]]]:
    """Up to `refine` feedback rounds for each attempt that answered (in place: each attempt's dict
    becomes its final answer, with `rounds`, and `record` when its program was already scored).
    Returns each answered attempt's final choice and conversation, in attempt order."""
    answered = [a for a in recorded if not a.get("missing") and a["error"] is None]
    for a in recorded:
        if not a.get("missing"):
            a["rounds"] = []  # round-0 API errors too: they are attempts of a refining run, never refined
    checked = await check_answers(task, answered, sandbox, timeout)
    finals: list[Any] = [None] * len(answered)

    async def converse(i: int, a: dict[str, Any], record: AttemptRecord, execution: Execution) -> None:
        # the history holds each answer's text (not the reasoning a provider returned apart from it)
        messages = [*prompt, ChatMessageAssistant(content=a["completion"] or "")]
        choice = first_choices[a["attempt"]]
        for r in range(1, refine + 1):
            a["record"] = record.to_dict()
            if record.train_verified:
                break
            feedback = feedback_text(task, record, execution)
            conversation = [*messages, ChatMessageUser(content=feedback)]
            try:
                output = await _generate(model, conversation, task.task_id, a["attempt"], 1, round=r)
            except LimitExceededError:
                raise
            except AttemptMissing:  # a recording that stops here: the attempt ends, no feedback was sent
                break
            except Exception as exc:  # failed after Inspect's retries: the attempt ends in this api error
                output, failure = None, api_error_message(exc)
            else:
                failure = None if output.choices else output.error or "the model returned no completion"
            a["rounds"].append({**{key: a.get(key) for key in ANSWER_KEYS}, "record": a.pop("record"),
                                "feedback": feedback})
            messages = conversation
            tokens = _add_usage(usage, output, r) if output is not None else None
            if failure is not None:
                errors.append(f"attempt {a['attempt']} round {r}: {failure}")
                a.update(dict.fromkeys(ANSWER_KEYS), error=failure[:2000])
                break
            choice = output.choices[0]
            a.update(dict.fromkeys(ANSWER_KEYS), **_attempt(a["attempt"], choice.message.text, choice.stop_reason,
                                                           reasoning=reasoning_of(choice.message)))
            a.update(((output.metadata or {}).get(CHOICE_USAGE) or [tokens])[0] or {})
            if tokens is not None and output.usage is not None:
                a["input_tokens"] = output.usage.input_tokens
            messages = [*messages, ChatMessageAssistant(content=a["completion"] or "")]
            if r < refine:
                ((record, execution),) = await check_answers(task, [a], sandbox, timeout)
        finals[i] = (choice, messages)

    try:
        async with anyio.create_task_group() as group:
            for i, (a, (record, execution)) in enumerate(zip(answered, checked)):
                group.start_soon(converse, i, a, record, execution)
    except BaseExceptionGroup as failed:  # the conversations run together; a sample limit must reach Inspect as itself
        limits = [e for e in failed.exceptions if isinstance(e, LimitExceededError)]
        raise (limits or failed.exceptions)[0] from None
    return finals
