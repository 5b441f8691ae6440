"""K samples, 2 submitted: which 2 attempts' predictions to submit, pass@k, training accuracy, cost.

The rules are docs/metrics.md, "Sampling K attempts and submitting 2". A policy chooses, per task and
test input, at most 2 predictions among the task's K attempts:

- `first`: attempts 1 and 2 (the official rule and the study's; the default);
- `train_vote`: per test input, the predictions of programs that ran cleanly (status ok) grouped by
  grid and ranked by how many train-verified, not hard-coded programs produce it, then how many
  programs produce it, then the best training accuracy among those programs, then the earliest
  attempt; every other valid prediction (the JSON fallback, or a grid returned by a program that
  failed on another test input) ranks after all of those, by how many attempts give it, then the
  earliest attempt;
- `train_verified_first`: the first two train-verified attempts in attempt order, the rest of the 2
  filled with attempts 1, 2.

`scoring.metric_units` counts the chosen predictions (`task_solves_<policy>`, ...), `scoring.submission`
writes them, and `compare` pairs them, so every front end gets them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from math import comb
from typing import Any, Iterable, Sequence

from rps_evals.attempts import AttemptRecord
from rps_evals.parse import Grid

POLICIES = ("first", "train_vote", "train_verified_first")
DEFAULT_POLICY = "first"
SUBMITTED = 2  # ARC Prize scores 2 predictions per test input


@dataclass(frozen=True)
class Choice:
    """One submitted prediction for one test input, the attempts that gave it, and why it was chosen."""

    prediction: Grid | None
    correct: bool
    attempts: tuple[int, ...]
    reason: str


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown selection policy {policy!r}; choose one of {', '.join(POLICIES)}")
    return policy


def selected_metric_names(policy: str) -> tuple[str, str]:
    """The names under which a non-default policy's solves and exact matches are reported."""
    return f"task_solves_{policy}", f"test_output_exact_{policy}"


def select(records: Sequence[AttemptRecord], policy: str = DEFAULT_POLICY) -> list[list[Choice]]:
    """For one task's records (attempts 1..K), per test input the (at most 2) choices to submit."""
    check_policy(policy)
    records = sorted(records, key=lambda r: r.attempt)
    m = len(records[0].predictions) if records else 0
    if policy == "train_vote":
        return [_vote(records, j) for j in range(m)]
    if policy == "train_verified_first":
        verified = [r for r in records if r.train_verified][:SUBMITTED]
        taken = {r.attempt for r in verified}
        chosen = [(r, "train-verified") for r in verified]
        chosen += [(r, "first attempts") for r in records if r.attempt not in taken][: SUBMITTED - len(chosen)]
    else:
        chosen = [(r, "first attempts") for r in records[:SUBMITTED]]
    return [[Choice(r.predictions[j], r.correct[j], (r.attempt,), f"attempt {r.attempt}: {why}")
             for r, why in chosen] for j in range(m)]


def _vote(records: Sequence[AttemptRecord], j: int) -> list[Choice]:
    """Test input j under train_vote: group equal grids, rank the groups, keep the top 2."""
    groups: dict[Any, list[AttemptRecord]] = {}
    for r in records:
        if r.predictions[j] is not None:
            groups.setdefault(_grid_key(r.predictions[j]), []).append(r)
    ranked = []
    for producers in groups.values():
        voters = [r for r in producers if r.prediction_origins[j] == "program" and r.program_status == "ok"]
        if voters:
            verified = [r for r in voters if r.train_verified and not r.hardcoded]
            best = max(r.train_accuracy or 0.0 for r in voters)
            key = (0, -len(verified), -len(voters), -best, voters[0].attempt)
            reason = (f"{len(verified)} train-verified general program(s), {len(voters)} program(s), "
                      f"best train accuracy {best:.2f}, first at attempt {voters[0].attempt}")
            attempts = tuple(r.attempt for r in voters)
        else:
            key = (1, 0, -len(producers), 0.0, producers[0].attempt)
            reason = (f"no clean program gives it: {len(producers)} attempt(s) (JSON or a failed program), "
                      f"first at attempt {producers[0].attempt}")
            attempts = tuple(r.attempt for r in producers)
        ranked.append((key, Choice(producers[0].predictions[j], producers[0].correct[j], attempts, reason)))
    ranked.sort(key=lambda item: item[0])
    return [choice for _, choice in ranked[:SUBMITTED]]


def _grid_key(grid: Grid) -> tuple:
    return tuple(tuple(row) for row in grid)


def selection_units(by_task: dict[str, list[AttemptRecord]], policy: str) -> dict[str, dict[Any, bool]]:
    """The unit indicators of `task_solves_<policy>` and `test_output_exact_<policy>`."""
    solves_name, exact_name = selected_metric_names(policy)
    solves: dict[Any, bool] = {}
    exact: dict[Any, bool] = {}
    for task_id, records in by_task.items():
        per_test = [any(c.correct for c in choices) for choices in select(records, policy)]
        for j, matched in enumerate(per_test):
            exact[(task_id, j)] = matched
        solves[task_id] = all(per_test)
    return {solves_name: solves, exact_name: exact}


# -- pass@k ----------------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased estimator of pass@k from n samples of which c are correct:
    1 - C(n - c, k) / C(n, k), the chance that k of the n drawn without replacement hold a correct one."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


