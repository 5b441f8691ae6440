"""Method-level statistics from replicate runs: does the *method* differ, not just two checkpoints.

A second training seed of the same method is another model, and a second sampling pass at
temperature > 0 is another draw; one run per side cannot tell a method effect from that noise.
Every statistic that takes several runs per side lives here, once; `compare`, `gate`, `plan`,
`view` and the study call it. docs/metrics.md ("Replicate runs") justifies the choices.

The test is a two-sample t test on run-level rates with tasks paired across sides:
  - each run's rate pools its units (attempts, test outputs or tasks); the runs of a side are its
    replicates and their spread carries the run effect, the task x run effect and the binomial
    noise of the attempts, all at once;
  - the run variance is pooled over both sides (equal run variance: what two runs of one
    generator have under the null), so 1 run against 2 or more still has degrees of freedom;
  - it is floored at the binomial variance a run would have on these tasks with no run effect,
    so identical runs never give p = 0 and 2 vs 2 stays below its nominal level;
  - a task x method component (how much the difference varies from task to task beyond run
    noise) is added, so the interval is for the method on tasks like these, not only these;
  - the degrees of freedom are Welch-Satterthwaite's of the two components.
A run-level permutation test was not chosen: with 2 vs 2 runs it can never reject at 0.05 and
with 3 vs 3 its smallest p is 0.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05
Z95 = 1.959963984540054  # the normal 97.5% quantile


@dataclass(frozen=True)
class MethodDifference:
    """B - A between two groups of runs. Rates are fractions; `se` the standard error of `diff`."""

    a_runs: tuple[float, ...]
    b_runs: tuple[float, ...]
    diff: float
    ci95: tuple[float, float]
    p_value: float
    se: float
    df: float
    run_variance: float  # pooled between-run variance of one run's rate (after the binomial floor)
    task_variance: float  # the task x method part of Var(diff)

    @property
    def noise_floor(self) -> float:
        return noise_floor(self.a_runs, self.b_runs)


def per_task_rates(runs: np.ndarray, task_of_unit: np.ndarray, units_per_task: np.ndarray) -> np.ndarray:
    """(runs x units) of 0..1 values -> (runs x tasks) rates: each task's share of counted units."""
    tasks = len(units_per_task)
    return np.stack([np.bincount(task_of_unit, weights=run, minlength=tasks) for run in runs]) / units_per_task


def method_difference(a: np.ndarray, b: np.ndarray, task_of_unit: np.ndarray) -> MethodDifference:
    """The method-level difference of two groups of runs on the same units.

    `a` and `b` are (runs x units) arrays of values in [0, 1] (a replicate that averages several
    sampling passes has fractions), unit j belonging to task `task_of_unit[j]` (0..T-1, every task
    present) in both groups; a + b must hold at least 3 runs.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    n_a, n_b = len(a), len(b)
    if n_a + n_b < 3:
        raise ValueError("a method-level difference needs at least 3 runs in all (2 against 1)")
    task_of_unit = np.asarray(task_of_unit)
    if task_of_unit.size == 0:  # a metric with no units: every rate is 0 (scoring.rate)
        return MethodDifference((0.0,) * n_a, (0.0,) * n_b, 0.0, (0.0, 0.0), 1.0, 0.0, float(n_a + n_b - 2), 0.0, 0.0)
    units_per_task = np.bincount(task_of_unit).astype(float)
    n_tasks, n_units = len(units_per_task), units_per_task.sum()
    weight = units_per_task / n_units
    task_a, task_b = per_task_rates(a, task_of_unit, units_per_task), per_task_rates(b, task_of_unit, units_per_task)
    run_a, run_b = task_a @ weight, task_b @ weight
    diff = float(run_b.mean() - run_a.mean())
    df_runs = n_a + n_b - 2
    scale = 1 / n_a + 1 / n_b
    pooled = (((run_a - run_a.mean()) ** 2).sum() + ((run_b - run_b.mean()) ** 2).sum()) / df_runs
    shared = np.concatenate([task_a, task_b]).mean(axis=0)  # each task's rate if the sides were one
    binomial = float((units_per_task * shared * (1 - shared)).sum() / n_units**2)
    run_variance = max(float(pooled), binomial)
    var_runs = run_variance * scale
    var_tasks = 0.0
    if n_tasks > 1:
        per_task_diff = task_b.mean(axis=0) - task_a.mean(axis=0)
        within = (((task_a - task_a.mean(axis=0)) ** 2).sum(axis=0)
                  + ((task_b - task_b.mean(axis=0)) ** 2).sum(axis=0)) / df_runs
        heterogeneity = max(0.0, float(per_task_diff.var(ddof=1) - (within * scale).mean()))
        var_tasks = heterogeneity * float((weight**2).sum())
    variance = var_runs + var_tasks
    se = math.sqrt(variance)
    if se == 0:  # every run identical on units that never vary: nothing differs
        return MethodDifference(tuple(run_a), tuple(run_b), diff, (diff, diff), 1.0, 0.0, float(df_runs),
                                run_variance, var_tasks)
    df = variance**2 / (var_runs**2 / df_runs + (var_tasks**2 / (n_tasks - 1) if n_tasks > 1 else 0.0))
    from scipy.stats import t  # imported here: scipy.stats takes ~1.5 s to import

    half = float(t.ppf(1 - ALPHA / 2, df)) * se
    p_value = float(2 * t.sf(abs(diff) / se, df))
    return MethodDifference(tuple(float(r) for r in run_a), tuple(float(r) for r in run_b), diff,
                            (diff - half, diff + half), min(1.0, p_value), se, float(df), run_variance, var_tasks)


def noise_floor(a_runs: Sequence[float], b_runs: Sequence[float]) -> float | None:
    """The largest difference between two runs of the same side (None with one run on each side)."""
    spreads = [max(runs) - min(runs) for runs in (a_runs, b_runs) if len(runs) > 1]
    return max(spreads) if spreads else None


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values (family-wise error over the given metrics, any dependence)."""
    order = sorted(p_values, key=lambda name: p_values[name])
    adjusted, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p_values[name]))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}


