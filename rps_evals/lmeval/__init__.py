"""lm-evaluation-harness front end: the `arc_prog` tasks, scored by the core, and reading their output.

lm-eval owns generation (any backend: `hf`, `vllm` with a LoRA adapter, `local-chat-completions`);
everything after it is the core's: the same prompt (`build_prompt`), parser, sandbox executor and
metric units as `rps-evals score`, so the numbers are the same on the same responses. The YAMLs in
`tasks/arc_prog/` point here through the shim `tasks/arc_prog/utils.py`.

What lm-eval cannot tell us, and what we do about it (see docs/lm-eval.md):
- Stop reasons: lm-eval returns text only; the project's backend `rps-chat-completions`
  (rps_evals/lmeval/model.py) returns the server's finish_reason with it, which is then the stop
  reason. Otherwise an attempt hit the token limit when the model's tokenizer
  (`rps_tokenizer`, else the model args' `tokenizer`, else `pretrained`) counts at least the request's
  `max_gen_toks` tokens in it. Without a tokenizer the stop reason is unknown: the `stop_reason_unknown`
  metric counts those attempts and token_limit_hits does not.
- API errors: lm-eval's API backends turn a response without usable content into an empty string (its
  LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER); from an API backend that string is an api_error. A request that
  still fails after `max_retries` aborts the whole run under `local-chat-completions`; under
  `rps-chat-completions` it is that attempt's api_error, with the HTTP status and the server's message.
- Groups: lm-eval 0.4.13 combines subtasks only as a mean weighted by document count. That equals the
  pooled n/of for metrics counted per task or per attempt and for arc_prize_score; test-output metrics
  (tasks have 1 to 4 test outputs) cannot be combined that way, so the group leaves them out.

Knobs, through lm-eval's `--metadata` JSON (model args land there too): `arc_dataset` (a dataset
name, or your own tasks: a folder of task files or a challenges JSON, with `arc_solutions`; it
replaces the YAML's), `rps_sandbox` (docker, the
default, or local; the RPS_SANDBOX environment variable also works), `rps_exec_timeout` (seconds per
transform call), `rps_tokenizer`, `rps_api_backend` (true/false, to override the guess above),
`program_synthesis` (allowed, required, off), `rps_select` (which 2 of the `repeats` attempts to submit:
first, train_vote, train_verified_first; docs/metrics.md) and `rps_price_in` / `rps_price_out` (prices
per million input / output tokens, for the cost `rps-evals report` records).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from rps_evals.data import Task, load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, Executor, shared_executor
from rps_evals.versions import require_supported
from rps_evals.selection import DEFAULT_POLICY, check_policy, check_prices
from rps_evals.prompt import ProgramSynthesis, build_prompt, prompt_version
from rps_evals.scoring import (
    AttemptRecord,
    Response,
    arc_prize_score,
    pool,
    score_attempts,
    task_counts,
    unknown_stop_reasons,
)

log = logging.getLogger(__name__)

TASK_DATASETS = {
    "arc1_prog": "arc1:evaluation",
    "arc2_prog": "arc2:evaluation",
    "arc1_prog_training": "arc1:training",
    "arc2_prog_training": "arc2:training",
}
PROVENANCE_KEY = "rps_provenance"  # in the task's metadata: the run's provenance block (rps_evals.provenance)
RECORDS_KEY = "attempt_records"  # per-doc value: the doc's attempt records, so `report` re-runs nothing
UNKNOWN_STOP_KEY = "stop_reason_unknown"
API_ERROR_TEXT = ("no completion: the API backend returned no usable content "
                  "(lm-eval replaced it with its empty-answer placeholder)")
LMEVAL_DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's model default when a request names no limit


# -- documents and prompt ------------------------------------------------------------------------

def load_docs(arc_dataset: str = "arc1:evaluation", program_synthesis: str = "allowed",
              arc_solutions: str | None = None, **_metadata: Any):
    """lm-eval `custom_dataset`: one doc per ARC task from the core's offline loader (no Hub).

    lm-eval passes the whole task metadata (model args included) as keywords; three matter here.
    `--metadata '{"arc_dataset": PATH}'` (+ `arc_solutions`) evaluates your own tasks or a named
    copy such as arc2:evaluation@kaggle2025 under any arc_prog task (rps_evals.data).
    """
    import datasets

    mode = ProgramSynthesis(program_synthesis).value  # a bad value fails at load, before generation
    dataset = load_dataset(arc_dataset, arc_solutions)
    docs = [
        {"task_id": task.task_id, "dataset": dataset.name, "dataset_hash": dataset.file_hash,
         "num_tests": task.num_tests, "program_synthesis": mode, "prompt_version": prompt_version(mode)}
        for task in dataset.tasks.values()
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def _task(doc: dict) -> Task:
    return load_dataset(doc["dataset"]).tasks[doc["task_id"]]


def doc_to_text(doc: dict) -> str:
    """The same user message as every other front end."""
    return build_prompt(_task(doc), doc.get("program_synthesis", "allowed"))


def doc_to_target(doc: dict) -> str:
    """The expected test outputs, for the logged samples; scoring never reads it."""
    return json.dumps(_task(doc).test_outputs, separators=(",", ":"))


# -- aggregation ---------------------------------------------------------------------------------

def pooled_rate(items: Iterable[Sequence[int]]) -> float:
    """sum(n) / sum(of) over per-doc (n, of) pairs: the run's n/of, never a mean of per-doc rates."""
    return pool({"metric": item} for item in items).get("metric", {"rate": 0.0})["rate"]


