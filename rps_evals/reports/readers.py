"""`rps-evals report`: turn a front end's output into the core's run (dataset, records, k), so the
run directory, `compare` and `gate` are the same whichever front end produced it.

Nothing is parsed or executed again: the front ends stored the scored attempt records when they
ran. Each front end contributes one (what it reads, detect, read) row to FRONT_ENDS; a reader
imports its framework only when it runs, so reporting one kind of output never needs the other's.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

from rps_evals.data import Dataset, DatasetError, load_dataset
from rps_evals.lmeval import PROVENANCE_KEY, RECORDS_KEY, ScoringContext, _completions, score_docs
from rps_evals.prompt import PROMPT_VERSION
from rps_evals.records import InputError
from rps_evals.attempts import AttemptRecord

FrontEndRun = tuple[Dataset, list[AttemptRecord], int, dict[str, Any]]


def read_front_end_run(path: str | Path, dataset: Dataset | None = None) -> FrontEndRun:
    """(dataset, attempt records, k, options for summarize) of an Inspect log or lm-eval output.

    `dataset`: the run's tasks where they are now (`report --dataset`), when the path it recorded
    is gone or elsewhere; its hash must equal the recorded one."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    for _name, detect, read in FRONT_ENDS:
        if detect(path):
            return read(path, dataset)
    kinds = "; ".join(name for name, _, _ in FRONT_ENDS)
    raise InputError(f"{path} is not an output this command reads ({kinds})")


# -- Inspect AI ------------------------------------------------------------------------------------

def is_inspect_log(path: Path) -> bool:
    """An Inspect log: a .eval archive, or a .json log with Inspect's top-level fields."""
    if path.is_file() and path.suffix == ".eval":
        return zipfile.is_zipfile(path)
    if path.is_file() and path.suffix == ".json":
        return re.match(r'\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:', _head(path, 256)) is not None
    return False


def _head(path: Path, size: int) -> str:
    """The first `size` bytes of a file as text ("" if unreadable): enough to tell whose output it is."""
    try:
        with path.open("rb") as f:
            return f.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


def _run_dataset(where: Path, name: str, recorded_hash: str | None, given: Dataset | None) -> Dataset:
    """The dataset a run recorded (by name, or the one given), refused if its hash differs."""
    try:
        dataset = given if given is not None else load_dataset(name)
    except DatasetError as exc:
        raise InputError(f"{where}: {exc} (where the run's tasks are now: --dataset PATH)") from None
    if recorded_hash and recorded_hash != dataset.file_hash:
        raise InputError(f"{where} was scored on another version of {name} (dataset hash "
                         f"{recorded_hash[:12]}..., {dataset.name} has {dataset.file_hash[:12]}...)")
    return dataset


def read_inspect_log(path: Path, given: Dataset | None = None) -> FrontEndRun:
    """The run recorded in an Inspect log of rps_evals/arc1 or arc2: the records come from each
    sample's score metadata; planned samples with no score count as missing attempts."""
    from inspect_ai.log import read_eval_log

    from rps_evals.inspect_eval.counts import SCORER_NAME

    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # a damaged or foreign file
        raise InputError(f"cannot read Inspect log {path}: {exc}") from None
    meta = (log.eval.metadata or {}).get("rps_evals")
    if not meta:
        raise InputError(f"{path} is an Inspect log of task {log.eval.task!r}, not of rps_evals/arc1 or arc2")
    dataset = _run_dataset(path, meta["dataset"], meta.get("dataset_hash"), given)
    if (log.eval.config.epochs or 1) > 1:
        raise InputError(f"{path} ran {log.eval.config.epochs} epochs; use -T attempts=K for K attempts per task")
    planned = [str(i) for i in (log.eval.dataset.sample_ids or [])]
    if not planned:
        raise InputError(f"{path} records no sample ids")
    try:
        dataset = dataset.select(planned)
    except DatasetError as exc:
        raise InputError(f"{path}: {exc}") from None
    k = int(meta["attempts"])
    records: list[AttemptRecord] = []
    sample_usage: list[dict | None] = []
    for sample in log.samples or []:
        score = (sample.scores or {}).get(SCORER_NAME)
        if score is None or not score.metadata or "attempts" not in score.metadata:
            continue  # never scored: complete_records makes its attempts `missing`
        records.extend(AttemptRecord.from_dict(d) for d in score.metadata["attempts"])
        sample_usage.append(score.metadata.get("usage"))
    if log.samples is None:
        raise InputError(f"{path} has no samples (was it written with --no-log-samples?)")
    options: dict[str, Any] = {"prompt_version": meta.get("prompt_version", "unknown")}
    if meta.get("provenance"):  # logs written before provenance existed have none
        options["provenance"] = _inspect_provenance(meta["provenance"], log)
        options["usage"] = {"wall_time_s": _wall_time(log.stats.started_at, log.stats.completed_at),
                            **_token_totals(sample_usage)}
    options.update(_inspect_selection(meta, log.samples or []))
    options.update(_round_tokens(sample_usage))
    if log.status != "success":
        options["status"] = _log_status(log, planned)
    return dataset, records, k, options


