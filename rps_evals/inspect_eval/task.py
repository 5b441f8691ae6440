"""The Inspect AI front end shared by `rps_evals/arc1.py` and `rps_evals/arc2.py`.

Inspect runs the model (any provider, retries, concurrency, logs); every number comes from the
scoring core: the solver only records k raw attempts per ARC task, and the scorer turns them into
`AttemptRecord`s with the core's parser, executor and `score_attempt`, then counts each task's
metric units with `metric_units`. Task-level metrics sum those per-task counts, so the Inspect
results carry the same n / of as `rps-evals score` on the same responses. The records themselves go
into `Score.metadata["attempts"]`, which is how `rps-evals report LOG` rebuilds the run directory
without executing anything again.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Sequence

import anyio
from inspect_ai import Task
from inspect_ai.log import HeadlineMetric
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatCompletionChoice,
    ContentReasoning,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)
from inspect_ai.scorer import SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import LimitExceededError

from rps_evals.data import DATASETS, DatasetError, load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, Execution, Program, shared_executor
from rps_evals.execution.image import SANDBOX_IMAGE
from rps_evals.inspect_eval.sandbox import compose_file, run_in_inspect_sandbox
from rps_evals.prompt import PROMPT_VERSION, ProgramSynthesis, build_prompt
from rps_evals.inspect_eval.replay import ReplayedAPIError, current_attempt
from rps_evals.scoring import (
    METRICS,
    AttemptRecord,
    Response,
    arc_prize_score,
    count,
    metric_units,
    program_for,
    score_attempt,
)

STORE_KEY = "rps_evals:attempts"
SCORER_NAME = "arc_scorer"  # the key of its scores in a log sample
# Finite by default so a dead or hung server ends in counted api_errors instead of a stuck run:
# a generation may take up to 30 min (long reasoning on a busy server), each call at most 1 h in all.
DEFAULT_CONFIG = GenerateConfig(max_retries=3, attempt_timeout=1800, timeout=3600)
# Providers that take `n` (several choices per request): the prompt is prefilled once for k attempts.
NUM_CHOICES_APIS = ("OpenAIAPI", "OpenAICompatibleAPI", "VLLMAPI", "SGLangAPI", "ReplayAPI")
# Inspect's stop reasons mapped to the core's (stop | max_tokens | model_length | None = unknown).
_STOP_REASONS = {"stop": "stop", "max_tokens": "max_tokens", "model_length": "model_length",
                 "tool_calls": "stop", "content_filter": "stop"}



class TaskParameterError(ValueError):
    """A bad `-T` parameter: raised while building the task, before any generation."""


# -- task ------------------------------------------------------------------------------------------

def arc_task(
    version: str,
    split: str = "evaluation",
    attempts: int = 2,
    program_synthesis: str = "allowed",
    task_ids: str | Sequence[str] | None = None,
    exec_timeout: float = DEFAULT_TIMEOUT,
    sandbox: str = "docker",
) -> Task:
    """Build the Inspect task for one ARC version; every parameter is checked here, up front."""
    dataset_name = f"{version}:{split}"
    if dataset_name not in DATASETS:
        raise TaskParameterError(f"split must be 'training' or 'evaluation', got {split!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise TaskParameterError(f"attempts must be an integer >= 1, got {attempts!r}")
    try:
        mode = ProgramSynthesis(program_synthesis)
    except ValueError:
        choices = ", ".join(m.value for m in ProgramSynthesis)
        raise TaskParameterError(f"program_synthesis must be one of {choices}, got {program_synthesis!r}") from None
    if isinstance(exec_timeout, bool) or not isinstance(exec_timeout, (int, float)) or exec_timeout <= 0:
        raise TaskParameterError(f"exec_timeout must be a positive number of seconds, got {exec_timeout!r}")
    full = load_dataset(dataset_name)
    ids = _task_id_list(task_ids, full.tasks)
    try:
        dataset = full.select(ids)
    except DatasetError as exc:
        raise TaskParameterError(str(exc)) from None
    sandbox_kind, sandbox_spec = _sandbox_spec(sandbox)

    samples = [
        Sample(id=task.task_id, input=build_prompt(task, mode),
               target=json.dumps(task.test_outputs, separators=(",", ":")),
               metadata={"task_id": task.task_id, "num_tests": task.num_tests})
        for task in dataset.tasks.values()
    ]
    return Task(
        dataset=MemoryDataset(samples, name=dataset_name),
        solver=arc_attempts(attempts=attempts),
        scorer=arc_scorer(dataset=dataset_name, attempts=attempts, exec_timeout=float(exec_timeout),
                          sandbox=sandbox_kind),
        sandbox=sandbox_spec,
        config=DEFAULT_CONFIG,
        # A generation that failed is a measurement (api_errors): the sample is still scored and the
        # run goes on; `inspect eval-retry LOG` re-runs the errored samples. Only when over a quarter
        # of the samples errored (a dead server, a missing sandbox) is the log marked as failed.
        score_on_error=True,
        fail_on_error=0.25,
        metadata={"rps_evals": {"dataset": dataset_name, "dataset_hash": dataset.file_hash,
                                "attempts": attempts, "prompt_version": PROMPT_VERSION,
                                "program_synthesis": mode.value}},
        headline_metric=HeadlineMetric(metric="task_solves"),
        version=PROMPT_VERSION,
    )


def _task_id_list(task_ids: Any, known: dict) -> list[str] | None:
    """`-T task_ids=a,b` arrives as a list of strings, but Inspect reads each `-T` value as YAML, so
    an all-digit id comes back as an int (and one with a leading 0 as an octal int): map such ints
    back to the id of the dataset they were read from."""
    if task_ids is None or task_ids == "" or task_ids == []:
        return None
    if isinstance(task_ids, (str, int)) and not isinstance(task_ids, bool):
        task_ids = [task_ids]
    if not isinstance(task_ids, (list, tuple)):
        raise TaskParameterError(f"task_ids must be task ids separated by commas, got {task_ids!r}")
    ids: list[str] = []
    for item in task_ids:
        if isinstance(item, str):
            ids += item.replace(",", " ").split()
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            width = max(8, len(str(item)))
            spelled = {str(item).zfill(width), format(item, "o").zfill(width)} & set(known)
            ids.append(spelled.pop() if len(spelled) == 1 else str(item))
        else:
            raise TaskParameterError(f"task_ids must be task ids separated by commas, got {task_ids!r}")
    return ids


def _sandbox_spec(sandbox: str) -> tuple[str, Any]:
    """`local` runs programs in the core's local runner (no Inspect sandbox); `docker` uses the
    project's compose file; any other Inspect sandbox type (optionally `type:config`) is passed on."""
    if not isinstance(sandbox, str) or not sandbox:
        raise TaskParameterError(f"sandbox must be docker, local or an Inspect sandbox type, got {sandbox!r}")
    kind, _, config = sandbox.partition(":")
    if kind == "local":
        if config:
            raise TaskParameterError("sandbox=local takes no configuration")
        return "local", None
    if kind == "docker" and not config:
        compose = compose_file()  # also names the image built from this package's runner
        _check_image(os.environ.get("RPS_EVALS_SANDBOX_IMAGE", SANDBOX_IMAGE))
        return "docker", ("docker", compose)
    return kind, (kind, config) if config else kind


