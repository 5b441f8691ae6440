"""The runner protocol (sandbox/runner/), one definition for every backend.

Requests and answers are JSON lines: a request carries the source, the inputs (test inputs first,
then training inputs) and the per-call time limit; an answer carries the status and raw outputs.
The runner's command line is built here too, so the local runner, the Docker containers and an
Inspect sandbox all start it the same way.
"""

from __future__ import annotations

import json
from importlib.resources import files

from rps_evals.execution import Execution, Program

RUNNER_PATH = str(files("rps_evals.sandbox") / "runner")  # a package directory, run as `python3 -s -P RUNNER_PATH`
# Not -I: it implies -E, which ignores PYTHONHASHSEED=0, so every runner drew its own string-hash seed
# and a program whose output follows a set's order changed between runs (red team round 2). -s -P keep
# -I's sys.path (the runner's directory, no user site, no cwd); every backend sets the runner's
# environment itself (docker.py, the image, local.py), so no caller's PYTHON* variable reaches it.
PYTHON_FLAGS = ("-s", "-P")
RUNNER_IN_IMAGE = "/opt/rps/runner"  # where sandbox/Dockerfile puts it


def runner_command(runner: str, *, timeout: float, memory_mb: int, workers: int = 1,
                   extra: tuple[str, ...] = ()) -> list[str]:
    """The command line that starts the runner at `runner` under this machine's or the image's python3."""
    return ["python3", *PYTHON_FLAGS, runner, "--workers", str(workers), "--timeout", str(timeout),
            "--memory-mb", str(memory_mb), *extra]


WALL_FACTOR = 10  # the runner's own (sandbox/runner/limits.py)


def wall_limit(cpu_limit: float) -> float:
    """The wall-clock backstop of a call whose CPU time limit is `cpu_limit` seconds: the runner's
    rule (sandbox/runner/limits.py), repeated here for provenance and docs."""
    return WALL_FACTOR * cpu_limit


MAX_SOURCE_CHARS = 1 << 20  # the runner's own limit (sandbox/runner/limits.py): a longer program never runs
MAX_REQUEST_BYTES = 64 << 20  # the runner's own limit on one request line


def runner_request(request_id: int, program: Program, timeout: float) -> str | Execution:
    """One request of the runner protocol (sandbox/runner/), as a JSON line without its newline
    (the test inputs first, then the training inputs), or the `error` Execution the program gets at
    once, without sending it, when the runner would refuse the request: a source too long to run
    (a 20 MB source would cost the transport and the runner seconds no time limit covers), inputs
    that are not strict JSON (NaN, Infinity) or a request past the runner's size limit. Built as
    strictly as the runner reads, so that every request sent gets an answer with its id."""
    if len(program.source or "") > MAX_SOURCE_CHARS:
        return runner_failure(program, f"the program is {len(program.source)} characters long; the sandbox "
                                       f"runs programs of at most {MAX_SOURCE_CHARS}")
    try:
        line = json.dumps({"id": request_id, "source": program.source,
                           "inputs": list(program.test_inputs) + list(program.train_inputs),
                           "num_tests": len(program.test_inputs), "timeout": timeout}, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        return runner_failure(program, f"the task's inputs cannot be sent to the sandbox as strict JSON: {exc}")
    if len(line) > MAX_REQUEST_BYTES:  # ASCII: characters are bytes
        return runner_failure(program, f"the request (source and inputs) is {len(line)} bytes as JSON; the "
                                       f"sandbox takes at most {MAX_REQUEST_BYTES}")
    return line


def read_answer(line: bytes | str) -> dict | None:
    """One line the runner wrote, as its answer object; None for anything else (the host never
    trusts the runner's stream to be well formed: a dying runner may leave half a line)."""
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


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


def request_line(request_id: int, program: Program, timeout: float) -> bytes | Execution:
    """runner_request() as bytes with its newline, or its refusal."""
    line = runner_request(request_id, program, timeout)
    return line if isinstance(line, Execution) else (line + "\n").encode()
