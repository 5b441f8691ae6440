"""Build the two-stage DPO data of the RPS study, reproducibly.

Chosen responses come from a reasoning-trace dataset shaped like Trelis/arc-agi-2-reasoning-5
(`task_id`, `reasoning`, `code`, `predicted_test_output`, `correct_test_input`); rejected
responses come from a small model's ordinary attempts, as scored by `rps-evals` (an
attempts.jsonl, a run directory or an Inspect log). Both are rewritten into the labeled answer
structure of the eval prompt and paired under the eval prompt's text, so training and evaluation
see the same format. Correctness is never assumed: every chosen response must solve its task and
every rejected one must solve no test output, both judged by the core's scoring
(`rps_evals.scoring`), in the sandbox.

Stage 1 ("easy"): `easy_tasks` unique tasks, one pair each: ARC-AGI-1 training tasks first, then
ARC-AGI-1 tasks that ARC-AGI-2 training re-uses, then ARC-AGI-2-only training tasks.
Stage 2 ("hard"): `hard_pairs` pairs over about `hard_tasks` unique ARC-AGI-2-only training tasks,
duplicates allowed to fill. No task id is in both stages.

Fairness: both sides always carry all three labelled sections ("(none)" where an answer has no
such part), the rejected side's reasoning includes what the provider returned apart from the text
(the record's `reasoning`), and the manifest compares the two sides' lengths.

Evaluation data is left out by default (by task id and by identical grids); `--allow-eval-overlap`
keeps it (the study's literal data) and then the contamination report is printed.

Usage: `rps-train data --traces Trelis/arc-agi-2-reasoning-5 --rejected runs/qwen3-0.6b-arc1 \
runs/qwen3-0.6b-arc2 --out data/rps_dpo`, or `rps-train data --config FILE` (keys are BuildConfig's).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rps_evals.data import Dataset, Task, load_dataset, overlap
from rps_evals.parse import as_grid, parse_response, split_reasoning
from rps_evals.prompt import PROMPT_VERSION, build_prompt, format_grid
from rps_evals.scoring import TOKEN_LIMIT_REASONS
from rps_train.options import add_config_option, parse_with_config

FORMAT = "rps-train-dpo-data/1"
REQUIRED_TRACE_COLUMNS = ("task_id", "reasoning", "code", "predicted_test_output", "correct_test_input")
# Where a task id's grids are taken from, in order (ids shared by both have identical grids).
SOURCE_DATASETS = ("arc2:training", "arc1:training")
EVAL_DATASETS = ("arc1:evaluation", "arc2:evaluation")
STAGES = ("stage1", "stage2")
TIERS = ("arc1_training", "arc1_eval_in_arc2_training", "arc2_only")
COUNTS = (  # every count the manifest reports, zero or not
    "traces_unknown_task", "traces_flagged_incorrect", "traces_transductive", "traces_no_transform",
    "rejected_unknown_task", "rejected_no_completion", "rejected_correct_on_record",
    "rejected_correct_when_scored", "tasks_with_traces", "tasks_with_rejected", "tasks_with_both",
    "chosen_verified", "chosen_train_verified", "chosen_failed", "rejected_verified",
    "rejected_reasoning_only",
)
NONE = "(none)"  # the text of a labelled section an answer does not have
LENGTH_RATIO_WARNING = 2.0  # the two sides' medians further apart than this are reported


class BuildError(ValueError):
    """Input that cannot make a valid DPO data set; raised before anything is written."""


def _arg(default: Any = None, help: str = "", **kw: Any) -> Any:
    metadata = {"help": help, **kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class BuildConfig:
    """Everything a build depends on; also the command line (`HfArgumentParser`) and `--config` keys."""

    traces: str | None = _arg(None, "chosen traces: a datasets name (e.g. Trelis/arc-agi-2-reasoning-5) or a local "
                             ".parquet/.jsonl/.json file")
    rejected: list[str] = _arg([], "a small model's attempts: rps-evals run dirs, attempts.jsonl files or "
                                   "Inspect logs of rps_evals/arc1|arc2")
    out_dir: str | None = _arg(None, "output directory (stage1/, stage2/, manifest.json)", aliases=["--out"])
    traces_split: str = _arg("train", "split of a datasets name")
    traces_revision: str | None = _arg(None, "revision of a datasets name")
    seed: int = _arg(0, "seed of every choice the builder makes")
    easy_tasks: int = _arg(400, "stage 1 unique tasks (one pair each)")
    hard_pairs: int = _arg(600, "stage 2 pairs")
    hard_tasks: int = _arg(250, "stage 2 unique tasks")
    chosen_per_task: int = _arg(3, "trace rows per task to verify and use (seeded pick)")
    exclude_eval_overlap: bool = _arg(True, "leave out tasks found in arc1/arc2 evaluation by id or grids "
                                            "(the default; --allow-eval-overlap keeps them)")
    drop_failing_chosen: bool = _arg(False, "drop (instead of failing on) chosen programs that do not solve "
                                            "their task")
    allow_shortfall: bool = _arg(False, "build even if a quota cannot be met")
    sandbox: str | None = _arg(None, "program executor (default: the core's docker sandbox; 'local' is unsafe)")
    timeout: float | None = _arg(None, "seconds per transform() call (default: the core's)")
    tokenizer: str | None = _arg(None, "tokenizer (a model name or directory) that counts response_tokens "
                                       "in the manifest; without it only characters are counted")


# --------------------------------------------------------------------------------------------
# Normalized answer text


def _format_grids(values: Sequence[Any]) -> str:
    """A JSON list of grids, one row per line (the prompt's grid layout); non-grids as JSON."""
    parts = []
    for value in values:
        grid = as_grid(value)
        parts.append(format_grid(grid) if grid is not None else json.dumps(value))
    return "[\n" + ",\n".join(parts) + "\n]"


def format_answer(reasoning: str | None, program: str | None, predictions: Sequence[Any] | None) -> str:
    """The labeled structure the eval prompt asks for, always all three sections: a missing one is
    "(none)", so no side of a pair can be told apart by which sections it has."""
    reasoning = (reasoning or "").strip() or NONE
    code = f"```python\n{program.strip(chr(10))}\n```" if program and program.strip() else NONE
    outputs = f"```json\n{_format_grids(predictions)}\n```" if predictions is not None else NONE
    return f"Reasoning:\n{reasoning}\n\nPython program:\n{code}\n\nPredicted test outputs:\n{outputs}"


def reasoning_section(text: str) -> str:
    """The text of an answer's "Reasoning:" section as format_answer wrote it ("" for "(none)")."""
    body = text.split("Reasoning:\n", 1)[-1].split("\n\nPython program:\n", 1)[0]
    return "" if body == NONE else body


_ANSWER_START = re.compile(r"^[ \t]*(?:Python program:|Predicted test outputs:|```)", re.MULTILINE)
_REASONING_LABEL = re.compile(r"^\s*Reasoning:\s*", re.IGNORECASE)


def normalize_rejected(completion: str | None, num_tests: int, reasoning: str | None = None) -> str:
    """Rewrite a model's raw completion into the labeled structure, keeping what it said.

    Reasoning = the reasoning its provider returned apart from the text (vLLM's
    `reasoning_content`, Inspect's ContentReasoning), its <think> text, and its visible text before
    the answer sections; the program and the JSON predictions are what the core's parser extracts
    (so their meaning is unchanged).
    """
    completion = completion or ""
    pieces, visible = split_reasoning(completion)  # the core's reading of <think> tags
    thoughts = [t.strip() for t in [reasoning or "", *pieces] if t.strip()]
    cut = _ANSWER_START.search(visible)
    before = visible[: cut.start()] if cut else visible
    said = _REASONING_LABEL.sub("", before).strip()
    text = "\n\n".join(t for t in thoughts + [said] if t)
    parsed = parse_response(completion, num_tests)
    predictions = None
    if any(p is not None for p in parsed.json_predictions):
        predictions = parsed.json_predictions
    return format_answer(text, parsed.program, predictions)


# --------------------------------------------------------------------------------------------
# Inputs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_traces(spec: str, split: str = "train", revision: str | None = None) -> tuple[list[dict], dict]:
    """Rows of the trace dataset (a local file, else a `datasets` name) and a record of its source."""
    import datasets

    path = Path(spec)
    info: dict[str, Any] = {"spec": spec}
    if path.exists():
        info["sha256"] = _sha256_file(path)
        builders = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
        if path.suffix not in builders:
            raise BuildError(f"{path}: expected a .parquet, .jsonl or .json file")
        try:  # datasets' own readers; keep_in_memory leaves no cache files beside the input
            rows = datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train",
                                         keep_in_memory=True).to_list()
        except Exception as exc:
            raise BuildError(f"{path}: cannot be read as {builders[path.suffix]} ({exc})") from None
    else:
        try:
            ds = datasets.load_dataset(spec, split=split, revision=revision)
        except Exception as exc:  # the message of datasets names the cause (offline, unknown, ...)
            raise BuildError(f"cannot load trace dataset {spec!r} (split {split!r}): {exc}") from None
        info.update(split=split, revision=revision, fingerprint=getattr(ds, "_fingerprint", None))
        rows = ds.to_list()
    if not isinstance(rows, list) or not rows:
        raise BuildError(f"trace dataset {spec!r} has no rows")
    columns = sorted(set().union(*(r.keys() for r in rows[:100])))
    missing = [c for c in REQUIRED_TRACE_COLUMNS if c not in columns]
    if missing:
        raise BuildError(
            f"trace dataset {spec!r} is missing column(s) {', '.join(missing)}; it has {', '.join(columns)}. "
            f"Expected the shape of Trelis/arc-agi-2-reasoning-5: {', '.join(REQUIRED_TRACE_COLUMNS)}"
        )
    info.update(rows=len(rows), columns=columns,
                rows_sha256=_sha256_json([[r.get("task_id"), r.get("reasoning"), r.get("code")] for r in rows]))
    return rows, info


