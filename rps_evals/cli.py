"""`rps-evals`: score recorded responses, report Inspect / lm-eval runs, compare runs or methods, gate CI.

Exit codes: 0 success, 1 the gate failed, `report` was given a run with tasks never run or scored, or
stdout was closed early (`| head`), 2 bad input (usage, files, dataset, sandbox).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rps_evals.data import DATASETS, DatasetError, load_dataset
from rps_evals.execution import DEFAULT_TIMEOUT, SandboxUnavailable, get_executor
from rps_evals.records import InputError, check_run_dir, read_responses, write_run
from rps_evals.scoring import METRICS, format_table, score_attempts
from rps_evals.selection import POLICIES


@contextmanager
def _progress(total: int, label: str):
    """A progress bar on stderr for long runs (silent when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def cmd_score(args: argparse.Namespace) -> int:
    from rps_evals.provenance import build_provenance, sandbox_info

    started = time.monotonic()
    check_run_dir(args.out)  # before any program runs
    full = load_dataset(args.dataset, args.solutions)
    dataset = full.select(args.task_ids)
    # Every line is checked against the whole dataset (an unknown task id is still an error); lines
    # for tasks outside --task-ids are valid answers that this run does not score.
    in_file = read_responses(args.responses, full, args.attempts)
    responses = [r for r in in_file if r.task_id in dataset.tasks]
    if not responses:  # as the Inspect replay refuses it: a wrong file or dataset would score 0 silently
        where = f"the {len(dataset.tasks)} selected tasks" if args.task_ids else "any task"
        raise InputError(f"{args.responses} has no response for {where} of {dataset.name} "
                         f"({len(in_file)} lines in all); nothing scored")
    if len(responses) < len(in_file):
        print(f"note: {len(in_file) - len(responses)} of the {len(in_file)} lines of {args.responses} "
              "answer tasks outside --task-ids; they are not scored")
    pairs = len(dataset.tasks) * args.attempts
    if len(responses) < pairs:  # said before the table: its zeros include these
        print(f"note: {pairs - len(responses)} of the {pairs} selected (task, attempt) pairs have no line in "
              f"{args.responses}; they are scored as missing")
    with get_executor(args.sandbox, timeout=args.timeout) as executor, \
            _progress(len(dataset.tasks) * args.attempts, "running programs") as advance:
        records = score_attempts(dataset, responses, executor, args.attempts, progress=advance)
        # a responses file does not say which prompt made it: unknown (null) unless --program-synthesis
        provenance = build_provenance(dataset, args.attempts, args.program_synthesis, args.timeout,
                                      sandbox_info(args.sandbox, getattr(executor, "image", None)))
    result = write_run(args.out, dataset, records, args.attempts, provenance=provenance,
                       usage={"wall_time_s": time.monotonic() - started},
                       prompt_version=provenance["prompt_version"] or "unknown", **_selection_options(args))
    print(format_table(result))
    print(f"\nwrote {args.out}/results.json, attempts.jsonl, submission.json")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Turn an Inspect log or an lm-eval output into a run directory, without re-running anything."""
    from rps_evals.reports.readers import read_front_end_run

    check_run_dir(args.out)
    own = load_dataset(args.dataset, args.solutions) if args.dataset else None
    dataset, records, k, options = read_front_end_run(args.log, own)
    status = options.pop("status", None)
    if status is not None and status.get("unmeasured", 1) and not args.allow_errors:
        print(f"rps-evals: {args.log}: {_unmeasured(status)} ({status['status']}: {status['error']}); "
              "its numbers would count what was not run as failures. Re-run or retry it (inspect "
              "eval-retry), or write it anyway with --allow-errors (results.json then records the status).",
              file=sys.stderr)
        return 1
    result = write_run(args.out, dataset, records, k, status=status, **{**options, **_selection_options(args)})
    print(format_table(result))
    if status is not None and status.get("failed_generations"):
        print(f"\nnote: the log's status is {status['status']}: {status['failed_generations']} of "
              f"{status['samples']} tasks had failed generations, counted in api_errors (inspect "
              "eval-retry LOG re-runs them)")
    print(f"\nwrote {args.out}/results.json, attempts.jsonl, submission.json")
    return 0


def _unmeasured(status: dict) -> str:
    if "unmeasured" not in status:
        return "the run did not finish"
    return f"{status['unmeasured']} of {status['samples']} tasks were not run or not scored"


def _selection_options(args: argparse.Namespace) -> dict:
    """--select and the prices, where given (`report` otherwise keeps what the run itself used)."""
    options = {"select": args.select} if args.select else {}
    if args.price_in is not None:
        options.update(price_in=args.price_in, price_out=args.price_out)
    return options


def _add_selection_arguments(parser: argparse.ArgumentParser, default_note: str) -> None:
    parser.add_argument("--select", choices=POLICIES, default=None,
                        help=f"which 2 of the k attempts to submit per test input: first (attempts 1 and 2, "
                             f"the official rule), train_vote or train_verified_first; {default_note} "
                             "(docs/metrics.md)")
    parser.add_argument("--price-in", type=float, default=None, metavar="PRICE",
                        help="price per million input tokens: results record the cost (with --price-out)")
    parser.add_argument("--price-out", type=float, default=None, metavar="PRICE",
                        help="price per million output tokens (with --price-in)")


def _replicates(arguments: list[str], what: str) -> tuple[list[list], list[str]]:
    """Command-line runs as replicates: each argument one replicate, its comma-joined paths sampling
    passes of one model (averaged). Returns the replicates and each run's label (its path)."""
    from rps_evals.compare import read_any_run

    groups = [[part for part in argument.split(",") if part] for argument in arguments]
    if not groups or not all(groups):
        raise InputError(f"{what}: give at least one run")
    return [[read_any_run(path) for path in group] for group in groups], [path for group in groups for path in group]


def cmd_compare(args: argparse.Namespace) -> int:
    from rps_evals.compare import compare_groups, format_comparison  # scipy: imported where used

    if args.vs is None:
        if len(args.runs) != 2:
            raise UsageError(f"compare takes two runs (compare A B) or groups (compare A1 A2 ... --vs B1 B2 ...); "
                             f"got {len(args.runs)} run(s) and no --vs")
        side_a, side_b = args.runs[:1], args.runs[1:]
    else:
        side_a, side_b = args.runs, args.vs
    (a, labels_a), (b, labels_b) = _replicates(side_a, "A"), _replicates(side_b, "B (--vs)")
    if args.dataset:
        _check_dataset(load_dataset(args.dataset, args.solutions), labels_a + labels_b,
                       [run for side in (a, b) for replicate in side for run in replicate])
    comparison = compare_groups(a, b, strict=args.strict, primary=args.primary, labels=(labels_a, labels_b))
    name_a, name_b = (", ".join(side) for side in (side_a, side_b))
    text = format_comparison(comparison, name_a, name_b)  # everything computed before anything is written
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0


def _check_dataset(dataset, paths, runs) -> None:
    """compare --dataset: every run was scored on exactly these tasks (by the dataset's hash)."""
    for path, (result, _) in zip(paths, runs):
        if result.get("dataset_hash") != dataset.file_hash:
            raise InputError(f"{path} was not scored on {dataset.name} (dataset hash "
                             f"{str(result.get('dataset_hash'))[:12]}..., {dataset.name} {dataset.file_hash[:12]}...)")


def cmd_datasets(args: argparse.Namespace) -> int:
    """The bundled datasets (and any given as paths): name, tasks, test outputs, hash."""
    from rps_evals.data import dataset_listing

    rows = dataset_listing()
    for path in args.paths:
        d = load_dataset(str(path), args.solutions)
        rows.append({"name": d.name, "tasks": len(d.tasks), "test_outputs": d.num_test_outputs, "hash": d.file_hash})
    width = max(len(r["name"]) for r in rows)
    print(f"{'dataset':<{width}}  {'tasks':>5}  {'test outputs':>12}  sha256")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['tasks']:>5}  {r['test_outputs']:>12}  {r['hash']}")
    return 0


