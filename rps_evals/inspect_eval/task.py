"""The Inspect AI task shared by `rps_evals/arc1.py` and `rps_evals/arc2.py`: parameters checked
up front, one sample per ARC task, the solver (`solver.py`) and scorer (`scorer.py`).

Inspect runs the model (any provider, retries, concurrency, logs); every number comes from the
scoring core: the solver only records k raw attempts per ARC task, and the scorer turns them into
the core's records and per-task metric counts, so the Inspect results carry the same n / of as
`rps-evals score` on the same responses.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from inspect_ai import Task
from inspect_ai._util.error import PrerequisiteError  # non-public: Inspect prints it without a traceback
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import HeadlineMetric
from inspect_ai.model import GenerateConfig, Model

from rps_evals.data import DATASETS, DatasetError, load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, SandboxUnavailable, shared_executor
from rps_evals.execution.image import check_image
from rps_evals.feedback import refinement_provenance
from rps_evals.inspect_eval import hooks as _hooks  # noqa: F401  (registers the end-of-eval table)
from rps_evals.inspect_eval.generation import SelectionAware
from rps_evals.inspect_eval.sandbox import compose_file
from rps_evals.inspect_eval.scorer import arc_scorer
from rps_evals.inspect_eval.solver import arc_attempts, takes_num_choices
from rps_evals.prompt import ProgramSynthesis, build_prompt, prompt_version
from rps_evals.provenance import build_provenance, generation_settings, sandbox_info, sent_top_k
from rps_evals.selection import DEFAULT_POLICY, check_policy, check_prices

# Finite by default so a dead or hung server ends in counted api_errors instead of a stuck run:
# a generation may take up to 30 min (long reasoning on a busy server), each call at most 1 h in all.
DEFAULT_CONFIG = GenerateConfig(max_retries=3, attempt_timeout=1800, timeout=3600)


class TaskParameterError(PrerequisiteError, ValueError):
    """A bad `-T` parameter: raised while building the task, before any generation. A
    PrerequisiteError, so `inspect eval` prints the message alone, not a traceback."""

    def __init__(self, message: str):
        super().__init__(message)
        ValueError.__init__(self, message)


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
    refine: int = 0,
    dataset: str | None = None,
    solutions: str | None = None,
) -> Task:
    """Build the Inspect task for one ARC version; every parameter is checked here, up front.

    `dataset` (instead of `split`): a named copy such as `arc2:evaluation@kaggle2025`, or your own
    tasks, a folder of ARC task files or a challenges JSON (+ `solutions` JSON); see rps_evals.data."""
    dataset_name = f"{version}:{split}" if dataset is None else str(dataset)
    if dataset is None and dataset_name not in DATASETS:
        copies = [name.split(":", 1)[1] for name in DATASETS if name.startswith(f"{version}:") and "@" in name]
        raise TaskParameterError(f"split must be 'training' or 'evaluation' (or a named copy: {', '.join(copies)}), "
                                 f"got {split!r}")
    if dataset_name in DATASETS and not dataset_name.startswith(f"{version}:"):
        raise TaskParameterError(f"dataset {dataset_name} is not {version}: run it with rps_evals/{dataset_name.split(':')[0]}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise TaskParameterError(f"attempts must be an integer >= 1, got {attempts!r}")
    try:
        mode = ProgramSynthesis(program_synthesis)
    except ValueError:
        choices = ", ".join(m.value for m in ProgramSynthesis)
        raise TaskParameterError(f"program_synthesis must be one of {choices}, got {program_synthesis!r}") from None
    _check_refine(refine, mode)
    if isinstance(exec_timeout, bool) or not isinstance(exec_timeout, (int, float)) or exec_timeout <= 0:
        raise TaskParameterError(f"exec_timeout must be a positive number of seconds, got {exec_timeout!r}")
    try:
        check_policy(select)
        check_prices(price_in, price_out)
    except ValueError as exc:
        raise TaskParameterError(f"select / price_in / price_out: {exc}") from None
    try:
        full = load_dataset(dataset_name, solutions)
    except DatasetError as exc:
        raise TaskParameterError(f"dataset: {exc}") from None
    ids = _task_id_list(task_ids, full.tasks)
    model = _active_model()
    if ids is None and model is not None and isinstance(model.api, SelectionAware):
        ids = model.api.default_task_ids(dataset_name)  # e.g. the bundled demo's tasks: no id list needed
    try:
        dataset = full.select(ids)
    except DatasetError as exc:
        raise TaskParameterError(str(exc)) from None
    sandbox_kind, sandbox_spec = _sandbox_spec(sandbox, float(exec_timeout))
    if model is not None and isinstance(model.api, SelectionAware):
        try:  # a recording with nothing to serve refuses before any sample
            model.api.check_covers(dataset)
        except ValueError as exc:
            raise TaskParameterError(str(exc)) from None
    provenance = build_provenance(dataset, attempts, mode, float(exec_timeout), _sandbox_provenance(sandbox),
                                  *_model_provenance(model, attempts))
    if refine:
        provenance.update(refinement_provenance(refine))

    samples = [
        Sample(id=task.task_id, input=build_prompt(task, mode),
               target=json.dumps(task.test_outputs, separators=(",", ":")),
               metadata={"task_id": task.task_id, "num_tests": task.num_tests})
        for task in dataset.tasks.values()
    ]
    return Task(
        dataset=MemoryDataset(samples, name=dataset_name),
        solver=arc_attempts(attempts=attempts, dataset=dataset_name, task_ids=ids, refine=refine,
                            sandbox=sandbox_kind, exec_timeout=float(exec_timeout)),
        scorer=arc_scorer(dataset=dataset_name, attempts=attempts, exec_timeout=float(exec_timeout),
                          sandbox=sandbox_kind, provenance=provenance, select=select),
        sandbox=sandbox_spec,
        config=DEFAULT_CONFIG,
        # A generation that failed is a measurement (api_errors): the sample is still scored and the
        # run goes on; `inspect eval-retry LOG` re-runs the errored samples. With score_on_error,
        # fail_on_error never stops a run: it only marks the log `error` when a quarter or more of
        # the samples errored (a dead server), Inspect's sign that eval-retry has work to do. Such a
        # log is still complete: `rps-evals report` reads it by what it holds (reports/readers.py).
        score_on_error=True,
        fail_on_error=0.25,
        metadata={"rps_evals": {"dataset": dataset_name, "dataset_hash": dataset.file_hash,
                                "attempts": attempts, "prompt_version": prompt_version(mode),
                                "program_synthesis": mode.value, "provenance": provenance,
                                "select": select, "price_in": price_in, "price_out": price_out,
                                "refine": refine}},
        headline_metric=HeadlineMetric(metric="task_solves"),
        version=prompt_version(mode),
    )


def _check_refine(refine: Any, mode: ProgramSynthesis) -> None:
    """`refine`: feedback rounds per attempt, an integer >= 0; feedback is about programs, so a
    prompt that asks for none cannot be refined."""
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise TaskParameterError(f"refine must be an integer >= 0 (feedback rounds per attempt), got {refine!r}")
    if refine and mode is ProgramSynthesis.OFF:
        raise TaskParameterError("refine needs programs to run on the training examples, but "
                                 "program_synthesis=off asks for none")


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
    n = attempts if attempts > 1 and takes_num_choices(model) else 1
    return str(model), generation_settings(temperature=config.temperature, top_p=config.top_p,
                                           top_k=sent_top_k(str(model), config.top_k, config.extra_body),
                                           max_tokens=config.max_tokens,
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