def sampling_halfwidth(rate: float, units: int) -> float:
    """95% half-width of one run's rate from sampling alone: the binomial bound 1.96 sqrt(p(1-p)/n).
    A bound: tasks of different difficulty make the real sampling noise on fixed tasks smaller."""
    return Z95 * math.sqrt(rate * (1 - rate) / units) if units else 0.0


def verdict(diff: float, ci95: Sequence[float], p_value: float, level: str, alpha: float = ALPHA,
            names: tuple[str, str] = ("A", "B")) -> str:
    """One line that says what the comparison shows, B - A in points (`names` are A's and B's)."""
    a, b = names
    low, high = (100 * x for x in ci95)
    span = f"{b} - {a} {100 * diff:+.1f} points [95% CI {low:+.1f}, {high:+.1f}], p = {p_value:.3g}"
    what = "the methods" if level == "method" else "these two models (seed variation ignored)"
    if p_value < alpha:
        return f"{b} {'above' if diff > 0 else 'below'} {a}: {what} differ; {span}"
    return f"no difference shown between {what}; {span}"


# -- planning: variance components and power ----------------------------------------------------

@dataclass(frozen=True)
class Components:
    """Variance components of one run's rate, on the rate scale: `run` (a run's shift on every task),
    `task_run` (a run's shift on one task) and `attempt` (one unit within a task and run)."""

    run: float
    task_run: float
    attempt: float

    def run_variance(self, tasks: int, units_per_task: float) -> float:
        """Variance of one run's rate on `tasks` tasks with `units_per_task` units each."""
        return self.run + (self.task_run + self.attempt / units_per_task) / tasks


def variance_components(runs: np.ndarray, task_of_unit: np.ndarray) -> Components:
    """Estimate the components from replicate runs of one generator ((runs x units), >= 2 runs),
    by the method of moments: within-task unit variance, between-run variance of task rates,
    between-run variance of whole-run rates."""
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    if len(runs) < 2:
        raise ValueError("variance components need at least 2 runs of one side")
    task_of_unit = np.asarray(task_of_unit)
    units_per_task = np.bincount(task_of_unit).astype(float)
    n_tasks = len(units_per_task)
    m = float(units_per_task.mean())
    task_rates = per_task_rates(runs, task_of_unit, units_per_task)
    if units_per_task.min() > 1:  # unbiased within-task Bernoulli variance of one unit
        attempt = float((task_rates * (1 - task_rates) * units_per_task / (units_per_task - 1)).mean())
    else:
        attempt = 0.0  # one unit per task (task-level metrics): it is part of task_run
    per_task = float(task_rates.var(axis=0, ddof=1).mean())  # = run + task_run + attempt / m
    whole = float((task_rates @ (units_per_task / units_per_task.sum())).var(ddof=1))  # run + rest / T
    run = max(0.0, (whole - per_task / n_tasks) / (1 - 1 / n_tasks)) if n_tasks > 1 else whole
    task_run = max(0.0, per_task - run - attempt / m)
    return Components(run, task_run, attempt)