def load_rejected(spec: str) -> tuple[list[dict], dict]:
    """Attempt dicts (attempts.jsonl keys) from an attempts file or run directory, or from a front
    end's log (an Inspect log of rps_evals/arc1|arc2) read by the core's `rps_evals.reports.readers`."""
    from rps_evals.records import InputError, read_attempts

    path = Path(spec)
    info: dict[str, Any] = {"spec": spec}
    if path.is_dir():
        results = path / "results.json"
        if results.exists():
            try:
                info["dataset"] = json.loads(results.read_text(encoding="utf-8")).get("dataset")
            except ValueError:
                pass
        path = path / "attempts.jsonl"
    if not path.exists():
        raise BuildError(f"rejected-responses file {spec!r} does not exist")
    info["sha256"] = _sha256_file(path)
    try:
        if path.suffix == ".jsonl":
            info["format"] = "attempts.jsonl"
            records = read_attempts(path)
        else:
            from rps_evals.reports.readers import read_front_end_run

            dataset, records, _, _ = read_front_end_run(path)
            info.update(format="front-end log", dataset=dataset.name)
    except InputError as exc:
        raise BuildError(str(exc)) from None
    info["records"] = len(records)
    return [r.to_dict() for r in records], info


def task_pool() -> tuple[dict[str, Task], dict[str, str]]:
    """Every training task by id, and the dataset it is read from."""
    tasks: dict[str, Task] = {}
    origin: dict[str, str] = {}
    for name in SOURCE_DATASETS:
        for task_id, task in load_dataset(name).tasks.items():
            if task_id not in tasks:
                tasks[task_id] = task
                origin[task_id] = name
    return tasks, origin


