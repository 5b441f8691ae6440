"""Comparison of runs on the same dataset, and the regression gate built on it.

Every metric is a set of 0/1 units (see scoring.metric_units), so two runs pair unit by unit:
both / only A / only B / neither, an exact two-sided McNemar test on the discordant units
(binomial test of only-A vs only-B at p = 1/2), Wilson 95% intervals for each rate, and a paired
bootstrap 95% interval for the difference B - A that resamples whole tasks (attempts and test
outputs of one task are not independent). That compares two *models*. Groups of replicate runs
(training seeds, sampling passes) compare *methods*: `compare_groups` hands them to
rps_evals.replicates, and adds Holm-adjusted p-values and a noise floor per metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rps_evals import replicates
from rps_evals.records import InputError, read_run
from rps_evals.scoring import LOWER_IS_BETTER, AttemptRecord, metric_units, rate
from rps_evals.selection import DEFAULT_POLICY, selected_metric_names

HEADLINE = ("attempts_from_executed_programs", "attempts_from_general_programs", "tasks_all_attempts_executed",
            "test_output_exact")
# What a result records about how it was measured (docs/metrics.md, "Provenance"). Pairing runs that
# differ in these is meaningless: an error. These can move a score: a warning (an error with --strict).
MUST_MATCH = ("dataset_hash", "k")
SHOULD_MATCH = ("prompt_hash", "program_synthesis", "exec_timeout", "sandbox numpy")
PRIMARY = "attempts_from_executed_programs"  # reported first and without multiplicity adjustment
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


def group_comparability(results: Sequence[dict[str, Any]], labels: Sequence[str], strict: bool = False) -> list[str]:
    """`comparability` for many runs: each run against the first (an InputError for a different
    dataset, dataset_hash or k), then one warning line per provenance value that some runs do not
    record or that differs between runs, naming them."""
    for res, label in zip(results[1:], labels[1:]):
        comparability(results[0], res, names=(labels[0], label))
    warnings = []
    listed = lambda names: ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")  # noqa: E731
    for name in ("dataset_hash", *SHOULD_MATCH):
        values = [recorded(res, name) for res in results]
        unknown = [label for label, value in zip(labels, values) if value is None]
        if unknown:
            warnings.append(f"WARNING: {name} is unknown for {len(unknown)} of {len(labels)} runs ({listed(unknown)}): "
                            "cannot check that the runs were measured the same way")
        known = [(label, value) for label, value in zip(labels, values) if value is not None]
        if name != "dataset_hash" and len({repr(value) for _, value in known}) > 1:
            warnings.append(f"WARNING: the runs differ in {name}: "
                            + ", ".join(f"{label} {value!r}" for label, value in known))
    older = [label for label, res in zip(labels, results) if "hardcoded_output_programs" not in res.get("metrics", {})]
    if older:
        warnings.append(f"WARNING: {listed(older)} scored before hard-coded programs were detected: "
                        "their attempts_from_general_programs counts every executed program")
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


Run = tuple[dict, Sequence[AttemptRecord]]


def read_any_run(path: str | Path) -> Run:
    """A run directory, or an Inspect log or lm-eval output read as `rps-evals report` reads it."""
    path = Path(path)
    if path.is_dir() and (path / "results.json").is_file():
        return read_run(path)
    import tempfile

    from rps_evals.records import write_run
    from rps_evals.reports.readers import read_front_end_run

    if not path.exists():
        raise InputError(f"{path} is not a run directory (results.json + attempts.jsonl), Inspect log or "
                         "lm-eval output: it does not exist")
    try:
        dataset, records, k, options = read_front_end_run(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a run directory (results.json + attempts.jsonl), Inspect log or "
                         f"lm-eval output: {exc}") from None
    status = options.pop("status", None)
    if status is not None:  # as `report` refuses it: what was not run would count as failures
        raise InputError(f"{path}: the run did not finish ({status['status']}: {status['error']}); "
                         "retry it, or write it with `rps-evals report --allow-errors` and compare that")
    with tempfile.TemporaryDirectory(prefix="rps-compare-") as tmp:
        results = write_run(tmp, dataset, records, k, **options)
        return results, read_run(tmp)[1]


def compare_groups(side_a: Sequence[Sequence[Run]], side_b: Sequence[Sequence[Run]], strict: bool = False,
                   names: tuple[str, str] = ("A", "B"), primary: str | None = None,
                   labels: tuple[Sequence[str], Sequence[str]] | None = None) -> dict[str, Any]:
    """Compare two groups of replicates metric by metric. A replicate is a list of runs of one model
    (sampling passes, averaged unit by unit); the replicates of a side are its training seeds.

    One run against one run is `compare_runs` (level "model": the p-value compares two models),
    with the group fields added; otherwise every metric gets the method-level difference of
    rps_evals.replicates (level "method"; "model" when each side is one model sampled several times).
    Every metric but `primary` gets a Holm-adjusted p (`p_holm`) over the reported metrics.
    """
    primary = primary or PRIMARY
    if not side_a or not side_b or not all(side_a) or not all(side_b):
        raise InputError(f"each side needs at least one run ({names[0]}: {len(side_a)}, {names[1]}: {len(side_b)})")
    runs_a = [run for replicate in side_a for run in replicate]
    runs_b = [run for replicate in side_b for run in replicate]
    if labels is None:
        labels = ([f"{names[0]}{i + 1}" for i in range(len(runs_a))], [f"{names[1]}{i + 1}" for i in range(len(runs_b))])
    if len(runs_a) == len(runs_b) == 1:
        comparison = compare_runs(runs_a[0], runs_b[0], strict, names)
        _check_primary(primary, comparison["metrics"])
        return _single_runs(comparison, runs_a[0][0], runs_b[0][0], primary, labels)
    reference = runs_a[0]
    warnings = group_comparability([res for res, _ in runs_a + runs_b], list(labels[0]) + list(labels[1]), strict)
    policies = {res.get("selection", DEFAULT_POLICY) for res, _ in runs_a + runs_b}
    if len(policies) > 1:
        raise InputError(f"runs differ in selection: {sorted(policies)} (write all with the same --select)")
    select = policies.pop()
    k = int(recorded(reference[0], "k"))
    all_labels = list(labels[0]) + list(labels[1])
    matrices = metric_matrices(runs_a + runs_b, all_labels, k, select)
    _check_primary(primary, matrices)
    sizes_a = [len(replicate) for replicate in side_a]
    sizes_b = [len(replicate) for replicate in side_b]
    level = "method"
    if len(side_a) == len(side_b) == 1:  # one model per side, sampled more than once: passes are the replicates
        sizes_a, sizes_b, level = [1] * len(runs_a), [1] * len(runs_b), "model"
    rows: dict[str, dict[str, Any]] = {}
    for metric, (values, task_of_unit) in matrices.items():
        a = _average_replicates(values[: len(runs_a)], sizes_a)
        b = _average_replicates(values[len(runs_a):], sizes_b)
        rows[metric] = _method_row(metric, level, replicates.method_difference(a, b, task_of_unit), values.shape[1])
    _add_holm(rows, primary)
    notes = [_LEVEL_NOTES[level].format(a=len(sizes_a), b=len(sizes_b))]
    return {
        "dataset": reference[0]["dataset"], "attempts_per_task": k, "selection": select,
        "warnings": warnings, "notes": notes, "level": level, "primary": primary,
        "runs": {"a": [list(labels[0][i:i + n]) for i, n in _spans(side_a)],
                 "b": [list(labels[1][i:i + n]) for i, n in _spans(side_b)]},
        "metrics": _primary_first(rows, primary),
    }


def metric_matrices(runs: Sequence[Run], labels: Sequence[str], k: int,
                    select: str = DEFAULT_POLICY) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each metric, a (runs x units) 0/1 array in one unit order and each unit's task index;
    an InputError naming two runs when their units differ (the runs must pair task by task)."""
    units = [metric_units(records, k, select) for _, records in runs]
    out = {}
    for metric, first in units[0].items():
        keys = list(first)
        for u, label in zip(units[1:], labels[1:]):
            if set(u[metric]) != set(first):
                raise InputError(_different_units(metric, first, u[metric], (labels[0], label)))
        values = np.array([[u[metric][key] for key in keys] for u in units], dtype=float)
        task_index = {t: i for i, t in enumerate(dict.fromkeys(_task_of(key) for key in keys))}
        out[metric] = values, np.array([task_index[_task_of(key)] for key in keys], dtype=int)
    return out