def _add_dataset_arguments(parser: argparse.ArgumentParser, required: bool, help_text: str) -> None:
    parser.add_argument("--dataset", required=required, default=None, metavar="NAME|PATH",
                        help=f"{help_text}: one of {', '.join(DATASETS)} (rps-evals datasets lists them), "
                             "a folder of ARC task files (file name = task id) or a challenges JSON")
    parser.add_argument("--solutions", type=Path, default=None, metavar="PATH",
                        help="the solutions JSON of a challenges file (default: ..._solutions.json beside it)")


class UsageError(InputError):
    """Command-line misuse found after parsing (exit code 2, like argparse's own errors)."""


def _max_drop(text: str) -> tuple[str, float]:
    metric, sep, fraction = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected METRIC=FRACTION, got {text!r}")
    try:
        value = float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: FRACTION must be a number such as 0.05") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: FRACTION must be between 0 and 1")
    return metric, value


def cmd_gate(args: argparse.Namespace) -> int:
    from rps_evals.compare import check_gate_provenance, compare_groups, gate

    if not args.max_drop:
        raise InputError("give at least one --max-drop METRIC=FRACTION, e.g. "
                         "--max-drop attempts_from_executed_programs=0.05")
    if (args.candidate_run is None) == (args.candidate is None):
        raise UsageError("give the candidate run(s) once: gate CANDIDATE --baseline RUN, or "
                         "gate --baseline RUN [RUN ...] --candidate RUN [RUN ...]")
    candidate = [args.candidate_run] if args.candidate_run is not None else args.candidate
    (baseline, labels_b), (candidates, labels_c) = (_replicates(args.baseline, "--baseline"),
                                                    _replicates(candidate, "--candidate"))
    named = len(labels_b) + len(labels_c) > 2
    for side, groups, labels in (("baseline", baseline, labels_b), ("candidate", candidates, labels_c)):
        for (result, _), label in zip([run for group in groups for run in group], labels):
            check_gate_provenance(baseline[0][0][0], result, (f"baseline {labels_b[0]}", f"{side} {label}")
                                  if named else ("baseline", "candidate"))
    comparison = compare_groups(baseline, candidates, strict=args.strict, names=("baseline", "candidate"),
                                labels=(labels_b, labels_c) if named else None)
    passed, table = gate(comparison, dict(args.max_drop), args.alpha)
    for warning in comparison["warnings"]:
        print(warning)
    if comparison["level"] == "method":
        print(f"note: {len(baseline)} baseline and {len(candidates)} candidate replicates: a metric fails only on a "
              "drop beyond its allowance, beyond the noise floor and significant at alpha")
    print(table)
    print("gate: PASS" if passed else "gate: FAIL (candidate regressed beyond the allowed drop)")
    return 0 if passed else 1