# --------------------------------------------------------------------------------------------
# Verification by the core's scoring


def _score_texts(tasks: dict[str, Task], items: Sequence[tuple[str, str]], executor) -> list:
    """Score each (task_id, completion) as its own attempt; records in the order of `items`."""
    from rps_evals.scoring import Response, score_attempts

    if not items:
        return []
    counts: Counter = Counter()
    keys, responses = [], []
    for task_id, text in items:
        counts[task_id] += 1
        keys.append((task_id, counts[task_id]))
        responses.append(Response(task_id, counts[task_id], text, stop_reason="stop"))
    subset = Dataset("rps-train:verify", "", {t: tasks[t] for t in dict.fromkeys(t for t, _ in items)})
    records = score_attempts(subset, responses, executor, k=max(counts.values()))
    by_key = {(r.task_id, r.attempt): r for r in records}
    return [by_key[key] for key in keys]


def _open_executor(config: BuildConfig):
    from rps_evals.execution import SandboxUnavailable, get_executor

    options = {} if config.timeout is None else {"timeout": config.timeout}
    try:
        return get_executor(config.sandbox, **options)
    except SandboxUnavailable as exc:
        raise BuildError(f"cannot run programs: {exc} (--sandbox local runs them on this machine, unsafely)") from None


# --------------------------------------------------------------------------------------------
# Selection