def task_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k of a whole task, `correct[a][j]` telling whether attempt a matched test output j.

    A task is solved when each of its test outputs is matched by some attempt of the k (each output on
    its own, as the official rule), so the estimator is the chance that k attempts drawn from the n
    cover every test output: by inclusion-exclusion over the sets S of test outputs left uncovered,
    sum_S (-1)^|S| C(n - |attempts matching some output of S|, k) / C(n, k). With one test output this
    is Chen's estimator.
    """
    n = len(correct)
    m = len(correct[0]) if n else 0
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
    total = Fraction(0)
    for size in range(m + 1):
        for outputs in combinations(range(m), size):
            hitting = sum(1 for row in correct if any(row[j] for j in outputs))
            total += (-1) ** size * Fraction(comb(n - hitting, k), comb(n, k))
    return float(total)


def k_values(k: int) -> list[int]:
    """1, 2, 4, ... up to k, and k itself."""
    values = [1 << i for i in range(k.bit_length()) if 1 << i <= k]
    return values if values[-1] == k else values + [k]


def pass_at_k_curves(by_task: dict[str, list[AttemptRecord]], k: int) -> dict[str, dict[str, float]]:
    """Mean pass@k over tasks (whole tasks solved) and over test outputs, for k in k_values(K)."""
    tasks: dict[str, float] = {}
    outputs: dict[str, float] = {}
    for kk in k_values(k):
        per_task, per_output = [], []
        for records in by_task.values():
            matrix = [r.correct for r in sorted(records, key=lambda r: r.attempt)]
            per_task.append(task_pass_at_k(matrix, kk))
            for j in range(len(matrix[0])):
                per_output.append(pass_at_k(len(matrix), sum(row[j] for row in matrix), kk))
        tasks[str(kk)] = sum(per_task) / len(per_task) if per_task else 0.0
        outputs[str(kk)] = sum(per_output) / len(per_output) if per_output else 0.0
    return {"task_solves": tasks, "test_output_exact": outputs}


# -- training accuracy, tokens and cost ------------------------------------------------------------

def mean_train_accuracy(records: Iterable[AttemptRecord]) -> float | None:
    """Mean over every attempt of its training accuracy (an attempt without a program matched 0
    pairs); None when a record predates the field and the mean cannot be known."""
    values = [r.train_accuracy for r in records]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def cost_summary(by_task: dict[str, list[AttemptRecord]], price_in: float | None = None,
                 price_out: float | None = None,
                 task_tokens: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Tokens per run and per task and, given prices per million input / output tokens, the cost.

    Tokens come from the records (input_tokens, output_tokens), or for a task in `task_tokens`
    (input, output) from the front end's own totals for the task: a provider that returns K choices in
    one request reports one usage for all of them, which no single attempt carries. An attempt whose
    tokens nobody reported adds nothing and is counted in `attempts_without_token_counts` (the figures
    are then lower bounds); missing attempts and API errors generated nothing.
    """
    per_task_tokens: dict[str, list[int]] = {}
    unknown = 0
    for task_id, records in by_task.items():
        if task_tokens and task_id in task_tokens:
            per_task_tokens[task_id] = list(task_tokens[task_id])
            continue
        tokens = [0, 0]
        for r in records:
            if r.missing or r.completion is None and r.api_error is not None:
                continue
            got_in, got_out = r.input_tokens, r.output_tokens
            if got_out is None:
                unknown += 1
            tokens[0] += got_in or 0
            tokens[1] += got_out or 0
        per_task_tokens[task_id] = tokens
    n_tasks = len(per_task_tokens)
    total_in = sum(t[0] for t in per_task_tokens.values())
    total_out = sum(t[1] for t in per_task_tokens.values())
    out: dict[str, Any] = {
        "input_tokens": total_in,
        "output_tokens": total_out,
        "output_tokens_per_task_mean": total_out / n_tasks if n_tasks else 0.0,
        "attempts_without_token_counts": unknown,
        "price_in_per_million": price_in,
        "price_out_per_million": price_out,
    }
    if price_in is not None and price_out is not None:
        per_task = {task_id: (t[0] * price_in + t[1] * price_out) / 1e6 for task_id, t in per_task_tokens.items()}
        out["total"] = sum(per_task.values())
        out["per_task_mean"] = out["total"] / n_tasks if n_tasks else 0.0
        out["per_task"] = per_task
    return out


def check_prices(price_in: float | None, price_out: float | None) -> None:
    if (price_in is None) != (price_out is None):
        raise ValueError("give both prices (per million input tokens and per million output tokens) or neither")
    for name, value in (("input", price_in), ("output", price_out)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"the price per million {name} tokens must be a number >= 0, got {value!r}")


def format_k_samples(result: dict[str, Any], width: int = 24) -> list[str]:
    """The table lines for the K-samples part of a results document."""
    lines = []
    curves = result.get("pass_at_k")
    if curves and result.get("attempts_per_task", 0) > SUBMITTED:
        for label, name in (("pass@k tasks", "task_solves"), ("pass@k test outputs", "test_output_exact")):
            lines.append(f"{label:<{width}}" + "  ".join(f"@{k} {v:.3f}" for k, v in curves[name].items()))
    if result.get("mean_train_accuracy") is not None:
        lines.append(f"{'mean_train_accuracy':<{width}}{result['mean_train_accuracy']:.4f}")
    cost = result.get("cost")
    if cost and "total" in cost:
        lines.append(f"{'cost':<{width}}{cost['total']:.4f} in all, {cost['per_task_mean']:.4f} per task "
                     f"({cost['input_tokens']} input + {cost['output_tokens']} output tokens)")
    return lines