def count_records(items: Iterable[list]) -> int:
    """Aggregation of the per-doc record lists: how many attempts were scored."""
    return sum(len(i) for i in items)


def doc_metrics(task: Task, records: list[AttemptRecord], k: int, select: str = DEFAULT_POLICY) -> dict[str, Any]:
    """One doc's contribution to every metric, from the core's unit indicators."""
    out: dict[str, Any] = dict(task_counts(records, k, select))
    out["arc_prize_score"] = arc_prize_score(records, k)
    out[UNKNOWN_STOP_KEY] = (unknown_stop_reasons(records), len(records))
    out[RECORDS_KEY] = [_record_without_completion(r) for r in records]
    return out


def _record_without_completion(record: AttemptRecord) -> dict:
    data = record.to_dict()
    data.pop("completion", None)  # lm-eval logs the completion already (resps)
    return data


# -- turning lm-eval's text into the core's responses ----------------------------------------------

@lru_cache(maxsize=None)
def _load_tokenizer(name: str):
    """(tokenizer, None) or (None, why it could not be loaded)."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name), None
    except Exception as exc:  # noqa: BLE001 - any failure only makes stop reasons unknown
        return None, f"could not load tokenizer {name!r}: {type(exc).__name__}: {str(exc)[:200]}"


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def _prices(price_in: Any, price_out: Any) -> dict[str, float | None]:
    """rps_price_in / rps_price_out as numbers (both or neither); a bad value fails at task load."""
    prices = {"price_in": None if price_in is None else float(price_in),
              "price_out": None if price_out is None else float(price_out)}
    check_prices(prices["price_in"], prices["price_out"])
    return prices


@dataclass(frozen=True)
class ScoringContext:
    """What scoring needs to know about the run beyond the text: sandbox, tokenizer, backend kind."""

    sandbox: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    tokenizer_name: str | None = None
    api_backend: bool = False
    default_max_gen_toks: int = LMEVAL_DEFAULT_MAX_GEN_TOKS
    hidden_reasoning: bool = False  # think_end_token: lm-eval returns only the text after reasoning
    select: str = DEFAULT_POLICY  # which 2 attempts are submitted (rps_evals.selection)
    price_in: float | None = None  # per million input tokens
    price_out: float | None = None  # per million output tokens

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> ScoringContext:
        """Read the knobs from lm-eval task metadata (YAML metadata | model args | --metadata)."""
        md = dict(metadata or {})
        tokenizer = next((md[key] for key in ("rps_tokenizer", "tokenizer", "pretrained")
                          if isinstance(md.get(key), str) and md[key]), None)
        if "rps_api_backend" in md:
            api_backend = _flag(md["rps_api_backend"])
        else:  # lm-eval's API backends take base_url / model; local ones take pretrained
            api_backend = "base_url" in md or ("model" in md and "pretrained" not in md)
        return cls(
            sandbox=md.get("rps_sandbox") or os.environ.get("RPS_SANDBOX") or None,
            timeout=float(md.get("rps_exec_timeout", DEFAULT_TIMEOUT)),
            tokenizer_name=tokenizer,
            api_backend=api_backend,
            default_max_gen_toks=int(md.get("max_gen_toks", LMEVAL_DEFAULT_MAX_GEN_TOKS)),
            hidden_reasoning=bool(md.get("think_end_token")),
            select=check_policy(md.get("rps_select") or DEFAULT_POLICY),
            **_prices(md.get("rps_price_in"), md.get("rps_price_out")),
        )

    def summary_options(self) -> dict[str, Any]:
        """What `summarize` needs to know of the selection and prices."""
        return {"select": self.select, "price_in": self.price_in, "price_out": self.price_out}

    def executor(self) -> Executor:
        return shared_executor(self.sandbox, self.timeout)

    def tokenizer(self):
        if self.hidden_reasoning:
            return None, ("think_end_token is set, so lm-eval returned only the text after the reasoning "
                          "and its length says nothing about the token limit")
        if not self.tokenizer_name:
            return None, ("no tokenizer is known for this model: pass tokenizer=... in --model_args or "
                          "--metadata '{\"rps_tokenizer\": ...}'")
        return _load_tokenizer(self.tokenizer_name)

    def max_new_tokens(self, gen_kwargs: dict) -> int:
        """The generation limit the backend applied, by lm-eval's own precedence rules."""
        if self.api_backend and gen_kwargs.get("max_tokens") is not None:
            return int(gen_kwargs["max_tokens"])  # local-chat-completions prefers max_tokens
        from lm_eval.models.utils import normalize_gen_kwargs

        return int(normalize_gen_kwargs(dict(gen_kwargs), self.default_max_gen_toks)["max_gen_toks"])

    def responses(self, task_id: str, completions: Sequence[str], gen_kwargs: dict | None) -> list[Response]:
        """The core's Response for each attempt's text (attempt = position, from 1)."""
        placeholder = os.environ.get("LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER", "")
        tokenizer, _ = self.tokenizer() if gen_kwargs is not None else (None, None)
        limit = self.max_new_tokens(gen_kwargs) if tokenizer is not None else None
        out = []
        for attempt, text in enumerate(completions, 1):
            failed = getattr(text, "api_error", None)  # rps-chat-completions: a request that failed
            if failed is not None or (self.api_backend and text == placeholder):
                out.append(Response(task_id, attempt, None, None, failed or API_ERROR_TEXT))
                continue
            stop = used = None
            if tokenizer is not None:
                used = len(tokenizer.encode(text, add_special_tokens=False))
                stop = "max_tokens" if used >= limit else "stop"
            finish = getattr(text, "finish_reason", None)  # rps-chat-completions: the server's own
            if finish is not None:
                stop = "max_tokens" if finish == "length" else "stop"
            out.append(Response(task_id, attempt, str(text), stop, None, output_tokens=used))
        return out


