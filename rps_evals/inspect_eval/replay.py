"""`--model rps/replay`: an Inspect model that serves recorded generations instead of generating.

Uses: re-scoring recorded generations with a changed parser or scorer, tests and demos that must
run offline, and the project's CI. The recordings are a responses JSONL file (the format
`rps-evals score` reads, one object per attempt, checked with the same `parse_response_line`),
given as `-M responses=FILE.jsonl`; without it the bundled demo file is served.

A request is answered by (task id, attempt): the arc tasks' solver says which attempt it asks for;
any other solver gets attempts 1, 2, ... in call order per sample. A recorded stop reason comes
back as the choice's stop reason, a recorded error is raised as a non-retried API error, and a
(task, attempt) with no recording is `missing`, as `rps-evals score` counts it on the same file (a
replay never invents a completion). A file with no response for any selected task is refused when
`inspect eval` builds the task. Token usage is the recorded `output_tokens` where the file has them
(a file records no input tokens: they count 0), else an estimate (about 4 characters a token,
marked so that no result reports it) because Inspect would otherwise try to download a tokenizer.

Refinement (`-T refine=R`): a line may carry `"round": r` (an integer >= 0, default 0), the answer
given after r feedback messages; a request is then answered by (task id, attempt, round), the
round the solver says it asks for. A round the file does not record ends that attempt's
conversation at its previous answer, with no feedback sent (so a file of first answers only
replays as refine=0 would). `rps-evals score` reads round-0 files only.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from importlib.resources import files
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from inspect_ai._util.error import PrerequisiteError  # non-public: Inspect prints it without a traceback

from rps_evals.attempts import Response
from rps_evals.inspect_eval.generation import (
    CHOICE_USAGE,
    ESTIMATED_USAGE,
    AttemptMissing,
    RecordedAPIError,
    current_attempt,
    current_round,
)
from rps_evals.records import InputError, check_responses, parse_response_line, read_json_lines

DEMO_RESPONSES = "demo_arc1_training.jsonl"
DEMO_DATASET = "arc1:training"  # the dataset the bundled demo answers


def demo_responses_path() -> Path:
    """The bundled demo recordings (arc1 training tasks; see scripts/make_demo_responses.py)."""
    return Path(str(files("rps_evals") / "data" / DEMO_RESPONSES))


class ReplayArgumentError(PrerequisiteError, ValueError):
    """A bad rps/replay model or `-M` argument (a missing or malformed responses file): Inspect
    prints a PrerequisiteError's message alone, not a traceback."""

    def __init__(self, message: str):
        super().__init__(message)
        ValueError.__init__(self, message)


