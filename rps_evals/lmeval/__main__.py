"""`python -m rps_evals.lmeval`: the folder for `lm_eval --include_path`, or lm-eval's own CLI with the
project's model `rps-chat-completions` registered and the arc_prog tasks included.

    python -m rps_evals.lmeval --tasks-path
    python -m rps_evals.lmeval run --model rps-chat-completions --model_args base_url=...,model=... \\
        --tasks arc1_prog --apply_chat_template --confirm_run_unsafe_code --log_samples --output_path out
"""

import argparse
import sys

from rps_evals.lmeval import tasks_path


def run_lm_eval(argv: list[str]) -> int:
    """lm-eval's CLI (`lm_eval run ...`) after registering rps-chat-completions; adds
    `--include_path` for the arc_prog tasks unless one is given."""
    import rps_evals.lmeval.model  # noqa: F401  (registers the model)
    from lm_eval.__main__ import cli_evaluate

    if "--include_path" not in argv:
        argv = [*argv, "--include_path", str(tasks_path())]
    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return run_lm_eval(argv)
    parser = argparse.ArgumentParser(prog="python -m rps_evals.lmeval",
                                     description="Helpers for the lm-eval arc_prog tasks; `run ARGS...` "
                                                 "is lm_eval run with the rps-chat-completions model.")
    parser.add_argument("--tasks-path", action="store_true", help="print the folder to pass to --include_path")
    args = parser.parse_args(argv)
    if not args.tasks_path:
        parser.print_help()
        return 2
    print(tasks_path())
    return 0


raise SystemExit(main())