def score_docs(dataset_name: str, items: Sequence[tuple[str, Sequence[str], dict | None]],
               context: ScoringContext, k: int) -> dict[str, list[AttemptRecord]]:
    """Score (task_id, completions, gen_kwargs) items of one dataset in one executor batch.

    The executor runs all programs in parallel; records come back per task, attempts 1..k.
    """
    if not items:
        return {}
    dataset = load_dataset(dataset_name).select([task_id for task_id, _, _ in items])
    responses = [r for task_id, texts, gen_kwargs in items for r in context.responses(task_id, texts, gen_kwargs)]
    records = score_attempts(dataset, responses, context.executor(), k)
    by_task: dict[str, list[AttemptRecord]] = {}
    for record in records:
        by_task.setdefault(record.task_id, []).append(record)
    return by_task


def _completions(results: Sequence[Any]) -> list[str]:
    """lm-eval passes one entry per request; ours is the list of every attempt's text."""
    first = results[0] if results else []
    # texts stay as given: rps-chat-completions' carry their finish_reason / api_error
    return [first] if isinstance(first, str) else [c if isinstance(c, str) else str(c) for c in first]


def process_results(doc: dict, results: Sequence[Any]) -> dict[str, Any]:
    """lm-eval hook: score one doc's attempts with the core.

    ArcProgTask (what the YAMLs use) replaces this with a batched version that also knows the
    generation settings; this plain form scores on the spot and leaves stop reasons unknown.
    """
    texts = _completions(results)
    k = len(texts)
    context = ScoringContext.from_metadata(None)
    records = score_docs(doc["dataset"], [(doc["task_id"], texts, None)], context, k)[doc["task_id"]]
    return doc_metrics(_task(doc), records, k)


# -- the lm-eval classes (built on first use, so reading results does not import lm-eval) ---------