@dataclass
class Candidate:
    task_id: str
    ref: str  # trace row id, or `<source>#<task>#<attempt>` for a rejected attempt
    text: str
    cut_off: bool = False  # a rejected attempt the token limit stopped
    stop_reason: str | None = "stop"  # a rejected attempt's, as recorded (None: nobody reported one)


@dataclass
class Stage:
    name: str
    pairs: list[tuple[str, Candidate, Candidate]] = field(default_factory=list)  # (task, chosen, rejected)


def _pair_order(n_chosen: int, n_rejected: int) -> list[tuple[int, int]]:
    """All (chosen, rejected) index pairs, ordered so early ones reuse each response least."""
    left = [(c, r) for c in range(n_chosen) for r in range(n_rejected)]
    used_c, used_r, order = Counter(), Counter(), []
    while left:
        best = min(left, key=lambda cr: (used_c[cr[0]] + used_r[cr[1]], cr))
        left.remove(best)
        used_c[best[0]] += 1
        used_r[best[1]] += 1
        order.append(best)
    return order


def _rng(seed: int, *parts: str) -> random.Random:
    """A generator private to one decision, so adding a task never reshuffles the others."""
    return random.Random(hashlib.sha256(":".join([str(seed), *parts]).encode()).digest())


def classify(task_ids: Iterable[str], tasks: dict[str, Task]) -> dict[str, dict[str, Any]]:
    """For each id: its tier and every ARC dataset it is in, by id or by identical grids."""
    names = ("arc1:training", "arc1:evaluation", "arc2:training", "arc2:evaluation")
    hashes = {n: {t.content_hash(): tid for tid, t in load_dataset(n).tasks.items()} for n in names}
    out = {}
    for task_id in task_ids:
        h = tasks[task_id].content_hash()
        member = {n: task_id in load_dataset(n).tasks or h in hashes[n] for n in names}
        if member["arc1:training"]:
            tier = "arc1_training"
        elif member["arc1:evaluation"]:
            tier = "arc1_eval_in_arc2_training"
        else:
            tier = "arc2_only"
        out[task_id] = {"tier": tier, "in": [n for n in names if member[n]],
                        "eval": [n for n in EVAL_DATASETS if member[n]]}
    return out


def select_stages(chosen: dict[str, list[Candidate]], rejected: dict[str, list[Candidate]],
                  info: dict[str, dict[str, Any]], config: BuildConfig) -> tuple[Stage, Stage, dict]:
    """Apply the quotas. Hard tasks are reserved first (ARC-AGI-2-only), easy tasks fill by tier."""
    usable = sorted(t for t in chosen if chosen[t] and rejected.get(t))
    if config.exclude_eval_overlap:
        usable = [t for t in usable if not info[t]["eval"]]
    tiers = {tier: [t for t in usable if info[t]["tier"] == tier] for tier in TIERS}
    for tier in TIERS:
        _rng(config.seed, "tier", tier).shuffle(tiers[tier])

    hard_ids = tiers["arc2_only"][: config.hard_tasks]
    leftover = tiers["arc2_only"][config.hard_tasks:]
    easy_ids = (tiers["arc1_training"] + tiers["arc1_eval_in_arc2_training"] + leftover)[: config.easy_tasks]

    shortfalls = []
    if len(easy_ids) < config.easy_tasks:
        shortfalls.append(f"stage1 has {len(easy_ids)} usable tasks for a quota of {config.easy_tasks}")
    if len(hard_ids) < config.hard_tasks:
        shortfalls.append(f"stage2 has {len(hard_ids)} usable ARC-AGI-2-only tasks for about {config.hard_tasks}")
    if config.hard_pairs and not hard_ids:
        raise BuildError("stage2 has no usable ARC-AGI-2-only training task (each needs a verified chosen "
                         "trace and a verified-incorrect rejected attempt)")
    if shortfalls and not config.allow_shortfall:
        raise BuildError("; ".join(shortfalls) + " (tasks need a verified chosen trace and a verified-incorrect "
                         "rejected attempt; pass --allow-shortfall to build anyway)")

    stage1 = Stage("stage1", [(t, chosen[t][0], rejected[t][0]) for t in easy_ids])
    stage2 = Stage("stage2")
    orders = {t: _pair_order(len(chosen[t]), len(rejected[t])) for t in hard_ids}
    round_ = 0
    while len(stage2.pairs) < config.hard_pairs:
        for t in hard_ids:
            if len(stage2.pairs) == config.hard_pairs:
                break
            c, r = orders[t][round_ % len(orders[t])]
            stage2.pairs.append((t, chosen[t][c], rejected[t][r]))
        round_ += 1

    both = set(easy_ids) & set(hard_ids)
    if both:  # by construction impossible; a real check, since `assert` vanishes under -O
        raise BuildError(f"task ids in both stages: {', '.join(sorted(both))}")
    return stage1, stage2, {"shortfalls": shortfalls, "usable_by_tier": {k: len(v) for k, v in tiers.items()}}