def _log_status(log, planned: list[str]) -> dict[str, Any]:
    """What a log that did not end in success holds, for results.json and for `report` to decide.

    A sample whose only error is failed generations (the solver's GenerationFailed) was run and
    scored: its failures are counted api_errors, a measurement. A planned sample with no score, or
    one that errored for any other reason (cancelled, crashed), was not measured: `unmeasured`
    names how many, and `report` refuses such a log unless --allow-errors."""
    from rps_evals.inspect_eval.counts import SCORER_NAME
    from rps_evals.inspect_eval.solver import GenerationFailed

    by_id = {str(s.id): s for s in log.samples or []}
    failed_generations = unmeasured = 0
    for sample_id in planned:
        sample = by_id.get(sample_id)
        score = (sample.scores or {}).get(SCORER_NAME) if sample is not None else None
        if score is None or "attempts" not in (score.metadata or {}):
            unmeasured += 1
        elif sample.error is None:
            continue
        elif sample.error.message.startswith(f"{GenerationFailed.__name__}("):
            failed_generations += 1
        else:
            unmeasured += 1
    return {"status": log.status, "error": _why_unfinished(log), "samples": len(planned),
            "failed_generations": failed_generations, "unmeasured": unmeasured}


def _why_unfinished(log) -> str:
    """The reason a log did not end in success: its own error, else its errored samples (Inspect
    marks a log failed without a message when more samples errored than fail_on_error allows)."""
    if log.error and log.error.message:
        return log.error.message.strip().splitlines()[-1][:500]
    errored = [s for s in log.samples or [] if s.error]
    if errored:
        first = errored[0].error.message.strip().splitlines()[-1][:600]
        return f"{len(errored)} of {len(log.samples)} samples errored (first: {first})"
    return "cancelled before the end" if log.status == "cancelled" else f"log status {log.status}"


def _inspect_provenance(recorded: dict[str, Any], log) -> dict[str, Any]:
    """The task's block, with the model and generation settings the log knows if the task did not."""
    from rps_evals.provenance import generation_settings, sent_top_k

    provenance = dict(recorded)
    provenance["model"] = provenance.get("model") or log.eval.model
    if provenance.get("generation") is None:
        config = log.plan.config.merge(log.eval.model_generate_config)
        provenance["generation"] = generation_settings(
            temperature=config.temperature, top_p=config.top_p,
            top_k=sent_top_k(log.eval.model, config.top_k, config.extra_body),
            max_tokens=config.max_tokens, seed=config.seed, num_choices=config.num_choices)
    return provenance


def _wall_time(started: str | None, completed: str | None) -> float | None:
    from datetime import datetime

    if not started or not completed:
        return None
    # Inspect stamps both to the second, so this is whole seconds
    return (datetime.fromisoformat(completed) - datetime.fromisoformat(started)).total_seconds()


def _token_totals(per_sample: list[dict | None]) -> dict[str, int | None]:
    """The run's token totals: known only if every scored sample knew its own."""
    if not per_sample or any(u is None for u in per_sample):
        return {"total_tokens": None, "output_tokens": None, "reasoning_tokens": None}
    reasoning = [u["reasoning_tokens"] for u in per_sample if u.get("reasoning_tokens") is not None]
    return {"total_tokens": sum(u["total_tokens"] for u in per_sample),
            "output_tokens": sum(u["output_tokens"] for u in per_sample),
            "reasoning_tokens": sum(reasoning) if reasoning else None}