def power(effect: float, runs_per_side: int, tasks: int, units_per_task: float, components: Components,
          alpha: float = ALPHA) -> float:
    """Chance that the method-level test (two-sided, alpha) finds a true difference `effect` with
    `runs_per_side` runs on each side (noncentral t with the pooled run degrees of freedom; the
    binomial floor and the task x method part are left out, so slightly optimistic)."""
    from scipy.stats import nct, t

    if runs_per_side < 2:
        return float("nan")
    df = 2 * runs_per_side - 2
    se = math.sqrt(components.run_variance(tasks, units_per_task) * 2 / runs_per_side)
    if se == 0:
        return 1.0 if effect else alpha
    critical = t.ppf(1 - alpha / 2, df)
    shift = abs(effect) / se
    found = float(nct.sf(critical, df, shift) + nct.cdf(-critical, df, shift))
    if not math.isfinite(found):  # scipy's noncentral t gives nan far in its tail, where power is ~1
        from scipy.stats import norm

        found = float(norm.sf(critical - shift) + norm.cdf(-critical - shift))
    return found


def detectable_effect(runs_per_side: int, tasks: int, units_per_task: float, components: Components,
                      alpha: float = ALPHA, target: float = 0.8) -> float:
    """The smallest difference found with chance `target` (nan with fewer than 2 runs per side)."""
    if runs_per_side < 2:
        return float("nan")
    low, high = 0.0, 1.0
    if power(high, runs_per_side, tasks, units_per_task, components, alpha) < target:
        return float("inf")
    for _ in range(50):  # bisection: power rises with the effect
        middle = (low + high) / 2
        if power(middle, runs_per_side, tasks, units_per_task, components, alpha) < target:
            low = middle
        else:
            high = middle
    return high


def runs_needed(effect: float, tasks: int, units_per_task: float, components: Components,
                alpha: float = ALPHA, target: float = 0.8, most: int = 64) -> int | None:
    """The fewest runs per side that find `effect` with chance `target` (None beyond `most`)."""
    for runs in range(2, most + 1):
        if power(effect, runs, tasks, units_per_task, components, alpha) >= target:
            return runs
    return None


# -- a generator with known effects (tests and benchmarks/replicates_calibration.py) -------------

@dataclass(frozen=True)
class Generator:
    """Binary units from a logistic model: logit p = base + shift + task + run + task x run, with the
    task effects shared by both sides (the same tasks), and run and task x run drawn per run."""

    tasks: int = 120
    attempts: int = 2
    base_logit: float = 1.8  # with task_sd 1 and the run terms: a rate near 0.81
    task_sd: float = 1.0
    run_sd: float = 0.25
    task_run_sd: float = 0.4

    def task_effects(self, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.task_sd, self.tasks)

    def runs(self, rng: np.random.Generator, n: int, task_effects: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """(n runs x tasks*attempts) of 0/1, unit j belonging to task j // attempts."""
        logit = (self.base_logit + shift + task_effects[None, :] + rng.normal(0.0, self.run_sd, (n, 1))
                 + rng.normal(0.0, self.task_run_sd, (n, self.tasks)))
        p = 1 / (1 + np.exp(-logit))
        return (rng.random((n, self.tasks, self.attempts)) < p[:, :, None]).reshape(n, -1).astype(float)

    def task_of_unit(self) -> np.ndarray:
        return np.repeat(np.arange(self.tasks), self.attempts)

    def rate_difference(self, shift: float, draws: int = 2_000_000) -> float:
        """The population difference in rate a logit `shift` makes (new tasks, runs and attempts)."""
        rng = np.random.default_rng(12345)
        total_sd = math.sqrt(self.task_sd**2 + self.run_sd**2 + self.task_run_sd**2)
        z = self.base_logit + rng.normal(0.0, total_sd, draws)
        return float((1 / (1 + np.exp(-(z + shift))) - 1 / (1 + np.exp(-z))).mean())
