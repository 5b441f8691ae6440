"""The arc tasks' scorer: one task's recorded attempts scored by the core, and the task's metric.

The scorer turns the solver's attempts into the core's `AttemptRecord`s (the core's parser,
executor and `score_attempt`) and stores each metric's per-task n as the score value and its of in
the metadata, with the records beside them: `rps-evals report LOG` rebuilds the run from those
without executing anything again, and `reliability` pools them into the same n / of as
`rps-evals score` on the same responses.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import anyio
from inspect_ai.scorer import SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from rps_evals.attempts import AttemptRecord
from rps_evals.data import load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, Execution, Program, shared_executor
from rps_evals.inspect_eval.counts import sample_counts
from rps_evals.inspect_eval.sandbox import run_in_inspect_sandbox
from rps_evals.inspect_eval.solver import STORE_KEY, USAGE_KEY, stored_response
from rps_evals.scoring import METRICS, arc_prize_score, pool, program_for, ROUND_0, refining, score_attempt, task_counts
from rps_evals.selection import DEFAULT_POLICY, selected_metric_names


@metric
def reliability():
    """Every metric of docs/metrics.md as a rate, pooled by the core over the scored tasks, and
    `arc_prize_score`. Inspect shows rates only; each sample keeps its task's n (the score value)
    and of (the score metadata), so `log_counts` and `rps-evals report` recover the n/of table."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        pooled = pool(sample_counts(s.score) for s in scores)
        out = {name: float(pooled[name]["rate"]) if name in pooled else 0.0 for name in METRICS}
        out.update({name: float(c["rate"]) for name, c in pooled.items() if name not in out})  # -T select=
        prize = [float(s.score.value["arc_prize_score"]) for s in scores]
        out["arc_prize_score"] = sum(prize) / len(prize) if prize else 0.0
        return out

    return compute



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
        stored = [by_attempt.get(a) for a in range(1, attempts + 1)]
        stored = [r if r and not r.get("missing") else None for r in stored]
        # answers the solver already ran and scored (refinement) are not run again
        to_run = [a for a, r in enumerate(stored) if r is None or "record" not in r]
        responses = [stored_response(task.task_id, stored[a]) if stored[a] else None for a in to_run]
        prepared = [program_for(task, response) for response in responses]
        executions = await run_programs([program for program, _ in prepared], sandbox, exec_timeout)
        records = [AttemptRecord.from_dict(r["record"]) if r and "record" in r else None for r in stored]
        for a, response, (program, json_predictions), execution in zip(to_run, responses, prepared, executions):
            records[a] = score_attempt(task, response, json_predictions, execution, a + 1, program.source)
        for record, r in zip(records, stored):
            if r is not None and "rounds" in r:
                record.rounds = [{**answer["record"], "round": i, "feedback": answer["feedback"]}
                                 for i, answer in enumerate(r["rounds"])]
        result = task_score(records, attempts, task.test_outputs, select)
        result.metadata["usage"] = state.store.get(USAGE_KEY)
        return result

    return score


def task_score(records: list[AttemptRecord], k: int, expected: Sequence[Any] = (),
               select: str = DEFAULT_POLICY) -> Score:
    """One task's Score: each metric's n (the core's per-task counts) as the value, its of in
    metadata, the records alongside, and an explanation `inspect view` renders as markdown."""
    reported = set(METRICS) | set(selected_metric_names(select) if select != DEFAULT_POLICY else ())
    if refining(records):  # the same on the round-0 answers, and the repair counts
        reported |= {name + ROUND_0 for name in reported} | {"repaired_programs", "feedback_rounds"}
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
        what = "missing" if r.missing else f"API error: {r.api_error[:600]}" if r.api_error else \
            f"{r.source}, program {r.program_status}" + (", train-verified" if r.train_verified else "")
        right = " ".join("✓" if c else "✗" for c in r.correct)
        stop = f", stopped at {r.stop_reason}" if r.stop_reason in ("max_tokens", "model_length") else ""
        if r.rounds:  # refinement: what each earlier answer was, in order
            before = "; ".join(f"round {i}: " + ("API error" if d.get("api_error") else
                                                 f"program {d['program_status']}") for i, d in enumerate(r.rounds))
            stop += f" (round {len(r.rounds)}, after {before})"
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


async def run_programs(programs: list[Program], sandbox: str, timeout: float) -> list[Execution]:
    """Run one task's programs: in the core's local runner, or through the sample's Inspect sandbox."""
    if all(not p.source for p in programs):
        return [Execution.nothing_to_run(p) for p in programs]
    if sandbox in ("docker", "local"):  # the warm pool shared by the eval's samples (local: UNSAFE)
        executor = shared_executor(sandbox, timeout)
        return await anyio.to_thread.run_sync(executor.run, programs)
    return await run_in_inspect_sandbox(programs, timeout)
