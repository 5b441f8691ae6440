"""Paired comparison of two runs on the same dataset, and the regression gate built on it.

Every metric is a set of 0/1 units (see scoring.metric_units), so two runs pair unit by unit:
both / only A / only B / neither, an exact two-sided McNemar test on the discordant units
(binomial test of only-A vs only-B at p = 1/2), Wilson 95% intervals for each rate, and a paired
bootstrap 95% interval for the difference B - A that resamples whole tasks (attempts and test
outputs of one task are not independent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rps_evals.records import InputError
from rps_evals.scoring import LOWER_IS_BETTER, AttemptRecord, metric_units, rate
from rps_evals.selection import DEFAULT_POLICY, selected_metric_names

HEADLINE = ("attempts_from_executed_programs", "attempts_from_general_programs", "tasks_all_attempts_executed",
            "test_output_exact")
# What a result records about how it was measured (docs/metrics.md, "Provenance"). Pairing runs that
# differ in these is meaningless: an error. These can move a score: a warning (an error with --strict).
MUST_MATCH = ("dataset_hash", "k")
SHOULD_MATCH = ("prompt_hash", "program_synthesis", "exec_timeout", "sandbox numpy")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def wilson_interval(n: int, of: int) -> tuple[float, float]:
    """95% Wilson score interval for n successes out of `of` (scipy's; (0, 1) for no units)."""
    if of == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest  # imported here: scipy.stats takes ~1.5 s to import

    ci = binomtest(int(n), int(of)).proportion_ci(confidence_level=0.95, method="wilson")
    return (max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts."""
    if only_a + only_b == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass(frozen=True)
class Paired:
    metric: str
    a: tuple[int, int]  # (n, of)
    b: tuple[int, int]
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float
    diff: float  # rate B - rate A
    diff_ci: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "a": {"n": self.a[0], "of": self.a[1], "rate": rate(*self.a), "ci95": wilson_interval(*self.a)},
            "b": {"n": self.b[0], "of": self.b[1], "rate": rate(*self.b), "ci95": wilson_interval(*self.b)},
            "both": self.both, "only_a": self.only_a, "only_b": self.only_b, "neither": self.neither,
            "mcnemar_p": self.p_value, "diff": self.diff, "diff_ci95": self.diff_ci,
        }


def _bootstrap_diff(keys: list, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of rate(B) - rate(A), resampling tasks (key[0] or key) with replacement."""
    tasks = [k[0] if isinstance(k, tuple) else k for k in keys]
    index = {t: i for i, t in enumerate(dict.fromkeys(tasks))}
    group = np.array([index[t] for t in tasks])
    per_task_a = np.bincount(group, weights=a, minlength=len(index))
    per_task_b = np.bincount(group, weights=b, minlength=len(index))
    per_task_n = np.bincount(group, minlength=len(index)).astype(float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(index), size=(BOOTSTRAP_RESAMPLES, len(index)))
    n = per_task_n[draws].sum(axis=1)
    diffs = (per_task_b[draws].sum(axis=1) - per_task_a[draws].sum(axis=1)) / n
    low, high = np.percentile(diffs, [2.5, 97.5])
    return (float(low), float(high))


def recorded(result: dict[str, Any], name: str) -> Any:
    """One provenance value of a results document, None when it is unknown. Runs written before the
    provenance block existed keep dataset_hash and k (as attempts_per_task) at the top level."""
    provenance = result.get("provenance") or {}
    if name == "sandbox numpy":
        return (provenance.get("sandbox") or {}).get("numpy")
    if provenance.get(name) is not None:
        return provenance[name]
    if name == "k":
        return result.get("attempts_per_task")
    return result.get(name)


def comparability(res_a: dict[str, Any], res_b: dict[str, Any], strict: bool = False,
                  names: tuple[str, str] = ("A", "B")) -> list[str]:
    """Check that two results may be paired: an InputError naming both values when they differ in
    dataset, dataset_hash or k; a warning line for each SHOULD_MATCH value that differs or is
    unknown (a run without provenance: nothing can be checked, and the reader is told so).
    `strict` turns the warnings into an InputError. `names` are what the messages call the runs
    (gate: baseline, candidate)."""
    name_a, name_b = names
    for name in ("dataset", *MUST_MATCH):
        a, b = (res.get(name) if name == "dataset" else recorded(res, name) for res in (res_a, res_b))
        if a is not None and b is not None and a != b:
            raise InputError(f"the runs differ in {name}: {name_a} {a!r}, {name_b} {b!r}; they cannot be paired")
        if name == "k" and a is None:
            raise InputError(f"run {name_a} records no k (attempts per task): not a results.json of rps-evals")
        if name == "k" and b is None:
            raise InputError(f"run {name_b} records no k (attempts per task): not a results.json of rps-evals")
    warnings = []
    for name in ("dataset_hash", *SHOULD_MATCH):
        a, b = recorded(res_a, name), recorded(res_b, name)
        values = f"{name_a} {_shown(a)}, {name_b} {_shown(b)}"
        if a is None or b is None:
            unknown = "both runs" if a is None and b is None else f"run {name_a if a is None else name_b}"
            warnings.append(f"WARNING: {name} is unknown for {unknown} ({values}): "
                            "cannot check that the runs were measured the same way")
        elif name != "dataset_hash" and a != b:
            warnings.append(f"WARNING: the runs differ in {name}: {values}")
    # refinement (docs/metrics.md): the final answers depend on the rounds allowed and the feedback's text
    (refine_a, hash_a), (refine_b, hash_b) = ((recorded(res, "refine") or 0, recorded(res, "feedback_hash"))
                                              for res in (res_a, res_b))
    if refine_a != refine_b:
        warnings.append(f"WARNING: the runs differ in refine: {name_a} {refine_a}, {name_b} {refine_b} "
                        "(the _round_0 metrics are the answers before any feedback)")
    elif hash_a != hash_b:
        warnings.append(f"WARNING: the runs differ in feedback_hash: {name_a} {_shown(hash_a)}, "
                        f"{name_b} {_shown(hash_b)}")
    for label, res in ((name_a, res_a), (name_b, res_b)):
        if "hardcoded_output_programs" not in res.get("metrics", {}):
            warnings.append(f"WARNING: run {label} was scored before hard-coded programs were detected: "
                            "its attempts_from_general_programs counts every executed program")
    if strict and warnings:
        raise InputError("--strict: the runs may not be comparable:\n" + "\n".join(warnings))
    return warnings


def _shown(value: Any) -> str:
    return "unknown" if value is None else repr(value)


def compare_runs(run_a: tuple[dict, Sequence[AttemptRecord]], run_b: tuple[dict, Sequence[AttemptRecord]],
                 strict: bool = False, names: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """Pair two runs (each `(results, records)` as from records.read_run) metric by metric, after
    `comparability` has accepted them (its warnings, which call the runs `names`, are kept)."""
    (res_a, rec_a), (res_b, rec_b) = run_a, run_b
    warnings = comparability(res_a, res_b, strict, names)
    select_a, select_b = (res.get("selection", DEFAULT_POLICY) for res in (res_a, res_b))
    if select_a != select_b:
        raise InputError(f"runs differ in selection: {select_a!r} vs {select_b!r} (write both with the same --select)")
    notes = []
    k = int(recorded(res_a, "k"))
    select = select_a  # the paired units include the predictions this policy submits
    units_a, units_b = metric_units(rec_a, k, select), metric_units(rec_b, k, select)
    one_sided = sorted(set(units_a) ^ set(units_b))
    if one_sided:  # the _round_0 and repair metrics of a run that refined, against one that did not
        notes.append(f"not paired: {len(one_sided)} metrics only one run has ({', '.join(one_sided[:3])}"
                     + (", ..." if len(one_sided) > 3 else "") + ")")
    rows = []
    for metric, ua in units_a.items():
        if metric not in units_b:
            continue
        ub = units_b[metric]
        if set(ua) != set(ub):
            raise InputError(_different_units(metric, ua, ub))
        keys = list(ua)
        a = np.array([ua[key] for key in keys], dtype=float)
        b = np.array([ub[key] for key in keys], dtype=float)
        both = int((a * b).sum())
        only_a = int((a * (1 - b)).sum())
        only_b = int(((1 - a) * b).sum())
        of = len(keys)
        rows.append(Paired(
            metric, (int(a.sum()), of), (int(b.sum()), of), both, only_a, only_b, of - both - only_a - only_b,
            mcnemar_exact(only_a, only_b), float((b.sum() - a.sum()) / of) if of else 0.0,
            _bootstrap_diff(keys, a, b) if of else (0.0, 0.0),
        ))
    return {
        "dataset": res_a["dataset"],
        "attempts_per_task": k,
        "selection": select,
        "warnings": warnings,
        "notes": notes,
        "metrics": {row.metric: row.as_dict() for row in rows},
    }


def _task_of(key) -> str:
    return key[0] if isinstance(key, tuple) else key


def _different_units(metric: str, units_a: dict, units_b: dict) -> str:
    """Why two runs cannot pair: their task counts and a few task ids only one of them has."""
    tasks_a, tasks_b = ({_task_of(key) for key in units} for units in (units_a, units_b))
    if tasks_a == tasks_b:
        return (f"runs cover different {metric} units on the same {len(tasks_a)} tasks: "
                f"A has {len(units_a)}, B has {len(units_b)}")
    parts = [f"runs cover different tasks: A has {len(tasks_a)} tasks, B has {len(tasks_b)}"]
    for label, only in (("A", tasks_a - tasks_b), ("B", tasks_b - tasks_a)):
        if only:
            shown = sorted(only)[:5]
            parts.append(f"only in {label}: {', '.join(shown)}" + (f" ({len(only)} in all)" if len(only) > 5 else ""))
    return "; ".join(parts) + " (score both on the same tasks)"


def format_comparison(comparison: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    lines = [f"{comparison['dataset']}  k={comparison['attempts_per_task']}   A = {name_a}   B = {name_b}"]
    lines += comparison.get("warnings", [])
    lines += [f"note: {n}" for n in comparison["notes"]]
    select = comparison.get("selection", DEFAULT_POLICY)
    selected = selected_metric_names(select)[::-1] if select != DEFAULT_POLICY else ()
    for metric in HEADLINE + selected:
        row = comparison["metrics"][metric]
        lines += [
            f"{metric} (paired):",
            f"  both {row['both']}/{row['a']['of']}   only A {row['only_a']}/{row['a']['of']}   "
            f"only B {row['only_b']}/{row['a']['of']}   neither {row['neither']}/{row['a']['of']}   "
            f"exact McNemar p = {row['mcnemar_p']:.3g}",
        ]
    width = max(len(m) for m in comparison["metrics"]) + 2
    lines.append("")
    lines.append(f"{'metric':<{width}}{'A':>22}{'B':>22}{'B - A [95% CI]':>28}{'p':>10}")
    for metric, row in comparison["metrics"].items():
        cell = lambda r: f"{r['n']}/{r['of']} ({100 * r['rate']:.1f}%)"  # noqa: E731
        low, high = row["diff_ci95"]
        diff = f"{100 * row['diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
        lines.append(f"{metric:<{width}}{cell(row['a']):>22}{cell(row['b']):>22}{diff:>28}{row['mcnemar_p']:>10.3g}")
    return "\n".join(lines)


def gate(comparison: dict[str, Any], max_drops: dict[str, float], alpha: float | None = None) -> tuple[bool, str]:
    """Does the candidate (B) stay within the allowed drop of the baseline (A) for every metric?

    A drop is a change for the worse in rate (a rise for LOWER_IS_BETTER metrics). A metric fails
    when its drop exceeds the allowed fraction and, if `alpha` is given, the paired test also finds
    the change significant (p < alpha).
    """
    unknown = [m for m in max_drops if m not in comparison["metrics"]]
    if unknown:
        raise InputError(f"unknown metric(s) for --max-drop: {', '.join(unknown)}")
    ok = True
    width = max(len(m) for m in max_drops) + 2
    lines = [f"{'metric':<{width}}{'baseline':>12}{'candidate':>12}{'drop':>9}{'allowed':>9}{'p':>9}  verdict"]
    for metric, allowed in max_drops.items():
        row = comparison["metrics"][metric]
        drop = -row["diff"] if metric not in LOWER_IS_BETTER else row["diff"]
        failed = drop > allowed + 1e-12 and (alpha is None or row["mcnemar_p"] < alpha)
        ok = ok and not failed
        verdict = "FAIL" if failed else "ok"
        if drop > allowed + 1e-12 and not failed:
            verdict = f"ok (not significant at alpha={alpha:g})"
        lines.append(f"{metric:<{width}}{_percent(row['a']['rate']):>12}{_percent(row['b']['rate']):>12}"
                     f"{_percent(drop):>9}{_percent(allowed):>9}{row['mcnemar_p']:>9.3g}  {verdict}")
    return ok, "\n".join(lines)


def _percent(fraction: float) -> str:
    """One decimal, never '-0.0%' (no change, or a gain too small to show, is 0.0%)."""
    return f"{round(100 * fraction, 1) + 0.0:.1f}%"