def cmd_plan(args: argparse.Namespace) -> int:
    """How many runs per side (and tasks, attempts) a method comparison needs for the power asked."""
    from rps_evals import replicates

    stated = (args.run_sd, args.task_run_sd, args.attempt_sd)
    if args.pilot and any(v is not None for v in stated):
        raise UsageError("give either --pilot runs or stated --run-sd/--task-run-sd/--attempt-sd, not both")
    if args.pilot:
        components, tasks, units, k, source = _pilot_components(args.pilot, args.metric)
    else:
        if any(v is None for v in stated) or args.design_tasks is None or args.design_attempts is None:
            raise UsageError("without --pilot, state --run-sd, --task-run-sd, --attempt-sd (rate scale), "
                             "--tasks and --attempts")
        if any(v < 0 for v in stated):
            raise UsageError("--run-sd, --task-run-sd and --attempt-sd must be >= 0")
        components = replicates.Components(args.run_sd**2, args.task_run_sd**2, args.attempt_sd**2)
        tasks, units, k, source = args.design_tasks, float(args.design_attempts), args.design_attempts, "stated"
    tasks = args.design_tasks or tasks
    attempts = args.design_attempts or k
    units = units * attempts / k  # units of a metric counted per attempt grow with the attempts
    sd = lambda v: f"{v ** 0.5:.3f}"  # noqa: E731
    print(f"{args.metric}: variance components ({source}), rate scale: run sd {sd(components.run)}, "
          f"task x run sd {sd(components.task_run)}, attempt sd {sd(components.attempt)}")
    print(f"one run's rate on {tasks} tasks x {units:g} units: sd {sd(components.run_variance(tasks, units))}; "
          f"with unlimited tasks it stays at the run sd {sd(components.run)}")
    print(f"\neffect {args.effect:+.3f} (B - A), two-sided alpha {args.alpha:g}, power target {args.power:g}")
    print(f"{'runs/side':>10}{'power':>10}{'detectable (' + format(args.power, 'g') + ')':>20}")
    for runs in (1, 2, 3, 4, 6, 8, 12, 16):
        found = replicates.power(args.effect, runs, tasks, units, components, args.alpha)
        smallest = replicates.detectable_effect(runs, tasks, units, components, args.alpha, args.power)
        if runs == 1:
            print(f"{runs:>10}{'-':>10}{'-':>20}   one run per side: no method-level test at all")
        else:
            print(f"{runs:>10}{found:>10.3f}{smallest:>20.3f}")
    print()
    for scale_tasks, scale_units in ((1, 1), (1, 2), (2, 1), (2, 2)):
        design_tasks, design_units = tasks * scale_tasks, units * scale_units
        needed = replicates.runs_needed(args.effect, design_tasks, design_units, components, args.alpha, args.power)
        print(f"{design_tasks} tasks x {design_units:g} units: "
              + (f"{needed} runs per side reach {args.power:g} power" if needed else "more than 64 runs per side"))
    return 0


