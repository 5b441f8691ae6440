"""Scoring: from responses to attempt records to every metric. The one place metrics are defined.

The rules are those of docs/metrics.md. In short: each attempt is parsed, its program run in the
sandbox on the test inputs (then the training inputs, for train verification); each test input's
prediction is the program's valid output, else the JSON prediction; the attempt's source is
`executed_program`, `json_fallback` or `invalid`. Every metric is a count of true indicators over
a unit set taken from the dataset (tasks, test outputs, attempts, test outputs x attempts), so a
missing response is a counted failure, never an absent row. `metric_units` gives those indicators;
`summarize` counts them and `rps_evals.compare` pairs them between two runs. A run that refined
(records with `rounds`) adds the same metrics on the round-0 answers and the repair counts.
"""

from __future__ import annotations

import ast
import dataclasses
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from rps_evals.data import Dataset, Task
from rps_evals.execution import Execution, Executor, Program
from rps_evals.parse import MAX_SIDE, Grid, as_grid, grid_problem, parse_response
from rps_evals.prompt import PROMPT_VERSION
from rps_evals import selection
from rps_evals.attempts import AttemptRecord, Response, missing_record  # noqa: F401  (re-exported)

STOP_REASONS = ("stop", "max_tokens", "model_length")
TOKEN_LIMIT_REASONS = ("max_tokens", "model_length")
OFFICIAL_ATTEMPTS = 2  # solves and exact accuracy use attempts 1 and 2 only

# name -> (unit, what a reader is told it counts). Order is the order of every printed table.
METRICS: dict[str, str] = {
    "task_solves": "tasks",
    "test_output_exact": "test outputs",
    "valid_output_attempts": "test outputs x attempts",
    "token_limit_hits": "attempts",
    "api_errors": "attempts",
    "attempts_from_executed_programs": "attempts",
    "attempts_from_general_programs": "attempts",
    "hardcoded_output_programs": "attempts",
    "program_executions_without_error": "attempts",
    "json_fallback_attempts": "attempts",
    "invalid_attempts": "attempts",
    "program_timeouts": "attempts",
    "program_errors": "attempts",
    "train_verified_programs": "attempts",
    "train_verified_but_wrong": "attempts",
    "tasks_all_attempts_executed": "tasks",
    "tasks_any_attempt_executed": "tasks",
    "tasks_no_attempt_executed": "tasks",
}
# A rise in these is a regression (the gate reads "drop" as "got worse").
LOWER_IS_BETTER = frozenset({
    "token_limit_hits", "api_errors", "json_fallback_attempts", "invalid_attempts", "hardcoded_output_programs",
    "program_timeouts", "program_errors", "tasks_no_attempt_executed", "train_verified_but_wrong",
})


def program_for(task: Task, response: Response | None) -> tuple[Program, list[Grid | None]]:
    """The program to run for a response (source None when there is nothing to run) and its
    JSON predictions."""
    parsed = parse_response(response.completion if response else None, task.num_tests)
    train_inputs = [pair[0] for pair in task.train]
    return Program(parsed.program, task.test_inputs, train_inputs), parsed.json_predictions


MIN_LITERAL_CELLS = 4  # smaller grid literals ([[8]], [[0, 1]]) are ordinary code, not a stored answer


