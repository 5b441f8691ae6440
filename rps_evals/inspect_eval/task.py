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
from rps_evals.execution import DEFAULT_TIMEOUT, Execution, Program, SandboxUnavailable, shared_executor
from rps_evals.execution.image import check_image
from rps_evals.inspect_eval import hooks as _hooks  # noqa: F401  (registers the end-of-eval table)
from rps_evals.inspect_eval.sandbox import compose_file, run_in_inspect_sandbox
from rps_evals.prompt import ProgramSynthesis, build_prompt, prompt_version
from rps_evals.provenance import build_provenance, generation_settings, sandbox_info
from rps_evals.inspect_eval.replay import CHOICE_USAGE, ESTIMATED_USAGE, ReplayAPI, ReplayedAPIError, ReplayMissing, current_attempt
from rps_evals.scoring import (
    METRICS,
    AttemptRecord,
    Response,
    arc_prize_score,
    pool,
    program_for,
    score_attempt,
    task_counts,
)
from rps_evals.selection import DEFAULT_POLICY, check_policy, check_prices, selected_metric_names

STORE_KEY = "rps_evals:attempts"
USAGE_KEY = "rps_evals:usage"  # the sample's token totals over all its requests
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
    select: str = DEFAULT_POLICY,
    price_in: float | None = None,
    price_out: float | None = None,
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
    try:
        check_policy(select)
        check_prices(price_in, price_out)
    except ValueError as exc:
        raise TaskParameterError(f"select / price_in / price_out: {exc}") from None
    full = load_dataset(dataset_name)
    ids = _task_id_list(task_ids, full.tasks)
    model = _active_model()
    if ids is None and model is not None and isinstance(model.api, ReplayAPI):
        ids = model.api.default_task_ids(dataset_name)  # the bundled demo's tasks: no id list needed
    try:
        dataset = full.select(ids)
    except DatasetError as exc:
        raise TaskParameterError(str(exc)) from None
    sandbox_kind, sandbox_spec = _sandbox_spec(sandbox, float(exec_timeout))
    if model is not None and isinstance(model.api, ReplayAPI):
        try:  # a replay with nothing to serve refuses before any sample
            model.api.check_covers(dataset)
        except ValueError as exc:
            raise TaskParameterError(str(exc)) from None
    provenance = build_provenance(dataset, attempts, mode, float(exec_timeout), _sandbox_provenance(sandbox),
                                  *_model_provenance(model, attempts))

    samples = [
        Sample(id=task.task_id, input=build_prompt(task, mode),
               target=json.dumps(task.test_outputs, separators=(",", ":")),
               metadata={"task_id": task.task_id, "num_tests": task.num_tests})
        for task in dataset.tasks.values()
    ]
    return Task(
        dataset=MemoryDataset(samples, name=dataset_name),
        solver=arc_attempts(attempts=attempts, dataset=dataset_name, task_ids=ids),
        scorer=arc_scorer(dataset=dataset_name, attempts=attempts, exec_timeout=float(exec_timeout),
                          sandbox=sandbox_kind, provenance=provenance, select=select),
        sandbox=sandbox_spec,
        config=DEFAULT_CONFIG,
        # A generation that failed is a measurement (api_errors): the sample is still scored and the
        # run goes on; `inspect eval-retry LOG` re-runs the errored samples. Only when over a quarter
        # of the samples errored (a dead server, a missing sandbox) is the log marked as failed.
        score_on_error=True,
        fail_on_error=0.25,
        metadata={"rps_evals": {"dataset": dataset_name, "dataset_hash": dataset.file_hash,
                                "attempts": attempts, "prompt_version": prompt_version(mode),
                                "program_synthesis": mode.value, "provenance": provenance,
                                "select": select, "price_in": price_in, "price_out": price_out}},
        headline_metric=HeadlineMetric(metric="task_solves"),
        version=prompt_version(mode),
    )


def _active_model() -> Model | None:
    """The model being evaluated: Inspect sets it before it builds the task (None outside an eval)."""
    try:
        from inspect_ai.model._model import active_model
    except ImportError:
        return None
    return active_model()


def _sandbox_provenance(sandbox: str) -> dict[str, Any]:
    kind, _, config = sandbox.partition(":")
    if kind in ("docker", "local"):
        return sandbox_info(kind)
    if kind == "inspect-docker" and not config:  # the project's image, in Inspect's own sandbox
        return {**sandbox_info("docker"), "backend": "inspect-docker"}
    return sandbox_info(sandbox)


def _model_provenance(model: Model | None, attempts: int) -> tuple[str | None, dict[str, Any] | None]:
    """The model's name and the generation settings of this eval, as far as Inspect says them
    when the task is built (`rps-evals report` fills in what only the log knows)."""
    if model is None:
        return None, None
    from inspect_ai.model._generate_config import active_generate_config

    config = DEFAULT_CONFIG.merge(model.config).merge(active_generate_config())
    n = attempts if attempts > 1 and type(model.api).__name__ in NUM_CHOICES_APIS else 1
    return str(model), generation_settings(temperature=config.temperature, top_p=config.top_p,
                                           top_k=config.top_k, max_tokens=config.max_tokens,
                                           seed=config.seed, num_choices=n)


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