def _pilot_components(paths: list[str], metric: str):
    """Variance components of `metric` from pilot runs of one method (its replicates)."""
    from rps_evals.compare import comparability, metric_matrices, read_any_run, recorded
    from rps_evals.replicates import variance_components

    if len(paths) < 2:
        raise UsageError("--pilot needs at least 2 runs of one method (training seeds or sampling passes)")
    runs = [read_any_run(path) for path in paths]
    for path, run in zip(paths[1:], runs[1:]):
        for warning in comparability(runs[0][0], run[0], names=(paths[0], path)):
            print(warning)
    k = int(recorded(runs[0][0], "k"))
    matrices = metric_matrices(runs, paths, k, runs[0][0].get("selection", "first"))
    if metric not in matrices:
        raise InputError(f"unknown --metric {metric!r}; one of: {', '.join(matrices)}")
    values, task_of_unit = matrices[metric]
    tasks = int(task_of_unit.max()) + 1
    if len(runs) < 6:
        print(f"note: {len(runs)} pilot runs give the run variance {len(runs) - 1} degrees of freedom: "
              "a rough estimate (a run sd of 0 may just be luck); state --run-sd from more runs to check")
    return (variance_components(values, task_of_unit), tasks, values.shape[1] / tasks, k,
            f"{len(runs)} pilot runs, {tasks} tasks, k={k}")