def contamination(stages: dict[str, list[str]], tasks: dict[str, Task]) -> dict[str, Any]:
    """Each stage's overlap with every evaluation set, by task id and by identical grids."""
    report: dict[str, Any] = {}
    for stage, ids in stages.items():
        ds = Dataset(stage, "", {t: tasks[t] for t in dict.fromkeys(ids)})
        report[stage] = {}
        for name in EVAL_DATASETS:
            o = overlap(ds, name)
            report[stage][name] = {"by_id": o.by_id, "by_content": [list(p) for p in o.by_content]}
    known = overlap("arc2:training", "arc1:evaluation")
    report["known"] = {
        "arc2_training_contains_arc1_evaluation": {"by_id": len(known.by_id), "by_content": len(known.by_content)},
    }
    return report


def _warn_contamination(report: dict[str, Any], out=None) -> int:
    """Say loudly which stage holds evaluation tasks; returns the number of (stage, set) hits."""
    out = out or sys.stderr
    known = report["known"]["arc2_training_contains_arc1_evaluation"]["by_id"]
    hits = []
    for stage in STAGES:
        for name in EVAL_DATASETS:
            entry = report[stage][name]
            shown = {t: t for t in entry["by_id"]}
            for ours, theirs in entry["by_content"]:
                shown.setdefault(ours, f"{ours} (same grids as {theirs})")
            if shown:
                listed = [shown[t] for t in sorted(shown)]
                hits.append(f"  {stage}: {len(shown)} task(s) of {name} (by id {len(entry['by_id'])}, "
                            f"by grids {len(entry['by_content'])}): {', '.join(listed[:8])}"
                            + (" ..." if len(listed) > 8 else ""))
    if hits:
        bar = "!" * 100
        print(bar, file=out)
        print("CONTAMINATION: the DPO data contains evaluation tasks.", file=out)
        print("\n".join(hits), file=out)
        print(f"  ARC-AGI-2 training contains {known} ARC-AGI-1 evaluation tasks (same id). A model trained on "
              "this data has seen the tasks above:\n  its scores on those evaluation sets are NOT held-out "
              "results.\n  Rebuild without --allow-eval-overlap to leave them out (see contamination.json).",
              file=out)
        print(bar, file=out)
    return len(hits)


# --------------------------------------------------------------------------------------------
# The build


def _messages(role: str, content: str) -> list[dict[str, str]]:
    return [{"role": role, "content": content}]


def _pair_rows(stage: Stage, tasks: dict[str, Task], info: dict[str, dict[str, Any]]) -> list[dict]:
    prompts: dict[str, str] = {}
    rows = []
    for index, (task_id, chosen, rejected) in enumerate(stage.pairs):
        if task_id not in prompts:
            prompts[task_id] = build_prompt(tasks[task_id], "allowed")
        rows.append({
            "prompt": _messages("user", prompts[task_id]),
            "chosen": _messages("assistant", chosen.text),
            "rejected": _messages("assistant", rejected.text),
            "task_id": task_id,
            "stage": stage.name,
            "tier": info[task_id]["tier"],
            "pair_index": index,
            "chosen_ref": chosen.ref,
            "rejected_ref": rejected.ref,
        })
    return rows