class ReplayAPI(ModelAPI):
    """Serves a responses file by (task id, attempt); `rps/replay` is its only model name. It is
    `generation.SelectionAware`: it names the demo's tasks and refuses a selection it cannot serve."""

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig = GenerateConfig(), responses: str | None = None,
                 **model_args: Any) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        if model_name != "replay":
            raise ReplayArgumentError(f"unknown rps model {model_name!r}: the only one is rps/replay")
        if model_args:
            raise ReplayArgumentError(f"rps/replay takes only -M responses=FILE.jsonl, not {', '.join(model_args)}")
        self.path = Path(responses) if responses else demo_responses_path()
        try:
            self.responses = read_recordings(self.path)
        except InputError as exc:
            raise ReplayArgumentError(f"rps/replay: {exc}") from None
        self._calls: dict[Any, int] = defaultdict(int)
        self._lock = threading.Lock()

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice,
                       config: GenerateConfig) -> ModelOutput:
        n = config.num_choices or 1
        task_id, first = self._which(n)
        round = current_round.get()
        choices = []
        for attempt in range(first, first + n):
            response = self.responses.get((task_id, attempt, round))
            failure = None
            if response is None:
                if not choices:
                    raise AttemptMissing(f"{self.path.name} has no response for task {task_id} attempt {attempt}"
                                         + (f" round {round}" if round else ""))
                break  # served the attempts before it; the solver asks for this one alone
            if response.completion is None and response.error is not None:
                failure = response.error
            if failure is not None:
                if n == 1:
                    raise RecordedAPIError(failure)
                # Several choices asked for: serve the attempts before this one; if it is the
                # first, an empty output tells the solver that this attempt failed, and the
                # solver asks for the later attempts one at a time.
                if not choices:
                    return ModelOutput(model="replay", choices=[], error=failure,
                                       usage=ModelUsage(input_tokens=0, output_tokens=0, total_tokens=0))
                break
            # recorded reasoning comes back as a provider returns it: a ContentReasoning part beside the text
            content = ([ContentReasoning(reasoning=response.reasoning), ContentText(text=response.completion or "")]
                       if response.reasoning else response.completion or "")
            choices.append(ChatCompletionChoice(
                message=ChatMessageAssistant(content=content, model="replay", source="generate"),
                stop_reason=response.stop_reason or "unknown",
            ))
        served = [self.responses[(task_id, first + i, round)] for i in range(len(choices))]
        if all(r.output_tokens is not None for r in served):  # recorded counts (a file has no input counts)
            output_tokens = sum(r.output_tokens for r in served)
            reasoning = [r.reasoning_tokens for r in served if r.reasoning_tokens is not None]
            usage = ModelUsage(input_tokens=0, output_tokens=output_tokens, total_tokens=output_tokens,
                               reasoning_tokens=sum(reasoning) if reasoning else None)
            per_choice = [{"output_tokens": r.output_tokens, "reasoning_tokens": r.reasoning_tokens} for r in served]
            return ModelOutput(model="replay", choices=choices, usage=usage, metadata={CHOICE_USAGE: per_choice})
        prompt_tokens = _estimate_tokens("".join(m.text for m in input))
        output_tokens = sum(_estimate_tokens(c.message.text) for c in choices)
        return ModelOutput(model="replay", choices=choices, metadata={ESTIMATED_USAGE: True},
                           usage=ModelUsage(input_tokens=prompt_tokens, output_tokens=output_tokens,
                                            total_tokens=prompt_tokens + output_tokens))

    def default_task_ids(self, dataset_name: str) -> list[str] | None:
        """The bundled demo's tasks, in file order, when it is what is served on its own dataset and
        no task ids were given (so the demo needs no id list); None otherwise (every task)."""
        if self.path != demo_responses_path() or dataset_name != DEMO_DATASET:
            return None
        return list(dict.fromkeys(task_id for task_id, *_ in self.responses))

    def check_covers(self, dataset) -> None:
        """Refuse, before any sample runs, a file that answers none of the selected tasks (it
        would score every attempt missing: a table of zeros that looks like a measurement)."""
        answered = {task_id for task_id, *_ in self.responses}
        if answered & set(dataset.tasks):
            return
        some = ", ".join(sorted(answered)[:3]) + (", ..." if len(answered) > 3 else "")
        raise ValueError(
            f"rps/replay: {self.path} has no response for any of the {len(dataset.tasks)} selected tasks of "
            f"{dataset.name} (it answers {len(answered)} other tasks{': ' + some if some else ''}); "
            "give -M responses=FILE.jsonl recorded on this dataset, or select its tasks with -T split=... "
            "and -T task_ids=...")

    def _which(self, n: int) -> tuple[str, int]:
        """(task id, first attempt) of this request."""
        asked = current_attempt.get()
        if asked is not None:
            return asked
        from inspect_ai.solver._task_state import sample_state  # other solvers: count calls per sample

        state = sample_state()
        if state is None:
            raise RecordedAPIError("rps/replay serves samples of an eval; no sample is running")
        key = (state.sample_id, state.epoch, state.uuid)
        with self._lock:
            first = self._calls[key] + 1
            self._calls[key] += n
        return str(state.sample_id), first

    def should_retry(self, ex: Exception) -> bool:
        return False  # a recording does not change on a second try

    def max_tokens(self) -> int | None:
        return None

    def max_connections(self) -> int:
        return 64


def read_recordings(path: Path) -> dict[tuple[str, int, int], Response]:
    """The responses of a file by (task id, attempt, round), each round's lines checked like
    `rps-evals score` checks a file (the dataset is not known here, so unknown task ids surface as
    unanswered requests)."""
    by_round: dict[int, list[tuple[str, Response]]] = defaultdict(list)
    for where, obj in read_json_lines(path):
        round = obj.pop("round", 0) if isinstance(obj, dict) else 0
        if isinstance(round, bool) or not isinstance(round, int) or round < 0:
            raise InputError(f"{where}: round must be an integer >= 0 (the answer after that many feedbacks)")
        by_round[round].append((where, parse_response_line(obj, where)))
    return {(r.task_id, r.attempt, round): r
            for round, lines in by_round.items() for r in check_responses(lines)}


def _estimate_tokens(text: str | None) -> int:
    return (len(text) + 3) // 4 if text else 0