def _sandbox_spec(sandbox: str, exec_timeout: float) -> tuple[str, Any]:
    """Where the scorer runs programs, and the Inspect sandbox the task asks for (None: none).

    `docker`: the project's warm hardened container pool (the executor of `rps-evals score`),
    shared by every sample of the eval; `local`: the core's local runner (UNSAFE); `inspect-docker`
    (optionally `:COMPOSE_FILE`): Inspect's own docker sandbox, one compose project per sample,
    on sandbox/compose.yaml by default; any other Inspect sandbox type (`type[:config]`, e.g. k8s)
    is passed on, and its image must have the runner at /opt/rps/runner.
    """
    if not isinstance(sandbox, str) or not sandbox:
        raise TaskParameterError(f"sandbox must be docker, local or an Inspect sandbox type, got {sandbox!r}")
    kind, _, config = sandbox.partition(":")
    if kind in ("docker", "local"):
        if config:
            hint = " (for Inspect's docker sandbox on your compose file: inspect-docker:PATH)" if kind == "docker" else ""
            raise TaskParameterError(f"sandbox={kind} takes no configuration{hint}")
        try:  # fail here, before any generation: no engine, no image, no Docker SDK
            if kind == "docker":
                check_image()
            shared_executor(kind, exec_timeout)
        except SandboxUnavailable as exc:
            raise TaskParameterError(f"sandbox={kind}: {exc}") from None
        return kind, None
    if kind == "inspect-docker":
        if not config:
            config = compose_file()  # the project's image with the executor's limits
            try:
                check_image()
            except SandboxUnavailable as exc:
                raise TaskParameterError(f"sandbox=inspect-docker: {exc}") from None
        return "inspect", ("docker", config)
    return "inspect", (kind, config) if config else kind


# -- solver: k attempts ----------------------------------------------------------------------------

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
        if dataset is not None and isinstance(model.api, ReplayAPI):
            # `inspect eval` refuses such a replay when it builds the task; a task built before the
            # model was known (Python API) refuses here, in every sample, before generating
            model.api.check_covers(load_dataset(dataset).select(task_ids))
        task_id = str(state.metadata.get("task_id", state.sample_id))
        recorded: list[dict[str, Any]] = []
        choices: list[ChatCompletionChoice] = []
        errors: list[str] = []
        usage = {"output_tokens": 0, "reasoning_tokens": None, "total_tokens": 0, "known": True}
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
                except ReplayMissing:  # the recording has no such attempt: missing, as in `rps-evals score`
                    recorded.append({"attempt": first, "missing": True})
                    continue
                except Exception as exc:  # failed after Inspect's own retries: an api error
                    message = str(exc) if isinstance(exc, ReplayedAPIError) else f"{type(exc).__name__}: {exc}"
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
    try:
        config = GenerateConfig(num_choices=n) if n > 1 else GenerateConfig()
        return await model.generate(list(state.messages), config=config)
    finally:
        current_attempt.reset(token)