def build(config: BuildConfig, log=print) -> dict[str, Any]:
    """Build both stages into `config.out_dir` and return the manifest (also written there)."""
    out_dir = Path(config.out_dir)
    for name in ("easy_tasks", "hard_pairs", "hard_tasks", "chosen_per_task"):
        if getattr(config, name) < (1 if name == "chosen_per_task" else 0):
            raise BuildError(f"{name} must be >= {1 if name == 'chosen_per_task' else 0}")
    if not config.rejected:
        raise BuildError("give at least one --rejected source (attempts.jsonl, run dir or Inspect log)")
    tasks, origin = task_pool()
    counts: Counter = Counter({key: 0 for key in COUNTS})

    # Chosen: rows the dataset itself flags as correct, for known training tasks.
    rows, trace_info = load_traces(config.traces, config.traces_split, config.traces_revision)
    eval_only: set[str] = set()
    eval_ids = set().union(*(load_dataset(n).tasks for n in EVAL_DATASETS))
    by_task: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for i, row in enumerate(rows):
        task_id = row.get("task_id")
        row_id = str(row.get("row_id") or f"row-{i}")
        if task_id not in tasks:
            counts["traces_unknown_task"] += 1
            if task_id in eval_ids:
                eval_only.add(task_id)
            continue
        flags = list(row.get("correct_test_input") or []) + list(row.get("correct_train_input") or [])
        if not row.get("correct_test_input") or not all(flag is True for flag in flags):
            counts["traces_flagged_incorrect"] += 1
            continue
        if row.get("is_transductive") is True:
            counts["traces_transductive"] += 1
            continue
        if not isinstance(row.get("code"), str) or "def transform(" not in row["code"]:
            counts["traces_no_transform"] += 1
            continue
        by_task[task_id].append((row_id, row))
    if eval_only:
        log(f"note: {len(eval_only)} trace task(s) exist only in an evaluation set and are never used: "
            f"{', '.join(sorted(eval_only)[:8])}")

    # Rejected: attempts with a completion, no API error and no correct test output on record.
    rejected_raw: dict[str, list[tuple[str, str]]] = defaultdict(list)
    rejected_info = []
    for spec in config.rejected:
        records, info = load_rejected(spec)
        rejected_info.append(info)
        label = Path(spec).name
        for r in records:
            task_id = r["task_id"]
            if task_id not in tasks:
                counts["rejected_unknown_task"] += 1
                continue
            # An answer cut off while thinking has reasoning but no text: a real rejected answer.
            if not (r.get("completion") or r.get("reasoning")) or r.get("api_error"):
                counts["rejected_no_completion"] += 1
                continue
            if any(r.get("correct") or []):
                counts["rejected_correct_on_record"] += 1
                continue
            counts["rejected_reasoning_only"] += not r.get("completion")
            rejected_raw[task_id].append((f"{label}#{task_id}#{r['attempt']}", r))

    candidates = sorted(set(by_task) & set(rejected_raw))
    counts["tasks_with_traces"] = len(by_task)
    counts["tasks_with_rejected"] = len(rejected_raw)
    counts["tasks_with_both"] = len(candidates)

    chosen_items: list[tuple[str, Candidate]] = []
    rejected_items: list[tuple[str, Candidate, str]] = []
    for task_id in candidates:
        task = tasks[task_id]
        picks = list(by_task[task_id])
        _rng(config.seed, "chosen", task_id).shuffle(picks)
        for row_id, row in picks[: config.chosen_per_task]:
            text = format_answer(row.get("reasoning") or "", row["code"], row.get("predicted_test_output"))
            chosen_items.append((task_id, Candidate(task_id, row_id, text)))
        attempts = list(rejected_raw[task_id])
        _rng(config.seed, "rejected", task_id).shuffle(attempts)
        for ref, r in attempts:
            text = normalize_rejected(r.get("completion"), task.num_tests, r.get("reasoning"))
            cut_off = r.get("stop_reason") in TOKEN_LIMIT_REASONS
            rejected_items.append((task_id, Candidate(task_id, ref, text, cut_off, r.get("stop_reason")),
                                   r.get("completion") or ""))

    log(f"verifying {len(chosen_items)} chosen and {len(rejected_items)} rejected responses "
        f"over {len(candidates)} tasks with the core's scoring ...")
    with _open_executor(config) as executor:
        chosen_records = _score_texts(tasks, [(t, c.text) for t, c in chosen_items], executor)
        # The rejected text that is trained on and the raw attempt must both solve nothing.
        rejected_records = _score_texts(
            tasks, [(t, c.text) for t, c, _ in rejected_items] + [(t, raw) for t, _, raw in rejected_items], executor)

    chosen: dict[str, list[Candidate]] = defaultdict(list)
    failures = []
    for (task_id, cand), record in zip(chosen_items, chosen_records):
        if record.source == "executed_program" and all(record.correct):
            chosen[task_id].append(cand)
            counts["chosen_train_verified"] += bool(record.train_verified)
        else:
            failures.append(f"{task_id} (row {cand.ref}): source {record.source}, program {record.program_status}, "
                            f"correct {record.correct}" + (f", error: {record.error[-200:]}" if record.error else ""))
    counts["chosen_verified"] = sum(len(v) for v in chosen.values())
    counts["chosen_failed"] = len(failures)
    if failures and not config.drop_failing_chosen:
        raise BuildError(f"{len(failures)} chosen response(s) do not solve their own task's test outputs:\n  "
                         + "\n  ".join(failures[:10]) + ("\n  ..." if len(failures) > 10 else "")
                         + "\n(pass --drop-failing-chosen to leave them out)")
    if failures:
        log(f"warning: dropped {len(failures)} chosen response(s) whose program fails its task")

    rejected: dict[str, list[Candidate]] = defaultdict(list)
    n = len(rejected_items)
    for (task_id, cand, _), normalized, raw in zip(rejected_items, rejected_records[:n], rejected_records[n:]):
        if any(normalized.correct) or any(raw.correct):
            counts["rejected_correct_when_scored"] += 1
        else:
            rejected[task_id].append(cand)
    counts["rejected_verified"] = sum(len(v) for v in rejected.values())

    info = classify(candidates, tasks)
    stage1, stage2, selection = select_stages(chosen, rejected, info, config)
    for shortfall in selection["shortfalls"]:
        log(f"warning: {shortfall}")
    report = contamination({s.name: [t for t, _, _ in s.pairs] for s in (stage1, stage2)}, tasks)
    used = {t for s in (stage1, stage2) for t, _, _ in s.pairs}
    eval_overlap = sorted(t for t in used if info[t]["eval"])
    lengths = length_report([pair for s in (stage1, stage2) for pair in s.pairs], config.tokenizer)

    import datasets

    out_dir.mkdir(parents=True, exist_ok=True)
    stage_meta = {}
    for stage in (stage1, stage2):
        rows_ = _pair_rows(stage, tasks, info)
        datasets.Dataset.from_list(rows_).save_to_disk(str(out_dir / stage.name))
        ids = [t for t, _, _ in stage.pairs]
        keys = [(t, c.ref, r.ref) for t, c, r in stage.pairs]
        stage_meta[stage.name] = {
            "pairs": len(stage.pairs),
            "unique_tasks": len(set(ids)),
            "duplicate_pairs": len(keys) - len(set(keys)),
            "tiers": dict(Counter(info[t]["tier"] for t in set(ids))),
            "task_origin": dict(Counter(origin[t] for t in set(ids))),
            "task_ids": sorted(set(ids)),
            "sha256": _sha256_json(rows_),
        }
    manifest = {
        "format": FORMAT,
        "prompt_version": PROMPT_VERSION,
        "config": {k: v for k, v in asdict(config).items() if k != "out_dir"},
        "sources": {
            "traces": trace_info,
            "rejected": rejected_info,
            "arc_data": {n: load_dataset(n).file_hash for n in SOURCE_DATASETS + EVAL_DATASETS},
        },
        "counts": dict(sorted(counts.items())),
        "selection": selection,
        "stages": stage_meta,
        "stage_overlap": sorted(set(stage_meta["stage1"]["task_ids"]) & set(stage_meta["stage2"]["task_ids"])),
        "eval_overlap_tasks": len(eval_overlap),
        "eval_overlap_task_ids": eval_overlap,
        "lengths": lengths,
        "contamination": report,
    }
    (out_dir / "contamination.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"stage1: {stage_meta['stage1']['pairs']} pairs over {stage_meta['stage1']['unique_tasks']} tasks "
        f"{stage_meta['stage1']['tiers']}; stage2: {stage_meta['stage2']['pairs']} pairs over "
        f"{stage_meta['stage2']['unique_tasks']} tasks; written to {out_dir}")
    log(_length_summary(lengths))
    for warning in lengths["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    log(f"eval_overlap_tasks: {len(eval_overlap)}"
        + ("" if config.exclude_eval_overlap else " (--allow-eval-overlap: evaluation tasks kept)"))
    _warn_contamination(report)
    return manifest


