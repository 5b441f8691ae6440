"""Inspect hooks of the arc tasks: the study's n/of table at the end of each eval, and the warm
sandbox pool closed when the run ends.

Inspect's own results show rates only (46 lines of n, of and rate floats read badly); the table
printed here is `rps-evals score`'s (`attempts_from_executed_programs  214/240 (89.2%)`), counted
from the log's samples by `counts.log_counts`, so it is what `rps-evals report LOG` writes too.
"""

from __future__ import annotations

from inspect_ai.hooks import Hooks, RunEnd, TaskEnd, hooks

from rps_evals.execution import close_shared_executors
from rps_evals.inspect_eval.counts import results_table


@hooks(name="rps_evals", description="rps-evals: n/of table after each arc task; closes the sandbox pool")
class ArcTaskHooks(Hooks):
    def __init__(self) -> None:
        self._tables: dict[str, list[str]] = {}  # run id -> the tables of its finished arc tasks

    async def on_task_end(self, data: TaskEnd) -> None:
        from inspect_ai.log import read_eval_log
        from inspect_ai.util import display_type

        log = data.log
        if display_type() == "none" or not (log.eval.metadata or {}).get("rps_evals"):
            return
        if log.samples is None and log.location:  # the samples are in the log file written just now
            log = read_eval_log(log.location)
        table = results_table(log)
        if table is not None:  # printed at the run's end, after Inspect's own summary
            self._tables.setdefault(data.run_id, []).append(table)

    async def on_run_end(self, data: RunEnd) -> None:
        close_shared_executors()  # the pool served every sample of the run; its containers go now
        tables = self._tables.pop(data.run_id, [])
        if tables:
            import rich

            rich.get_console().print("\n" + "\n\n".join(tables), markup=False, highlight=False)