@metric
def reliability():
    """Every metric of docs/metrics.md as a rate, pooled by the core over the scored tasks, and
    `arc_prize_score`. Inspect shows rates only; each sample keeps its task's n (the score value)
    and of (the score metadata), so `log_counts` and `rps-evals report` recover the n/of table."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        pooled = pool(_sample_counts(s.score) for s in scores)
        out = {name: float(pooled[name]["rate"]) if name in pooled else 0.0 for name in METRICS}
        out.update({name: float(c["rate"]) for name, c in pooled.items() if name not in out})  # -T select=
        prize = [float(s.score.value["arc_prize_score"]) for s in scores]
        out["arc_prize_score"] = sum(prize) / len(prize) if prize else 0.0
        return out

    return compute


def _sample_counts(score: Score) -> dict[str, tuple[float, float]]:
    of = (score.metadata or {})["of"]
    return {name: (float(score.value[name]), float(of[name])) for name in of}


def log_counts(log) -> dict[str, dict[str, Any]]:
    """Every metric's {n, of, rate} of an Inspect log of these tasks (from its samples' scores)."""
    scores = [sample.scores[SCORER_NAME] for sample in log.samples or [] if SCORER_NAME in (sample.scores or {})]
    pooled = pool(_sample_counts(score) for score in scores)
    names = [*METRICS, *(name for name in pooled if name not in METRICS)]
    return {name: {**pooled[name], "n": int(pooled[name]["n"]), "of": int(pooled[name]["of"])}
            for name in names if name in pooled}


# -- scorer ----------------------------------------------------------------------------------------

@scorer(metrics=[reliability()])
def arc_scorer(dataset: str, attempts: int = 2, exec_timeout: float = DEFAULT_TIMEOUT,
               sandbox: str = "docker", provenance: dict[str, Any] | None = None,
               select: str = DEFAULT_POLICY) -> Scorer:
    """Score one ARC task's recorded attempts with the core; per-task metric counts as the value.
    `provenance` is not used here: as a scorer argument it is logged beside the metrics' results."""
    full = load_dataset(dataset)

    async def score(state: TaskState, target: Target) -> Score:
        task = full.tasks[str(state.metadata.get("task_id", state.sample_id))]
        by_attempt = {r["attempt"]: r for r in state.store.get(STORE_KEY, [])}
        responses = [
            Response(task.task_id, a, r["completion"], r["stop_reason"], r["error"], reasoning=r.get("reasoning"),
                     output_tokens=r.get("output_tokens"), reasoning_tokens=r.get("reasoning_tokens"))
            if r and not r.get("missing") else None
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
        result = task_score(records, attempts, task.test_outputs, select)
        result.metadata["usage"] = state.store.get(USAGE_KEY)
        return result

    return score


def task_score(records: list[AttemptRecord], k: int, expected: Sequence[Any] = (),
               select: str = DEFAULT_POLICY) -> Score:
    """One task's Score: each metric's n (the core's per-task counts) as the value, its of in
    metadata, the records alongside, and an explanation `inspect view` renders as markdown."""
    reported = set(METRICS) | set(selected_metric_names(select) if select != DEFAULT_POLICY else ())
    counts = {name: c for name, c in task_counts(records, k, select).items() if name in reported}
    value: dict[str, Any] = {name: n for name, (n, _) in counts.items()}
    value["arc_prize_score"] = arc_prize_score(records, k)
    answer = json.dumps([r.predictions for r in records[:2]], separators=(",", ":"))
    return Score(
        value=value,
        answer=answer if len(answer) <= 4000 else None,  # attempts 1 and 2's predictions, if short
        explanation=explain(records, expected),
        metadata={"of": {name: of for name, (_, of) in counts.items()}, "attempts": [r.to_dict() for r in records]},
    )


SMALL_GRID = 10  # explanations draw grids up to this many rows and columns
NBSP = "\u00a0"  # padding the viewer keeps (it collapses runs of ordinary spaces)


def explain(records: Sequence[AttemptRecord], expected: Sequence[Any] = ()) -> str:
    """One line per attempt (source, program status, which tests it got right), then for small
    grids each test's expected output beside every attempt's prediction, one grid row per line.

    Written for `inspect view`, which renders a score's explanation with its plain-text markdown
    renderer (emphasis and line breaks only: no lists, tables or code blocks)."""
    lines = []
    for r in records:
        what = "missing" if r.missing else f"API error: {r.api_error[:120]}" if r.api_error else \
            f"{r.source}, program {r.program_status}" + (", train-verified" if r.train_verified else "")
        right = " ".join("✓" if c else "✗" for c in r.correct)
        stop = f", stopped at {r.stop_reason}" if r.stop_reason in ("max_tokens", "model_length") else ""
        lines.append(f"**attempt {r.attempt}**: {what}{stop}; tests {right}")
    for j, want in enumerate(expected):
        grids = [("expected", want)] + [(f"attempt {r.attempt}", r.predictions[j] if j < len(r.predictions) else None)
                                        for r in records]
        if not all(_small(g) for _, g in grids if g is not None):
            continue
        lines += ["", f"**test {j + 1}**: " + " │ ".join(label for label, _ in grids), *_side_by_side(grids)]
    return "\n".join(lines)


def _small(grid: Any) -> bool:
    return isinstance(grid, list) and 0 < len(grid) <= SMALL_GRID and all(
        isinstance(row, list) and len(row) <= SMALL_GRID for row in grid)


def _side_by_side(grids: list[tuple[str, Any]]) -> list[str]:
    """The grids' rows as digits, joined by ` │ ` (`—` where an attempt predicted nothing)."""
    columns = []
    for _, grid in grids:
        rows = ["".join(str(c) for c in row) for row in grid] if grid is not None else ["—"]
        width = max(len(row) for row in rows)
        columns.append([row.ljust(width, NBSP) for row in rows])
    height = max(len(c) for c in columns)
    columns = [c + [NBSP * len(c[0])] * (height - len(c)) for c in columns]
    return [" │ ".join(parts) for parts in zip(*columns)]


# -- running programs ------------------------------------------------------------------------------

async def run_programs(programs: list[Program], sandbox: str, timeout: float) -> list[Execution]:
    """Run one task's programs: in the core's local runner, or through the sample's Inspect sandbox."""
    if all(not p.source for p in programs):
        return [Execution.nothing_to_run(p) for p in programs]
    if sandbox in ("docker", "local"):  # the warm pool shared by the eval's samples (local: UNSAFE)
        executor = shared_executor(sandbox, timeout)
        return await anyio.to_thread.run_sync(executor.run, programs)
    return await run_in_inspect_sandbox(programs, timeout)