# --------------------------------------------------------------------------------------------
# How alike the two sides are


def _distribution(values: Sequence[float]) -> dict[str, float] | None:
    """mean, p50, p90 (nearest rank, as the core's usage figures)."""
    from rps_evals.provenance import percentile

    if not values:
        return None
    return {"mean": statistics.fmean(values), "p50": percentile(values, 0.5), "p90": percentile(values, 0.9)}


def length_report(pairs: Sequence[tuple[str, Candidate, Candidate]], tokenizer: str | None = None) -> dict:
    """reasoning_chars and response_tokens of the chosen and rejected sides over the pairs (as
    trained on), the share of rejected answers cut off by the token limit, and a warning for each
    measure whose medians differ by more than LENGTH_RATIO_WARNING: DPO could learn length, not
    correctness."""
    count_tokens = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
        count_tokens = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    report: dict[str, Any] = {"tokenizer": tokenizer, "pairs": len(pairs)}
    for side, index in (("chosen", 1), ("rejected", 2)):
        texts = [pair[index].text for pair in pairs]
        report[side] = {
            "reasoning_chars": _distribution([len(reasoning_section(t)) for t in texts]),
            "response_chars": _distribution([len(t) for t in texts]),
            "response_tokens": _distribution([count_tokens(t) for t in texts]) if count_tokens else None,
            "empty_reasoning": sum(not reasoning_section(t) for t in texts),
        }
    report["rejected_cut_off_share"] = (sum(p[2].cut_off for p in pairs) / len(pairs)) if pairs else 0.0
    # hf/ and lm-eval report no finish reason: those answers are not known to be cut off or not
    report["rejected_stop_reason_unknown"] = sum(p[2].stop_reason is None for p in pairs)
    warnings = []
    for measure in ("reasoning_chars", "response_tokens", "response_chars"):
        a, b = report["chosen"][measure], report["rejected"][measure]
        if a is None or b is None:
            continue
        low, high = sorted((a["p50"], b["p50"]))
        if high > LENGTH_RATIO_WARNING * low:
            warnings.append(f"{measure}: chosen p50 {a['p50']:g} vs rejected p50 {b['p50']:g} differ by more "
                            f"than {LENGTH_RATIO_WARNING:g}x; DPO may learn length or style instead of correctness")
    report["warnings"] = warnings
    return report