def grid_literals(source: str) -> list[Grid]:
    """Every literal grid in a program's source: a list/tuple of rows of int literals (`+3` and `-0`
    are literals too), or a sum of such lists (`[[3, 3, 3]] + [[3, 0, 3]]`), that is a valid grid of
    at least MIN_LITERAL_CELLS cells as a whole. Read with `ast`, never run. Linear in the source:
    about 1 ms for an ordinary program, seconds for a megabyte of literals (Python's parser is most
    of it). Unparsable source has none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    nodes = [node for node in ast.walk(tree) if isinstance(node, (ast.List, ast.Tuple, ast.BinOp))]  # parents first
    rows_of: dict[int, list[list[int]]] = {}  # id(node) -> its rows, for nodes that are literal grids
    for node in reversed(nodes):  # children first, so a sum reads its operands' rows
        if isinstance(node, (ast.List, ast.Tuple)) and 0 < len(node.elts) <= MAX_SIDE:
            rows = []
            for element in node.elts:
                row = _int_row(element)
                if row is None:
                    break
                rows.append(row)
            else:
                rows_of[id(node)] = rows
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = rows_of.get(id(node.left)), rows_of.get(id(node.right))
            if left is not None and right is not None and len(left) + len(right) <= MAX_SIDE:
                rows_of[id(node)] = left + right
    found = []
    for node in nodes:
        grid = as_grid(rows_of[id(node)]) if id(node) in rows_of else None
        if grid is not None and len(grid) * len(grid[0]) >= MIN_LITERAL_CELLS:
            found.append(grid)
    return found


def _int_row(node: ast.AST) -> list[int] | None:
    """The ints of a list/tuple literal of int literals (a sign folded in), else None."""
    if not isinstance(node, (ast.List, ast.Tuple)) or len(node.elts) > MAX_SIDE:
        return None
    row = []
    for cell in node.elts:
        sign = 1
        if isinstance(cell, ast.UnaryOp) and isinstance(cell.op, (ast.UAdd, ast.USub)):
            sign, cell = (-1 if isinstance(cell.op, ast.USub) else 1), cell.operand
        if not (isinstance(cell, ast.Constant) and type(cell.value) is int):
            return None
        row.append(sign * cell.value)
    return row


def hardcoded_reason(task: Task, program: str | None, execution: Execution) -> str | None:
    """Why a program that ran cleanly does not compute its outputs, or None (docs/metrics.md):
    `literal_output`: its source holds, as a literal, one of the task's training or test output grids
    that is not also one of its input grids; `constant_output`: it returned one and the same valid
    grid for every training and test input although the task's training outputs are not all equal.
    Our reading: when both hold, the reason is `literal_output`."""
    if execution.status != "ok" or not program:
        return None
    return _hardcoded(task, program, [as_grid(v) for v in [*execution.test_outputs, *execution.train_outputs]])


def _hardcoded(task: Task, program: str, returned: list[Grid | None]) -> str | None:
    """hardcoded_reason of a program that ran cleanly, given its outputs already read as grids
    (test outputs first, then training outputs; None where one is not a grid)."""
    literals = _grid_literals_cached(program) if program else ()
    if literals:
        key = lambda grid: tuple(map(tuple, grid))  # noqa: E731
        inputs = {key(g) for g in [*task.test_inputs, *(i for i, _ in task.train)]}
        outputs = {key(g) for g in [*task.test_outputs, *(o for _, o in task.train)]} - inputs
        if any(key(g) in outputs for g in literals):
            return "literal_output"
    train_outputs = [o for _, o in task.train]
    if len(returned) == task.num_tests + len(task.train) and any(o != train_outputs[0] for o in train_outputs):
        # compared as grids: tuples, lists and numpy arrays of the same cells are the same grid
        first = returned[0]
        if first is not None and all(v == first for v in returned[1:]):
            return "constant_output"
    return None


@lru_cache(maxsize=4096)
def _grid_literals_cached(source: str) -> tuple:
    """grid_literals, once per distinct source: at K = 256 a model often writes the same program
    for many attempts of a task, and parsing it is most of the cost of the check."""
    return tuple(grid_literals(source))


def score_attempt(task: Task, response: Response | None, json_predictions: list[Grid | None],
                  execution: Execution, attempt: int, program: str | None = None) -> AttemptRecord:
    """Combine one response's parse and execution into its record (pure: no I/O). `program`: the
    source that ran, when the caller has it from program_for (otherwise the response is parsed
    again to find it)."""
    if response is None:
        return missing_record(task, attempt)
    # every returned value read as a grid once: test outputs, then training outputs
    test_grids = [as_grid(v) for v in execution.test_outputs[:task.num_tests]]
    test_grids += [None] * (task.num_tests - len(test_grids))
    train_grids = [as_grid(v) for v in execution.train_outputs[:len(task.train)]]
    train_grids += [None] * (len(task.train) - len(train_grids))
    predictions: list[Grid | None] = []
    origins: list[str | None] = []
    for j in range(task.num_tests):
        from_program = test_grids[j]
        if from_program is not None:
            predictions.append(from_program)
            origins.append("program")
        elif json_predictions[j] is not None:
            predictions.append(json_predictions[j])
            origins.append("json")
        else:
            predictions.append(None)
            origins.append(None)
    if all(o == "program" for o in origins):
        source = "executed_program"
    elif all(o is not None for o in origins):
        source = "json_fallback"
    else:
        source = "invalid"
    train_matches = [got == expected for got, (_, expected) in zip(train_grids, task.train)]
    ran = execution.status != "no_program"
    train_verified = ran and all(train_matches)
    train_accuracy = sum(train_matches) / len(train_matches) if ran and train_matches else 0.0
    api_error = response.error if response.completion is None and response.error is not None else None
    return AttemptRecord(
        task_id=task.task_id,
        attempt=attempt,
        source=source,
        program_status=execution.status,
        predictions=predictions,
        prediction_origins=origins,
        correct=[p is not None and p == want for p, want in zip(predictions, task.test_outputs)],
        train_verified=train_verified,
        train_accuracy=train_accuracy,
        input_tokens=response.input_tokens,
        stop_reason=response.stop_reason,
        api_error=api_error,
        error=execution.error or _not_a_grid(execution, test_grids),
        # the source the executor ran: program_for is how every front end gets it
        hardcoded=_hardcoded(task, program or program_for(task, response)[0].source or "",
                             [*test_grids, *train_grids]) if execution.status == "ok" else None,
        completion=response.completion,
        reasoning=response.reasoning,
        output_tokens=response.output_tokens,
        reasoning_tokens=response.reasoning_tokens,
    )


def _not_a_grid(execution: Execution, test_grids: list[Grid | None]) -> str:
    """For a program that ran cleanly: why a test output it returned is not a grid (the first
    one), so a report can say why the attempt has no prediction from it; "" otherwise."""
    if execution.status != "ok":
        return ""
    for j, grid in enumerate(test_grids):
        if grid is None:
            value = execution.test_outputs[j] if j < len(execution.test_outputs) else None
            return f"the program ran, but its output for test {j + 1} is not a grid: {grid_problem(value)}"
    return ""


def score_attempts(dataset: Dataset, responses: Iterable[Response], executor: Executor, k: int = 2,
                   progress: Callable[[], None] | None = None) -> list[AttemptRecord]:
    """Score every (task, attempt) of `dataset` x 1..k; responses not given count as missing.

    Responses must already be valid for the dataset (see records.check_responses).
    """
    by_key = {(r.task_id, r.attempt): r for r in responses}
    slots = [(task, a, by_key.get((task.task_id, a))) for task in dataset.tasks.values() for a in range(1, k + 1)]
    prepared = [program_for(task, response) for task, _, response in slots]
    executions = executor.run([program for program, _ in prepared], progress=progress)
    return [
        score_attempt(task, response, json_predictions, execution, a, program.source)
        for (task, a, response), (program, json_predictions), execution in zip(slots, prepared, executions)
    ]


def complete_records(dataset: Dataset, records: Iterable[AttemptRecord], k: int) -> list[AttemptRecord]:
    """Records for every (task, attempt) of the dataset, in dataset order, missing ones filled in."""
    by_key = {(r.task_id, r.attempt): r for r in records}
    return [
        by_key.get((task.task_id, a)) or missing_record(task, a)
        for task in dataset.tasks.values()
        for a in range(1, k + 1)
    ]


def metric_units(records: Sequence[AttemptRecord], k: int,
                 select: str = selection.DEFAULT_POLICY) -> dict[str, dict[Any, bool]]:
    """For each metric, its unit set and whether each unit counts. `records` must be complete
    (one per task x attempt 1..k, as from complete_records or an attempts.jsonl). With k > 2 the
    oracle (any of the k attempts) is added, and a `select` policy other than `first` adds its
    solves and exact matches (rps_evals.selection)."""
    units: dict[str, dict[Any, bool]] = {name: {} for name in METRICS}
    official = min(k, OFFICIAL_ATTEMPTS)
    if k > OFFICIAL_ATTEMPTS:
        units["oracle_task_solves"] = {}
        units["oracle_test_output_exact"] = {}
    by_task: dict[str, list[AttemptRecord]] = {}
    for r in records:
        by_task.setdefault(r.task_id, []).append(r)
        key = (r.task_id, r.attempt)
        units["token_limit_hits"][key] = r.stop_reason in TOKEN_LIMIT_REASONS
        units["api_errors"][key] = r.api_error is not None
        units["attempts_from_executed_programs"][key] = r.source == "executed_program"
        units["attempts_from_general_programs"][key] = r.source == "executed_program" and r.hardcoded is None
        units["hardcoded_output_programs"][key] = r.program_status == "ok" and r.hardcoded is not None
        units["program_executions_without_error"][key] = r.program_status == "ok"
        units["json_fallback_attempts"][key] = r.source == "json_fallback"
        units["invalid_attempts"][key] = r.source == "invalid"
        units["program_timeouts"][key] = r.program_status == "timeout"
        units["program_errors"][key] = r.program_status == "error"
        units["train_verified_programs"][key] = r.train_verified
        units["train_verified_but_wrong"][key] = r.train_verified and not all(r.correct)
        for j, prediction in enumerate(r.predictions):
            units["valid_output_attempts"][(r.task_id, j, r.attempt)] = prediction is not None
    for task_id, attempts in by_task.items():
        attempts.sort(key=lambda r: r.attempt)
        m = len(attempts[0].correct)
        for prefix, chosen in (("", attempts[:official]), ("oracle_", attempts)):
            if prefix and k <= OFFICIAL_ATTEMPTS:
                continue
            matched = [any(r.correct[j] for r in chosen) for j in range(m)]
            for j in range(m):
                units[prefix + "test_output_exact"][(task_id, j)] = matched[j]
            units[prefix + "task_solves"][task_id] = all(matched)
        executed = [r.source == "executed_program" for r in attempts]
        units["tasks_all_attempts_executed"][task_id] = all(executed)
        units["tasks_any_attempt_executed"][task_id] = any(executed)
        units["tasks_no_attempt_executed"][task_id] = not any(executed)
    if selection.check_policy(select) != selection.DEFAULT_POLICY:
        units.update(selection.selection_units(by_task, select))
    if refining(records):
        units.update(refinement_units(records, k, select))
    return units


# -- refinement (docs/metrics.md, "Refinement") ----------------------------------------------------

ROUND_0 = "_round_0"  # suffix of the metrics of the answers before any feedback


def refining(records: Iterable[AttemptRecord]) -> bool:
    """Whether these records come from a run that refined (each scored attempt keeps its rounds)."""
    return any(r.rounds is not None for r in records)


def round_record(record: AttemptRecord, r: int) -> AttemptRecord:
    """The attempt's answer after round r: its r-th answer, or its final one when it stopped sooner
    (train-verified, out of rounds, or an API error)."""
    rounds = record.rounds or []
    if r < len(rounds):
        return AttemptRecord.from_dict({**rounds[r], "rounds": None})
    return dataclasses.replace(record, rounds=None) if record.rounds is not None else record


def refinement_units(records: Sequence[AttemptRecord], k: int,
                     select: str = selection.DEFAULT_POLICY) -> dict[str, dict[Any, bool]]:
    """Every metric on the round-0 answers (suffix `_round_0`, the policy's selection included), and
    `repaired_programs`: over the attempts whose round-0 answer was not train-verified, those whose
    final answer is."""
    first = [round_record(r, 0) for r in records]
    units = {name + ROUND_0: u for name, u in metric_units(first, k, select).items()}
    units["repaired_programs"] = {(r.task_id, r.attempt): r.train_verified
                                  for r, before in zip(records, first) if not before.train_verified}
    return units


def refinement_counts(records: Sequence[AttemptRecord]) -> dict[str, tuple[int, int]]:
    """`feedback_rounds` (n = feedback messages sent, of = attempts) of a refining run: a count, not
    a set of 0/1 units, so it is reported and pooled but not paired by `compare`."""
    if not refining(records):
        return {}
    return {"feedback_rounds": (sum(len(r.rounds or []) for r in records), len(records))}


def refinement_summary(records: Sequence[AttemptRecord], k: int,
                       round_tokens: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Per round r = 0..the last one used: train-verified programs, solves and exact test outputs
    after round r (an attempt that stopped sooner counts with its final answer), and the tokens of
    the answers given in round r: the front end's own [input, output] totals per round where it
    gives them (`round_tokens`: one request may make several attempts, and only it knows its usage),
    else the answers' counts (null when any of them is unknown)."""
    last = max((len(r.rounds or []) for r in records), default=0)
    curve, tokens = [], []
    for r in range(last + 1):
        units = metric_units([round_record(record, r) for record in records], k)
        curve.append({"round": r, **{name: count(units[name]) for name in
                                     ("train_verified_programs", "task_solves", "test_output_exact")}})
        given = [round_record(record, r) for record in records if len(record.rounds or []) >= r and not record.missing]
        row: dict[str, Any] = {"round": r, "answers": len(given)}
        for i, key in enumerate(("input_tokens", "output_tokens")):
            known = [getattr(g, key) for g in given if g.api_error is None]
            row[key] = sum(known) if known and all(v is not None for v in known) else None
            if round_tokens is not None:
                row[key] = round_tokens[r][i] if r < len(round_tokens) else 0
        tokens.append(row)
    return {"rounds_used": last, "curve": curve, "tokens_per_round": tokens}


def count(units: dict[Any, bool]) -> dict[str, Any]:
    n, of = sum(units.values()), len(units)
    return {"n": n, "of": of, "rate": rate(n, of)}


def rate(n: float, of: float) -> float:
    """n / of, and 0 for an empty unit set: the one rate formula of every front end."""
    return n / of if of else 0.0


def task_counts(records: Sequence[AttemptRecord], k: int,
                select: str = selection.DEFAULT_POLICY) -> dict[str, tuple[int, int]]:
    """Each metric's (n, of) for some tasks' complete records: what a front end that scores one task
    at a time (Inspect, lm-eval) stores per sample, to be pooled by `pool`."""
    counts = {name: (sum(units.values()), len(units)) for name, units in metric_units(records, k, select).items()}
    return {**counts, **refinement_counts(records)}


def pool(per_task: Iterable[dict[str, Sequence[float]]]) -> dict[str, dict[str, Any]]:
    """Pool per-task (n, of) pairs into the run's {n, of, rate} per metric: sums of n over sums of of
    (unit sets of different tasks are disjoint), never a mean of per-task rates."""
    totals: dict[str, list[float]] = {}
    for counts in per_task:
        for name, (n, of) in counts.items():
            total = totals.setdefault(name, [0, 0])
            total[0] += n
            total[1] += of
    return {name: {"n": n, "of": of, "rate": rate(n, of)} for name, (n, of) in totals.items()}


def unknown_stop_reasons(records: Iterable[AttemptRecord]) -> int:
    """Attempts with a completion whose stop reason nobody reported (not counted as token-limit hits)."""
    return sum(1 for r in records if r.stop_reason is None and r.api_error is None and not r.missing)


def arc_prize_score(records: Sequence[AttemptRecord], k: int) -> float:
    """Mean over tasks of the fraction of its test outputs matched by attempt 1 or 2."""
    return _prize_from_units(metric_units(records, k)["test_output_exact"])


def _prize_from_units(units: dict[Any, bool]) -> float:
    per_task: dict[str, list[bool]] = {}
    for (task_id, _), matched in units.items():
        per_task.setdefault(task_id, []).append(matched)
    return sum(sum(v) / len(v) for v in per_task.values()) / len(per_task) if per_task else 0.0


def summarize(dataset: Dataset, records: Iterable[AttemptRecord], k: int,
              prompt_version: str = PROMPT_VERSION, select: str = selection.DEFAULT_POLICY,
              price_in: float | None = None, price_out: float | None = None,
              task_tokens: dict[str, tuple[int, int]] | None = None,
              round_tokens: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """The results.json document for a run: every metric as {n, of, rate} plus the ARC Prize score,
    the selection policy and what it scores, pass@k, training accuracy, tokens and cost
    (`task_tokens`: a front end's (input, output) token totals per task, see selection.cost_summary)
    and, for a run that refined, the per-round block (`round_tokens`: see refinement_summary)."""
    selection.check_prices(price_in, price_out)
    complete = complete_records(dataset, records, k)
    units = metric_units(complete, k, select)
    unknown_stops = unknown_stop_reasons(complete)
    result = {
        "dataset": dataset.name,
        "dataset_hash": dataset.file_hash,
        "prompt_version": prompt_version,
        "attempts_per_task": k,
        "num_tasks": len(dataset.tasks),
        "metrics": {**{name: count(u) for name, u in units.items()},
                    **{name: {"n": n, "of": of, "rate": rate(n, of)}
                       for name, (n, of) in refinement_counts(complete).items()}},
        "arc_prize_score": _prize_from_units(units["test_output_exact"]),
        "stop_reason_unknown": unknown_stops,
        "selection": select,
    }
    by_task: dict[str, list[AttemptRecord]] = {}
    for r in complete:
        by_task.setdefault(r.task_id, []).append(r)
    if select != selection.DEFAULT_POLICY:
        result[f"arc_prize_score_{select}"] = _prize_from_units(units[selection.selected_metric_names(select)[1]])
    result["pass_at_k"] = selection.pass_at_k_curves(by_task, k)
    result["mean_train_accuracy"] = selection.mean_train_accuracy(complete)
    result["cost"] = selection.cost_summary(by_task, price_in, price_out, task_tokens)
    if refining(complete):
        result["refinement"] = refinement_summary(complete, k, round_tokens)
    if unknown_stops:
        result["notes"] = [f"token_limit_hits: the stop reason of {unknown_stops} attempts is unknown; "
                           "they are not counted as hits"]
    return result


def submission(dataset: Dataset, records: Iterable[AttemptRecord], k: int,
               select: str = selection.DEFAULT_POLICY) -> dict[str, list[dict[str, Grid]]]:
    """ARC Prize submission format, the 2 predictions the `select` policy chose per test input; a
    missing prediction is written as [[0]] (never correct)."""
    by_task: dict[str, list[AttemptRecord]] = {}
    for r in complete_records(dataset, records, k):
        by_task.setdefault(r.task_id, []).append(r)
    out: dict[str, list[dict[str, Grid]]] = {}
    for task in dataset.tasks.values():
        entries = []
        for choices in selection.select(by_task[task.task_id], select):
            predictions = [c.prediction for c in choices] + [None] * (selection.SUBMITTED - len(choices))
            entries.append({f"attempt_{a}": p if p is not None else [[0]] for a, p in enumerate(predictions, 1)})
        out[task.task_id] = entries
    return out


def format_table(result: dict[str, Any]) -> str:
    """The report's style: `attempts_from_executed_programs  214/240 (89.2%)`."""
    metrics = result["metrics"]
    width = max(len(name) for name in metrics) + 2
    select = result.get("selection", selection.DEFAULT_POLICY)
    lines = [f"{result['dataset']}  (k={result['attempts_per_task']}, prompt {result['prompt_version']}"
             + (f", submitting by {select})" if select != selection.DEFAULT_POLICY else ")")]
    for name, m in metrics.items():
        lines.append(f"{name:<{width}}{m['n']}/{m['of']} ({100 * m['rate']:.1f}%)")
    lines.append(f"{'arc_prize_score':<{width}}{result['arc_prize_score']:.4f}")
    if f"arc_prize_score_{select}" in result:
        lines.append(f"{f'arc_prize_score_{select}':<{width}}{result[f'arc_prize_score_{select}']:.4f}")
    lines += selection.format_k_samples(result, width)
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
