"""`python -m rps_evals.lmeval --tasks-path`: the folder to pass to `lm_eval --include_path`."""

import argparse

from rps_evals.lmeval import tasks_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rps_evals.lmeval",
                                     description="Helpers for the lm-eval arc_prog tasks.")
    parser.add_argument("--tasks-path", action="store_true", help="print the folder to pass to --include_path")
    args = parser.parse_args(argv)
    if not args.tasks_path:
        parser.print_help()
        return 2
    print(tasks_path())
    return 0


raise SystemExit(main())