def _round_tokens(per_sample: list[dict | None]) -> dict[str, Any]:
    """A refining run's [input, output] tokens per round, summed over the samples (known only if
    every scored sample knew its own)."""
    if not per_sample or any(u is None or "by_round" not in u for u in per_sample):
        return {}
    totals: list[list[int]] = []
    for usage in per_sample:
        for r, (tokens_in, tokens_out) in enumerate(usage["by_round"]):
            totals += [[0, 0]] * (r + 1 - len(totals))
            totals[r] = [totals[r][0] + tokens_in, totals[r][1] + tokens_out]
    return {"round_tokens": totals}


def _inspect_selection(meta: dict[str, Any], samples) -> dict[str, Any]:
    """The task's `select` and prices, and each task's (input, output) tokens for its cost: the
    sample's totals (one request may have made all its attempts, and only the sample knows its usage)."""
    from rps_evals.inspect_eval.counts import SCORER_NAME

    options = {key: meta[key] for key in ("select", "price_in", "price_out") if meta.get(key) is not None}
    task_tokens = {}
    for sample in samples:
        score = (sample.scores or {}).get(SCORER_NAME)
        usage = (score.metadata or {}).get("usage") if score is not None else None
        if usage and usage.get("total_tokens") is not None and usage.get("output_tokens") is not None:
            task_tokens[str(sample.id)] = (usage["total_tokens"] - usage["output_tokens"], usage["output_tokens"])
    if task_tokens:
        options["task_tokens"] = task_tokens
    return options


# -- lm-eval --------------------------------------------------------------------------------------

def is_lmeval_output(path: str | Path) -> bool:
    """lm-eval's --output_path (folder), a results JSON in it, or a samples_*.jsonl file."""
    path = Path(path)
    if path.is_dir():
        return any(p.name.startswith("results_") for p in path.rglob("*.json"))
    if path.is_file() and path.suffix == ".jsonl":
        return path.name.startswith("samples_")
    if path.is_file() and path.suffix == ".json":
        return _head(path, 64).lstrip("{ \n\r\t").startswith('"results"')
    return False


