"""`rps-evals`: score recorded responses, report Inspect / lm-eval runs, compare two runs, gate CI.

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
from rps_evals.records import InputError, check_run_dir, read_responses, read_run, write_run
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


def cmd_compare(args: argparse.Namespace) -> int:
    from rps_evals.compare import compare_runs, format_comparison  # scipy: imported where used

    runs = [read_run(args.run_a), read_run(args.run_b)]
    if args.dataset:
        _check_dataset(load_dataset(args.dataset, args.solutions), (args.run_a, args.run_b), runs)
    comparison = compare_runs(*runs, strict=args.strict)
    print(format_comparison(comparison, str(args.run_a), str(args.run_b)))
    if args.out:
        Path(args.out).write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
    return 0


def _check_dataset(dataset, paths, runs) -> None:
    """compare --dataset: both runs were scored on exactly these tasks (by the dataset's hash)."""
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
    from rps_evals.compare import compare_runs, gate

    if not args.max_drop:
        raise InputError("give at least one --max-drop METRIC=FRACTION, e.g. "
                         "--max-drop attempts_from_executed_programs=0.05")
    comparison = compare_runs(read_run(args.baseline), read_run(args.candidate), strict=args.strict,
                              names=("baseline", "candidate"))
    passed, table = gate(comparison, dict(args.max_drop), args.alpha)
    for warning in comparison["warnings"]:
        print(warning)
    print(table)
    print("gate: PASS" if passed else "gate: FAIL (candidate regressed beyond the allowed drop)")
    return 0 if passed else 1


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

    if len(args.runs) > 2:
        raise InputError(f"view shows one run or two (A and B), got {len(args.runs)}")
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

    compare = sub.add_parser("compare", help="paired comparison of two run directories")
    compare.add_argument("run_a", type=Path, help="run directory A (e.g. the new model)")
    compare.add_argument("run_b", type=Path, help="run directory B, the reference A is compared with")
    compare.add_argument("--out", type=Path, help="also write the comparison as JSON")
    _add_dataset_arguments(compare, False, "refuse (exit 2) unless both runs were scored on this dataset")
    compare.add_argument("--strict", action="store_true",
                         help="refuse (exit 2) runs that may not be comparable: a differing or unknown prompt_hash, program_synthesis, exec_timeout or sandbox numpy (otherwise a WARNING line)")
    compare.set_defaults(func=cmd_compare)

    gate_p = sub.add_parser("gate", help="exit 1 if a candidate run regressed against a baseline")
    gate_p.add_argument("candidate", type=Path, help="run directory of the candidate")
    gate_p.add_argument("--baseline", required=True, type=Path, help="run directory the candidate must not fall below")
    gate_p.add_argument("--max-drop", action="append", type=_max_drop, default=[], metavar="METRIC=FRACTION",
                        help=f"required, repeatable: the largest allowed drop in a metric's rate, e.g. "
                             f"attempts_from_executed_programs=0.05; metrics: {', '.join(METRICS)}")
    gate_p.add_argument("--alpha", type=float, default=None,
                        help="also require the drop to be significant (exact McNemar p < alpha); "
                             "default: none, the drop alone decides")
    gate_p.add_argument("--strict", action="store_true",
                        help="refuse (exit 2) runs that may not be comparable: a differing or unknown prompt_hash, program_synthesis, exec_timeout or sandbox numpy (otherwise a WARNING line)")
    gate_p.set_defaults(func=cmd_gate)

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