def cmd_sandbox(args: argparse.Namespace) -> int:
    from rps_evals.execution.image import ensure_image, remove_leftover_containers

    if args.action == "build":
        offline = {"auto": None, "online": False, "offline": True}[args.mode]
        print(ensure_image(offline=offline, base_image=args.base_image, force=args.force))
    else:
        removed = remove_leftover_containers(everything=args.all)
        print(f"removed {len(removed)} sandbox container(s)" + (": " + ", ".join(removed) if removed else ""))
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """One self-contained HTML report of one run, or of two runs side by side."""
    from rps_evals.reports.view import load_shown_run, write_report

    if args.vs is not None:
        paths = [*args.runs, *args.vs]
        same_name = len({path.name for path in paths}) < len(paths)
        sides = [[load_shown_run(path, str(path) if same_name else None) for path in side]
                 for side in (args.runs, args.vs)]
        write_report([], args.out, groups=(sides[0], sides[1]))
        print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB, {len(sides[0])} and "
              f"{len(sides[1])} runs, {len(sides[0][0].dataset.tasks)} tasks)")
        return 0
    if len(args.runs) > 2:
        raise InputError(f"view shows one run or two (A and B), or groups with --vs; got {len(args.runs)} runs")
    same_name = len({path.name for path in args.runs}) < len(args.runs)
    runs = [load_shown_run(path, str(path) if same_name else None) for path in args.runs]
    write_report(runs, args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB, {len(runs[0].dataset.tasks)} tasks)")
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    """One task, and a run's attempts at it, as a PNG."""
    from rps_evals.reports.draw import draw_task_png
    from rps_evals.reports.view import load_shown_run

    if (args.run is None) == (args.dataset is None):
        raise InputError("give either --run RUN (the task and the run's attempts) or --dataset NAME (the task alone)")
    run = load_shown_run(args.run) if args.run else None
    draw_task_png(args.task_id, args.out, run=run, dataset_name=args.dataset)
    print(f"wrote {args.out}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """The task ids of a dataset (what --task-ids and -T task_ids take), with their sizes."""
    dataset = load_dataset(args.dataset)
    print(f"{dataset.name}: {len(dataset.tasks)} tasks, {dataset.num_test_outputs} test outputs")
    print(f"{'task_id':<10} {'train':>5} {'test':>4}  largest grid")
    for task in dataset.tasks.values():
        grids = [g for pair in task.train for g in pair] + task.test_inputs + task.test_outputs
        rows, cols = max(len(g) for g in grids), max(len(row) for g in grids for row in g)
        print(f"{task.task_id:<10} {len(task.train):>5} {task.num_tests:>4}  {rows}x{cols}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rps-evals", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score a responses JSONL file against an ARC dataset")
    _add_dataset_arguments(score, True, "the tasks")
    score.add_argument("--responses", required=True, type=Path, help="JSONL, one object per attempt")
    score.add_argument("--out", required=True, type=Path, help="run directory to write")
    score.add_argument("--attempts", type=int, default=2, help="attempts per task k (default 2)")
    score.add_argument("--sandbox", choices=("docker", "local"), default=None,
                       help="where programs run: docker (default) or local (UNSAFE, your own code only)")
    score.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help="seconds per transform call (default: %(default)s)")
    score.add_argument("--task-ids", nargs="+", default=None, help="score only these tasks")
    score.add_argument("--program-synthesis", choices=("allowed", "required", "off"), default=None,
                       help="the prompt mode the responses were generated with, recorded in the provenance "
                            "with its prompt hash (default: unknown, which compare --strict refuses)")
    _add_selection_arguments(score, "default first")
    score.set_defaults(func=cmd_score)

    report = sub.add_parser("report", help="write a run directory from an Inspect log or lm-eval output")
    report.add_argument("log", type=Path, help="Inspect .eval/.json log, or lm-eval --output_path result")
    report.add_argument("--out", required=True, type=Path, help="run directory to write")
    report.add_argument("--allow-errors", action="store_true",
                        help="write a run with tasks that were not run or not scored (cancelled, crashed); "
                             "results.json records the status. Failed generations need no flag: they are api_errors")
    _add_dataset_arguments(report, False, "where the run's own tasks are now, if not where it recorded")
    _add_selection_arguments(report, "default: what the run used, else first")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="compare two runs, or two groups of replicate runs (methods)")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="run directory, Inspect log or lm-eval output; with --vs, the runs of side A "
                              "(replicates: training seeds); paths joined by commas are sampling passes of one model")
    compare.add_argument("--vs", nargs="+", metavar="RUN", default=None,
                         help="the runs of side B; without --vs, give exactly two runs (A B)")
    compare.add_argument("--primary", default=None, metavar="METRIC",
                         help="the metric reported first and unadjusted (default attempts_from_executed_programs); "
                              "the others get Holm-adjusted p-values")
    compare.add_argument("--out", type=Path, help="also write the comparison as JSON")
    _add_dataset_arguments(compare, False, "refuse (exit 2) unless every run was scored on this dataset")
    compare.add_argument("--strict", action="store_true",
                         help="refuse (exit 2) runs that may not be comparable: a differing or unknown prompt_hash, program_synthesis, exec_timeout or sandbox numpy (otherwise a WARNING line)")
    compare.set_defaults(func=cmd_compare)

    gate_p = sub.add_parser("gate", help="exit 1 if a candidate (run or replicates) regressed against a baseline")
    gate_p.add_argument("candidate_run", nargs="?", default=None, metavar="CANDIDATE",
                        help="one candidate run (or use --candidate for replicates)")
    gate_p.add_argument("--baseline", required=True, nargs="+", metavar="RUN",
                        help="the baseline run, or its replicate runs")
    gate_p.add_argument("--candidate", nargs="+", default=None, metavar="RUN", help="the candidate's replicate runs")
    gate_p.add_argument("--max-drop", action="append", type=_max_drop, default=[], metavar="METRIC=FRACTION",
                        help=f"required, repeatable: the largest allowed drop in a metric's rate, e.g. "
                             f"attempts_from_executed_programs=0.05; metrics: {', '.join(METRICS)}")
    gate_p.add_argument("--alpha", type=float, default=None,
                        help="also require the drop to be significant (p < alpha); one run each: exact McNemar, "
                             "off unless given; replicates: the method-level test, 0.05 unless given")
    gate_p.add_argument("--strict", action="store_true",
                        help="refuse (exit 2) runs that may not be comparable: a differing or unknown prompt_hash, program_synthesis, exec_timeout or sandbox numpy (otherwise a WARNING line)")
    gate_p.set_defaults(func=cmd_gate)

    plan = sub.add_parser("plan", help="runs per side, tasks and attempts a method comparison needs (power)")
    plan.add_argument("--pilot", nargs="+", metavar="RUN", default=None,
                      help="replicate runs of one method, whose spread gives the variance components")
    plan.add_argument("--metric", default="attempts_from_executed_programs", help="the metric to plan for (default: %(default)s)")
    plan.add_argument("--effect", type=float, required=True, help="the difference B - A to detect, e.g. 0.10")
    plan.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    plan.add_argument("--power", type=float, default=0.8, help="the chance of finding the effect (default 0.8)")
    plan.add_argument("--run-sd", type=float, default=None, help="without --pilot: sd of a run's shift (rate scale)")
    plan.add_argument("--task-run-sd", type=float, default=None, help="without --pilot: sd of a run's shift on one task")
    plan.add_argument("--attempt-sd", type=float, default=None, help="without --pilot: sd of one unit within a task")
    plan.add_argument("--tasks", type=int, default=None, dest="design_tasks",
                      help="tasks per run (default: the pilot's)")
    plan.add_argument("--attempts", type=int, default=None, dest="design_attempts",
                      help="attempts per task (default: the pilot's k)")
    plan.set_defaults(func=cmd_plan)

    sandbox = sub.add_parser("sandbox", help="build the sandbox image, or remove leftover sandbox containers")
    sandbox.add_argument("action", choices=("build", "clean"),
                         help="build the image, or clean (remove) leftover sandbox containers")
    sandbox.add_argument("--mode", choices=("auto", "online", "offline"), default="auto",
                         help="build: docker build from a registry base (online), offline (mmdebstrap), or "
                              "auto: online then offline (default: %(default)s)")
    sandbox.add_argument("--base-image", default=None, help="build: the BASE_IMAGE build argument")
    sandbox.add_argument("--force", action="store_true", help="build: rebuild even if the image exists")
    sandbox.add_argument("--all", action="store_true", help="clean: also containers of live processes")
    sandbox.set_defaults(func=cmd_sandbox)

    datasets = sub.add_parser("datasets", help="list the datasets: name, tasks, test outputs, sha256")
    datasets.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                          help="also your own: a folder of ARC task files or a challenges JSON")
    datasets.add_argument("--solutions", type=Path, default=None, help="the solutions JSON of a challenges file")
    datasets.set_defaults(func=cmd_datasets)

    view = sub.add_parser("view", help="a self-contained HTML report of one run, or two runs side by side")
    view.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                      help="run directory, Inspect log or lm-eval output; a second one is shown as B")
    view.add_argument("--vs", nargs="+", type=Path, metavar="RUN", default=None,
                      help="replicates of B: the RUNs are then replicates of A, shown as one dot per run with "
                           "the method-level interval per metric")
    view.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    view.set_defaults(func=cmd_view)

    draw = sub.add_parser("draw", help="a PNG of one task and a run's attempts at it")
    draw.add_argument("task_id", help="the task to draw (rps-evals tasks DATASET lists them)")
    draw.add_argument("--run", type=Path, default=None, help="run directory, Inspect log or lm-eval output")
    draw.add_argument("--dataset", choices=DATASETS, default=None, help="draw the task alone, from this dataset")
    draw.add_argument("--out", required=True, type=Path, help="the PNG file to write")
    draw.set_defaults(func=cmd_draw)

    tasks = sub.add_parser("tasks", help="list a dataset's task ids with their train/test counts and grid sizes")
    tasks.add_argument("dataset", metavar="DATASET",
                       help=f"one of {', '.join(DATASETS)}, a folder of ARC task files or a challenges JSON")
    tasks.set_defaults(func=cmd_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "attempts", 1) < 1:
        parser.error("--attempts must be at least 1")
    if args.command == "plan" and not (0 < args.alpha < 1 and 0 < args.power < 1 and args.effect != 0):
        parser.error("plan: --alpha and --power must be between 0 and 1 and --effect must not be 0")
    if args.command == "plan" and ((args.design_tasks or 1) < 1 or (args.design_attempts or 1) < 1):
        parser.error("plan: --tasks and --attempts must be at least 1")
    if getattr(args, "timeout", 1) <= 0:
        parser.error("--timeout must be positive")
    prices = (getattr(args, "price_in", None), getattr(args, "price_out", None))
    if (prices[0] is None) != (prices[1] is None):
        parser.error("--price-in and --price-out go together (prices per million input and output tokens)")
    if any(p is not None and not p >= 0 for p in prices):
        parser.error("--price-in and --price-out must be numbers >= 0")
    try:
        code = args.func(args)
        sys.stdout.flush()  # a short output meets a closed pipe here, inside this handler, not at exit
        return code
    except (InputError, DatasetError, SandboxUnavailable) as exc:
        print(f"rps-evals: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rps-evals compare A B | head`: the reader left; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