def _find_files(path: Path) -> tuple[Path, list[Path]]:
    """The results JSON and the samples files of one lm-eval run, from any of its paths."""
    if path.is_dir():
        results = sorted(p for p in path.rglob("*.json") if p.name.startswith("results_"))
        if not results:
            raise InputError(f"{path}: no lm-eval results_*.json found (was lm_eval run with --output_path?)")
        if len(results) > 1:
            raise InputError(f"{path} holds {len(results)} lm-eval runs; pass one of: "
                             + ", ".join(str(p) for p in results))
        results_file = results[0]
    elif path.suffix == ".jsonl" and path.name.startswith("samples_"):
        date = path.stem.rsplit("_", 1)[-1]
        matches = sorted(p for p in path.parent.glob(f"*_{date}.json"))
        if not matches:
            raise InputError(f"{path}: the results file of this run (*_{date}.json) is not next to it")
        return matches[0], [path]
    elif path.suffix == ".json" and path.is_file():
        results_file = path
    else:
        raise InputError(f"{path}: not an lm-eval output (a results_*.json, samples_*.jsonl, or their folder)")
    date = results_file.stem.rsplit("_", 1)[-1]
    return results_file, sorted(results_file.parent.glob(f"samples_*_{date}.jsonl"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


def _read_samples(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read lm-eval samples {path}: {exc}") from None


def _arc_task_name(samples_file: Path, configs: dict) -> str | None:
    """The lm-eval task a samples file belongs to, if it is one of ours."""
    for name in sorted(configs, key=len, reverse=True):  # longest first: arc1_prog_training before arc1_prog
        if samples_file.name.startswith(f"samples_{name}_") and name in configs:
            meta = configs[name].get("metadata") or {}
            return name if meta.get("arc_dataset") else None
    return None


def read_lmeval_output(path: str | Path, given: Dataset | None = None) -> FrontEndRun:
    """(dataset, records, k, summary options) of one ARC task of an lm-eval run, for `write_run`.

    Reads the results JSON and the logged samples (`--log_samples`). Records come from the samples
    (lm-eval logged each doc's attempt records), so nothing is re-run; samples logged without them
    (`--predict_only`) are scored now with the core, in the run's `rps_sandbox`, else RPS_SANDBOX,
    else docker.
    """
    results_file, sample_files = _find_files(Path(path))
    results = _read_json(results_file)
    configs = results.get("configs") or {}
    ours = [(f, name) for f in sample_files if (name := _arc_task_name(f, configs))]
    if not ours:
        if not sample_files:
            raise InputError(f"{results_file}: no samples_*.jsonl next to it; run lm_eval with --log_samples")
        raise InputError(f"{results_file}: no arc_prog task in this lm-eval run")
    if len(ours) > 1:
        raise InputError(f"{results_file}: this run has several ARC tasks ({', '.join(n for _, n in ours)}) and a "
                         "run directory holds one dataset; pass one samples file: "
                         + ", ".join(str(f) for f, _ in ours))
    samples_file, task_name = ours[0]
    config = configs[task_name]
    samples = _read_samples(samples_file)
    if not samples:
        raise InputError(f"{samples_file}: no samples")
    dataset = _run_dataset(samples_file, samples[0]["doc"]["dataset"], samples[0]["doc"].get("dataset_hash"), given)
    k = int(config.get("repeats") or len(samples[0]["resps"][0]))

    counts = (results.get("n-samples") or {}).get(task_name) or {}
    logged_ids = [s["doc"]["task_id"] for s in sorted(samples, key=lambda s: s["doc_id"])]
    if counts.get("effective", len(dataset.tasks)) < len(dataset.tasks):
        # --limit / --samples: the run's denominators are the docs lm-eval evaluated
        if len(set(logged_ids)) != counts["effective"]:
            raise InputError(f"{samples_file}: {len(set(logged_ids))} docs logged, lm-eval evaluated "
                             f"{counts['effective']}")
        dataset = dataset.select(logged_ids)

    records: list[AttemptRecord] = []
    to_score = []
    for sample in samples:
        doc, texts = sample["doc"], _completions(sample["resps"])
        if doc["task_id"] not in dataset.tasks:
            raise InputError(f"{samples_file}: task {doc['task_id']} is not in {dataset.name}")
        if RECORDS_KEY in sample:
            for data in sample[RECORDS_KEY]:
                record = AttemptRecord.from_dict(data)
                if record.completion is None and not record.missing and record.api_error is None:
                    record.completion = texts[record.attempt - 1] if record.attempt <= len(texts) else None
                records.append(record)
        else:
            args = (sample.get("arguments") or {}).get("gen_args_0") or {}
            to_score.append((doc["task_id"], texts, args.get("arg_1") if isinstance(args.get("arg_1"), dict) else None))
    if to_score:
        context = ScoringContext.from_metadata(config.get("metadata"))
        for task_records in score_docs(dataset.name, to_score, context, k).values():
            records.extend(task_records)

    seen = set()
    for record in records:
        key = (record.task_id, record.attempt)
        if key in seen:
            raise InputError(f"{samples_file}: duplicate record for task {key[0]} attempt {key[1]}")
        seen.add(key)
    prompt_version = samples[0]["doc"].get("prompt_version", PROMPT_VERSION)
    selection = ScoringContext.from_metadata(config.get("metadata")).summary_options()  # rps_select, prices
    options: dict[str, Any] = {"prompt_version": prompt_version, **selection}
    provenance = (config.get("metadata") or {}).get(PROVENANCE_KEY)
    if provenance:  # outputs written before provenance existed have none
        seconds = results.get("total_evaluation_time_seconds")
        options["provenance"] = provenance
        options["usage"] = {"wall_time_s": float(seconds) if seconds is not None else None}
    return dataset, records, k, options


# (what it reads, detect(path), read(path)): the first row whose detect is true reads the output.
FRONT_ENDS: list[tuple[str, Callable[[Path], bool], Callable[[Path], FrontEndRun]]] = [
    ("an Inspect log (.eval or .json) of rps_evals/arc1 or arc2", is_inspect_log, read_inspect_log),
    ("lm-eval output (--output_path, --log_samples) of arc_prog", is_lmeval_output, read_lmeval_output),
]
