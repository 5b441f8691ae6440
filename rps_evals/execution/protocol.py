"""The runner protocol (sandbox/runner.py), one definition for every backend.

Requests and answers are JSON lines: a request carries the source, the inputs (test inputs first,
then training inputs) and the per-call time limit; an answer carries the status and raw outputs.
The runner's command line is built here too, so the local runner, the Docker containers and an
Inspect sandbox all start it the same way.
"""

from __future__ import annotations

import json
from importlib.resources import files

from rps_evals.execution import Execution, Program

RUNNER_PATH = str(files("rps_evals.sandbox") / "runner.py")
RUNNER_IN_IMAGE = "/opt/rps/runner.py"  # where sandbox/Dockerfile puts the runner


def runner_command(runner: str, *, timeout: float, memory_mb: int, workers: int = 1,
                   extra: tuple[str, ...] = ()) -> list[str]:
    """The command line that starts the runner at `runner` under this machine's or the image's python3."""
    return ["python3", "-I", runner, "--workers", str(workers), "--timeout", str(timeout),
            "--memory-mb", str(memory_mb), *extra]


def runner_request(request_id: int, program: Program, timeout: float) -> str:
    """One request of the runner protocol (sandbox/runner.py), as a JSON line without its newline:
    the test inputs first, then the training inputs."""
    return json.dumps({"id": request_id, "source": program.source,
                       "inputs": list(program.test_inputs) + list(program.train_inputs),
                       "num_tests": len(program.test_inputs), "timeout": timeout})


MAX_SOURCE_CHARS = 1 << 20  # the runner's own limit (sandbox/runner.py): a longer program never runs


def refusal(program: Program) -> Execution | None:
    """The `error` a program too long to run gets at once, without sending it (a 20 MB source would
    cost the transport and the runner seconds that no time limit covers); None for any other."""
    if len(program.source or "") <= MAX_SOURCE_CHARS:
        return None
    return runner_failure(program, f"the program is {len(program.source)} characters long; the sandbox "
                                   f"runs programs of at most {MAX_SOURCE_CHARS}")


def runner_failure(program: Program, why: str) -> Execution:
    return Execution("error", [None] * len(program.test_inputs), [None] * len(program.train_inputs), why)


def execution_from_answer(program: Program, answer: dict) -> Execution:
    status = answer.get("status")
    if status not in ("ok", "error", "timeout"):
        return runner_failure(program, f"malformed runner answer: {str(answer)[:200]}")
    outputs = list(answer.get("outputs") or [])
    n = len(program.test_inputs)
    outputs += [None] * (n + len(program.train_inputs) - len(outputs))
    return Execution(status, outputs[:n], outputs[n:], str(answer.get("error") or ""))


def request_line(request_id: int, program: Program, timeout: float) -> bytes:
    return (runner_request(request_id, program, timeout) + "\n").encode()