@lru_cache(maxsize=None)
def _lmeval_classes() -> dict[str, type]:
    require_supported("lm-eval")  # ArcProgTask reads its _instances and _metric_fn_list
    from lm_eval.api.filter import Filter
    from lm_eval.api.task import ConfigurableTask

    class KeepAllAttempts(Filter):
        """Keep every repeat: lm-eval's default filter (take_first) would drop attempts 2..k. Not
        lm-eval's `take_first_k`: its k is fixed in the YAML (a run with other `repeats` would keep
        the wrong number or fail its assertion), while this follows `repeats`."""

        def apply(self, resps, docs):
            return [list(r) for r in resps]

    class ArcProgTask(ConfigurableTask):
        """The YAML task plus what a YAML cannot say: batch execution of the whole run's programs
        after generation, and the generation settings and tokenizer needed for stop reasons."""

        def __init__(self, config: dict | None = None, **kwargs):
            config = {key: value for key, value in (config or {}).items() if key != "class"}
            super().__init__(config=config, **kwargs)
            self._context = ScoringContext.from_metadata(self.config.metadata)
            self._context.executor()  # an unusable sandbox fails here, before any generation
            self._scored: dict[tuple[str, tuple[str, ...]], list[AttemptRecord]] = {}

        def _bypass(self) -> bool:  # --predict_only: lm-eval swaps every metric for "bypass"
            return "bypass" in self._metric_fn_list

        def apply_filters(self):
            super().apply_filters()
            if self._instances:  # lm-eval writes the task's config (metadata included) with its results
                self.config.metadata = {**(self.config.metadata or {}), PROVENANCE_KEY: self._provenance()}
            if self._bypass() or not self._instances:
                return
            k = int(self.config.repeats)
            self._scored.clear()
            for filter_name in self._instances[0].filtered_resps:
                by_dataset: dict[str, list] = {}
                for inst in self._instances:
                    texts = _completions([inst.filtered_resps[filter_name]])
                    gen_kwargs = inst.args[1] if len(inst.args) > 1 and isinstance(inst.args[1], dict) else None
                    by_dataset.setdefault(inst.doc["dataset"], []).append((inst.doc["task_id"], texts, gen_kwargs))
                for dataset_name, items in by_dataset.items():
                    log.info("%s: running %d attempts' programs in the %s sandbox", self.config.task,
                             len(items) * k, self._context.sandbox or "docker")
                    scored = score_docs(dataset_name, items, self._context, k)
                    for task_id, texts, _ in items:
                        self._scored[(task_id, tuple(texts))] = scored[task_id]
            gen_kwargs = self._instances[0].args[1] if len(self._instances[0].args) > 1 else {}
            if self._context.api_backend and k > 1 and (gen_kwargs or {}).get("seed", "unset") is not None:
                log.warning("%s: lm-eval's API backends send one fixed seed with every request, so a server "
                            "that honours it (vLLM does) returns the same text for all %d attempts of a task; "
                            "pass --gen_kwargs seed=None for independent attempts.", self.config.task, k)
            _, why = self._context.tokenizer()
            told = all(getattr(text, "finish_reason", None) is not None or getattr(text, "api_error", None) is not None
                       for inst in self._instances for texts in inst.filtered_resps.values()
                       for text in _completions([texts]))
            if why and not told:  # rps-chat-completions returns the server's finish_reason
                log.warning("%s: token_limit_hits cannot be determined: %s. Those attempts are counted in "
                            "%s and not as token-limit hits.", self.config.task, why, UNKNOWN_STOP_KEY)

        def _provenance(self) -> dict[str, Any]:
            from rps_evals.provenance import build_provenance, generation_settings, sandbox_info

            md = self.config.metadata or {}
            args = self._instances[0].args
            gen = dict(args[1]) if len(args) > 1 and isinstance(args[1], dict) else dict(self.config.generation_kwargs or {})
            model = md.get("pretrained") or md.get("model")
            if model and md.get("lora_local_path"):
                model = f"{model} + LoRA {md['lora_local_path']}"
            generation = generation_settings(temperature=gen.get("temperature"), top_p=gen.get("top_p"),
                                             top_k=gen.get("top_k"), max_tokens=self._context.max_new_tokens(gen),
                                             seed=gen.get("seed"))
            executor = self._context.executor()
            return build_provenance(load_dataset(md["arc_dataset"]), int(self.config.repeats),
                                    md.get("program_synthesis", "allowed"), self._context.timeout,
                                    sandbox_info(self._context.sandbox, getattr(executor, "image", None)),
                                    model, generation)

        def process_results(self, doc, results):
            if self._bypass():
                return super().process_results(doc, results)
            texts = _completions(results)
            k = int(self.config.repeats)
            records = self._scored.get((doc["task_id"], tuple(texts)))
            if records is None:  # not seen by apply_filters (another caller): score it now
                items = [(doc["task_id"], texts, dict(self.config.generation_kwargs or {}))]
                records = score_docs(doc["dataset"], items, self._context, k)[doc["task_id"]]
            return doc_metrics(_task(doc), records, k, self._context.select)

    return {"KeepAllAttempts": KeepAllAttempts, "ArcProgTask": ArcProgTask}


def __getattr__(name: str):
    if name in ("KeepAllAttempts", "ArcProgTask"):
        return _lmeval_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- where the tasks are ---------------------------------------------------------------------------

def tasks_path() -> Path:
    """The folder for `lm_eval --include_path`: the installed copy (pyproject maps tasks/ to
    rps_evals/tasks), else the source checkout's tasks/ (editable installs, a plain clone)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "tasks", here.parent.parent / "tasks"):
        if (candidate / "arc_prog" / "arc_prog.yaml").is_file():
            return candidate
    raise FileNotFoundError("the arc_prog lm-eval tasks are not installed with this package")