_LEVEL_NOTES = {
    "method": "method level: {a} replicate(s) of A against {b} of B; the p-values and intervals count "
              "run-to-run and task-to-task variation (docs/metrics.md, Replicate runs)",
    "model": "model level: one model per side ({a} and {b} sampling passes); the p-values compare these "
             "two models, not their methods: training-seed variation is not seen",
}


def _spans(side: Sequence[Sequence[Run]]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for replicate in side:
        spans.append((start, len(replicate)))
        start += len(replicate)
    return spans


def _average_replicates(values: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Runs (rows) grouped into replicates of `sizes` consecutive rows, each the mean of its rows."""
    out, start = [], 0
    for size in sizes:
        out.append(values[start:start + size].mean(axis=0))
        start += size
    return np.array(out)


def _method_row(metric: str, level: str, result: replicates.MethodDifference, units: int) -> dict[str, Any]:
    return {
        "metric": metric, "level": level, "units_per_run": units,
        "a_runs": list(result.a_runs), "b_runs": list(result.b_runs),
        "a_mean": float(np.mean(result.a_runs)), "b_mean": float(np.mean(result.b_runs)),
        "diff": result.diff, "ci95": list(result.ci95), "diff_ci95": list(result.ci95),
        "p_value": result.p_value, "se": result.se, "df": result.df,
        "noise_floor": result.noise_floor,
    }


def _single_runs(comparison: dict[str, Any], res_a: dict, res_b: dict, primary: str,
                 labels: tuple[Sequence[str], Sequence[str]]) -> dict[str, Any]:
    """The group fields for one run against one run: level "model", McNemar p, bootstrap interval,
    and, when both runs were sampled at a known temperature > 0, one run's sampling half-width."""
    temperatures = [((recorded(res, "generation") or {}).get("temperature")) for res in (res_a, res_b)]
    sampled = all(t is not None and t > 0 for t in temperatures)
    for row in comparison["metrics"].values():
        pooled = rate(row["a"]["n"] + row["b"]["n"], row["a"]["of"] + row["b"]["of"])
        row.update(level="model", units_per_run=row["a"]["of"], a_runs=[row["a"]["rate"]], b_runs=[row["b"]["rate"]],
                   a_mean=row["a"]["rate"], b_mean=row["b"]["rate"], ci95=list(row["diff_ci95"]),
                   p_value=row["mcnemar_p"], noise_floor=None,
                   sampling_halfwidth=replicates.sampling_halfwidth(pooled, row["a"]["of"]) if sampled else None)
    _add_holm(comparison["metrics"], primary)
    note = ("one run per side: the p-values compare these two models and ignore seed variation; "
            "give replicates (compare A1 A2 ... --vs B1 B2 ...) to compare methods")
    if sampled:
        note += (f"; sampled at temperature {temperatures[0]:g} / {temperatures[1]:g}: a second pass of the same "
                 "model moves each rate by up to its sampling half-width (binomial bound)")
    comparison["notes"].append(note)
    comparison.update(level="model", primary=primary, runs={"a": [list(labels[0])], "b": [list(labels[1])]},
                      metrics=_primary_first(comparison["metrics"], primary))
    return comparison


def _add_holm(rows: dict[str, dict[str, Any]], primary: str) -> None:
    """`p_holm`: the primary metric's own p; every other metric's Holm-adjusted over the others, then
    each row's one-line verdict (read at the adjusted p)."""
    adjusted = replicates.holm({m: row["p_value"] for m, row in rows.items() if m != primary})
    for metric, row in rows.items():
        row["p_holm"] = row["p_value"] if metric == primary else adjusted[metric]
        row["verdict"] = replicates.verdict(row["diff"], row["ci95"], row["p_holm"], row["level"])


def _primary_first(rows: dict[str, Any], primary: str) -> dict[str, Any]:
    return {primary: rows[primary], **{m: row for m, row in rows.items() if m != primary}}


def _check_primary(primary: str, metrics: dict) -> None:
    if primary not in metrics:
        raise InputError(f"unknown --primary metric {primary!r}; one of: {', '.join(metrics)}")


def _task_of(key) -> str:
    return key[0] if isinstance(key, tuple) else key


def _different_units(metric: str, units_a: dict, units_b: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """Why two runs cannot pair: their task counts and a few task ids only one of them has."""
    tasks_a, tasks_b = ({_task_of(key) for key in units} for units in (units_a, units_b))
    name_a, name_b = names
    if tasks_a == tasks_b:
        return (f"runs cover different {metric} units on the same {len(tasks_a)} tasks: "
                f"{name_a} has {len(units_a)}, {name_b} has {len(units_b)}")
    parts = [f"runs cover different tasks: {name_a} has {len(tasks_a)} tasks, {name_b} has {len(tasks_b)}"]
    for label, only in ((name_a, tasks_a - tasks_b), (name_b, tasks_b - tasks_a)):
        if only:
            shown = sorted(only)[:5]
            parts.append(f"only in {label}: {', '.join(shown)}" + (f" ({len(only)} in all)" if len(only) > 5 else ""))
    return "; ".join(parts) + " (score both on the same tasks)"


def format_comparison(comparison: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as text: for one run against one, the paired counts and exact McNemar p of the
    headline metrics; for groups, each side's mean over its replicates; then every metric (the
    primary first) with B - A, its 95% interval, p, Holm's p and the noise floor, and the primary
    metric's verdict."""
    lines = [f"{comparison['dataset']}  k={comparison['attempts_per_task']}   A = {name_a}   B = {name_b}"]
    lines += comparison.get("warnings", [])
    lines += [f"note: {n}" for n in comparison["notes"]]
    paired = "both" in next(iter(comparison["metrics"].values()))
    if paired:
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
    primary = comparison.get("primary")
    width = max(len(m) for m in comparison["metrics"]) + 3
    side = 22 if paired else 26
    head_a, head_b = ("A", "B") if paired else ("A mean [runs min-max]", "B mean [runs min-max]")
    lines.append("")
    lines.append(f"{'metric':<{width}}{head_a:>{side}}{head_b:>{side}}{'B - A [95% CI]':>28}{'p':>10}{'p_holm':>10}"
                 f"{'noise':>8}")
    for metric, row in comparison["metrics"].items():
        low, high = row["ci95"]
        diff = f"{100 * row['diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
        if paired:
            cells = [f"{r['n']}/{r['of']} ({100 * r['rate']:.1f}%)" for r in (row["a"], row["b"])]
            noise = "" if row.get("sampling_halfwidth") is None else f"+-{100 * row['sampling_halfwidth']:.1f}"
        else:
            cells = [f"{100 * sum(r) / len(r):.1f}% [{100 * min(r):.1f}-{100 * max(r):.1f}]"
                     for r in (row["a_runs"], row["b_runs"])]
            noise = "" if row["noise_floor"] is None else f"{100 * row['noise_floor']:.1f}"
        name = metric + ("*" if metric == primary else "")
        lines.append(f"{name:<{width}}{cells[0]:>{side}}{cells[1]:>{side}}{diff:>28}{row['p_value']:>10.3g}"
                     f"{row['p_holm']:>10.3g}{noise:>8}")
    lines.append("")
    lines.append(f"* primary metric (p unadjusted); p_holm: Holm-adjusted over the other {len(comparison['metrics']) - 1}; "
                 + ("noise: one run's sampling half-width (points)" if paired else
                    "noise: the largest difference between two runs of one side (points)"))
    if primary:
        lines.append(f"verdict ({primary}): {comparison['metrics'][primary]['verdict']}")
    return "\n".join(lines)


def gate(comparison: dict[str, Any], max_drops: dict[str, float], alpha: float | None = None) -> tuple[bool, str]:
    """Does the candidate (B) stay within the allowed drop of the baseline (A) for every metric?

    A drop is a change for the worse in rate (a rise for LOWER_IS_BETTER metrics). One run against
    one: a metric fails when its drop exceeds the allowed fraction and, if `alpha` is given, the
    McNemar test finds the change significant (p < alpha). Groups (method level): a metric fails only
    on a drop beyond noise: larger than the allowed fraction, larger than the noise floor (the
    largest difference between two runs of one side) and significant at `alpha` (0.05 unless given).
    """
    unknown = [m for m in max_drops if m not in comparison["metrics"]]
    if unknown:
        raise InputError(f"unknown metric(s) for --max-drop: {', '.join(unknown)}")
    grouped = comparison.get("level") == "method" or "both" not in next(iter(comparison["metrics"].values()))
    if grouped and alpha is None:
        alpha = replicates.ALPHA
    ok = True
    width = max(len(m) for m in max_drops) + 2
    lines = [f"{'metric':<{width}}{'baseline':>12}{'candidate':>12}{'drop':>9}{'allowed':>9}"
             + (f"{'noise':>9}" if grouped else "") + f"{'p':>9}  verdict"]
    for metric, allowed in max_drops.items():
        row = comparison["metrics"][metric]
        drop = -row["diff"] if metric not in LOWER_IS_BETTER else row["diff"]
        p = row.get("p_value", row.get("mcnemar_p"))
        floor = (row.get("noise_floor") or 0.0) if grouped else 0.0
        beyond = drop > allowed + 1e-12 and drop > floor + 1e-12
        failed = beyond and (alpha is None or p < alpha)
        ok = ok and not failed
        verdict = "FAIL" if failed else "ok"
        if drop > allowed + 1e-12 and not failed:
            verdict = (f"ok (within the noise floor {_percent(floor)})" if not beyond
                       else f"ok (not significant at alpha={alpha:g})")
        rates = (row["a_mean"], row["b_mean"]) if "a_mean" in row else (row["a"]["rate"], row["b"]["rate"])
        noise = f"{_percent(floor):>9}" if grouped else ""
        lines.append(f"{metric:<{width}}{_percent(rates[0]):>12}{_percent(rates[1]):>12}"
                     f"{_percent(drop):>9}{_percent(allowed):>9}{noise}{p:>9.3g}  {verdict}")
    return ok, "\n".join(lines)


def _percent(fraction: float) -> str:
    """One decimal, never '-0.0%' (no change, or a gain too small to show, is 0.0%)."""
    return f"{round(100 * fraction, 1) + 0.0:.1f}%"