def _check_image(image: str) -> None:
    """Fail at once, not in every sample, when the sandbox image is missing (it is never pulled)."""
    build = ("run `rps-evals sandbox build` (or `bash sandbox/build_offline.sh` where no registry is "
             "reachable; from Python: rps_evals.execution.image.ensure_image()); see docs/sandbox.md")
    try:
        found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskParameterError(f"sandbox=docker needs a Docker engine ({exc}); or run trusted programs "
                                 "with -T sandbox=local") from None
    if found.returncode != 0:
        message = found.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        if "No such image" in message[0] or "not found" in message[0].lower():
            raise TaskParameterError(f"the sandbox image {image} is not built yet: {build}")
        raise TaskParameterError(f"sandbox=docker: cannot reach Docker ({message[0]}); or run trusted "
                                 "programs with -T sandbox=local")


# -- solver: k attempts ----------------------------------------------------------------------------

@solver
def arc_attempts(attempts: int = 2) -> Solver:
    """Generate `attempts` independent completions of the task prompt and record each one.

    Providers that accept `num_choices` get one request for all attempts (the prompt is prefilled
    once); any attempts a provider did not return are generated one call at a time. A call that
    fails after Inspect's retries is recorded as that attempt's error; once every attempt has been
    tried the sample is failed, so it is scored with the error counted and `eval-retry` redoes it.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        model = get_model()
        task_id = str(state.metadata.get("task_id", state.sample_id))
        recorded: list[dict[str, Any]] = []
        choices: list[ChatCompletionChoice] = []
        errors: list[str] = []
        want_choices = attempts > 1 and type(model.api).__name__ in NUM_CHOICES_APIS
        try:
            while len(recorded) < attempts:
                first = len(recorded) + 1
                batch = attempts - len(recorded) if want_choices else 1
                want_choices = False  # a provider that ignored `n` gets single calls for the rest
                try:
                    output = await _generate(model, state, task_id, first, batch)
                except LimitExceededError:
                    raise  # a sample limit ends the sample; attempts not made count as missing
                except Exception as exc:  # failed after Inspect's own retries: an api error
                    message = str(exc) if isinstance(exc, ReplayedAPIError) else f"{type(exc).__name__}: {exc}"
                    errors.append(f"attempt {first}: {message}")
                    recorded += [_attempt(a, None, None, message[:2000]) for a in range(first, first + batch)]
                    continue
                for choice in output.choices[:attempts - len(recorded)]:
                    recorded.append(_attempt(len(recorded) + 1, choice.message.text, choice.stop_reason,
                                             reasoning=reasoning_of(choice.message)))
                    choices.append(choice)
                if not output.choices:
                    message = output.error or "the model returned no completion"
                    errors.append(f"attempt {first}: {message}")
                    recorded.append(_attempt(first, None, None, message[:2000]))
        finally:
            state.store.set(STORE_KEY, recorded)
        if choices:  # the log's sample output shows every attempt that got a completion
            state.output = ModelOutput(model=str(model), choices=choices)
            state.messages.append(choices[0].message)
        if errors:
            raise GenerationFailed(task_id, errors)
        return state

    return solve


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
    try:
        config = GenerateConfig(num_choices=n) if n > 1 else GenerateConfig()
        return await model.generate(list(state.messages), config=config)
    finally:
        current_attempt.reset(token)


@metric
def reliability():
    """Every metric of docs/metrics.md over the scored tasks, as `<name>_n` (summed units), `<name>_of`
    (summed denominators) and `<name>` (their rate); and `arc_prize_score`, the mean over tasks of the
    fraction of their test outputs matched."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in METRICS:
            n = sum(float(s.score.value[name]) for s in scores)
            of = sum(float((s.score.metadata or {})["of"][name]) for s in scores)
            out[f"{name}_n"], out[f"{name}_of"], out[name] = n, of, (n / of if of else 0.0)
        prize = [float(s.score.value["arc_prize_score"]) for s in scores]
        out["arc_prize_score"] = sum(prize) / len(prize) if prize else 0.0
        return out

    return compute