def _length_summary(lengths: dict) -> str:
    def show(side: str, measure: str) -> str:
        d = lengths[side][measure]
        return "n/a" if d is None else f"mean {d['mean']:.0f} / p50 {d['p50']:g} / p90 {d['p90']:g}"

    lines = [f"{measure}: chosen {show('chosen', measure)}; rejected {show('rejected', measure)}"
             for measure in ("reasoning_chars", "response_tokens")]
    lines.append(f"rejected answers cut off by the token limit: {lengths['rejected_cut_off_share']:.1%}"
                 + (f" ({lengths['rejected_stop_reason_unknown']} with no reported stop reason)"
                    if lengths["rejected_stop_reason_unknown"] else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line


def make_parser():
    """TRL's parser over BuildConfig: `--config FILE` (YAML of its fields) plus `--field value`
    overrides; `--allow-eval-overlap` is `--no-exclude-eval-overlap` said plainly."""
    from trl import TrlParser

    parser = TrlParser(BuildConfig, prog="rps-train data", description=__doc__.split("\n\n")[0])
    # default SUPPRESS: the field's own option sets the default (exclude), and the help does not
    # print this flag's store_false default as "(default: True)"
    parser.add_argument("--allow-eval-overlap", "--allow_eval_overlap", dest="exclude_eval_overlap",
                        action="store_false", default=argparse.SUPPRESS,
                        help="keep evaluation tasks (the study's literal data; default: left out); the "
                             "contamination report is printed and in the manifest")
    add_config_option(parser, "BuildConfig")
    return parser


def parse_config(argv: list[str] | None = None) -> BuildConfig:
    try:
        (config,) = parse_with_config(make_parser(), argv, "data")
    except ValueError as exc:  # a bad --config file, or keys in it that BuildConfig lacks
        raise BuildError(str(exc)) from None
    missing = [f"--{name}" for name in ("traces", "out_dir") if not getattr(config, name)]
    if not config.rejected:
        missing.append("--rejected")
    if missing:
        raise BuildError(f"missing {', '.join(missing)}")
    return config


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        build(config)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