# -- scorer ----------------------------------------------------------------------------------------

@scorer(metrics=[reliability()])
def arc_scorer(dataset: str, attempts: int = 2, exec_timeout: float = DEFAULT_TIMEOUT,
               sandbox: str = "docker") -> Scorer:
    """Score one ARC task's recorded attempts with the core; per-task metric counts as the value."""
    full = load_dataset(dataset)

    async def score(state: TaskState, target: Target) -> Score:
        task = full.tasks[str(state.metadata.get("task_id", state.sample_id))]
        by_attempt = {r["attempt"]: r for r in state.store.get(STORE_KEY, [])}
        responses = [
            Response(task.task_id, a, r["completion"], r["stop_reason"], r["error"], reasoning=r.get("reasoning"))
            if r else None
            for a in range(1, attempts + 1)
            for r in [by_attempt.get(a)]
        ]
        prepared = [program_for(task, response) for response in responses]
        executions = await run_programs([program for program, _ in prepared], sandbox, exec_timeout)
        records = [
            score_attempt(task, response, json_predictions, execution, a)
            for a, (response, (_, json_predictions), execution)
            in enumerate(zip(responses, prepared, executions), 1)
        ]
        return task_score(records, attempts)

    return score


def task_score(records: list[AttemptRecord], k: int) -> Score:
    """One task's Score: each metric's n as the value, its of in metadata, the records alongside."""
    counts = {name: count(u) for name, u in metric_units(records, k).items() if name in METRICS}
    prize = arc_prize_score(records, k)
    value = {name: c["n"] for name, c in counts.items()}
    value["arc_prize_score"] = prize
    of = {name: c["of"] for name, c in counts.items()}
    sources = ", ".join(f"attempt {r.attempt}: {r.source} ({r.program_status})" for r in records)
    answer = json.dumps([r.predictions for r in records[:2]], separators=(",", ":"))
    return Score(
        value=value,
        answer=answer if len(answer) <= 4000 else None,  # attempts 1 and 2's predictions, if short
        explanation=sources,
        metadata={"of": of, "attempts": [r.to_dict() for r in records]},
    )


# -- running programs ------------------------------------------------------------------------------

async def run_programs(programs: list[Program], sandbox: str, timeout: float) -> list[Execution]:
    """Run one task's programs: in the core's local runner, or through the sample's Inspect sandbox."""
    if all(not p.source for p in programs):
        return [Execution.nothing_to_run(p) for p in programs]
    if sandbox == "local":
        executor = shared_executor("local", timeout)  # UNSAFE by the user's explicit choice
        return await anyio.to_thread.run_sync(executor.run, programs)
    return await run_in_inspect_sandbox(programs, timeout)
